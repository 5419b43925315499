//! Leader election: of two replicas with the same operator id, one leads and reconciles; after a
//! kill -9 of the leader the other takes over within a lease duration.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_e2e::scenario::{Scenario, uid};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

#[tokio::test]
async fn one_replica_leads_and_the_other_takes_over_after_a_crash() {
    let mut s = Scenario::new("leader", 4, json!({})).await.unwrap();
    s.start_operator(&[("LEADER_ELECTION", "true")]).unwrap();
    s.wait_log("leading", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let (standby, metrics) = s.start_replica(&[("LEADER_ELECTION", "true")]).unwrap();

    s.apply(&s.workspace("a", json!({"runtime": "codex"}))).unwrap();
    let a = s.wait_ready("a", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!standby.log().contains("leading"), "the standby does not lead:\n{}", standby.log());
    let url = format!("http://{metrics}/metrics");
    let (_, body) = molecule_e2e::harness::http_text("GET", &url).await.unwrap();
    assert!(body.contains("molecule_leader 0"), "standby reports it does not lead:\n{body}");
    assert!(!body.contains("molecule_reconciles_total{"), "the standby reconciles nothing");

    s.kill_operator();
    s.apply(&s.workspace("b", json!({"runtime": "codex"}))).unwrap();
    let b = s.wait_ready("b", T).await.unwrap_or_else(|e| panic!("{e}\n{}", standby.log()));
    assert!(standby.log().contains("leading"), "the standby took over");
    let (_, body) = molecule_e2e::harness::http_text("GET", &url).await.unwrap();
    assert!(body.contains("molecule_leader 1"));
    assert_eq!(s.alive(&uid(&a)).await.len(), 1);
    assert_eq!(s.alive(&uid(&b)).await.len(), 1);
    for n in ["a", "b"] {
        s.delete(n).await.unwrap();
        s.wait_gone(n, T).await.unwrap_or_else(|e| panic!("{e}\n{}", standby.log()));
    }
    drop(standby);
}
