//! The launch protocol (plan + executor) on the fake cloud.

use std::collections::BTreeMap;
use std::time::Duration;

use super::subject::{Status, Vm};
use crate::cloud::fake::{FakeCloud, Fault, InstanceSeed, ops};
use crate::cloud::marks::{LaunchToken, OwnerKind};
use crate::cloud::tags::{LAUNCH_ATTEMPT, OWNER_UID};
use crate::cloud::{Instance, InstanceState, VolumeRequest};
use crate::context::Account;
use crate::failpoints::Failpoints;
use crate::metrics::{KindReason, Metrics};
use crate::reconcile::Error;
use crate::reconcile::launch::{self, Env, SPEC_HASH_TAG, Step, exec};
use crate::testing;

struct World {
    fake: FakeCloud,
    sg: String,
    acct: std::sync::Arc<Account>,
    metrics: Metrics,
    failpoints: Failpoints,
    identity: crate::cloud::tags::Identity,
}

impl World {
    async fn new() -> Self {
        Self::on(testing::cloud()).await
    }

    async fn on(fake: FakeCloud) -> Self {
        let metrics = Metrics::new();
        let acct = testing::account(&fake, "main", &metrics).await;
        let sg =
            fake.all_groups().first().map_or_else(|| fake.seed_group("launch", &BTreeMap::new()), |g| g.id.clone());
        Self { fake, sg, acct, metrics, failpoints: Failpoints::default(), identity: testing::identity() }
    }

    fn env(&self) -> Env<'_> {
        Env { account: &self.acct, identity: &self.identity, failpoints: &self.failpoints, metrics: &self.metrics }
    }

    /// One reconcile: plan from the cache, execute.
    async fn pass(&self, vm: &Vm, st: &mut Status, want_running: bool) -> Result<Option<Instance>, Error> {
        let p = launch::plan_for(&self.env(), vm, st, want_running, false).await;
        exec::run(&self.env(), vm, st, p.steps, p.current).await
    }

    /// A fleet listing, as the refresh loop makes them.
    async fn list(&self) {
        self.acct.cache.refresh().await.unwrap();
    }

    fn vm(&self, uid: &str) -> Vm {
        let mut v = Vm::new(testing::workspace_owner(uid));
        v.sg.clone_from(&self.sg);
        v
    }

    fn alive(&self, uid: &str) -> Vec<Instance> {
        self.fake.all_instances().into_iter().filter(|i| i.tag(OWNER_UID) == Some(uid) && i.state.is_alive()).collect()
    }
}

#[tokio::test]
async fn the_token_reaches_status_before_run_instances() {
    let w = World::new().await;
    let v = w.vm("u1");
    let mut st = Status::default();
    let current = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    let writes = v.writes.lock().unwrap().clone();
    let first = writes[0].launch.clone().unwrap();
    assert_eq!((first.attempt, first.launched_at.as_deref(), writes[0].instance_id.as_deref()), (1, None, None));
    assert_eq!(w.fake.calls().iter().find(|c| c.op == ops::RUN_INSTANCES).unwrap().target, first.token);
    assert_eq!(writes[1].instance_id.as_deref(), Some(current.id.as_str()));
    assert_eq!(v.reasons(), ["Launching", "Launched"]);
    assert_eq!((current.tag(LAUNCH_ATTEMPT), current.tag(SPEC_HASH_TAG)), (Some("1"), Some("h1")));
}

#[tokio::test]
async fn tokens_name_their_kind_and_round_trip() {
    let ws = launch::token(&testing::workspace_owner("0b7c5d3e-1111-2222-3333-444455556666"), 3);
    let tn = launch::token(&testing::tenant_owner("0b7c5d3e-1111-2222-3333-444455556666", "acme"), 3);
    assert!(ws.starts_with("ws-") && tn.starts_with("tn-") && ws.len() <= 64, "{ws} {tn}");
    let parsed = LaunchToken::parse(&tn).unwrap();
    assert_eq!(
        (parsed.kind(), parsed.uid(), parsed.attempt()),
        (OwnerKind::Tenant, "0b7c5d3e-1111-2222-3333-444455556666", 3)
    );
    assert_ne!(launch::token(&testing::workspace_owner("u"), 1), launch::token(&testing::workspace_owner("u"), 2));
}

#[tokio::test]
async fn a_converged_owner_costs_no_call() {
    let w = World::new().await;
    let (v, mut st) = (w.vm("u2"), Status::default());
    w.pass(&v, &mut st, true).await.unwrap();
    w.list().await;
    w.fake.clear_calls();
    let again = w.pass(&v, &mut st, true).await.unwrap();
    assert_eq!(again.map(|i| i.id), st.instance_id);
    assert!(w.fake.calls().is_empty(), "{:?}", w.fake.calls());
}

#[tokio::test]
async fn a_lost_answer_is_guarded_until_a_newer_listing_then_adopted() {
    let w = World::new().await;
    let (v, mut st) = (w.vm("u3"), Status::default());
    w.fake.inject(Fault::lost(ops::RUN_INSTANCES));
    let e = w.pass(&v, &mut st, true).await.unwrap_err();
    assert_eq!(e.category(), "CloudTransient");
    assert!(w.acct.guard.since("u3").is_some(), "the unknown outcome is remembered");
    // The instance exists, but the cache does not know it: no second launch before a listing.
    let e = w.pass(&v, &mut st, true).await.unwrap_err();
    assert!(e.waiting().is_some(), "{e}");
    w.list().await;
    let adopted = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    assert_eq!(w.fake.count(ops::RUN_INSTANCES), 1);
    assert_eq!(w.alive("u3").iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![adopted.id]);
}

#[tokio::test]
async fn a_crash_after_run_instances_repeats_the_token_and_aws_returns_the_same_instance() {
    // Listing lag: the instance launched before the crash is not listed yet when the operator
    // comes back, so the recorded attempt is launched again with its token.
    let fake = testing::cloud();
    fake.configure(|c| c.listing_lag = Duration::from_secs(30));
    let w = World::on(fake.clone()).await;
    let mut v = w.vm("u4");
    v.fail_write = Some(1); // the write after RunInstances fails: the "crash"
    let mut st = Status::default();
    assert!(w.pass(&v, &mut st, true).await.is_err());
    let recorded = v.writes.lock().unwrap()[0].clone();
    let w2 = World::on(fake).await; // a restarted operator: fresh cache, status as persisted
    let mut st2 = recorded.clone();
    let again = w2.pass(&w2.vm("u4"), &mut st2, true).await.unwrap().unwrap();
    let tokens: Vec<String> =
        w2.fake.calls().into_iter().filter(|c| c.op == ops::RUN_INSTANCES).map(|c| c.target).collect();
    assert_eq!(tokens, vec![recorded.launch.clone().unwrap().token; 2], "the same token twice");
    assert_eq!(w2.fake.all_instances().len(), 1, "ClientToken: one instance");
    assert_eq!(st2.instance_id.as_deref(), Some(again.id.as_str()));
}

#[tokio::test]
async fn a_status_write_that_fails_before_the_launch_launches_nothing() {
    let w = World::new().await;
    let mut v = w.vm("u5");
    v.fail_write = Some(0);
    let mut st = Status::default();
    assert!(w.pass(&v, &mut st, true).await.is_err());
    assert_eq!(w.fake.count(ops::RUN_INSTANCES), 0);
}

fn seed(w: &World, uid: &str, attempt: u32) -> Instance {
    let mut tags = testing::tags(&testing::workspace_owner(uid));
    tags.insert(LAUNCH_ATTEMPT.into(), attempt.to_string());
    tags.insert(SPEC_HASH_TAG.into(), "h1".into());
    w.fake.seed_instance(InstanceSeed { tags, ..InstanceSeed::default() })
}

#[tokio::test]
async fn duplicates_are_terminated_keeping_the_one_in_status() {
    let w = World::new().await;
    let (a, b) = (seed(&w, "u6", 1), seed(&w, "u6", 1));
    w.list().await;
    let v = w.vm("u6");
    let rec = molecule_crds::v1alpha1::LaunchRecord {
        token: launch::token(&v.owner, 1),
        attempt: 1,
        spec_hash: "h1".into(),
        launched_at: None,
        uncertain_since: None,
    };
    let mut st = Status { launch: Some(rec), instance_id: Some(b.id.clone()) };
    let current = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    assert_eq!(current.id, b.id);
    assert_eq!(w.fake.instance(&a.id).unwrap().state, InstanceState::Terminated);
    let label = KindReason { kind: "Workspace", reason: "Duplicate" };
    assert_eq!(w.metrics.duplicates_terminated.get_or_create(&label).get(), 1);
    assert!(v.events.lock().unwrap().iter().any(|e| e.0 && e.1 == "DuplicateTerminated" && e.2.contains(&a.id)));
}

#[tokio::test]
async fn an_instance_terminated_behind_our_back_is_relaunched_as_the_next_attempt() {
    let w = World::new().await;
    let (v, mut st) = (w.vm("u7"), Status::default());
    let first = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    w.fake.set_instance_state(&first.id, InstanceState::Terminated);
    w.list().await;
    let second = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(st.launch.as_ref().map(|l| l.attempt), Some(2));
    assert!(v.events.lock().unwrap().iter().any(|e| e.0 && e.1 == "Relaunching" && e.2.contains(&first.id)));
    assert_eq!(w.metrics.relaunches.get_or_create(&KindReason { kind: "Workspace", reason: "Lost" }).get(), 1);
}

#[tokio::test]
async fn a_just_launched_instance_missing_from_a_lagging_listing_is_not_lost() {
    let fake = testing::cloud();
    fake.configure(|c| c.listing_lag = Duration::from_secs(30));
    let w = World::on(fake.clone()).await;
    let (v, mut st) = (w.vm("u8"), Status::default());
    w.pass(&v, &mut st, true).await.unwrap();
    let w2 = World::on(fake).await; // restarted: the listing does not show it yet
    let next = w2.pass(&v, &mut st, true).await.unwrap();
    // Described by its ID (verify by ID), it is the one in status, not lost.
    assert_eq!(next.map(|i| i.id), st.instance_id.clone());
    assert_eq!(w2.fake.count(ops::RUN_INSTANCES), 1, "no relaunch inside the listing lag");
}

#[tokio::test]
async fn stop_then_start_an_on_demand_instance() {
    let fake = testing::cloud();
    fake.configure(|c| c.stop_time = Duration::from_secs(30));
    let w = World::on(fake).await;
    let (v, mut st) = (w.vm("u9"), Status::default());
    let i = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    w.list().await;
    let stopping = w.pass(&v, &mut st, false).await.unwrap().unwrap();
    assert_eq!(stopping.state, InstanceState::Stopping);
    assert_eq!(w.acct.cache.instances_of("u9")[0].state, InstanceState::Stopping, "written through");
    w.fake.advance(Duration::from_mins(1));
    w.list().await;
    let started = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    assert_eq!((started.id, started.state), (i.id, InstanceState::Pending));
    assert_eq!((w.fake.count(ops::STOP_INSTANCES), w.fake.count(ops::START_INSTANCES)), (1, 1));
}

#[tokio::test]
async fn a_spot_stop_terminates_and_a_start_launches_the_next_attempt() {
    let w = World::new().await;
    let mut v = w.vm("u10");
    v.spot = true;
    let mut st = Status::default();
    let first = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    w.list().await;
    assert!(w.pass(&v, &mut st, false).await.unwrap().is_none());
    assert_eq!(st.instance_id, None, "a spot stop forgets the instance");
    w.list().await;
    let second = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(st.launch.as_ref().map(|l| l.attempt), Some(2));
    assert!(v.reasons().contains(&"Starting"));
}

#[tokio::test]
async fn the_data_volume_is_attached_once_the_instance_runs() {
    let w = World::new().await;
    let owner = testing::workspace_owner("u11");
    let req =
        VolumeRequest { client_token: "t".into(), size_gb: 10, zone: "eu-west-1a".into(), tags: testing::tags(&owner) };
    let vol = w.acct.volumes.create(&req).await.unwrap();
    let mut v = w.vm("u11");
    v.volume = Some(vol.clone());
    let mut st = Status::default();
    let i = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    w.list().await;
    v.volume = w.acct.cache.volumes_of("u11").into_iter().next();
    w.pass(&v, &mut st, true).await.unwrap();
    assert_eq!(w.fake.volume(&vol.id).unwrap().attached_to.as_deref(), Some(i.id.as_str()));
    assert_eq!(w.acct.cache.volumes_of("u11")[0].attached_to.as_deref(), Some(i.id.as_str()), "written through");
    assert!(v.reasons().contains(&"VolumeAttached"));
}

#[tokio::test]
async fn a_throttled_launch_waits_for_a_listing_before_trying_again() {
    let w = World::new().await;
    let (v, mut st) = (w.vm("u12"), Status::default());
    w.fake.inject(Fault::throttle(ops::RUN_INSTANCES));
    assert_eq!(w.pass(&v, &mut st, true).await.unwrap_err().category(), "Throttled");
    assert!(w.pass(&v, &mut st, true).await.unwrap_err().waiting().is_some());
    w.list().await;
    assert!(w.pass(&v, &mut st, true).await.unwrap().is_some());
    assert_eq!(w.alive("u12").len(), 1);
}

#[tokio::test]
async fn a_replacement_terminates_its_predecessor_only_once_it_runs() {
    let fake = testing::cloud();
    fake.configure(|c| c.boot_time = Duration::from_secs(30));
    let w = World::on(fake).await;
    let mut v = w.vm("u13");
    let mut st = Status::default();
    let old = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    w.fake.advance(Duration::from_mins(1));
    w.list().await;
    v.hash = "h2".into();
    let p = launch::plan_for(&w.env(), &v, &mut st, true, true).await;
    let new = exec::run(&w.env(), &v, &mut st, p.steps, p.current).await.unwrap().unwrap();
    assert_eq!(new.state, InstanceState::Pending);
    w.list().await;
    w.pass(&v, &mut st, true).await.unwrap();
    assert!(w.fake.instance(&old.id).unwrap().state.is_alive(), "kept while the new one boots");
    w.fake.advance(Duration::from_mins(1));
    w.list().await;
    w.pass(&v, &mut st, true).await.unwrap();
    assert!(!w.fake.instance(&old.id).unwrap().state.is_alive(), "terminated once the new one runs");
    assert!(v.reasons().contains(&"Replacing") && v.reasons().contains(&"Replaced"));
}

fn run_tokens(fake: &FakeCloud) -> Vec<String> {
    fake.calls().into_iter().filter(|c| c.op == ops::RUN_INSTANCES).map(|c| c.target).collect()
}

/// A spot owner stopped, and its terminated instance purged by AWS (about an hour later).
async fn spot_stopped_and_purged(uid: &str) -> (World, Vm, Status, Instance) {
    let fake = testing::cloud();
    fake.configure(|c| c.purge_after = Duration::from_mins(1));
    let w = World::on(fake).await;
    let mut v = w.vm(uid);
    v.spot = true;
    let mut st = Status::default();
    let first = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    w.list().await;
    assert!(w.pass(&v, &mut st, false).await.unwrap().is_none());
    w.fake.advance(Duration::from_mins(2));
    // A restarted operator (its cache keeps no write-through of what it launched).
    let w = World::on(w.fake.clone()).await;
    assert!(w.acct.cache.instances_of(uid).is_empty(), "purged from the listing");
    // An hour has passed since the launch (launchedAt is wall-clock time).
    let hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    st.launch.as_mut().unwrap().launched_at = Some(hour_ago.to_string());
    (w, v, st, first)
}

#[tokio::test]
async fn a_spot_owner_started_after_the_purge_launches_the_next_attempt() {
    let (w, v, mut st, first) = spot_stopped_and_purged("u14").await;
    let second = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(st.launch.as_ref().map(|l| l.attempt), Some(2));
    assert_eq!(run_tokens(&w.fake), vec![launch::token(&v.owner, 1), launch::token(&v.owner, 2)]);
    assert_eq!(w.alive("u14").len(), 1);
}

#[tokio::test]
async fn idempotent_instance_terminated_records_the_next_attempt_and_launches_once() {
    // The executor's backstop: a plan that still launches the spent attempt.
    let (w, v, mut st, _) = spot_stopped_and_purged("u15").await;
    let got = exec::run(&w.env(), &v, &mut st, vec![Step::Launch { attempt: 1 }], None).await.unwrap().unwrap();
    assert_eq!(st.launch.as_ref().map(|l| l.attempt), Some(2));
    assert_eq!(got.tag(LAUNCH_ATTEMPT), Some("2"));
    let t = |a| launch::token(&v.owner, a);
    assert_eq!(run_tokens(&w.fake), vec![t(1), t(1), t(2)]);
    let evs = v.events.lock().unwrap().clone();
    assert!(evs.iter().any(|e| e.0 && e.1 == "Relaunching" && e.2.contains("IdempotentInstanceTerminated")), "{evs:?}");
}

#[tokio::test]
async fn a_token_spent_with_other_parameters_is_reported_and_never_retried() {
    let fake = testing::cloud();
    fake.configure(|c| c.listing_lag = Duration::from_secs(30));
    let w = World::on(fake.clone()).await;
    let mut v = w.vm("u16");
    v.fail_write = Some(1); // the write after RunInstances fails: a crash
    assert!(w.pass(&v, &mut Status::default(), true).await.is_err());
    let mut st = v.writes.lock().unwrap()[0].clone();
    // Restarted with another spec, before the listing shows the instance of attempt 1.
    let w2 = World::on(fake).await;
    let mut v2 = w2.vm("u16");
    v2.hash = "h2".into();
    let e = w2.pass(&v2, &mut st, true).await.unwrap_err();
    assert!(e.to_string().contains("IdempotentParameterMismatch"), "{e}");
    let persisted = v2.writes.lock().unwrap().last().cloned().unwrap().launch.unwrap();
    assert_eq!((persisted.attempt, persisted.uncertain_since.is_some()), (2, true), "{persisted:?}");
    assert!(v2.events.lock().unwrap().iter().any(|e| e.0 && e.1 == "LaunchTokenMismatch"));
    // Not a loop: a wait for a listing, then attempt 2 once, and attempt 1 retired once it runs.
    assert!(w2.pass(&v2, &mut st, true).await.unwrap_err().waiting().is_some());
    w2.fake.advance(Duration::from_mins(1));
    w2.list().await;
    let now = w2.pass(&v2, &mut st, true).await.unwrap().unwrap();
    assert_eq!(now.tag(LAUNCH_ATTEMPT), Some("2"));
    w2.fake.advance(Duration::from_mins(1));
    w2.list().await;
    w2.pass(&v2, &mut st, true).await.unwrap();
    assert_eq!(w2.alive("u16").iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![now.id]);
    assert_eq!(w2.fake.count(ops::RUN_INSTANCES), 3, "attempt 1, its mismatch, attempt 2");
}

#[tokio::test]
async fn a_plan_made_before_the_guard_cleared_launches_nothing() {
    let w = World::new().await;
    let (v, mut st) = (w.vm("u17"), Status::default());
    w.fake.inject(Fault::lost(ops::RUN_INSTANCES));
    w.pass(&v, &mut st, true).await.unwrap_err();
    let stale = launch::plan_for(&w.env(), &v, &mut st, true, false).await;
    w.list().await; // a listing completes between the plan and its execution
    let e = exec::run(&w.env(), &v, &mut st, stale.steps, stale.current).await.unwrap_err();
    assert!(e.waiting().is_some(), "{e}");
    assert_eq!(w.fake.count(ops::RUN_INSTANCES), 1, "no launch on a plan older than the listing");
    let adopted = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    assert_eq!(w.fake.count(ops::RUN_INSTANCES), 1, "re-planned: the listing's instance adopted");
    assert_eq!(w.alive("u17").iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![adopted.id]);
    assert_eq!(st.launch.as_ref().and_then(|l| l.uncertain_since.clone()), None);
}

#[tokio::test]
async fn the_uncertain_launch_guard_survives_in_status() {
    let fake = testing::cloud();
    // The next leader: its last listing started before the uncertain launch.
    let next = World::on(fake.clone()).await;
    let w = World::on(fake.clone()).await;
    let (v, mut st) = (w.vm("u18"), Status::default());
    w.fake.inject(Fault::lost(ops::RUN_INSTANCES));
    w.pass(&v, &mut st, true).await.unwrap_err();
    let mut st2 = v.writes.lock().unwrap().last().cloned().unwrap();
    assert!(st2.launch.as_ref().unwrap().uncertain_since.is_some(), "{st2:?}");
    let v2 = next.vm("u18");
    assert!(next.pass(&v2, &mut st2, true).await.unwrap_err().waiting().is_some());
    assert_eq!(fake.count(ops::RUN_INSTANCES), 1, "the new process does not launch blind");
    next.list().await;
    let adopted = next.pass(&v2, &mut st2, true).await.unwrap().unwrap();
    assert_eq!(fake.count(ops::RUN_INSTANCES), 1);
    assert_eq!(next.alive("u18").iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![adopted.id]);
}

/// Issue 13: a Recreate with a data volume. The predecessor's termination releases the volume
/// before the operator's detach, which EC2 then answers InvalidAttachment.NotFound: the detach
/// is done, the reconcile goes on (it failed and backed off ~20 s), and the next pass attaches
/// the volume to the new instance.
#[tokio::test]
async fn a_replacement_moves_a_volume_its_predecessor_already_released() {
    let fake = testing::cloud();
    fake.configure(|c| {
        c.boot_time = Duration::ZERO;
        c.terminate_time = Duration::ZERO;
    });
    let w = World::on(fake).await;
    let owner = testing::workspace_owner("u15");
    let req = VolumeRequest {
        client_token: "t15".into(),
        size_gb: 10,
        zone: "eu-west-1a".into(),
        tags: testing::tags(&owner),
    };
    let vol = w.acct.volumes.create(&req).await.unwrap();
    let mut v = w.vm("u15");
    let mut st = Status::default();
    let cached_vol = |w: &World| w.acct.cache.volumes_of("u15").into_iter().find(|x| x.id == vol.id);
    v.volume = cached_vol(&w);
    let old = w.pass(&v, &mut st, true).await.unwrap().unwrap();
    v.volume = cached_vol(&w);
    w.pass(&v, &mut st, true).await.unwrap();
    assert_eq!(w.fake.volume(&vol.id).unwrap().attached_to.as_deref(), Some(old.id.as_str()));
    // Recreate: attempt 2 runs at once; the old instance is terminated (and releases the volume).
    v.hash = "h2".into();
    let p = launch::plan_for(&w.env(), &v, &mut st, true, true).await;
    let new = exec::run(&w.env(), &v, &mut st, p.steps, p.current).await.unwrap().unwrap();
    w.list().await;
    v.volume = cached_vol(&w);
    w.pass(&v, &mut st, true).await.unwrap();
    assert!(!w.fake.instance(&old.id).unwrap().state.is_alive());
    assert_eq!(w.fake.volume(&vol.id).unwrap().attached_to, None, "released by the termination");
    assert_eq!(cached_vol(&w).unwrap().attached_to.as_deref(), Some(old.id.as_str()), "not seen yet");
    // The plan detaches from the dead instance: EC2 says not attached. Not an error.
    v.volume = cached_vol(&w);
    w.pass(&v, &mut st, true).await.expect("a volume already detached is not a failure");
    v.volume = cached_vol(&w);
    w.pass(&v, &mut st, true).await.unwrap();
    assert_eq!(w.fake.volume(&vol.id).unwrap().attached_to.as_deref(), Some(new.id.as_str()));
}
