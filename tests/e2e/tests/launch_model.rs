//! The launch protocol against the AWS model (issue 13): ClientToken idempotency, listing lag and
//! purge switched on by each test (`POST $TESTENV_FAULTS_URL/model`) and restored afterwards.
//! Changing the model affects every scenario sharing the world: run this binary in a world of
//! its own (docs/testing.md). The tests of this binary run one at a time.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use molecule_crds::v1alpha1::WorkspacePhase;
use molecule_e2e::harness::http_json;
use molecule_e2e::scenario::{Scenario, uid};
use serde_json::{Value, json};

const T: Duration = Duration::from_mins(3);

/// One test at a time: each sets the model it needs.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sets the world's AWS model for the life of the value; restores what it was when dropped (also
/// when the test fails).
struct Model {
    url: String,
    before: Value,
}

impl Model {
    async fn set(s: &Scenario, model: Value) -> Self {
        let url = format!("{}/model", s.env.var("TESTENV_FAULTS_URL"));
        let (_, before) = http_json("GET", &url, None, None).await.unwrap();
        let mut full = json!({ "profile": "off" });
        full.as_object_mut().unwrap().extend(model.as_object().unwrap().clone());
        let (code, got) = http_json("POST", &url, Some(full), None).await.unwrap();
        assert_eq!(code, 200, "model refused: {got}");
        Self { url, before }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let mut body = json!({ "profile": "off" });
        if let Some(o) = self.before.as_object() {
            body.as_object_mut().unwrap().extend(o.clone());
        }
        let _ = std::process::Command::new("curl")
            .args(["-sf", "-X", "POST", "--data-binary", &body.to_string(), &self.url])
            .output();
    }
}

/// Whether EC2 (moto, not through the proxy) has forgotten instance `id` (purged).
async fn purged(s: &Scenario, id: &str) -> bool {
    let ec2 = s.env.ec2_direct().await;
    match ec2.describe_instances().instance_ids(id).send().await {
        Ok(o) => o.reservations().iter().all(|r| r.instances().is_empty()),
        Err(e) => format!("{e:?}").contains("InvalidInstanceID.NotFound"),
    }
}

#[tokio::test]
async fn with_listing_lag_a_crash_after_run_instances_repeats_the_token_for_one_instance() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = Scenario::new("lmcrash", 4, json!({})).await.unwrap();
    // Instances hidden from listings for longer than a restart: the restarted operator cannot see
    // the instance launched before the crash, so it repeats the recorded attempt, and only the
    // ClientToken keeps it to one. Security groups lag as in the realistic profile: with the same
    // long lag the restarted operator waited for its group (created before the crash, refused as
    // a duplicate, not yet listed) until the instance was listed too, and never relaunched.
    let lag = json!({ "clientToken": true, "listingLagMs": 2_000, "instanceListingLagMs": 60_000 });
    let _model = Model::set(&s, lag).await;
    let failpoint = "workspace.launch.after-run";
    s.start_operator(&[("MOLECULE_FAILPOINTS", failpoint)]).unwrap();
    s.apply(&s.workspace("w", json!({ "runtime": "codex" }))).unwrap();
    s.wait_log(&format!("failpoint=\"{failpoint}\""), T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.kill_operator();
    s.start_operator(&[]).unwrap();
    let w = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let rec = w.status.as_ref().unwrap().launch.clone().unwrap();
    let sent = s.run_tokens(&uid(&w)).await.unwrap();
    assert_eq!(sent, vec![rec.token.clone(); 2], "the recorded token, sent twice\n{}", s.log());
    let ever = s.instances(&uid(&w)).await;
    assert_eq!(ever.len(), 1, "one instance ever: {ever:?}");
    assert_eq!(ever[0].instance_id(), w.status.as_ref().unwrap().instance_id.as_deref());

    // The Tenant VM, the same way.
    let t = s.get_tenant().await.unwrap();
    let t_uid = t.metadata.uid.clone().unwrap();
    let vm_rec = t.status.as_ref().unwrap().launch.clone().unwrap();
    assert!(s.run_tokens(&t_uid).await.unwrap().iter().all(|x| *x == vm_rec.token));
    s.delete("w").await.unwrap();
    s.wait_gone("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
}

#[tokio::test]
async fn with_listing_lag_a_crash_after_the_tenant_vm_launch_repeats_the_token_for_one_vm() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = Scenario::new("lmtncrash", 2, json!({})).await.unwrap();
    // Longer than the restart and the Tenant's steps before its VM (bundle, identities, group).
    let lag = json!({ "clientToken": true, "listingLagMs": 2_000, "instanceListingLagMs": 45_000 });
    let _model = Model::set(&s, lag).await;
    let failpoint = "tenant.launch.after-run";
    s.start_operator(&[("MOLECULE_FAILPOINTS", failpoint)]).unwrap();
    s.wait_log(&format!("failpoint=\"{failpoint}\""), T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    s.kill_operator();
    s.start_operator(&[]).unwrap();
    let t = s.wait_tenant_ready(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st = t.status.clone().unwrap();
    let rec = st.launch.clone().unwrap();
    let t_uid = t.metadata.uid.clone().unwrap();
    let tokens = s.run_tokens(&t_uid).await.unwrap();
    assert_eq!(tokens, vec![rec.token.clone(); 2], "the recorded token, sent twice\n{}", s.log());
    let all = s.tenant_instances(&s.env.ec2_direct().await).await;
    assert_eq!(all.len(), 1, "VMs ever launched: {all:?}");
    assert_eq!(all[0].instance_id(), st.instance_id.as_deref());
    s.delete_tenant().await.unwrap();
    s.wait_tenant_gone(T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
}

#[tokio::test]
async fn a_spot_workspace_stopped_past_the_purge_starts_again_with_a_new_token_and_its_volume() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = Scenario::new("lmspot", 4, json!({})).await.unwrap();
    let _model = Model::set(&s, json!({ "clientToken": true, "listingLagMs": 2000, "purgeAfterMs": 3000 })).await;
    s.start_operator(&[]).unwrap();
    let spec = json!({ "runtime": "codex", "compute": { "market": "spot", "volume": { "dataGb": 2 } } });
    s.apply(&s.workspace("w", spec)).unwrap();
    let w1 = s.wait_ready("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st1 = w1.status.clone().unwrap();
    let (id1, vol) = (st1.instance_id.clone().unwrap(), st1.data_volume_id.clone().unwrap());
    let spent = st1.launch.clone().unwrap().token;

    s.patch("w", json!({ "spec": { "state": "Stopped" } })).await.unwrap();
    s.wait_ws("w", "Stopped", T, |w| w.status.as_ref().is_some_and(|x| x.phase == Some(WorkspacePhase::Stopped)))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let deadline = std::time::Instant::now() + Duration::from_mins(2);
    while !purged(&s, &id1).await {
        assert!(std::time::Instant::now() < deadline, "{id1} was never purged");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    s.kill_operator();
    s.start_operator(&[]).unwrap();
    s.patch("w", json!({ "spec": { "state": "Running" } })).await.unwrap();
    let w2 = s
        .wait_ws("w", "Ready on a new instance", T, |w| {
            let st = w.status.as_ref();
            st.and_then(|x| x.instance_id.as_deref()).is_some_and(|i| i != id1)
                && molecule_e2e::scenario::condition(w, "Ready").is_some_and(|c| c.0 == "True")
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    let st2 = w2.status.clone().unwrap();
    let (id2, rec2) = (st2.instance_id.clone().unwrap(), st2.launch.clone().unwrap());
    assert_eq!(rec2.attempt, 2);
    assert_ne!(rec2.token, spent, "a new token");
    assert_eq!(st2.data_volume_id.as_deref(), Some(vol.as_str()), "the same data volume");
    let ec2 = s.env.ec2_direct().await;
    let v = ec2.describe_volumes().volume_ids(&vol).send().await.unwrap();
    let on: Vec<_> = v.volumes()[0].attachments().iter().filter_map(|a| a.instance_id()).collect();
    assert_eq!(on, vec![id2.as_str()], "attached to the new instance");
    assert_eq!(s.alive(&uid(&w2)).await, vec![id2.clone()]);
    // Within LISTING_LAG (2 minutes) of its launch an unlisted instance may only be lagging, so
    // the recorded token may be sent once more; EC2's IdempotentInstanceTerminated then moves the
    // executor to the next attempt at once. Never a loop.
    let tokens = s.run_tokens(&uid(&w2)).await.unwrap();
    assert!(tokens.iter().filter(|t| **t == spent).count() <= 2, "the spent token not retried: {tokens:?}");
    assert_eq!(tokens.last(), Some(&rec2.token));
    s.delete("w").await.unwrap();
    s.wait_gone("w", T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
}

#[tokio::test]
async fn with_ten_seconds_of_listing_lag_twenty_workspaces_get_one_instance_each() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = Scenario::new("lmlag", 4, json!({})).await.unwrap();
    let _model = Model::set(&s, json!({ "clientToken": true, "listingLagMs": 10_000, "purgeAfterMs": 60_000 })).await;
    s.start_operator(&[]).unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("w{i:02}")).collect();
    for n in &names {
        s.apply(&s.workspace(n, json!({ "runtime": "codex" }))).unwrap();
    }
    let mut uids = Vec::new();
    for n in &names {
        let w = s.wait_ready(n, Duration::from_mins(5)).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
        uids.push(uid(&w));
    }
    // Past the lag: whatever a lagging listing made the operator do has happened by now.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let ec2 = s.env.ec2_direct().await;
    for (n, u) in names.iter().zip(&uids) {
        let ever = s.instances(u).await;
        assert_eq!(ever.len(), 1, "{n}: instances ever launched: {ever:?}");
        let f = Filter::builder().name("tag:moleculesai.app/owner-uid").values(u).build();
        let groups = ec2.describe_security_groups().filters(f).send().await.unwrap();
        assert_eq!(groups.security_groups().len(), 1, "{n}: one security group");
        let w = s.get(n).await.unwrap();
        assert_eq!(ever[0].instance_id(), w.status.as_ref().and_then(|x| x.instance_id.as_deref()), "{n}");
    }
    for n in &names {
        s.delete(n).await.unwrap();
    }
    for n in &names {
        s.wait_gone(n, T).await.unwrap_or_else(|e| panic!("{e}\n{}", s.log()));
    }
}
