//! A Workspace relabelled out of its operator's `WORKSPACE_SELECTOR` still exists, so its cloud
//! resources are not orphans: under `ORPHAN_POLICY=reap` with no grace, its instance, security
//! group and data volume survive three orphan scans after the operator's watch lost it, and
//! nothing is reported. Moved back, it is deleted as usual and leaves nothing.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_e2e::harness::wait_for;
use molecule_e2e::scenario::{LABEL, Scenario, uid};
use serde_json::json;

const T: Duration = Duration::from_mins(2);

fn scans(log: &str) -> usize {
    log.matches("orphan scan finished").count()
}

#[tokio::test]
async fn a_workspace_moved_out_of_the_shard_keeps_its_resources() {
    let mut s = Scenario::new("shardmv", 3, json!({})).await.unwrap();
    s.start_operator(&[("ORPHAN_POLICY", "reap"), ("ORPHAN_GRACE_SECONDS", "0")]).unwrap();
    s.wait_tenant_ready(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.apply(&s.workspace("w", json!({"runtime": "codex", "compute": {"volume": {"dataGb": 2}}}))).unwrap();
    let w = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let owner = uid(&w);
    let st = w.status.clone().unwrap();
    let mine = [
        format!("instance {}", st.instance_id.unwrap()),
        format!("security group {}", st.security_group_id.unwrap()),
        format!("volume {}", st.data_volume_id.unwrap()),
    ];
    s.wait_tenant("usage counts the Workspace", T, |t| {
        t.status.as_ref().is_some_and(|x| x.usage.as_ref().is_some_and(|u| u.workspaces == 1))
    })
    .await
    .unwrap();

    let elsewhere = format!("{}-elsewhere", s.id);
    s.patch("w", json!({"metadata": {"labels": {LABEL: elsewhere}}})).await.unwrap();
    // The Tenant's usage counts only selected Workspaces: 0 means the watch has lost it.
    s.wait_tenant("the operator no longer selects it", T, |t| {
        t.status.as_ref().is_some_and(|x| x.usage.as_ref().is_some_and(|u| u.workspaces == 0))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    // Four more ends of scans: at least three scans ran entirely after the watch lost it.
    let before = scans(&s.log());
    wait_for("three scans after the move", T, || async { (scans(&s.log()) > before + 3).then_some(()) })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let left = s.leftovers(&owner, None).await;
    for r in &mine {
        assert!(left.contains(r), "{r} was taken: {left:?}\n{}", s.log());
    }
    let log = s.log();
    assert!(!log.contains("orphan reaped") && !log.contains("orphan found"), "{log}");

    s.patch("w", json!({"metadata": {"labels": {LABEL: s.id}}})).await.unwrap();
    s.wait_tenant("selected again", T, |t| {
        t.status.as_ref().is_some_and(|x| x.usage.as_ref().is_some_and(|u| u.workspaces == 1))
    })
    .await
    .unwrap();
    s.delete("w").await.unwrap();
    s.wait_gone("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let left = s.leftovers(&owner, None).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}
