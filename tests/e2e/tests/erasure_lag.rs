//! Tenant erasure under EC2 listing lag (issue 16): an instance launched with the tenant's tags
//! just before the Tenant is deleted is absent from listings for the AWS model's lag (10 s). The
//! erasure's final instance confirmation must come from a listing that started at least
//! ERASURE_LISTING_ALLOWANCE_SECONDS (here 15) after the erasure began, so the instance is
//! terminated and listed in the receipt. Before the allowance, the erasure completed without it
//! ("receipt lacks Instance ..."). Needs a world whose listings lag (`make e2e-erasure-lag`,
//! docs/testing.md): the test checks the world's AWS model first.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use molecule_e2e::harness::http_json;
use molecule_e2e::scenario::Scenario;
use serde_json::{Value, json};

const READY: Duration = Duration::from_mins(4);
const ERASED: Duration = Duration::from_mins(4);

#[tokio::test]
async fn an_instance_launched_just_before_the_delete_is_erased_and_in_the_receipt() {
    let mut s = Scenario::new("eraselag", 1, json!({})).await.unwrap();
    let (_, model) = http_json("GET", &format!("{}/model", s.env.var("TESTENV_FAULTS_URL")), None, None).await.unwrap();
    let lag = model["listingLagMs"].as_u64().unwrap_or(0);
    assert!(lag >= 5_000, "this test needs a world whose listings lag (make e2e-erasure-lag); the model is {model}");
    s.start_operator(&[("ERASURE_LISTING_ALLOWANCE_SECONDS", "15")]).unwrap();
    s.expect_orphans();
    s.apply(&s.sample("workspace-minimal.yaml", "minimal")).unwrap();
    let t = s.wait_tenant_ready(READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.wait_ready("minimal", READY).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let uid = t.metadata.uid.clone().unwrap();

    // Launched behind the operator's back with the tenant's tags, then the Tenant deleted at once:
    // no listing shows the instance for the next `lag` ms.
    let late = s.launch_ghost("00000000-1a9e-4bad-beef-000000000000", aws_sdk_ec2::types::InstanceType::T3Micro).await;
    s.delete_tenant().await.unwrap();
    s.wait_tenant_gone(ERASED).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));

    let receipt = s.receipt(&uid).await.expect("receipt");
    let resources = receipt["resources"].as_array().cloned().unwrap_or_default();
    let entry: Option<&Value> = resources.iter().find(|e| e["kind"] == "Instance" && e["id"] == late.as_str());
    assert!(
        entry.is_some_and(|e| e["confirmedGoneAt"].as_str().is_some_and(|t| !t.is_empty())),
        "receipt lacks Instance {late}: {receipt:#}\n{}",
        s.log()
    );
    let out = s.env.ec2_direct().await.describe_instances().instance_ids(&late).send().await.unwrap();
    let state = out
        .reservations()
        .iter()
        .flat_map(aws_sdk_ec2::types::Reservation::instances)
        .next()
        .and_then(|i| i.state().and_then(|x| x.name()).map(|n| n.as_str().to_owned()));
    assert!(state.is_none() || state.as_deref() == Some("terminated"), "{late} is {state:?}");
}
