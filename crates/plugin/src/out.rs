//! Output like kubectl: aligned tables with upper-case headers, or `-o json|yaml`.

use serde::Serialize;

use crate::error::Error;

/// `-o` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Renders rows under `headers` with kubectl's spacing (three spaces between columns).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i < last {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(c.chars().count()) + 3;
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// Serializes `v` as JSON or YAML (`Table` prints nothing here: the caller draws its table).
pub fn structured<T: Serialize>(v: &T, f: Format) -> Result<String, Error> {
    let fail = |e: String| Error::Call { action: "serialize".into(), object: "output".into(), message: e };
    match f {
        Format::Json => serde_json::to_string_pretty(v).map(|s| s + "\n").map_err(|e| fail(e.to_string())),
        Format::Yaml => serde_yaml_ng::to_string(v).map_err(|e| fail(e.to_string())),
        Format::Table => Ok(String::new()),
    }
}

/// `<none>` for an empty cell, like kubectl.
pub fn cell(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("<none>").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let t = table(&["NAME", "$/H"], &[vec!["a".into(), "0.1".into()], vec!["longer".into(), "2".into()]]);
        assert_eq!(t, "NAME     $/H\na        0.1\nlonger   2\n");
    }
}
