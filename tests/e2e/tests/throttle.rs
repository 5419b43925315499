//! Under throttling: with the fault proxy throttling 30% of EC2 calls, 20 Workspaces still all
//! reach Ready, each with exactly one instance, and all are deleted without leaks. Alone in its
//! own test binary because fault rules apply to every caller of the proxy.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_e2e::scenario::{Scenario, uid};
use serde_json::json;

const N: usize = 20;

#[tokio::test]
async fn twenty_workspaces_reach_ready_with_30_percent_of_ec2_throttled() {
    let mut s = Scenario::new("throttle", 4, json!({})).await.unwrap();
    s.env.clear_faults().await.unwrap();
    s.env.add_faults(json!([{"service": "ec2", "kind": "throttle", "probability": 0.3}])).await.unwrap();
    s.start_operator(&[]).unwrap();
    let names: Vec<String> = (0..N).map(|i| format!("t{i:02}")).collect();
    for n in &names {
        s.apply(&s.workspace(n, json!({"runtime": "codex", "compute": {"instanceType": "t3.small"}}))).unwrap();
    }
    let mut ready = Vec::new();
    for n in &names {
        let w = s.wait_ready(n, Duration::from_mins(4)).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        ready.push(w);
    }
    let throttled = s.metric_sum("molecule_aws_calls_total", &["service=\"ec2\"", "outcome=\"throttled\""]).await;
    assert!(throttled > 0.0, "the operator saw throttling");
    for w in &ready {
        assert_eq!(s.alive(&uid(w)).await.len(), 1, "one instance each");
    }
    s.env.clear_faults().await.unwrap();
    for n in &names {
        s.delete(n).await.unwrap();
    }
    for w in &ready {
        let name = w.metadata.name.clone().unwrap();
        s.wait_gone(&name, Duration::from_mins(2)).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        let left = s.leftovers(&uid(w), w.status.as_ref().unwrap().hostname.as_deref()).await;
        assert!(left.is_empty(), "{name}: left behind {left:?}");
    }
}
