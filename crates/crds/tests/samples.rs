//! Every valid sample parses into the API types without losing a field, and every Workspace
//! sample resolves under the shipped catalog.

// Integration tests fail by panicking; helpers here are test code too.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::PathBuf;

use molecule_crds::catalog::Catalog;
use molecule_crds::images::ImageCatalog;
use molecule_crds::resolve::resolve;
use molecule_crds::v1alpha1::{Tenant, Workspace};
use serde_json::Value;

fn samples() -> Vec<(PathBuf, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/samples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("config/samples") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).expect("yaml");
            out.push((path.clone(), v));
        }
    }
    out
}

/// Every key of `original` is in `parsed` with the same value (defaults may add keys).
fn assert_subset(original: &Value, parsed: &Value, at: &str) {
    match (original, parsed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let next = format!("{at}.{k}");
                assert!(b.contains_key(k), "{next} was dropped when parsing: unknown or misspelled field");
                assert_subset(v, &b[k], &next);
            }
        }
        _ => assert_eq!(original, parsed, "{at} changed when parsing"),
    }
}

fn images() -> ImageCatalog {
    let mut yaml = String::from("images:\n");
    for (family, version) in [("ubuntu", "24.04"), ("ubuntu", "22.04"), ("debian", "12")] {
        for (i, (arch, gpu)) in [("x86_64", false), ("x86_64", true), ("arm64", false)].iter().enumerate() {
            let _ = writeln!(
                yaml,
                "- {{family: {family}, version: '{version}', arch: {arch}, gpu: {gpu}, amiId: ami-0{i}{}}}",
                version.replace('.', "")
            );
        }
    }
    ImageCatalog::from_yaml(&yaml, None).expect("image catalog")
}

#[test]
fn every_valid_sample_parses_and_resolves() {
    let all = samples();
    let (mut tenants, mut workspaces) = (0, 0);
    for (path, v) in &all {
        let at = path.display().to_string();
        match v["kind"].as_str() {
            Some("Tenant") => {
                let t: Tenant = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_subset(&v["spec"], &serde_json::to_value(&t.spec).expect("json"), &format!("{at}: spec"));
                tenants += 1;
            }
            Some("Workspace") => {
                let w: Workspace = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_subset(&v["spec"], &serde_json::to_value(&w.spec).expect("json"), &format!("{at}: spec"));
                resolve(&w.spec, &Catalog::builtin(), &images())
                    .unwrap_or_else(|e| panic!("{at}: does not resolve: {e}"));
                workspaces += 1;
            }
            Some("Namespace") => {}
            other => panic!("{at}: unexpected kind {other:?}"),
        }
    }
    assert!(tenants >= 2 && workspaces >= 10, "found {tenants} tenants and {workspaces} workspaces");
}

#[test]
fn invalid_samples_name_their_rule() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/samples/invalid");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("invalid dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# ") && first.contains(": "),
            "{}: first line must be '# <field>: <rule>'",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 25, "only {n} invalid samples");
}
