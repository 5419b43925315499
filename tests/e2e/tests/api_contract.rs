//! The v1alpha1 contract against the real API server: CRDs install, every valid sample is
//! accepted, every invalid sample is rejected naming its field, `kubectl explain` and the printer
//! columns are useful, and spec.tenant and spec.canary are immutable.

// Integration tests fail by panicking; helpers here are test code too.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use molecule_e2e::harness::{TestEnv, repo_root, unique, wait_for};

fn env() -> TestEnv {
    TestEnv::load().expect("test world")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("samples dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn kubectl_ok(env: &TestEnv, args: &[&str], stdin: Option<&str>) -> String {
    let out = env.kubectl(args, stdin).expect("kubectl runs");
    assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Installs the checked-in CRDs and the sample namespaces, once per test process: the tests of
/// this file run in parallel, and two client-side applies racing to create the same namespace
/// fail with AlreadyExists.
fn install(env: &TestEnv) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| install_now(env));
}

fn install_now(env: &TestEnv) {
    let crds = repo_root().join("charts/molecule-operator/crds");
    kubectl_ok(env, &["apply", "--server-side", "--force-conflicts", "-f", crds.to_str().expect("utf8")], None);
    kubectl_ok(
        env,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/tenants.moleculesai.app",
            "crd/workspaces.moleculesai.app",
        ],
        None,
    );
    let ns = repo_root().join("config/samples/namespaces.yaml");
    kubectl_ok(env, &["apply", "--server-side", "-f", ns.to_str().expect("utf8")], None);
}

#[test]
fn every_valid_sample_is_accepted() {
    let env = env();
    install(&env);
    let files = yaml_files(&repo_root().join("config/samples"));
    assert!(files.len() >= 12, "expected the documented samples, found {}", files.len());
    for f in files {
        let out = env.kubectl(&["apply", "--dry-run=server", "-f", f.to_str().expect("utf8")], None).expect("kubectl");
        assert!(out.status.success(), "{} was rejected: {}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn every_invalid_sample_is_rejected_naming_its_field() {
    let env = env();
    install(&env);
    let files = yaml_files(&repo_root().join("config/samples/invalid"));
    assert!(files.len() >= 25, "need at least 25 invalid samples, found {}", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let first = text.lines().next().unwrap_or_default();
        let field = first.strip_prefix("# ").and_then(|r| r.split(':').next()).unwrap_or_default();
        assert!(!field.is_empty(), "{}: first line must be '# <field>: <rule>'", f.display());
        let out = env.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&text)).expect("kubectl");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", f.display());
        assert!(stderr.contains(field), "{}: the rejection does not name {field}: {stderr}", f.display());
    }
}

#[test]
fn explain_prints_useful_text() {
    let env = env();
    install(&env);
    // kubectl explain reads the published OpenAPI, which trails CRD installation a little.
    let out = tokio_block(wait_for("explain to know Workspace", Duration::from_secs(30), || async {
        let o = env.kubectl(&["explain", "workspace.spec.compute.display.mode"], None).ok()?;
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }))
    .expect("explain");
    for needle in ["desktop-control", "gpu-desktop-control", "Lease", "t3.xlarge"] {
        assert!(out.contains(needle), "explain display.mode lacks {needle}: {out}");
    }
    let out = kubectl_ok(&env, &["explain", "tenant.status.orphans"], None);
    for needle in ["no live", "detectedAt", "reason", "SecurityGroup"] {
        assert!(out.contains(needle), "explain tenant.status.orphans lacks {needle}: {out}");
    }
}

#[test]
fn printer_columns_short_names_and_category() {
    let env = env();
    install(&env);
    let ns = unique("cols");
    kubectl_ok(&env, &["create", "namespace", &ns], None);
    let ws = format!(
        "apiVersion: moleculesai.app/v1alpha1\nkind: Workspace\nmetadata: {{name: agent, namespace: {ns}}}\nspec: {{tenant: acme, runtime: codex}}\n"
    );
    kubectl_ok(&env, &["apply", "-f", "-"], Some(&ws));
    let header = |args: &[&str]| {
        kubectl_ok(&env, args, None)
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(header(&["get", "ws", "-n", &ns]), ["NAME", "TENANT", "TYPE", "PHASE", "INSTANCE", "IP", "$/H", "AGE"]);
    assert_eq!(
        header(&["get", "ws", "-n", &ns, "-o", "wide"]),
        ["NAME", "TENANT", "TYPE", "PHASE", "INSTANCE", "IP", "$/H", "AGE", "DISPLAY", "READY"]
    );
    let tn = unique("cols");
    kubectl_ok(
        &env,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: moleculesai.app/v1alpha1\nkind: Tenant\nmetadata: {{name: {tn}}}\nspec: {{tier: 3}}\n"
        )),
    );
    assert_eq!(
        header(&["get", "tn", &tn]),
        ["NAME", "TIER", "PHASE", "INSTANCE", "HOSTNAME", "WORKSPACES", "ORPHANS", "AGE"]
    );
    let all = kubectl_ok(&env, &["get", "molecule", "-A"], None);
    assert!(
        all.contains(&format!("tenant.moleculesai.app/{tn}")) && all.contains("workspace.moleculesai.app/agent"),
        "{all}"
    );
    // Defaults are written by the API server.
    let tier = kubectl_ok(
        &env,
        &["get", "ws", "agent", "-n", &ns, "-o", "jsonpath={.spec.tier} {.spec.state} {.spec.updatePolicy}"],
        None,
    );
    assert_eq!(tier, "2 Running Manual");
    kubectl_ok(&env, &["delete", "namespace", &ns, "--wait=false"], None);
    kubectl_ok(&env, &["annotate", "tenant", &tn, "moleculesai.app/erasure=confirmed"], None);
    kubectl_ok(&env, &["delete", "tenant", &tn, "--wait=false"], None);
}

#[test]
fn spec_tenant_is_immutable() {
    let env = env();
    install(&env);
    let ns = unique("immut");
    kubectl_ok(&env, &["create", "namespace", &ns], None);
    let ws = |tenant: &str| {
        format!(
            "apiVersion: moleculesai.app/v1alpha1\nkind: Workspace\nmetadata: {{name: agent, namespace: {ns}}}\nspec: {{tenant: {tenant}, runtime: codex}}\n"
        )
    };
    kubectl_ok(&env, &["apply", "-f", "-"], Some(&ws("acme")));
    let out = env.kubectl(&["apply", "-f", "-"], Some(&ws("globex"))).expect("kubectl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "changing spec.tenant was accepted");
    assert!(stderr.contains("spec.tenant") && stderr.contains("immutable"), "{stderr}");
    // Other fields still change.
    let ws2 = ws("acme").replace("runtime: codex", "runtime: codex, state: Stopped");
    kubectl_ok(&env, &["apply", "-f", "-"], Some(&ws2));
    kubectl_ok(&env, &["delete", "namespace", &ns, "--wait=false"], None);
}

#[test]
fn spec_canary_is_immutable() {
    let env = env();
    install(&env);
    // No operator reconciles this Tenant (no scenario label): only the API server is exercised.
    let name = unique("immut-tn");
    let tn = |canary: bool, tier: u8| {
        format!(
            "apiVersion: moleculesai.app/v1alpha1\nkind: Tenant\nmetadata: {{name: {name}}}\nspec: {{canary: {canary}, tier: {tier}}}\n"
        )
    };
    kubectl_ok(&env, &["apply", "-f", "-"], Some(&tn(false, 2)));
    let out = env.kubectl(&["apply", "-f", "-"], Some(&tn(true, 2))).expect("kubectl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "changing spec.canary was accepted");
    assert!(stderr.contains("spec.canary") && stderr.contains("immutable"), "{stderr}");
    kubectl_ok(&env, &["apply", "-f", "-"], Some(&tn(false, 3)));
    kubectl_ok(&env, &["annotate", "tenant", &name, "moleculesai.app/erasure=confirmed"], None);
    kubectl_ok(&env, &["delete", "tenant", &name, "--wait=false"], None);
}

fn tokio_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}
