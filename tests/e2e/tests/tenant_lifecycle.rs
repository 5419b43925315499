//! The tenant VM over its life: an image change is redeployed in place through SSM Run Command
//! (same instance, no terminate); `spec.state` stops and starts it; a kill -9 right after each
//! side effect of the launch protocol and in the middle of an erasure leaves exactly one VM, and
//! the erasure resumes to a complete receipt.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_crds::v1alpha1::{RedeployState, Tenant, TenantPhase};
use molecule_e2e::scenario::Scenario;
use serde_json::json;

const T: Duration = Duration::from_mins(2);

fn uid(t: &Tenant) -> String {
    t.metadata.uid.clone().unwrap_or_default()
}

async fn patch_tenant(s: &Scenario, spec: serde_json::Value) {
    s.tenants()
        .patch(&s.tenant, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(json!({ "spec": spec })))
        .await
        .unwrap();
}

async fn vm_state(s: &Scenario, id: &str) -> String {
    let ec2 = s.env.ec2_direct().await;
    let out = ec2.describe_instances().instance_ids(id).send().await.unwrap();
    out.reservations()[0].instances()[0].state().and_then(|x| x.name()).map(|n| n.as_str().to_owned()).unwrap()
}

#[tokio::test]
async fn image_change_redeploys_in_place_and_state_stops_and_starts_the_vm() {
    let mut s = Scenario::new("tnlife", 2, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    let t = s.wait_tenant_ready(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st = t.status.clone().unwrap();
    let vm = st.instance_id.clone().unwrap();
    assert_eq!(st.image.as_deref(), Some(s.env.var("TENANT_IMAGE")), "launched with the operator's tenant image");

    let next = "ghcr.io/moleculesai/tenant:2.0.0";
    patch_tenant(&s, json!({ "image": next })).await;
    let t = s
        .wait_tenant("redeployed", T, |t| {
            t.status.as_ref().is_some_and(|x| {
                x.image.as_deref() == Some(next)
                    && x.redeploy.as_ref().is_some_and(|r| r.state == RedeployState::Succeeded)
            })
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st = t.status.clone().unwrap();
    let r = st.redeploy.clone().unwrap();
    assert_eq!(r.image, next);
    assert!(!r.command_id.is_empty() && r.finished_at.is_some());
    assert_eq!(st.instance_id.as_deref(), Some(vm.as_str()), "same VM: redeployed in place");
    assert_eq!(vm_state(&s, &vm).await, "running", "no reboot into another state, no terminate");
    assert_eq!(s.tenant_instances(&s.env.ec2_direct().await).await.len(), 1, "no second VM was ever launched");
    let sent = s.sent("ssm.SendCommand", next).await;
    assert!(sent.contains("AWS-RunShellScript") && sent.contains("/opt/molecule/redeploy.sh"), "SendCommand: {sent}");
    let events = s.tenant_events().await;
    assert!(events.iter().any(|(ty, r, n)| ty == "Normal" && r == "Redeployed" && n.contains(next)), "{events:?}");

    patch_tenant(&s, json!({ "state": "Stopped" })).await;
    s.wait_tenant("Stopped", T, |t| t.status.as_ref().is_some_and(|x| x.phase == Some(TenantPhase::Stopped)))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(vm_state(&s, &vm).await, "stopped");
    patch_tenant(&s, json!({ "state": "Running" })).await;
    let t = s.wait_tenant_ready(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert_eq!(t.status.unwrap().instance_id.as_deref(), Some(vm.as_str()), "started, not replaced");
    assert_eq!(vm_state(&s, &vm).await, "running");

    s.delete_tenant().await.unwrap();
    s.wait_tenant_gone(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
}

async fn crash_during_tenant_launch(failpoint: &str) {
    let mut s = Scenario::new("tncrash", 2, json!({})).await.unwrap();
    s.start_operator(&[("MOLECULE_FAILPOINTS", failpoint)]).unwrap();
    s.wait_log(&format!("failpoint=\"{failpoint}\""), T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.kill_operator();
    s.start_operator(&[]).unwrap();
    let t = s.wait_tenant_ready(T).await.unwrap_or_else(|e| panic!("{failpoint}: {e}\n{}", s.log()));
    let ec2 = s.env.ec2_direct().await;
    let all = s.tenant_instances(&ec2).await;
    assert_eq!(all.len(), 1, "{failpoint}: VMs ever launched: {all:?}");
    assert_eq!(all[0].instance_id(), t.status.as_ref().unwrap().instance_id.as_deref());
    let f = aws_sdk_ec2::types::Filter::builder().name("tag:moleculesai.app/owner-uid").values(uid(&t)).build();
    let groups = ec2.describe_security_groups().filters(f).send().await.unwrap();
    assert_eq!(groups.security_groups().len(), 1, "{failpoint}: one tenant security group");
    // Clean up, and prove the erasure resumes after a crash in its middle.
    s.kill_operator();
    s.start_operator(&[("MOLECULE_FAILPOINTS", "tenant.erase.after-progress")]).unwrap();
    s.delete_tenant().await.unwrap();
    s.wait_log("failpoint=\"tenant.erase.after-progress\"", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.kill_operator();
    assert!(s.get_tenant().await.is_some(), "the finalizer holds the Tenant while the operator is down");
    s.start_operator(&[]).unwrap();
    s.wait_tenant_gone(T).await.unwrap_or_else(|e| panic!("{failpoint}: {e}\n{}", s.log()));
    let receipt = s.receipt(&uid(&t)).await.expect("receipt");
    assert!(receipt["completedAt"].is_string(), "{receipt}");
    let resources = receipt["resources"].as_array().cloned().unwrap_or_default();
    assert!(resources.iter().all(|r| r["confirmedGoneAt"].is_string()), "{receipt}");
    assert!(resources.iter().any(|r| r["kind"] == "Instance" && r["id"] == json!(all[0].instance_id())), "{receipt}");
}

#[tokio::test]
async fn crash_after_the_launch_record_leaves_one_vm() {
    crash_during_tenant_launch("tenant.launch.after-record").await;
}

#[tokio::test]
async fn crash_after_run_instances_leaves_one_vm() {
    crash_during_tenant_launch("tenant.launch.after-run").await;
}

#[tokio::test]
async fn crash_after_the_group_is_created_leaves_one_group() {
    crash_during_tenant_launch("tenant.sg.after-create").await;
}
