//! Tenant erasure under faults: with 30% of EC2 calls throttled and a security group that AWS
//! refuses to delete four times (DependencyViolation, as while an instance that holds it is still
//! shutting down), erasing a Tenant with a Workspace still completes with nothing left and a
//! complete receipt. Alone in its own test binary because fault rules apply to every caller of
//! the proxy.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_e2e::harness::http_json;
use molecule_e2e::scenario::Scenario;
use molecule_e2e::tenant::TenantInventory;
use serde_json::json;

const READY: Duration = Duration::from_mins(3);
const ERASED: Duration = Duration::from_mins(5);

#[tokio::test]
async fn erasure_completes_under_throttling_and_a_group_still_in_use() {
    let mut s = Scenario::new("erasefault", 2, json!({})).await.unwrap();
    s.env.clear_faults().await.unwrap();
    s.start_operator(&[]).unwrap();
    s.apply(
        &s.workspace(
            "w",
            json!({"runtime": "codex", "compute": {"instanceType": "t3.small", "volume": {"dataGb": 5}}}),
        ),
    )
    .unwrap();
    let t = s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let mut inv = TenantInventory::of(&t);
    let w = s.wait_ready("w", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    inv.add_workspace(&w);
    assert_eq!((inv.instances.len(), inv.security_groups.len(), inv.volumes.len()), (2, 2, 1), "{inv:?}");

    // Faults for the duration of the erasure only.
    s.env
        .add_faults(json!([
            {"operation": "DeleteSecurityGroup", "kind": "error", "status": 400, "code": "DependencyViolation",
             "message": "resource sg has a dependent object", "count": 4},
            {"service": "ec2", "kind": "throttle", "probability": 0.3},
        ]))
        .await
        .unwrap();
    s.delete_tenant().await.unwrap();
    let gone = s.wait_tenant_gone(ERASED).await;
    let url = format!("{}/rules", s.env.var("TESTENV_FAULTS_URL"));
    let (_, rules) = http_json("GET", &url, None, None).await.unwrap();
    s.env.clear_faults().await.unwrap();
    gone.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));

    assert_eq!(rules[0]["fired"], 4, "DeleteSecurityGroup was refused four times: {rules}");
    assert!(rules[1]["fired"].as_u64().unwrap_or(0) > 0, "EC2 calls were throttled: {rules}");
    let throttled = s.metric_sum("molecule_aws_calls_total", &["service=\"ec2\"", "outcome=\"throttled\""]).await;
    assert!(throttled > 0.0, "the operator saw throttling");

    let problems = s.erasure_problems(&inv).await;
    assert!(problems.is_empty(), "after erasure: {problems:#?}\n{}", s.log());
    let ev = s.tenant_events().await;
    assert!(ev.iter().any(|(t, r, _)| t == "Normal" && r == "ErasureCompleted"), "events {ev:?}");
}
