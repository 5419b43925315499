//! The image catalog: which AMI a Workspace boots, keyed by (family, version, arch, gpu).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::v1alpha1::{Arch, OsFamily};

/// Key of an image in the catalog.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageKey {
    /// OS family (ubuntu or debian).
    pub family: OsFamily,
    /// OS version, such as 24.04.
    pub version: String,
    /// CPU architecture.
    pub arch: Arch,
    /// Whether the image carries GPU drivers.
    #[serde(default)]
    pub gpu: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImageEntry {
    family: OsFamily,
    version: String,
    arch: Arch,
    #[serde(default)]
    gpu: bool,
    ami_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImageFile {
    images: Vec<ImageEntry>,
}

/// Why an image catalog file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageCatalogError {
    /// Not YAML of the expected shape.
    #[error("failed to parse the image catalog: {0}")]
    Parse(String),
    /// An entry makes no sense.
    #[error("invalid image catalog entry for {family} {version} {arch}: {problem}")]
    Invalid {
        /// Family of the entry.
        family: &'static str,
        /// Version of the entry.
        version: String,
        /// Architecture of the entry.
        arch: Arch,
        /// What is wrong.
        problem: &'static str,
    },
}

/// AMIs by key. The operator's default image (`EC2_AMI`) stands in for
/// (ubuntu, 24.04, x86_64, no GPU) when the catalog has no entry of its own for that key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageCatalog {
    images: BTreeMap<ImageKey, String>,
}

impl ImageCatalog {
    /// The key the default AMI answers for.
    pub fn default_key() -> ImageKey {
        ImageKey { family: OsFamily::Ubuntu, version: "24.04".into(), arch: Arch::X86_64, gpu: false }
    }

    /// A catalog holding only the default AMI.
    pub fn with_default(default_ami: Option<&str>) -> Self {
        let mut c = Self::default();
        if let Some(ami) = default_ami {
            c.images.insert(Self::default_key(), ami.to_owned());
        }
        c
    }

    /// Parses a catalog file; `default_ami` fills the default key if the file does not.
    pub fn from_yaml(text: &str, default_ami: Option<&str>) -> Result<Self, ImageCatalogError> {
        let file: ImageFile = serde_yaml_ng::from_str(text).map_err(|e| ImageCatalogError::Parse(e.to_string()))?;
        let mut c = Self::with_default(default_ami);
        let mut seen = std::collections::BTreeSet::new();
        for e in file.images {
            let key = ImageKey { family: e.family, version: e.version, arch: e.arch, gpu: e.gpu };
            let invalid = |problem| ImageCatalogError::Invalid {
                family: key.family.as_str(),
                version: key.version.clone(),
                arch: key.arch,
                problem,
            };
            if key.family == OsFamily::Custom {
                return Err(invalid("family custom takes its AMI from the Workspace, not the catalog"));
            }
            if !e.ami_id.starts_with("ami-") {
                return Err(invalid("amiId must start with ami-"));
            }
            if !seen.insert(key.clone()) {
                return Err(invalid("listed twice"));
            }
            c.images.insert(key, e.ami_id);
        }
        Ok(c)
    }

    /// The AMI for `key`, if the catalog has one.
    pub fn lookup(&self, key: &ImageKey) -> Option<&str> {
        self.images.get(key).map(String::as_str)
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = (&ImageKey, &str)> {
        self.images.iter().map(|(k, v)| (k, v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "images:\n- {family: ubuntu, version: '22.04', arch: arm64, amiId: ami-0aaa}\n- {family: ubuntu, version: '24.04', arch: x86_64, gpu: true, amiId: ami-0bbb}\n";

    #[test]
    fn default_ami_fills_only_its_key() {
        let c = ImageCatalog::from_yaml(FILE, Some("ami-0def")).expect("parse");
        assert_eq!(c.lookup(&ImageCatalog::default_key()), Some("ami-0def"));
        let arm = ImageKey { family: OsFamily::Ubuntu, version: "24.04".into(), arch: Arch::Arm64, gpu: false };
        assert_eq!(c.lookup(&arm), None, "an arm64 request must never get the x86 default");
        let gpu = ImageKey { gpu: true, ..ImageCatalog::default_key() };
        assert_eq!(c.lookup(&gpu), Some("ami-0bbb"));
    }

    #[test]
    fn file_entry_wins_over_default() {
        let f = "images:\n- {family: ubuntu, version: '24.04', arch: x86_64, amiId: ami-0111}\n";
        let c = ImageCatalog::from_yaml(f, Some("ami-0def")).expect("parse");
        assert_eq!(c.lookup(&ImageCatalog::default_key()), Some("ami-0111"));
    }

    #[test]
    fn rejects_bad_entries() {
        let custom = "images:\n- {family: custom, version: x, arch: x86_64, amiId: ami-1}\n";
        assert!(ImageCatalog::from_yaml(custom, None).is_err());
        let bad = "images:\n- {family: debian, version: '12', arch: x86_64, amiId: img-1}\n";
        assert!(ImageCatalog::from_yaml(bad, None).is_err());
        let dup = "images:\n- {family: debian, version: '12', arch: x86_64, amiId: ami-1}\n- {family: debian, version: '12', arch: x86_64, amiId: ami-2}\n";
        assert!(ImageCatalog::from_yaml(dup, None).is_err());
    }
}
