//! The checked-in CRDs (charts/molecule-operator/crds) equal what the types generate, and the
//! schema keeps the properties users rely on. `make crds` regenerates them.

// Integration tests fail by panicking; helpers here are test code too.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::path::PathBuf;

#[test]
fn checked_in_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../charts/molecule-operator/crds");
    for (name, text) in molecule_crds::crd::rendered().expect("render") {
        let on_disk = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(on_disk == text, "{name} is stale: run `make crds` and commit the result");
    }
}

#[test]
fn schema_carries_the_contract() {
    let crds = molecule_crds::crd::all();
    let json = serde_json::to_value(&crds).expect("json");
    let text = json.to_string();
    for needle in [
        "\"shortNames\":[\"tn\"]",
        "\"shortNames\":[\"ws\"]",
        "\"categories\":[\"molecule\"]",
        "\"scope\":\"Cluster\"",
        "\"scope\":\"Namespaced\"",
        "\"status\":{}",
        "self == oldSelf",
        "x-kubernetes-list-map-keys",
    ] {
        assert!(text.contains(needle), "CRDs lack {needle}");
    }
    // Every property has a description: `kubectl explain` must be useful down to the leaves.
    let mut missing = Vec::new();
    for crd in &json.as_array().expect("list").clone() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        walk(schema, crd["spec"]["names"]["kind"].as_str().unwrap_or("?"), &mut missing);
    }
    assert!(missing.is_empty(), "fields without a description: {missing:?}");
}

fn walk(v: &serde_json::Value, at: &str, missing: &mut Vec<String>) {
    if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
        for (k, p) in props {
            let here = format!("{at}.{k}");
            if p.get("description").is_none() && !["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                missing.push(here.clone());
            }
            walk(p, &here, missing);
        }
    }
    if let Some(items) = v.get("items") {
        walk(items, &format!("{at}[]"), missing);
    }
}
