//! Verify by ID (issue 13, "everything is found only by tag"): after a change of the operator id
//! or env, or an edited tag, the fleet cache no longer lists what status names. The launch
//! protocol must not call it lost, a delete must not let its finalizer go, an erasure must not
//! complete its receipt while it lives; the mismatch is a condition (IdentityMismatch, Stalled).

use std::collections::BTreeMap;
use std::time::Duration;

use kube::runtime::reflector::store;
use molecule_crds::v1alpha1::{Tenant, Workspace};

use super::erase_run;
use super::subject::{Status, Vm};
use crate::cloud::fake::{FakeCloud, InstanceSeed, ops};
use crate::cloud::tags::{ENV, MANAGED_BY, OWNER_UID};
use crate::cloud::{Instance, InstanceState};
use crate::context::Context;
use crate::failpoints::Failpoints;
use crate::metrics::Metrics;
use crate::reconcile::launch::verify::{self, Seen};
use crate::reconcile::launch::{self, Env, exec};
use crate::reconcile::teardown::Blocker;
use crate::reconcile::tenant::{cloudflare, receipt::Receipt};
use crate::reconcile::workspace::{controller::Reconciler, delete};
use crate::reconcile::{Error, workspace::admit::Admission};
use crate::testing;

/// Rewrites tags of `ids` in the fake (CreateTags overwrites), as a person or another operator
/// would; the cache sees it at its next listing.
async fn retag(fake: &FakeCloud, ids: &[String], key: &str, value: &str) {
    fake.instances().tag(ids, &BTreeMap::from([(key.to_owned(), value.to_owned())])).await.unwrap();
}

fn alive(fake: &FakeCloud, uid: &str) -> Vec<Instance> {
    fake.all_instances().into_iter().filter(|i| i.tag(OWNER_UID) == Some(uid) && i.state.is_alive()).collect()
}

fn is_mismatch(e: &Error, id: &str) -> bool {
    matches!(e.blocker(), Some(Blocker::IdentityMismatch(m)) if m.id == id)
}

/// Launches one instance for `uid` with the launch protocol and ages its record past the
/// listing lag (so a missing instance would count as lost).
async fn launched(acct: &crate::context::Account, fake: &FakeCloud, uid: &str) -> (Vm, Status, Instance) {
    let sg = fake.seed_group("launch", &BTreeMap::new());
    let mut vm = Vm::new(testing::workspace_owner(uid));
    vm.sg = sg;
    let mut st = Status::default();
    let (identity, failpoints, metrics) = (testing::identity(), Failpoints::default(), Metrics::new());
    let env = Env { account: acct, identity: &identity, failpoints: &failpoints, metrics: &metrics };
    let p = launch::plan_for(&env, &vm, &mut st, true, false).await;
    let inst = exec::run(&env, &vm, &mut st, p.steps, p.current).await.unwrap().unwrap();
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10);
    st.launch.as_mut().unwrap().launched_at = Some(long_ago.to_string());
    (vm, st, inst)
}

/// The account as an operator restarted (with another id or env, or after a tag edit) sees it:
/// a fresh fleet cache (the one that launched keeps what it created through `LISTING_LAG`).
async fn restarted(fake: &FakeCloud) -> std::sync::Arc<crate::context::Account> {
    testing::account(fake, "main", &Metrics::new()).await
}

async fn plan(acct: &crate::context::Account, vm: &Vm, st: &mut Status) -> launch::Plan {
    let (identity, failpoints, metrics) = (testing::identity(), Failpoints::default(), Metrics::new());
    let env = Env { account: acct, identity: &identity, failpoints: &failpoints, metrics: &metrics };
    launch::plan_for(&env, vm, st, true, false).await
}

#[tokio::test]
async fn describe_by_id_sees_any_tags_and_an_unknown_id_is_absent() {
    let fake = testing::cloud();
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let owner = testing::workspace_owner("v0");
    let mut tags = testing::tags(&owner);
    tags.insert(MANAGED_BY.into(), "someone-else".into());
    let i = fake.seed_instance(InstanceSeed { tags, ..InstanceSeed::default() });
    assert!(acct.instances.list(&testing::identity().filter()).await.unwrap().is_empty(), "not listed");
    let seen = verify::instance(&acct, &testing::identity(), "v0", &i.id).await.unwrap();
    let Seen::Foreign(found, m) = seen else { panic!("expected a mismatch, got {seen:?}") };
    assert_eq!(found.id, i.id);
    assert!(m.differs.contains("managed-by=someone-else (this operator expects molecule-test)"), "{}", m.differs);
    assert_eq!(acct.instances.describe(&["i-unknown".into()]).await.unwrap(), vec![]);
    assert_eq!(acct.volumes.describe(&["vol-unknown".into()]).await.unwrap(), vec![]);
    assert_eq!(acct.network.describe(&["sg-unknown".into()]).await.unwrap(), vec![]);
}

#[tokio::test]
async fn another_operator_id_is_a_mismatch_not_a_relaunch() {
    let fake = testing::cloud();
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let (vm, mut st, inst) = launched(&acct, &fake, "v1").await;
    retag(&fake, std::slice::from_ref(&inst.id), MANAGED_BY, "molecule-other").await;
    let acct = restarted(&fake).await;
    assert!(acct.cache.instances_of("v1").is_empty(), "the listing no longer shows it");
    fake.clear_calls();
    let p = plan(&acct, &vm, &mut st).await;
    assert_eq!(p.steps, vec![], "no Record, no Launch: {p:?}");
    let m = p.mismatch.expect("the mismatch is reported");
    assert_eq!(m.id, inst.id);
    assert!(m.to_string().contains("molecule-other"), "{m}");
    assert_eq!(fake.count(ops::RUN_INSTANCES), 0);
    assert_eq!(alive(&fake, "v1").len(), 1, "one instance, no duplicate fleet");
}

#[tokio::test]
async fn another_env_or_a_removed_owner_tag_is_a_mismatch_too() {
    for (key, value) in [(ENV, "prod"), (OWNER_UID, "")] {
        let fake = testing::cloud();
        let acct = testing::account(&fake, "main", &Metrics::new()).await;
        let (vm, mut st, inst) = launched(&acct, &fake, "v2").await;
        retag(&fake, std::slice::from_ref(&inst.id), key, value).await;
        let acct = restarted(&fake).await;
        let p = plan(&acct, &vm, &mut st).await;
        assert!(p.mismatch.is_some() && p.steps.is_empty(), "{key}={value}: {p:?}");
    }
}

#[tokio::test]
async fn an_unlisted_instance_of_ours_is_current_not_lost() {
    let fake = testing::cloud();
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let (vm, mut st, inst) = launched(&acct, &fake, "v3").await;
    // A listing that lags behind (AWS: seconds, sometimes more) does not show it.
    acct.cache.remove::<Instance>("v3", &inst.id);
    assert!(acct.cache.instances_of("v3").is_empty());
    let p = plan(&acct, &vm, &mut st).await;
    assert_eq!(p.current.map(|c| c.id), Some(inst.id), "found by ID");
    assert_eq!(p.steps, vec![]);
    assert!(p.mismatch.is_none());
}

#[tokio::test]
async fn a_terminated_instance_under_another_identity_is_lost() {
    let fake = testing::cloud();
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let (vm, mut st, inst) = launched(&acct, &fake, "v4").await;
    retag(&fake, std::slice::from_ref(&inst.id), MANAGED_BY, "molecule-other").await;
    fake.set_instance_state(&inst.id, InstanceState::Terminated);
    let acct = restarted(&fake).await;
    let p = plan(&acct, &vm, &mut st).await;
    assert!(p.mismatch.is_none());
    assert_eq!(p.steps, vec![launch::Step::Record { attempt: 2, reason: launch::LaunchReason::Lost }]);
}

fn workspace(uid: &str, status: &serde_json::Value) -> Workspace {
    let deleted = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1)).to_string();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace",
        "metadata": {"name": format!("ws-{uid}"), "namespace": "acme", "uid": uid,
                     "deletionTimestamp": deleted, "finalizers": ["moleculesai.app/cleanup"]},
        "spec": {"tenant": "acme", "runtime": "claude-code"},
        "status": status,
    }))
    .unwrap()
}

fn reconciler(ctx: &std::sync::Arc<Context>) -> Reconciler {
    Reconciler {
        ctx: ctx.clone(),
        workspaces: store().0,
        leases: store().0,
        admission: Admission::default(),
        finalized: crate::reconcile::finalized::RecentUids::default(),
        secrets_gone: crate::reconcile::finalized::RecentUids::default(),
    }
}

/// Seeds what a Workspace owned under the test identity, then moves it to `other` operator id.
fn seed_owned(fake: &FakeCloud, uid: &str, other: &str) -> (Instance, String, String) {
    let mut tags = testing::tags(&testing::workspace_owner(uid));
    tags.insert(MANAGED_BY.into(), other.into());
    let sg = fake.seed_group(&format!("ws-{uid}"), &tags);
    let i = fake.seed_instance(InstanceSeed {
        tags: tags.clone(),
        security_groups: vec![sg.clone()],
        ..InstanceSeed::default()
    });
    let v = fake.seed_volume(&tags, Some(&i.id));
    (i, sg, v.id)
}

#[tokio::test]
async fn a_delete_does_not_finish_while_its_instance_lives_under_another_identity() {
    let fake = testing::cloud();
    fake.configure(|c| c.terminate_time = Duration::from_secs(30));
    let (ctx, _api) = testing::context(&fake).await;
    let r = reconciler(&ctx);
    let (i, sg, vol) = seed_owned(&fake, "d1", "molecule-other");
    let status =
        serde_json::json!({"phase": "Terminating", "instanceId": i.id, "securityGroupId": sg, "dataVolumeId": vol});
    let ws = workspace("d1", &status);
    ctx.main.cache.refresh().await.unwrap();
    for _ in 0..3 {
        let e = delete::cleanup(&ws, &r).await.expect_err("the finalizer must stay");
        assert!(is_mismatch(&e, &i.id), "blocked on the instance as a mismatch: {e}");
        assert!(e.to_string().contains("molecule-other"), "{e}");
    }
    assert_eq!(fake.count(ops::TERMINATE_INSTANCES), 0, "never terminated by an operator it does not belong to");
    assert!(fake.instance(&i.id).is_some_and(|x| x.state == InstanceState::Running));

    // The identity agrees again: the delete terminates, waits, deletes the group and volume.
    retag(&fake, &[i.id.clone(), sg.clone(), vol.clone()], MANAGED_BY, "molecule-test").await;
    let mut done = false;
    for _ in 0..20 {
        ctx.main.cache.refresh().await.unwrap();
        match delete::cleanup(&ws, &r).await {
            Ok(_) => {
                done = true;
                break;
            }
            Err(e) => assert!(e.waiting().is_some() && !is_mismatch(&e, &i.id), "{e}"),
        }
        fake.advance(Duration::from_secs(20));
    }
    assert!(done, "the delete finishes once the instance is ours again");
    assert!(fake.instance(&i.id).is_none_or(|x| x.state == InstanceState::Terminated));
    assert!(fake.group(&sg).is_none());
    assert!(fake.volume(&vol).is_none_or(|v| !crate::reconcile::teardown::volume_alive(&v)));
}

#[tokio::test]
async fn a_delete_blocks_on_a_group_or_volume_under_another_identity() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let r = reconciler(&ctx);
    let mut tags = testing::tags(&testing::workspace_owner("d2"));
    tags.insert(ENV.into(), "prod".into());
    let v = fake.seed_volume(&tags, None);
    let ws = workspace("d2", &serde_json::json!({"phase": "Terminating", "dataVolumeId": v.id}));
    ctx.main.cache.refresh().await.unwrap();
    let e = delete::cleanup(&ws, &r).await.expect_err("the finalizer must stay");
    assert!(is_mismatch(&e, &v.id), "{e}");
    assert!(fake.volume(&v.id).is_some_and(|x| x.state == "available"), "left alone");
}

/// Once the instance, group and secret status names are confirmed gone, status forgets them: a
/// later pass (waiting for the DNS delete, or the finalizer's) describes nothing by ID again.
#[tokio::test]
async fn a_delete_forgets_what_it_confirmed_gone() {
    let fake = testing::cloud();
    let (ctx, api) = testing::context(&fake).await;
    let r = reconciler(&ctx);
    let tags = testing::tags(&testing::workspace_owner("d3"));
    let sg = fake.seed_group("ws-d3", &tags);
    let i = fake.seed_instance(InstanceSeed { tags, security_groups: vec![sg.clone()], ..InstanceSeed::default() });
    let ws = workspace("d3", &serde_json::json!({"phase": "Terminating", "instanceId": i.id, "securityGroupId": sg}));
    let mut done = false;
    for _ in 0..20 {
        ctx.main.cache.refresh().await.unwrap();
        if delete::cleanup(&ws, &r).await.is_ok() {
            done = true;
            break;
        }
        fake.advance(Duration::from_secs(20));
    }
    assert!(done, "deleted");
    let last = api.statuses().last().cloned().unwrap();
    assert!(last["instanceId"].is_null() && last["securityGroupId"].is_null(), "forgotten: {last}");
    let again = workspace("d3", &last);
    let by_id = |f: &FakeCloud| f.count(ops::DESCRIBE_INSTANCES) + f.count(ops::DESCRIBE_SECURITY_GROUPS);
    let secrets = |f: &FakeCloud| {
        [ops::LIST_SECRETS, ops::DESCRIBE_SECRET, ops::DELETE_SECRET].iter().map(|op| f.count(op)).sum::<usize>()
    };
    let (before, secret_calls) = (by_id(&fake), secrets(&fake));
    delete::cleanup(&again, &r).await.unwrap();
    assert_eq!(by_id(&fake), before, "no describe by ID of what was confirmed gone");
    // At 1,000 the later passes listed and described the secret by tag every 2 s: 8 Secrets
    // Manager calls per Workspace delete (docs/benchmarks.md).
    assert_eq!(secrets(&fake), secret_calls, "no secret lookup once it was confirmed deleted");
    // No display and no Lease in the watch: no DELETE of a Lease that was never made.
    let leases: Vec<String> = api.requests().into_iter().filter(|q| q.contains("/leases/")).collect();
    assert!(leases.is_empty(), "{leases:?}");
}

const T_UID: &str = "7a1c0f00-0000-4000-8000-00000000b0b0";

fn tenant(status: &serde_json::Value) -> Tenant {
    erase_run::tenant(T_UID, status)
}

/// Runs the erasure up to `rounds` times; the steps it waited in, and whether it completed.
async fn erase_rounds(ctx: &Context, fake: &FakeCloud, t: &Tenant, rounds: usize) -> (Vec<(String, String)>, bool) {
    let mut waited = Vec::new();
    let done = erase_run::rounds(ctx, fake, t, &mut Receipt::default(), rounds, |step, err| {
        let id = err.blocker().map(|b| match b {
            Blocker::IdentityMismatch(m) => format!("mismatch {}", m.id),
            other => other.id().to_owned(),
        });
        waited.push((step.to_owned(), id.unwrap_or_default()));
    })
    .await;
    (waited, done)
}

#[tokio::test]
async fn an_erasure_does_not_complete_while_the_vm_lives_under_another_identity() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let mut tags = testing::tags(&testing::tenant_owner(T_UID, "acme"));
    tags.insert(MANAGED_BY.into(), "molecule-other".into());
    let vm = fake.seed_instance(InstanceSeed { tags, ..InstanceSeed::default() });
    ctx.main.cache.refresh().await.unwrap();
    let t = tenant(&serde_json::json!({"instanceId": vm.id}));
    let (waited, done) = erase_rounds(&ctx, &fake, &t, 4).await;
    assert!(!done, "no completed receipt while the VM serves");
    assert_eq!(waited.last(), Some(&("TenantVm".to_owned(), format!("mismatch {}", vm.id))), "{waited:?}");
    assert!(fake.instance(&vm.id).is_some_and(|x| x.state == InstanceState::Running), "left alone");
}

#[tokio::test]
async fn an_erasure_does_not_complete_while_the_tunnel_and_cname_of_another_operator_serve() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let other = crate::cloud::tags::Identity { operator_id: "molecule-other".into(), env: "test".into() };
    let tunnel = fake.seed_tunnel(&cloudflare::tunnel_name(&other, "acme")).unwrap();
    fake.seed_cf_record("CNAME", "acme.example.test", &cloudflare::target(&tunnel.id)).unwrap();
    let t = tenant(&serde_json::json!({"tunnelId": tunnel.id}));
    let (waited, done) = erase_rounds(&ctx, &fake, &t, 3).await;
    assert!(!done, "no completed receipt while the tunnel serves");
    assert_eq!(waited.last(), Some(&("Cloudflare".to_owned(), format!("mismatch {}", tunnel.id))), "{waited:?}");
    // The tunnel goes (by hand, or the other operator erases it): the CNAME still points at it.
    ctx.tunnels.as_ref().unwrap().delete(&tunnel.id).await.unwrap();
    let (waited, done) = erase_rounds(&ctx, &fake, &t, 3).await;
    assert!(!done, "no completed receipt while the CNAME still points at the tunnel");
    assert_eq!(waited.last(), Some(&("Cloudflare".to_owned(), "mismatch CNAME acme.example.test".to_owned())));
}

#[tokio::test]
async fn a_tenant_vm_under_another_identity_is_not_relaunched_and_stalls() {
    use crate::bootstrap::TenantBoot;
    use crate::reconcile::failed_in;
    use crate::reconcile::tenant::{scope::Scope, vm};
    let fake = testing::cloud();
    let (ctx, api) = testing::context(&fake).await;
    let mut tags = testing::tags(&testing::tenant_owner(T_UID, "acme"));
    tags.insert(ENV.into(), "prod".into());
    let old = fake.seed_instance(InstanceSeed { tags, ..InstanceSeed::default() });
    let t = tenant(&serde_json::json!({"instanceId": old.id,
        "launch": {"attempt": 1, "token": "t", "specHash": "x", "launchedAt": "2026-01-01T00:00:00Z"}}));
    let sg = fake.seed_group("tenant", &BTreeMap::new());
    let boot = TenantBoot { hostname: "acme.example.test", region: "eu-west-1", bundle_arn: "arn:b", image: "img:1" };
    let m = vm::Machine { instance_type: "t3.small", ami: "ami-tenant", profile: "p", sg: &sg, boot };
    let owner = testing::tenant_owner(T_UID, "acme");
    let mut st = t.status.clone().unwrap();
    let e = vm::converge(&ctx, &ctx.main, &t, &owner, &m, true, &mut st).await.expect_err("no VM planned");
    assert!(is_mismatch(&e, &old.id), "{e}");
    assert_eq!(fake.count(ops::RUN_INSTANCES), 0, "no second VM");
    let scope = Scope::new(&ctx, &t);
    let _ = scope.close(Err(failed_in("InstanceReady")(e))).await;
    let written = api.statuses().pop().expect("the status is written");
    let reason = |ty: &str| {
        written["conditions"].as_array().unwrap().iter().find(|c| c["type"] == ty).map(|c| c["reason"].clone())
    };
    assert_eq!(reason("InstanceReady"), Some(serde_json::json!("IdentityMismatch")), "{written}");
    assert_eq!(reason("Stalled"), Some(serde_json::json!("IdentityMismatch")), "{written}");
}
