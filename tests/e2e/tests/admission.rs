//! The chart's admission policies, applied for real by the test world (tests/e2e/testenv/rbac.sh
//! renders them from charts/molecule-operator/files/): the API server refuses to delete a Tenant
//! that does not carry `moleculesai.app/erasure: confirmed`, with a message saying how to confirm;
//! once confirmed, the delete is accepted, the operator's finalizer holds the Tenant, and the
//! erasure runs to its receipt.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_e2e::harness::{TestEnv, unique};
use molecule_e2e::scenario::{ERASURE_ANNOTATION, Scenario};
use serde_json::json;

const T: Duration = Duration::from_mins(2);

/// `kubectl delete tenant NAME --wait=false`: (success, stderr).
fn kubectl_delete(env: &TestEnv, name: &str) -> (bool, String) {
    let out = env.kubectl(&["delete", "tenant", name, "--wait=false"], None).expect("kubectl");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn kubectl_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = env.kubectl(args, None).expect("kubectl");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn tenant_delete_needs_the_erasure_confirmation_then_the_erasure_runs() {
    let mut s = Scenario::new("adm", 2, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    let t = s.wait_tenant_ready(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let uid = t.metadata.uid.clone().unwrap();

    let (ok, stderr) = kubectl_delete(&s.env, &s.tenant);
    assert!(!ok, "the API server accepted an unconfirmed Tenant delete");
    let how = format!("kubectl annotate tenant {} {ERASURE_ANNOTATION}=confirmed", s.tenant);
    assert!(
        stderr.contains("denied request") && stderr.contains(&how),
        "refusal does not say how to confirm: {stderr}"
    );
    let t = s.get_tenant().await.expect("the refused Tenant still exists");
    assert!(t.metadata.deletion_timestamp.is_none(), "refused, yet marked for deletion");

    // Any other value is no confirmation.
    kubectl_ok(&s.env, &["annotate", "tenant", &s.tenant, &format!("{ERASURE_ANNOTATION}=yes")]);
    assert!(!kubectl_delete(&s.env, &s.tenant).0, "erasure=yes was taken as a confirmation");

    kubectl_ok(&s.env, &["annotate", "--overwrite", "tenant", &s.tenant, &format!("{ERASURE_ANNOTATION}=confirmed")]);
    let (ok, stderr) = kubectl_delete(&s.env, &s.tenant);
    assert!(ok, "the confirmed delete was refused: {stderr}");
    // The operator's finalizer holds the Tenant while the erasure runs, then lets it go.
    let held = s.get_tenant().await;
    if let Some(t) = held {
        assert!(t.metadata.deletion_timestamp.is_some(), "accepted, yet not marked for deletion");
        assert!(!t.metadata.finalizers.unwrap_or_default().is_empty(), "no finalizer holds the Tenant");
    }
    s.wait_tenant_gone(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let receipt = s.receipt(&uid).await.unwrap_or_else(|| panic!("no erasure receipt\n{}", s.log()));
    assert!(receipt.is_object(), "{receipt}");
}

#[tokio::test]
async fn an_unreconciled_tenant_is_protected_too() {
    // No operator and no scenario label: only the API server and its policy are exercised.
    let env = TestEnv::load().unwrap();
    let name = unique("adm-bare");
    let manifest =
        format!("apiVersion: moleculesai.app/v1alpha1\nkind: Tenant\nmetadata: {{name: {name}}}\nspec: {{tier: 1}}\n");
    let out = env.kubectl(&["apply", "-f", "-"], Some(&manifest)).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let policies = kubectl_ok(&env, &["get", "validatingadmissionpolicybindings", "-o", "name"]);
    assert!(policies.contains("tenant-deletion"), "the test world lacks the Tenant deletion policy: {policies}");

    let (ok, stderr) = kubectl_delete(&env, &name);
    assert!(!ok && stderr.contains("is protected"), "unconfirmed delete: ok={ok} {stderr}");
    kubectl_ok(&env, &["annotate", "tenant", &name, &format!("{ERASURE_ANNOTATION}=confirmed")]);
    let (ok, stderr) = kubectl_delete(&env, &name);
    assert!(ok, "confirmed delete refused: {stderr}");
    // Gone at once (no operator, no finalizer), or marked for deletion if some operator serving
    // every Tenant put its finalizer on it.
    let out = env
        .kubectl(&["get", "tenant", &name, "--ignore-not-found", "-o", "jsonpath={.metadata.deletionTimestamp}"], None)
        .unwrap();
    let gone_or_deleting = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let listed = kubectl_ok(&env, &["get", "tenant", &name, "--ignore-not-found", "-o", "name"]);
    assert!(listed.trim().is_empty() || !gone_or_deleting.is_empty(), "the accepted delete did not take: {listed}");
}
