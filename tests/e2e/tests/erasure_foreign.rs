//! A Workspace that names a Tenant from a namespace the Tenant never bound (issue 12), with a
//! finalizer of its own, is refused (`Admitted=False`, `NamespaceNotAllowed`) and cannot hold the
//! Tenant's erasure: the erasure neither deletes it nor waits for it, and the receipt completes.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use molecule_crds::v1alpha1::Workspace;
use molecule_e2e::harness::wait_for;
use molecule_e2e::scenario::{Scenario, condition};
use serde_json::json;

const READY: Duration = Duration::from_mins(3);
const ERASED: Duration = Duration::from_mins(3);

#[tokio::test]
async fn a_foreign_workspace_with_its_own_finalizer_does_not_hold_the_erasure() {
    let mut s = Scenario::new("foreign", 2, json!({})).await.unwrap();
    let other_ns = format!("{}-x", s.id);
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": other_ns } });
    s.apply(&ns).unwrap();
    let mut ws = s.sample("workspace-minimal.yaml", "intruder");
    ws["metadata"]["namespace"] = json!(other_ns);
    ws["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.apply(&ws).unwrap();
    s.start_operator(&[]).unwrap();
    s.wait_tenant_ready(READY).await.unwrap();
    let foreign: Api<Workspace> = Api::namespaced(s.kube.clone(), &other_ns);
    let refused = wait_for("the foreign Workspace to be refused", READY, || async {
        let w = foreign.get_opt("intruder").await.ok().flatten()?;
        condition(&w, "Admitted").filter(|c| c.0 == "False").map(|c| c.1)
    })
    .await
    .unwrap();
    assert_eq!(refused, "NamespaceNotAllowed");
    let uid = s.get_tenant().await.unwrap().metadata.uid.unwrap();

    s.delete_tenant().await.unwrap();
    s.wait_tenant_gone(ERASED).await.expect("the erasure completes despite the foreign Workspace");
    let receipt = s.receipt(&uid).await.expect("receipt");
    assert!(receipt["completedAt"].as_str().is_some_and(|t| !t.is_empty()), "{receipt:#}");
    let names: Vec<String> = receipt["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "Workspace")
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    assert!(!names.iter().any(|n| n.contains("intruder")), "the foreign Workspace is not the tenant's: {names:?}");
    let still = foreign.get_opt("intruder").await.unwrap().expect("left alone");
    assert!(still.metadata.deletion_timestamp.is_none(), "the erasure must not delete somebody else's Workspace");

    let unhold = json!({ "metadata": { "finalizers": null } });
    foreign.patch("intruder", &PatchParams::default(), &Patch::Merge(unhold)).await.unwrap();
    foreign.delete("intruder", &DeleteParams::default()).await.ok();
}
