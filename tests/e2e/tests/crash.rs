//! kill -9 of the operator right after each side effect of the launch and delete protocols
//! (failpoints), then a restart: exactly one instance per Workspace, nothing leaked, and every
//! RunInstances carried the launch token recorded in status (a repeat after the crash is safe only
//! because EC2 answers a repeated ClientToken with the same instance).
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use molecule_e2e::scenario::{Scenario, condition, uid};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

async fn count(s: &Scenario, uid: &str) -> (usize, usize, usize) {
    let ec2 = s.env.ec2_direct().await;
    let f = Filter::builder().name("tag:moleculesai.app/owner-uid").values(uid).build();
    let groups = ec2.describe_security_groups().filters(f.clone()).send().await.unwrap().security_groups().len();
    let data = ec2
        .describe_volumes()
        .filters(f)
        .filters(Filter::builder().name("tag:moleculesai.app/volume").values("data").build())
        .send()
        .await
        .unwrap()
        .volumes()
        .len();
    (s.alive(uid).await.len(), groups, data)
}

async fn crash_during_launch(failpoint: &str) {
    let mut s = Scenario::new("crash", 4, json!({})).await.unwrap();
    s.start_operator(&[("MOLECULE_FAILPOINTS", failpoint)]).unwrap();
    s.apply(&s.workspace("w", json!({"runtime": "codex", "compute": {"volume": {"dataGb": 2}}}))).unwrap();
    s.wait_log(&format!("failpoint=\"{failpoint}\""), T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.kill_operator();
    s.start_operator(&[]).unwrap();
    let w = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{failpoint}: {e}\n{}", s.log()));
    // Give the restarted operator a few refreshes to misbehave, if it would.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&s, &uid(&w)).await, (1, 1, 1), "{failpoint}: one instance, one group, one data volume");
    // Not merely repaired afterwards: only one instance was ever launched for it.
    assert_eq!(s.instances(&uid(&w)).await.len(), 1, "{failpoint}: instances ever launched");
    assert_eq!(s.get("w").await.unwrap().status.unwrap().instance_id, w.status.as_ref().unwrap().instance_id);
    // The token reuse the repair relies on: one attempt, its recorded token on every RunInstances
    // (after-run: sent again after the restart unless the listing already showed the instance).
    let rec = w.status.as_ref().unwrap().launch.clone().unwrap();
    let tokens = s.run_tokens(&uid(&w)).await.unwrap();
    assert_eq!(rec.attempt, 1, "{failpoint}: no second attempt");
    assert!(
        (1..=2).contains(&tokens.len()) && tokens.iter().all(|t| *t == rec.token),
        "{failpoint}: RunInstances tokens {tokens:?}, recorded {}",
        rec.token
    );
    s.delete("w").await.unwrap();
    s.wait_gone("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let left = s.leftovers(&uid(&w), w.status.as_ref().unwrap().hostname.as_deref()).await;
    assert!(left.is_empty(), "{failpoint}: left behind {left:?}");
}

async fn crash_during_delete(failpoint: &str) {
    let mut s = Scenario::new("crashdel", 4, json!({})).await.unwrap();
    s.start_operator(&[]).unwrap();
    s.apply(&s.workspace("w", json!({"runtime": "codex", "compute": {"volume": {"dataGb": 2}}}))).unwrap();
    let w = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(condition(&w, "DnsReady").is_some_and(|c| c.0 == "True"));
    s.kill_operator();
    s.start_operator(&[("MOLECULE_FAILPOINTS", failpoint)]).unwrap();
    s.delete("w").await.unwrap();
    s.wait_log(&format!("failpoint=\"{failpoint}\""), T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.kill_operator();
    assert!(s.get("w").await.is_some(), "{failpoint}: the finalizer holds the Workspace while the operator is down");
    s.start_operator(&[]).unwrap();
    s.wait_gone("w", T).await.unwrap_or_else(|e| panic!("{failpoint}: {e}\n{}", s.log()));
    let left = s.leftovers(&uid(&w), w.status.as_ref().unwrap().hostname.as_deref()).await;
    assert!(left.is_empty(), "{failpoint}: left behind {left:?}");
}

#[tokio::test]
async fn crash_after_security_group_create() {
    crash_during_launch("workspace.sg.after-create").await;
}

#[tokio::test]
async fn crash_after_data_volume_create() {
    crash_during_launch("workspace.volume.after-create").await;
}

#[tokio::test]
async fn crash_after_launch_token_recorded() {
    crash_during_launch("workspace.launch.after-record").await;
}

#[tokio::test]
async fn crash_after_run_instances_before_status() {
    crash_during_launch("workspace.launch.after-run").await;
}

#[tokio::test]
async fn crash_after_dns_upsert() {
    crash_during_launch("workspace.dns.after-upsert").await;
}

#[tokio::test]
async fn crash_after_terminate() {
    crash_during_delete("workspace.delete.after-terminate").await;
}

#[tokio::test]
async fn crash_after_security_group_delete() {
    crash_during_delete("workspace.delete.after-sg").await;
}

#[tokio::test]
async fn crash_after_volume_delete() {
    crash_during_delete("workspace.delete.after-volume").await;
}

#[tokio::test]
async fn crash_after_dns_delete() {
    crash_during_delete("workspace.delete.after-dns").await;
}
