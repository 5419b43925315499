//! Health for GitOps from real objects: Workspaces and Tenants driven through the operator into
//! each state (Ready, provisioning, refused, stopped, boot failed, paused, being deleted; a Tenant
//! Ready, provisioning, stopped and one that cannot be provisioned) are captured as
//! `kubectl get -o json` writes them, and the Go harness in tests/health runs the chart's Argo CD
//! Lua checks (under gopher-lua, as Argo CD does) and kstatus (what Flux uses) on them, asserting
//! what each must report. With `HEALTH_CAPTURE=1` the captures are also copied into
//! tests/health/fixtures/captured/<test>/ (with their expect.yaml) to be checked in.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aws_sdk_ec2::types::Tag;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject};
use molecule_crds::v1alpha1::Workspace;
use molecule_e2e::harness::{repo_root, unique, wait_for};
use molecule_e2e::scenario::Scenario;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);

/// Objects captured by one test and what both tools must say about each.
struct Captures {
    name: &'static str,
    dir: PathBuf,
    expect: String,
}

impl Captures {
    fn new(name: &'static str) -> Self {
        let dir = std::env::temp_dir().join(unique("health-captures"));
        std::fs::create_dir_all(&dir).unwrap();
        let expect = format!(
            "# Captured by tests/e2e/tests/health.rs ({name}); file -> Argo CD health, kstatus status, a substring of the Argo CD message.\n"
        );
        Self { name, dir, expect }
    }

    /// Saves `obj` as `file` and records the expectation (`message`: part of the Argo CD message).
    fn add(&mut self, file: &str, obj: &Value, argocd: &str, kstatus: &str, message: &str) {
        let mut obj = obj.clone();
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        std::fs::write(self.dir.join(file), serde_json::to_string_pretty(&obj).unwrap() + "\n").unwrap();
        let msg = if message.is_empty() { String::new() } else { format!(", message: {}", json!(message)) };
        writeln!(self.expect, "{file}: {{argocd: {argocd}, kstatus: {kstatus}{msg}}}").unwrap();
    }

    /// Runs the Go harness on every capture and asserts its expectations; with HEALTH_CAPTURE set,
    /// replaces tests/health/fixtures/captured/<name>/ with the captures.
    fn verify(&self) {
        std::fs::write(self.dir.join("expect.yaml"), &self.expect).unwrap();
        let out = Command::new("go")
            .args(["run", "./cmd/healthcheck", "-verify"])
            .arg(&self.dir)
            .current_dir(repo_root().join("tests/health"))
            .output()
            .expect("go (tests/health needs Go)");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        println!("{stdout}");
        assert!(out.status.success(), "healthcheck disagrees with the expectations:\n{stderr}\n{stdout}");
        if std::env::var_os("HEALTH_CAPTURE").is_some_and(|v| v == "1") {
            let dest = repo_root().join("tests/health/fixtures/captured").join(self.name);
            let _ = std::fs::remove_dir_all(&dest);
            std::fs::create_dir_all(&dest).unwrap();
            for entry in std::fs::read_dir(&self.dir).unwrap() {
                let p = entry.unwrap().path();
                std::fs::copy(&p, dest.join(p.file_name().unwrap())).unwrap();
            }
        }
    }
}

/// The object as `kubectl get -o json` prints it (`kind`: workspace or tenant).
fn get(s: &Scenario, kind: &str, name: &str) -> Option<Value> {
    let mut args = vec!["get", kind, name, "-o", "json"];
    if kind == "workspace" {
        args.extend(["-n", s.ns.as_str()]);
    }
    let out = s.env.kubectl(&args, None).ok()?;
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

/// Waits until `check` holds for the object; returns it as captured.
async fn wait_obj(s: &Scenario, kind: &str, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("{kind} {name}: {what}"), T, || async { get(s, kind, name).filter(|v| check(v)) })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()))
}

fn cond<'a>(v: &'a Value, t: &str) -> Option<&'a Value> {
    v["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == t)
}

/// Condition `t` has `status` (and `reason`, when not empty).
fn is(v: &Value, t: &str, status: &str, reason: &str) -> bool {
    cond(v, t).is_some_and(|c| c["status"] == status && (reason.is_empty() || c["reason"] == reason))
}

/// The status was computed from the current generation.
fn current(v: &Value) -> bool {
    v["status"]["observedGeneration"].is_i64() && v["status"]["observedGeneration"] == v["metadata"]["generation"]
}

fn phase(v: &Value) -> &str {
    v["status"]["phase"].as_str().unwrap_or_default()
}

/// The Stalled condition's message: what Argo CD must show for a Degraded object.
fn stalled_message(v: &Value) -> String {
    cond(v, "Stalled").and_then(|c| c["message"].as_str()).unwrap_or_default().to_owned()
}

fn ready(v: &Value) -> bool {
    is(v, "Ready", "True", "") && current(v) && is(v, "Reconciling", "False", "") && is(v, "Stalled", "False", "")
}

async fn tag_boot_failed(s: &Scenario, instance: &str) {
    let tag = Tag::builder().key("moleculesai.app/boot").value("failed").build();
    s.env.ec2_direct().await.create_tags().resources(instance).tags(tag).send().await.unwrap();
}

/// Deletes a Workspace and returns the object the API server answers with (deletionTimestamp set,
/// finalizer still there), in the shape kubectl prints.
async fn delete_returning(s: &Scenario, name: &str) -> Value {
    let ar = ApiResource::erase::<Workspace>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(s.kube.clone(), &s.ns, &ar);
    let obj = api.delete(name, &DeleteParams::default()).await.unwrap().left().expect("held by the finalizer");
    serde_json::to_value(obj).unwrap()
}

#[tokio::test]
async fn workspaces_and_their_tenant_in_each_state_get_the_expected_health() {
    let mut s = Scenario::new("health", 4, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    let mut c = Captures::new("workspace");
    for (name, spec) in [
        ("ready", json!({"runtime": "codex"})),
        (
            "gpumix",
            json!({"runtime": "codex", "compute": {"instanceType": "t3.large", "gpu": {"type": "T4", "count": 1}}}),
        ),
        ("stopped", json!({"runtime": "codex"})),
        ("bootfail", json!({"runtime": "codex"})),
        ("paused", json!({"runtime": "codex"})),
    ] {
        s.apply(&s.workspace(name, spec)).unwrap();
    }
    let w = wait_obj(&s, "workspace", "ready", "Ready", ready).await;
    c.add("workspace-ready.json", &w, "Healthy", "Current", "Ready");

    let w = wait_obj(&s, "workspace", "gpumix", "Stalled GpuMismatch", |v| {
        current(v) && is(v, "Stalled", "True", "GpuMismatch") && is(v, "Reconciling", "False", "")
    })
    .await;
    assert!(stalled_message(&w).contains("spec.compute.gpu"), "{w}");
    c.add("workspace-gpu-mismatch.json", &w, "Degraded", "Failed", &stalled_message(&w));

    wait_obj(&s, "workspace", "stopped", "Ready", ready).await;
    s.patch("stopped", json!({"spec": {"state": "Stopped"}})).await.unwrap();
    let w = wait_obj(&s, "workspace", "stopped", "Stopped", |v| {
        current(v) && phase(v) == "Stopped" && is(v, "Reconciling", "False", "") && is(v, "Stalled", "False", "")
    })
    .await;
    c.add("workspace-stopped.json", &w, "Suspended", "InProgress", "Stopped");

    let w = wait_obj(&s, "workspace", "bootfail", "Ready", ready).await;
    tag_boot_failed(&s, w["status"]["instanceId"].as_str().unwrap()).await;
    let w = wait_obj(&s, "workspace", "bootfail", "Stalled BootFailed", |v| {
        current(v) && is(v, "Stalled", "True", "BootFailed") && is(v, "Ready", "False", "BootFailed")
    })
    .await;
    c.add("workspace-boot-failed.json", &w, "Degraded", "Failed", &stalled_message(&w));

    wait_obj(&s, "workspace", "paused", "Ready", ready).await;
    s.patch("paused", json!({"metadata": {"annotations": {"moleculesai.app/paused": "true"}}})).await.unwrap();
    let w = wait_obj(&s, "workspace", "paused", "Paused", |v| is(v, "Paused", "True", "")).await;
    assert!(is(&w, "Reconciling", "False", ""), "paused: Reconciling False\n{w}");
    c.add("workspace-paused.json", &w, "Suspended", "Current", "");

    let t = wait_obj(&s, "tenant", &s.tenant, "Ready", ready).await;
    c.add("tenant-ready.json", &t, "Healthy", "Current", "");

    let w = delete_returning(&s, "ready").await;
    assert!(w["metadata"]["deletionTimestamp"].is_string(), "{w}");
    c.add("workspace-deleting.json", &w, "Progressing", "Terminating", "Being deleted");

    cleanup_and_stop_tenant(&s, &mut c).await;
    c.verify();
}

/// Deletes the remaining Workspaces (the paused one unpaused first), waits until they are gone,
/// then stops the Tenant by spec and captures it.
async fn cleanup_and_stop_tenant(s: &Scenario, c: &mut Captures) {
    s.patch("paused", json!({"metadata": {"annotations": {"moleculesai.app/paused": null}}})).await.unwrap();
    for name in ["gpumix", "stopped", "bootfail", "paused"] {
        s.delete(name).await.unwrap();
    }
    for name in ["ready", "gpumix", "stopped", "bootfail", "paused"] {
        s.wait_gone(name, T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    }
    s.tenants()
        .patch(
            &s.tenant,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"state": "Stopped"}})),
        )
        .await
        .unwrap();
    let t = wait_obj(s, "tenant", &s.tenant, "Stopped", |v| {
        current(v) && phase(v) == "Stopped" && is(v, "Reconciling", "False", "")
    })
    .await;
    c.add("tenant-stopped.json", &t, "Suspended", "InProgress", "Stopped");
}

/// Polls (without pause) until `check` holds, failing if `too_late` holds first.
async fn catch(
    s: &Scenario,
    kind: &str,
    name: &str,
    check: impl Fn(&Value) -> bool,
    too_late: impl Fn(&Value) -> bool,
) -> Value {
    let start = std::time::Instant::now();
    while start.elapsed() < T {
        if let Some(v) = get(s, kind, name) {
            if check(&v) {
                return v;
            }
            assert!(!too_late(&v), "{kind} {name} went past the state to capture:\n{v}\n{}", s.log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{kind} {name}: state to capture not seen in {T:?}\n{}", s.log());
}

#[tokio::test]
async fn objects_on_their_way_are_progressing() {
    let mut s = Scenario::new("healthprov", 4, json!({})).await.unwrap();
    // A slow fleet refresh keeps the machines in the booting state long enough to be seen.
    s.start_operator(&[("CLOUD_REFRESH_SECONDS", "15")]).unwrap();
    let mut c = Captures::new("progressing");
    let converging = |v: &Value| phase(v) == "Provisioning" && current(v) && is(v, "Reconciling", "True", "");
    let t = catch(&s, "tenant", &s.tenant.clone(), converging, ready).await;
    c.add("tenant-provisioning.json", &t, "Progressing", "InProgress", "");
    wait_obj(&s, "tenant", &s.tenant, "Ready", ready).await;

    s.apply(&s.workspace("prov", json!({"runtime": "codex"}))).unwrap();
    let w = catch(&s, "workspace", "prov", converging, ready).await;
    c.add("workspace-provisioning.json", &w, "Progressing", "InProgress", "");
    wait_obj(&s, "workspace", "prov", "Ready", ready).await;
    s.delete("prov").await.unwrap();
    s.wait_gone("prov", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    c.verify();
}

#[tokio::test]
async fn a_tenant_that_cannot_be_provisioned_is_degraded() {
    let mut s = Scenario::new("healthstall", 2, json!({"canary": true})).await.unwrap();
    // The canary account is unusable (its subnet does not exist): only an operator action helps.
    s.start_operator(&[("CANARY_SUBNET_ID", "subnet-0000000000000dead")]).unwrap();
    let mut c = Captures::new("stalled");
    let t = wait_obj(&s, "tenant", &s.tenant, "Stalled CanaryNotConfigured", |v| {
        current(v) && is(v, "Stalled", "True", "CanaryNotConfigured") && is(v, "Reconciling", "False", "")
    })
    .await;
    assert!(stalled_message(&t).contains("spec.canary"), "{t}");
    c.add("tenant-canary-not-configured.json", &t, "Degraded", "Failed", &stalled_message(&t));
    c.verify();
}
