//! Drift: what changed between the machine that runs and the machine the spec asks for, and what
//! applying it costs. Pure.

use molecule_crds::v1alpha1::{DisplaySpec, OsFamily, ResolvedCompute};
use sha2::{Digest, Sha256};

/// Hash of what a launched machine is made of: the instance records it in a tag; a different
/// hash is drift. It hashes the resolution, so spelling out a default is not drift, but only what
/// the user chose: not the catalog's vCPUs and memory, and not an AMI the image catalog picked
/// (a new catalog image must never replace a fleet at once; it reaches instances as they are
/// replaced for other reasons). `dataGb` is left out too: replacing the instance would not resize
/// the volume. The desktop's size and protocol are in: they are fixed at launch.
pub fn spec_hash(r: &ResolvedCompute, display: Option<&DisplaySpec>) -> String {
    let custom_ami = (r.os_family == OsFamily::Custom).then_some(r.ami_id.as_str());
    let chosen = serde_json::json!({
        "instanceType": r.instance_type,
        "arch": r.arch,
        "os": [r.os_family.as_str(), r.os_version.as_str(), custom_ami.unwrap_or_default()],
        "root": [r.root_gb, r.iops, r.throughput_mi_bps],
        "gpu": r.gpu,
        "market": r.market,
        "display": [serde_json::to_value(r.display_mode).unwrap_or_default(), serde_json::to_value(display).unwrap_or_default()],
    });
    hex::encode(&Sha256::digest(chosen.to_string().as_bytes())[..8])
}

/// Each changed field as `field: old → new`.
pub fn changes(old: &ResolvedCompute, new: &ResolvedCompute) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec![];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "unset".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} → {}", show(a.get(k)), show(b.get(k))))
        .collect()
}

/// The Drifted condition's message.
pub fn message(changes: &[String], has_data_volume: bool, manual: bool) -> String {
    let list = if changes.is_empty() { "spec.compute changed".to_owned() } else { changes.join(", ") };
    let data = if has_data_volume { "the data volume survives" } else { "there is no data volume" };
    let how = if manual {
        "set the annotation moleculesai.app/recreate-at to the current time to apply it"
    } else {
        "applying it now (updatePolicy Recreate)"
    };
    format!("{list}; applying it replaces the instance: the root volume is lost, {data}; {how}")
}

#[cfg(test)]
mod tests {
    use molecule_crds::v1alpha1::{Arch, DisplayMode, Market, OsFamily};

    use super::*;

    fn r(t: &str) -> ResolvedCompute {
        ResolvedCompute {
            instance_type: t.into(),
            vcpus: 2,
            memory_mib: 8192,
            arch: Arch::X86_64,
            os_family: OsFamily::Ubuntu,
            os_version: "24.04".into(),
            ami_id: "ami-1".into(),
            root_gb: 50,
            iops: 3000,
            throughput_mi_bps: 125,
            data_gb: Some(10),
            gpu: None,
            market: Market::OnDemand,
            display_mode: DisplayMode::None,
        }
    }

    #[test]
    fn changes_list_each_field_old_to_new() {
        let mut b = r("t3.xlarge");
        b.vcpus = 4;
        assert_eq!(changes(&r("t3.large"), &b), vec!["instanceType: t3.large → t3.xlarge", "vcpus: 2 → 4"]);
        assert_ne!(spec_hash(&r("t3.large"), None), spec_hash(&b, None));
        assert_eq!(spec_hash(&r("t3.large"), None), spec_hash(&r("t3.large"), None));
        let m = message(&changes(&r("t3.large"), &b), true, true);
        assert!(m.contains("root volume is lost") && m.contains("data volume survives") && m.contains("recreate-at"));
    }

    #[test]
    fn catalog_changes_and_data_size_are_not_drift_but_the_desktop_is() {
        let a = r("t3.large");
        let mut b = a.clone();
        b.ami_id = "ami-new".into();
        b.vcpus = 4;
        b.data_gb = Some(500);
        assert_eq!(spec_hash(&a, None), spec_hash(&b, None), "catalog AMI, vCPUs and dataGb do not replace");
        let mut c = a.clone();
        c.os_family = OsFamily::Custom;
        let mut d = c.clone();
        d.ami_id = "ami-new".into();
        assert_ne!(spec_hash(&c, None), spec_hash(&d, None), "a custom AMI is the user's choice");
        let small = DisplaySpec { width: 1280, ..DisplaySpec::default() };
        assert_ne!(spec_hash(&a, Some(&small)), spec_hash(&a, Some(&DisplaySpec::default())));
    }
}
