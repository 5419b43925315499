//! A delete that AWS keeps refusing: past the deadline the Workspace names what blocks it, the
//! finalizer holds, and once AWS relents everything goes. Alone in its own test binary because
//! fault rules apply to every caller of the proxy.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_e2e::scenario::{Scenario, condition, uid};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_group_still_in_use_blocks_the_delete_with_a_condition_naming_it() {
    let mut s = Scenario::new("blocked", 4, json!({})).await.unwrap();
    s.start_operator(&[("DEPROVISION_DEADLINE_SECONDS", "2")]).unwrap();
    s.apply(&s.workspace("w", json!({"runtime": "codex"}))).unwrap();
    let w = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let sg = w.status.as_ref().unwrap().security_group_id.clone().unwrap();

    s.env.clear_faults().await.unwrap();
    s.env
        .add_faults(json!([{"operation": "DeleteSecurityGroup", "kind": "error", "status": 400,
            "code": "DependencyViolation", "message": "resource has a dependent object"}]))
        .await
        .unwrap();
    s.delete("w").await.unwrap();
    // The first blocker past the deadline can be the wait for a listing newer than the terminate
    // (under load); the condition follows the blocker until it is the group.
    let blocked = s
        .wait_ws("w", "DeletionBlocked naming the group", T, |w| {
            condition(w, "Ready").is_some_and(|c| c.1 == "DeletionBlocked" && c.2.contains(&sg))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let msg = condition(&blocked, "Ready").unwrap().2;
    assert!(msg.contains(&sg) && msg.contains("DependencyViolation"), "the condition names the group: {msg}");
    assert!(s.events("w").await.iter().any(|(t, r, n)| t == "Warning" && r == "DeletionBlocked" && n.contains(&sg)));
    assert!(s.alive(&uid(&w)).await.is_empty(), "the instance went first");

    s.env.clear_faults().await.unwrap();
    s.wait_gone("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let left = s.leftovers(&uid(&w), w.status.as_ref().unwrap().hostname.as_deref()).await;
    assert!(left.is_empty(), "left behind {left:?}");
}
