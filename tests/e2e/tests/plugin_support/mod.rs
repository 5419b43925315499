//! Helpers of tests/plugin.rs: the plugin as a process, its exit code and one-line errors, the
//! Lease and the operator's mirror of it.
#![allow(dead_code, reason = "each test binary that includes this module uses a part of it")]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use molecule_crds::v1alpha1::Workspace;
use molecule_e2e::harness::repo_root;
use molecule_e2e::scenario::Scenario;
use serde_json::{Value, json};

pub const READY: Duration = Duration::from_secs(90);
pub const MIRROR: Duration = Duration::from_secs(10);

/// The plugin with the world's environment, a PATH without the AWS CLI, and `extra` variables.
pub fn cmd(s: &Scenario, args: &[&str], extra: &[(&str, &str)]) -> Command {
    let bin = repo_root().join("target/debug/kubectl-molecule");
    assert!(bin.exists(), "build the plugin first: cargo build -p molecule-plugin");
    let mut c = Command::new(bin);
    c.args(args)
        .env_clear()
        .envs(s.env.vars().iter().filter(|(k, _)| k.as_str() != "PATH"))
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(extra.iter().copied());
    c
}

pub fn run(s: &Scenario, args: &[&str]) -> Output {
    run_with(s, args, &[])
}

pub fn run_with(s: &Scenario, args: &[&str], extra: &[(&str, &str)]) -> Output {
    cmd(s, args, extra).output().expect("run kubectl-molecule")
}

/// The plugin started in the background, its output piped.
pub fn spawn(s: &Scenario, args: &[&str]) -> std::process::Child {
    cmd(s, args, &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn kubectl-molecule")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts success; returns stdout.
pub fn ok(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: exit {:?}\nstderr: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    stdout(o)
}

/// Asserts exit code 1 with exactly one line on stderr containing every needle; returns it.
pub fn fails(o: &Output, what: &str, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{what}: expected exit 1, stdout {}, stderr {err}", stdout(o));
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: one line on stderr: {err:?}");
    for n in needles {
        assert!(err.contains(n), "{what}: {n:?} missing from {err:?}");
    }
    err
}

pub fn display_of(w: &Workspace) -> (String, String) {
    w.status
        .as_ref()
        .and_then(|s| s.display.as_ref())
        .map_or_else(Default::default, |d| (d.controller.clone(), d.controlled_by.clone()))
}

pub async fn wait_controller(s: &Scenario, name: &str, controller: &str, by: &str, t: Duration) -> Duration {
    let start = Instant::now();
    s.wait_ws(name, &format!("display controller {controller} {by}"), t, |w| {
        display_of(w) == (controller.into(), by.into())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    start.elapsed()
}

pub async fn holder(s: &Scenario, name: &str) -> Option<String> {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(s.kube.clone(), &s.ns);
    let l = leases.get(&format!("{name}-display")).await.expect("lease");
    l.spec.and_then(|x| x.holder_identity).filter(|h| !h.is_empty())
}

/// The user name the API server authenticates the world's kubeconfig as (a SelfSubjectReview).
pub async fn whoami(s: &Scenario) -> String {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: kube::Api<SelfSubjectReview> = kube::Api::all(s.kube.clone());
    let r = api.create(&kube::api::PostParams::default(), &SelfSubjectReview::default()).await.expect("review");
    r.status.and_then(|st| st.user_info?.username).expect("a user name")
}

pub async fn desktop_scenario(prefix: &str) -> Scenario {
    let mut s = Scenario::new(prefix, 4, json!({})).await.expect("scenario");
    s.start_operator(&[]).expect("operator");
    s.apply(&s.sample("workspace-desktop.yaml", "desk")).expect("apply desk");
    s.apply(&s.sample("workspace-minimal.yaml", "plain")).expect("apply plain");
    s.wait_ready("desk", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s
}

/// The world's kubeconfig with `as: <user>` (kubectl's impersonation) in a scratch file.
pub fn kubeconfig_as(s: &Scenario, user: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(s.env.var("KUBECONFIG")).unwrap();
    let mut kc: Value = serde_yaml_ng::from_str(&text).unwrap();
    for u in kc["users"].as_array_mut().unwrap() {
        u["user"]["as"] = json!(user);
    }
    let path = std::env::temp_dir().join(format!("{}-{user}.kubeconfig", s.id));
    std::fs::write(&path, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    path
}
