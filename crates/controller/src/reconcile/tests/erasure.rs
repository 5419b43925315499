//! The Article 17 erasure on the fake cloud: every step, in DESIGN.md's order, each confirmed
//! by the cloud before the next, ending with a receipt where everything is confirmed gone.

use std::time::Duration;

use molecule_crds::v1alpha1::Tenant;

use super::erase_run::{self, first_call};
use crate::cloud::fake::{FakeCloud, InstanceSeed, ops};
use crate::cloud::marks::owner_record_name;
use crate::cloud::tags::LAUNCH_ATTEMPT;
use crate::context::Context;
use crate::reconcile::tenant::{cloudflare, receipt::Receipt};
use crate::testing;

const UID: &str = "7a1c0f00-0000-4000-8000-00000000a11e";

fn tenant() -> Tenant {
    erase_run::tenant(UID, &serde_json::Value::Null)
}

/// Plants everything a tenant owns: its VM, a Workspace's instance and volume, its group, its
/// bundle, its tunnel and CNAME with their ownership record, and a Route 53 record of a Workspace.
async fn plant(fake: &FakeCloud, ctx: &Context) -> Vec<String> {
    let owner = testing::tenant_owner(UID, "acme");
    let ws = testing::workspace_owner("w-1");
    let mut vm_tags = testing::tags(&owner);
    vm_tags.insert(LAUNCH_ATTEMPT.into(), "1".into());
    let vm = fake.seed_instance(InstanceSeed { tags: vm_tags, ..InstanceSeed::default() });
    let other = fake.seed_instance(InstanceSeed { tags: testing::tags(&ws), ..InstanceSeed::default() });
    let sg = fake.seed_group("molecule-tenant", &testing::tags(&owner));
    let vol = fake.seed_volume(&testing::tags(&ws), None);
    let bundle = fake.seed_secret(&ctx.identity.bundle_name("acme"), "{}", &testing::tags(&owner)).unwrap();
    let tunnel = fake.seed_tunnel(&cloudflare::tunnel_name(&ctx.identity, "acme")).unwrap();
    let host = "acme.example.test";
    fake.seed_cf_record("CNAME", host, &cloudflare::target(&tunnel.id)).unwrap();
    fake.seed_cf_record("TXT", &owner_record_name(host), &ctx.identity.dns_mark(&owner).render()).unwrap();
    let name = "w-1.acme.acme.ws.example.test";
    fake.seed_record(name, "A", &["10.0.0.9"]);
    fake.seed_record(name, "TXT", &[&ctx.identity.dns_mark(&ws).render()]);
    ctx.main.cache.refresh().await.unwrap();
    vec![other.id, vm.id, sg, vol.id, bundle.arn, tunnel.id]
}

/// Runs the erasure until it completes (advancing the cloud's clock while it waits).
async fn erase_all(ctx: &Context, fake: &FakeCloud, rc: &mut Receipt) -> Vec<&'static str> {
    let mut waited_in = Vec::new();
    let done = erase_run::rounds(ctx, fake, &tenant(), rc, 30, |step, err| {
        assert!(err.waiting().is_some(), "step {step} failed: {err}");
        waited_in.push(step);
    })
    .await;
    assert!(done, "the erasure did not complete: waited in {waited_in:?}");
    waited_in
}

#[tokio::test]
async fn everything_goes_in_order_and_the_receipt_confirms_each() {
    let fake = testing::cloud();
    fake.configure(|c| c.terminate_time = Duration::from_mins(1));
    let (ctx, _api) = testing::context(&fake).await;
    let ids = plant(&fake, &ctx).await;
    let mut rc = Receipt::default();
    let waited = erase_all(&ctx, &fake, &mut rc).await;
    assert!(waited.contains(&"Instances"), "the terminate was waited for: {waited:?}");
    let order = [
        first_call(&fake, ops::TERMINATE_INSTANCES, &ids[0]),
        first_call(&fake, ops::TERMINATE_INSTANCES, &ids[1]),
        first_call(&fake, ops::DELETE_SECURITY_GROUP, &ids[2]),
        first_call(&fake, ops::DELETE_DNS_RECORD, ""),
        first_call(&fake, ops::DELETE_TUNNEL, &ids[5]),
        first_call(&fake, ops::CHANGE_RECORDS, ""),
        first_call(&fake, ops::DELETE_SECRET, &ids[4]),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "out of order: {order:?}");
    assert!(rc.all_gone(), "{:?}", rc.resources);
    for id in &ids {
        assert!(rc.resources.iter().any(|e| &e.id == id && e.confirmed_gone_at.is_some()), "{id} not in receipt");
    }
    assert!(fake.all_tunnels().is_empty() && fake.all_cf_records().is_empty());
    assert!(fake.all_instances().iter().all(|i| !i.state.is_alive()));
    assert!(fake.record("w-1.acme.acme.ws.example.test", "A").values.is_empty());
}

#[tokio::test]
async fn a_foreign_record_beside_the_tenant_is_left_alone() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    plant(&fake, &ctx).await;
    // Somebody else's record under the tenant's subdomain: no mark of ours beside it.
    fake.seed_record("other.acme.ws.example.test", "A", &["10.0.0.7"]);
    let mut rc = Receipt::default();
    erase_all(&ctx, &fake, &mut rc).await;
    assert_eq!(fake.record("other.acme.ws.example.test", "A").values, vec!["10.0.0.7".to_owned()]);
}

fn workspace(name: &str) -> molecule_crds::v1alpha1::Workspace {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace",
        "metadata": {"name": name, "namespace": "acme", "uid": format!("uid-{name}")},
        "spec": {"tenant": "acme", "runtime": "claude-code"}
    }))
    .unwrap()
}

/// One erasure pass with `workspaces` as the watch cache.
async fn pass(
    ctx: &Context,
    rc: &mut Receipt,
    workspaces: &kube::runtime::reflector::Store<molecule_crds::v1alpha1::Workspace>,
) -> Result<(), (&'static str, crate::reconcile::Error)> {
    erase_run::pass(ctx, &tenant(), rc, workspaces).await
}

#[tokio::test]
async fn workspaces_come_from_the_watch_cache_and_records_are_looked_up_by_name() {
    use kube::runtime::watcher::Event;
    let fake = testing::cloud();
    let (ctx, api) = testing::context(&fake).await;
    plant(&fake, &ctx).await;
    let (store, mut writer) = kube::runtime::reflector::store();
    let names: Vec<String> = (0..20).map(|i| format!("ws-{i}")).collect();
    for n in &names {
        writer.apply_watcher_event(&Event::Apply(workspace(n)));
        let host = format!("{n}.acme.ws.example.test");
        fake.seed_record(&host, "A", &["10.0.0.9"]);
        fake.seed_record(
            &host,
            "TXT",
            &[&ctx.identity.dns_mark(&testing::workspace_owner(&format!("uid-{n}"))).render()],
        );
    }
    let mut rc = Receipt::default();
    let mut passes = 0;
    for _ in 0..30 {
        passes += 1;
        match pass(&ctx, &mut rc, &store).await {
            Ok(()) => break,
            Err((step, err)) => assert!(err.waiting().is_some(), "step {step} failed: {err}"),
        }
        // The watch sees the deleted Workspaces go.
        for n in &names {
            writer.apply_watcher_event(&Event::Delete(workspace(n)));
        }
        fake.advance(Duration::from_mins(2));
        ctx.main.cache.refresh().await.unwrap();
    }
    assert!(rc.all_gone() && rc.completed_at.is_none(), "{:?}", rc.pending("DnsRecord"));
    assert!(passes >= 4, "several passes: {passes}");
    let requests = api.requests();
    let lists = requests.iter().filter(|r| r.starts_with("GET") && r.contains("/workspaces")).count();
    let deletes = requests.iter().filter(|r| r.starts_with("DELETE") && r.contains("/workspaces/")).count();
    assert_eq!(lists, 1, "one Workspace listing in {passes} passes: {requests:?}");
    assert_eq!(deletes, 20, "each Workspace deleted once");
    let sweeps =
        fake.calls().iter().filter(|c| c.op == ops::LIST_RECORDS && c.target == "acme.ws.example.test").count();
    assert_eq!(sweeps, 2, "one sweep, and one more after it found the planted record, in {passes} passes");
    for n in &names {
        let host = format!("{n}.acme.ws.example.test");
        assert!(fake.record(&host, "A").values.is_empty(), "{host} deleted");
        assert!(rc.resources.iter().any(|e| e.id == format!("A {host}") && e.confirmed_gone_at.is_some()));
        assert!(rc.resources.iter().any(|e| e.id == format!("acme/{n}") && e.confirmed_gone_at.is_some()));
    }
}

/// Runs passes (50 ms apart, each after a listing) until the erasure completes; an instance with
/// the tenant's Workspace tag shows in listings only from 600 ms on (launched just before the
/// delete, a lagging listing hid it).
async fn erase_with_a_late_instance(allowance: Duration) -> (Receipt, String, FakeCloud, Duration) {
    let fake = testing::cloud();
    let (mut ctx, _api) = testing::context(&fake).await;
    std::sync::Arc::get_mut(&mut ctx).unwrap().settings.erasure_listing_allowance = allowance;
    plant(&fake, &ctx).await;
    let store = kube::runtime::reflector::store().0;
    let mut rc = Receipt::default();
    let started = std::time::Instant::now();
    let mut late = None;
    let ws = testing::workspace_owner("w-late");
    for _ in 0..200 {
        if pass(&ctx, &mut rc, &store).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if late.is_none() && started.elapsed() >= Duration::from_millis(600) {
            late = Some(fake.seed_instance(InstanceSeed { tags: testing::tags(&ws), ..InstanceSeed::default() }).id);
        }
        ctx.main.cache.refresh().await.unwrap();
    }
    (rc, late.unwrap_or_default(), fake, started.elapsed())
}

#[tokio::test]
async fn an_instance_a_lagging_listing_hid_is_terminated_before_the_receipt_completes() {
    let (rc, late, fake, took) = erase_with_a_late_instance(Duration::from_millis(1500)).await;
    assert!(rc.all_gone());
    assert!(took >= Duration::from_millis(1500), "waited for the allowance: {took:?}");
    let entry = rc.resources.iter().find(|e| e.kind == "Instance" && e.id == late);
    assert!(entry.is_some_and(|e| e.confirmed_gone_at.is_some()), "receipt lacks Instance {late}: {:?}", rc.resources);
    assert!(fake.all_instances().iter().all(|i| !i.state.is_alive()), "every instance terminated");
}
