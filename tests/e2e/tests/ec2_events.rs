//! Steady state without polling cost (issue 16): with EC2_EVENTS_QUEUE_URL the operator learns of
//! instance changes from EventBridge's notifications on an SQS queue (the AWS model of the test
//! world publishes them to `TESTENV_EVENTS_QUEUE_URL`) and lists the fleet only every
//! CLOUD_RESYNC_SECONDS. Asserts, on a converged Workspace: at most 5 EC2 reads a minute at rest
//! (counted by the fault proxy over 2 minutes), no mutating call, no fleet listing (no converged
//! object asks for one); then, with the resync at 10 minutes, changes made straight at moto, each
//! noticed within 60 s: a terminate (relaunched), a stop (started again), a tag edit (the boot
//! report turned to failed: phase Failed; back to ready: Ready).
//!
//! It switches the AWS model's notifications on and counts every call through the fault proxy:
//! run it in a private world, alone:
//! `TESTENV_STATE_DIR=$PWD/tests/e2e/.testenv-events tests/e2e/testenv/up.sh` then
//! `TESTENV_STATE_DIR=$PWD/tests/e2e/.testenv-events cargo test -p molecule-e2e --test ec2_events`.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Tag;
use molecule_crds::v1alpha1::{Workspace, WorkspacePhase};
use molecule_e2e::harness::{http_json, wait_for};
use molecule_e2e::scenario::{Scenario, condition};
use serde_json::{Value, json};

const T: Duration = Duration::from_mins(3);
/// The goal of issue 16.
const MAX_READS_PER_MINUTE: f64 = 5.0;
const NOTICE_WITHIN: Duration = Duration::from_mins(1);

fn instance_id(w: &Workspace) -> String {
    w.status.as_ref().and_then(|s| s.instance_id.clone()).unwrap_or_default()
}

async fn moto_state(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    let out = ec2.describe_instances().instance_ids(id).send().await.unwrap();
    let state = out.reservations()[0].instances()[0].state().and_then(|s| s.name().cloned());
    state.map(|n| n.as_str().to_owned()).unwrap_or_default()
}

fn totals(v: &Value) -> BTreeMap<String, u64> {
    v["total"]
        .as_object()
        .map(|m| m.iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0))).collect())
        .unwrap_or_default()
}

/// EC2 calls between two count snapshots, by operation: (reads, mutating calls).
fn ec2_calls(before: &Value, after: &Value) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let (b, a) = (totals(before), totals(after));
    let (mut reads, mut writes) = (BTreeMap::new(), BTreeMap::new());
    for (k, n) in &a {
        let d = n - b.get(k).copied().unwrap_or(0);
        match k.strip_prefix("ec2.") {
            Some(op) if d > 0 && op.starts_with("Describe") => reads.insert(op.to_owned(), d),
            Some(op) if d > 0 => writes.insert(op.to_owned(), d),
            _ => None,
        };
    }
    (reads, writes)
}

/// EC2 reads a minute at rest over `window` (and the mutating calls meanwhile).
async fn at_rest(s: &Scenario, window: Duration) -> (f64, BTreeMap<String, u64>) {
    let before = s.env.fault_counts().await.unwrap();
    tokio::time::sleep(window).await;
    let after = s.env.fault_counts().await.unwrap();
    let (reads, writes) = ec2_calls(&before, &after);
    println!("EVENTS_FIGURE reads_by_operation={reads:?} over {window:?}");
    #[allow(clippy::cast_precision_loss)]
    let per_minute = reads.values().sum::<u64>() as f64 * 60.0 / window.as_secs_f64();
    (per_minute, writes)
}

/// The operator's settings: one account (no canary: the proxy's counts are per operation, not
/// per account), and the given queue.
fn settings(queue: Option<&str>) -> Vec<(&str, &str)> {
    let mut v = vec![("CANARY_ROLE_ARN", ""), ("CLOUD_REFRESH_SECONDS", "15"), ("CLOUD_RESYNC_SECONDS", "600")];
    if let Some(q) = queue {
        v.push(("EC2_EVENTS_QUEUE_URL", q));
    }
    v
}

/// A minute at rest polling, then two with the queue (asserted); the Workspace as it is then.
async fn rest(s: &mut Scenario, queue: &str) -> Workspace {
    // Today's polling, for comparison: converged, then a minute at rest.
    s.start_operator(&settings(None)).unwrap();
    s.apply(&s.workspace("w", json!({"runtime": "codex"}))).unwrap();
    s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (polling, _) = at_rest(s, Duration::from_mins(1)).await;
    println!("EVENTS_FIGURE polling_reads_per_minute={polling:.1}");

    // With the queue.
    s.kill_operator();
    s.start_operator(&settings(Some(queue))).unwrap();
    s.wait_log("EC2 notifications feed the fleet cache", Duration::from_mins(1)).await.unwrap();
    let w = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    tokio::time::sleep(Duration::from_secs(20)).await;
    let listings = || s.metric_sum("molecule_fleet_cache_refreshes_total", &["account=\"main\""]);
    let listed_before = listings().await;
    let (reads, writes) = at_rest(s, Duration::from_mins(2)).await;
    let listed = listings().await - listed_before;
    println!("EVENTS_FIGURE queue_reads_per_minute={reads:.1} mutating={writes:?} listings={listed}");
    assert!(listed < 0.5, "{listed} fleet listings at rest (requested by a converged object?)");
    assert!(
        reads <= MAX_READS_PER_MINUTE,
        "{reads:.1} EC2 reads a minute at rest with the queue (polling: {polling:.1})"
    );
    assert!(writes.is_empty(), "mutating calls at rest: {writes:?}");
    assert!(reads < polling, "the queue must cost less than polling ({reads:.1} vs {polling:.1})");
    w
}

/// Terminated behind the operator's back: noticed through the queue, not the 10-minute resync,
/// and relaunched. The new instance.
async fn terminate(s: &Scenario, id: &str) -> String {
    let started = Instant::now();
    s.env.ec2_direct().await.terminate_instances().instance_ids(id).send().await.unwrap();
    s.wait_ws("w", "the loss noticed", NOTICE_WITHIN, |w| {
        instance_id(w) != id || condition(w, "Ready").is_some_and(|c| c.0 != "True")
    })
    .await
    .unwrap_or_else(|e| panic!("not noticed within {NOTICE_WITHIN:?}: {e}\n{}", s.log()));
    println!("EVENTS_FIGURE terminate_noticed_seconds={:.1}", started.elapsed().as_secs_f64());
    let w = s
        .wait_ws("w", "relaunched", T, |w| instance_id(w) != id && condition(w, "Ready").is_some_and(|c| c.0 == "True"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    println!("EVENTS_FIGURE terminate_to_ready_seconds={:.1}", started.elapsed().as_secs_f64());
    instance_id(&w)
}

/// Stopped behind its back while its spec says Running: started again.
async fn stop(s: &Scenario, ec2: &aws_sdk_ec2::Client, id: &str) {
    let started = Instant::now();
    ec2.stop_instances().instance_ids(id).send().await.unwrap();
    assert_eq!(moto_state(ec2, id).await, "stopped");
    wait_for("the stopped instance started again", NOTICE_WITHIN, || async {
        (moto_state(ec2, id).await == "running").then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    println!("EVENTS_FIGURE stop_to_started_seconds={:.1}", started.elapsed().as_secs_f64());
}

/// A tag edited behind its back: the bootstrap's report turned to failed is seen, then ready.
async fn tag_edit(s: &Scenario, ec2: &aws_sdk_ec2::Client, id: &str) {
    let boot = |v: &str| Tag::builder().key("moleculesai.app/boot").value(v).build();
    let started = Instant::now();
    ec2.create_tags().resources(id).tags(boot("failed")).send().await.unwrap();
    s.wait_ws("w", "the failed boot report seen", NOTICE_WITHIN, |w| {
        w.status.as_ref().and_then(|s| s.phase) == Some(WorkspacePhase::Failed)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    println!("EVENTS_FIGURE tag_edit_noticed_seconds={:.1}", started.elapsed().as_secs_f64());
    ec2.create_tags().resources(id).tags(boot("ready")).send().await.unwrap();
    s.wait_ready("w", NOTICE_WITHIN).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
}

#[tokio::test]
async fn out_of_band_changes_are_noticed_through_the_queue_and_rest_costs_at_most_5_reads_a_minute() {
    let mut s = Scenario::new("events", 4, json!({})).await.unwrap();
    let queue = s.env.var("TESTENV_EVENTS_QUEUE_URL").to_owned();
    assert!(!queue.is_empty(), "the test world has no TESTENV_EVENTS_QUEUE_URL: bring it up with today's up.sh");
    let model = format!("{}/__aws_model", s.env.var("TESTENV_MOTO_URL"));
    let (status, v) = http_json("POST", &model, Some(json!({"eventsQueueUrl": queue})), None).await.unwrap();
    assert_eq!(status, 200, "{v}");

    let w = rest(&mut s, &queue).await;
    let id = terminate(&s, &instance_id(&w)).await;
    let ec2 = s.env.ec2_direct().await;
    stop(&s, &ec2, &id).await;
    tag_edit(&s, &ec2, &id).await;
    let applied = s.metric_sum("molecule_ec2_events_total", &["outcome=\"applied\""]).await;
    assert!(applied >= 1.0, "the operator read no notification ({applied})\n{}", s.log());
    assert!(s.metric_sum("molecule_ec2_events_total", &["outcome=\"malformed\""]).await < 0.5, "malformed events");

    s.delete("w").await.unwrap();
    s.wait_gone("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let (_, v) = http_json("POST", &model, Some(json!({"eventsQueueUrl": null})), None).await.unwrap();
    assert!(v["eventsQueueUrl"].is_null(), "{v}");
}
