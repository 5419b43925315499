//! A hung cloud: DescribeInstances answers only after 600 s (latency on a proxy of this test's
//! own, so no other scenario waits). The operator's deadlines turn each hang into a timed-out
//! call, the fleet-cache loop makes no progress, `/healthz` fails naming it; once the fault is
//! cleared a Workspace deleted during the hang is gone within 60 s and `/healthz` is ok again.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use molecule_e2e::harness::{PrivateProxy, http_text, wait_for};
use molecule_e2e::scenario::Scenario;
use serde_json::json;

const T: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_describe_fails_healthz_and_a_delete_completes_soon_after_the_clear() {
    let mut s = Scenario::new("hung", 4, json!({})).await.unwrap();
    let proxy = PrivateProxy::start(&s.env).await.unwrap();
    // Short deadlines: a hung call times out after 3 s; the fleet-cache bound is then
    // 2 x (1 s interval + 1 s gap) + 3 calls x 3 s + 1 s = 14 s.
    s.start_operator(&[
        ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
        ("CLOUD_CONNECT_TIMEOUT_SECONDS", "2"),
        ("CLOUD_READ_TIMEOUT_SECONDS", "2"),
        ("CLOUD_OPERATION_TIMEOUT_SECONDS", "3"),
    ])
    .unwrap();
    s.apply(&s.workspace("a", json!({"runtime": "codex"}))).unwrap();
    s.wait_ready("a", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let healthz = format!("http://{}/healthz", s.metrics_addr);
    assert_eq!(http_text("GET", &healthz).await.unwrap().0, 200, "healthy before the fault");

    // Only this operator's fleet listing of instances (its managed-by tag is in the filter).
    let rule = json!([{"service": "ec2", "operation": "DescribeInstances", "kind": "latency",
        "latencyMs": 600_000, "bodyContains": s.operator_id}]);
    proxy.add_faults(rule).await.unwrap();
    s.delete("a").await.unwrap();
    let body = wait_for("/healthz to fail naming the stuck loop", Duration::from_mins(1), || async {
        let (code, body) = http_text("GET", &healthz).await.ok()?;
        (code == 503).then_some(body)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    assert!(body.contains("fleet-cache/main"), "{body}");
    let metrics = http_text("GET", &format!("http://{}/metrics", s.metrics_addr)).await.unwrap().1;
    assert!(metrics.contains("molecule_watchdog_stalled{loop=\"fleet-cache/main\"} 1"), "{metrics}");
    assert!(s.log().contains("TimedOut"), "the hung calls time out:\n{}", s.log());
    assert!(s.get("a").await.is_some(), "the delete waits for the hung listing");

    proxy.clear_faults().await.unwrap();
    let cleared = Instant::now();
    s.wait_gone("a", Duration::from_mins(1)).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    eprintln!("gone {:?} after the clear", cleared.elapsed());
    wait_for("/healthz to recover", Duration::from_secs(30), || async {
        (http_text("GET", &healthz).await.ok()?.0 == 200).then_some(())
    })
    .await
    .unwrap();
}
