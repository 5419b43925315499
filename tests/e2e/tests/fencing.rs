//! Leader fencing. (1) A leader frozen (SIGSTOP) past its Lease, a second replica taking over,
//! then the first thawed (SIGCONT): the first sends no AWS mutating call after its Lease expired
//! (counted on a fault proxy of its own) and exits non-zero. (2) On SIGTERM the leader releases
//! the Lease, so the standby leads within a few seconds instead of a lease duration.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use molecule_e2e::harness::{OperatorProcess, PrivateProxy, wait_for};
use molecule_e2e::scenario::Scenario;
use serde_json::json;

const T: Duration = Duration::from_secs(90);
/// The Lease duration of the operator.
const LEASE: Duration = Duration::from_secs(15);

/// A second replica of the scenario's operator, with leader election.
fn standby(s: &Scenario) -> OperatorProcess {
    s.start_replica(&[("LEADER_ELECTION", "true")]).unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thawed_leader_sends_no_mutation_after_its_lease_expired_and_exits() {
    let mut s = Scenario::new("fence", 4, json!({})).await.unwrap();
    let first = PrivateProxy::start(&s.env).await.unwrap();
    s.start_operator(&[("LEADER_ELECTION", "true"), ("AWS_ENDPOINT_URL", first.endpoint.as_str())]).unwrap();
    s.wait_log("leading", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.apply(&s.workspace("a", json!({"runtime": "codex"}))).unwrap();
    s.wait_ready("a", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));

    s.operator.as_ref().unwrap().signal("STOP").unwrap();
    // A call already on the wire when the process froze still reaches the proxy: let it land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = first.mutating_calls().await.unwrap();
    assert!(!before.is_empty(), "the first leader launched through its own proxy");
    tokio::time::sleep(LEASE + Duration::from_secs(3)).await;
    let second = standby(&s);
    wait_for("the second operator to lead", T, || async { second.log().contains("leading").then_some(()) })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    // Work the frozen leader will see the moment it wakes: a delete and a new Workspace.
    s.delete("a").await.unwrap();
    s.apply(&s.workspace("b", json!({"runtime": "codex"}))).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    s.operator.as_ref().unwrap().signal("CONT").unwrap();
    let thawed = Instant::now();
    let op = s.operator.as_mut().unwrap();
    let code = wait_for("the thawed leader to exit", Duration::from_secs(30), || {
        let code = op.exit_code();
        async move { code }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    eprintln!("thawed leader exited with {code} after {:?}", thawed.elapsed());
    assert_ne!(code, 0, "it exits non-zero, to restart as a follower:\n{}", s.log());
    let after = first.mutating_calls().await.unwrap();
    assert_eq!(after, before, "no mutating call after the Lease expired:\n{}", s.log());

    s.wait_gone("a", T).await.unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    s.wait_ready("b", T).await.unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    s.delete("b").await.unwrap();
    s.wait_gone("b", T).await.unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_the_leader_releases_the_lease_and_the_standby_leads_at_once() {
    let mut s = Scenario::new("release", 4, json!({})).await.unwrap();
    s.start_operator(&[("LEADER_ELECTION", "true")]).unwrap();
    s.wait_log("leading", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let second = standby(&s);
    wait_for("the standby to wait", T, || async { second.log().contains("another replica leads").then_some(()) })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    s.operator.as_ref().unwrap().signal("TERM").unwrap();
    let term = Instant::now();
    wait_for("the standby to lead", Duration::from_secs(8), || async {
        second.log().contains("leading").then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nfirst:\n{}\nsecond:\n{}", s.log(), second.log()));
    eprintln!("standby led {:?} after SIGTERM", term.elapsed());
    let op = s.operator.as_mut().unwrap();
    let code = wait_for("the first to exit", Duration::from_secs(15), || {
        let code = op.exit_code();
        async move { code }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "a clean shutdown:\n{}", s.log());
    assert!(s.log().contains("leader lease released"), "{}", s.log());
    s.apply(&s.workspace("c", json!({"runtime": "codex"}))).unwrap();
    s.wait_ready("c", T).await.unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    s.delete("c").await.unwrap();
    s.wait_gone("c", T).await.unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
    drop(second);
}
