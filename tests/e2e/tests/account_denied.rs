//! Independent accounts (issue 14 acceptance): the canary account's AssumeRole answers 403
//! AccessDenied (a rule on a fault proxy of this test's own, service sts, operation AssumeRole,
//! so no other scenario's operator is refused). A main-account Workspace still becomes Ready
//! within 90 s; the canary Tenant shows a condition naming the canary account and
//! `molecule_account_ready{account="canary"}` is 0; once the fault is cleared the canary Tenant
//! becomes Ready without a restart of the operator.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kube::api::Api;
use molecule_crds::v1alpha1::Tenant;
use molecule_e2e::harness::{PrivateProxy, http_text, wait_for};
use molecule_e2e::scenario::{LABEL, Scenario, tenant_condition};
use serde_json::json;

/// The canary Tenant of the scenario: its own name and namespace, the scenario's label.
fn canary_tenant(s: &Scenario) -> (String, serde_json::Value) {
    let name = format!("{}-c", s.id);
    let items = json!([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        {"apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant",
         "metadata": {"name": name, "labels": {LABEL: s.id}},
         "spec": {"tier": 2, "canary": true, "namespaces": [name]}},
    ]);
    (name, json!({"apiVersion": "v1", "kind": "List", "items": items}))
}

async fn account_ready(s: &Scenario, account: &str) -> Option<f64> {
    let text = http_text("GET", &format!("http://{}/metrics", s.metrics_addr)).await.ok()?.1;
    let needle = format!("molecule_account_ready{{account=\"{account}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&needle)).and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_canary_role_degrades_only_the_canary_and_recovers_without_a_restart() {
    let mut s = Scenario::new("acctdeny", 2, json!({})).await.unwrap();
    let proxy = PrivateProxy::start(&s.env).await.unwrap();
    proxy
        .add_faults(json!([{"service": "sts", "operation": "AssumeRole", "kind": "error", "status": 403,
            "code": "AccessDenied", "message": "User is not authorized to perform: sts:AssumeRole"}]))
        .await
        .unwrap();
    let (canary, manifest) = canary_tenant(&s);
    let out = s.env.kubectl(&["apply", "-f", "-"], Some(&manifest.to_string())).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = Instant::now();
    s.start_operator(&[("AWS_ENDPOINT_URL", proxy.endpoint.as_str())]).unwrap();
    s.apply(&s.workspace("a", json!({"runtime": "codex"}))).unwrap();

    // The main account goes on: the Workspace is Ready within 90 s of the start.
    s.wait_ready("a", Duration::from_secs(90)).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    eprintln!("main-account Workspace Ready {:?} after the start", started.elapsed());

    // The canary Tenant says which account refused it, and the metric names the account.
    let tenants: Api<Tenant> = Api::all(s.kube.clone());
    let get = || async { tenants.get_opt(&canary).await.ok().flatten() };
    let refused = wait_for("the canary Tenant to name the refusing account", Duration::from_mins(1), || async {
        let t = get().await?;
        let (status, reason, message) = tenant_condition(&t, "Ready")?;
        (status == "False" && reason == "AccountDenied").then_some(message)
    })
    .await;
    let refused = match refused {
        Ok(m) => m,
        Err(e) => panic!("{e}\n{:?}\n{}", get().await.map(|t| t.status), s.log()),
    };
    assert!(refused.contains("canary"), "the condition names the account: {refused}");
    let stalled = get().await.and_then(|t| tenant_condition(&t, "Stalled")).unwrap();
    assert_eq!((stalled.0.as_str(), stalled.1.as_str()), ("True", "AccountDenied"), "{stalled:?}");
    assert_eq!(account_ready(&s, "canary").await, Some(0.0));
    assert_eq!(account_ready(&s, "main").await, Some(1.0));
    let healthz = http_text("GET", &format!("http://{}/healthz", s.metrics_addr)).await.unwrap();
    assert_eq!(healthz.0, 200, "a refused canary role is no reason to restart the operator: {}", healthz.1);

    // The role is fixed: the same process opens the account and the canary Tenant converges.
    proxy.clear_faults().await.unwrap();
    let pid = s.operator.as_ref().map(molecule_e2e::harness::OperatorProcess::pid);
    let cleared = Instant::now();
    let ready = wait_for("the canary Tenant to become Ready", Duration::from_mins(5), || async {
        let t = get().await?;
        (tenant_condition(&t, "Ready")?.0 == "True").then_some(())
    })
    .await;
    if let Err(e) = ready {
        panic!("{e}\n{:?}\n{}", get().await.map(|t| t.status), s.log());
    }
    eprintln!("canary Tenant Ready {:?} after the clear", cleared.elapsed());
    assert_eq!(s.operator.as_ref().map(molecule_e2e::harness::OperatorProcess::pid), pid, "no restart");
    assert!(s.operator.as_mut().unwrap().is_running(), "the operator still runs");
    assert_eq!(account_ready(&s, "canary").await, Some(1.0));
    let status = get().await.and_then(|t| t.status).unwrap();
    assert_eq!(status.account.as_deref(), Some("canary"));
}
