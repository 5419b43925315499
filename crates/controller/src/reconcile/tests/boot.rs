//! The boot deadline (issue 14) with the launch protocol on the fake cloud: a VM whose
//! bootstrap never reports is terminated and relaunched once as the next attempt, the next one
//! that misses the deadline is kept and reported failed; a report clears the record.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use molecule_crds::v1alpha1::{Tenant, TenantStatus};

use crate::bootstrap::TenantBoot;
use crate::cloud::tags::BOOT;
use crate::cloud::{Instance, InstanceState};
use crate::context::Context;
use crate::reconcile::boot::{self, Verdict};
use crate::reconcile::tenant::vm;
use crate::testing;

const DEADLINE: Duration = Duration::from_mins(15);

fn tenant() -> Tenant {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "acme", "uid": "b-1"}, "spec": {}
    }))
    .unwrap()
}

/// One reconcile of the VM: the launch protocol, then the deadline judged `late` after now.
async fn pass(ctx: &Context, sg: &str, st: &mut TenantStatus, late: SignedDuration) -> (Option<Instance>, Verdict) {
    let t = tenant();
    let owner = testing::tenant_owner("b-1", "acme");
    let boot = TenantBoot { hostname: "acme.example.test", region: "eu-west-1", bundle_arn: "arn:b", image: "img:1" };
    let m = vm::Machine { instance_type: "t3.small", ami: "ami-tenant", profile: "p", sg, boot };
    let (mut current, _) = vm::converge(ctx, &ctx.main, &t, &owner, &m, true, st).await.unwrap();
    let now = (DEADLINE, Timestamp::now() + late);
    let v =
        boot::enforce(ctx.main.instances.as_ref(), current.as_mut(), &mut st.boot_timed_out, now, "tenant VM").await;
    ctx.main.cache.refresh().await.unwrap();
    (current, v.unwrap())
}

#[tokio::test]
async fn a_silent_vm_is_relaunched_once_then_kept_failed() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let sg = fake.seed_group("molecule-tenant-b-1", &BTreeMap::new());
    let mut st = TenantStatus::default();
    let (first, v) = pass(&ctx, &sg, &mut st, SignedDuration::from_mins(1)).await;
    assert_eq!(v, Verdict::Fine, "within the deadline");
    let first = first.unwrap();

    let (shown, v) = pass(&ctx, &sg, &mut st, SignedDuration::from_mins(20)).await;
    assert!(matches!(&v, Verdict::Relaunch(m) if m.contains(&first.id) && m.contains("900 s")), "{v:?}");
    assert_eq!(shown.map(|i| i.state), Some(InstanceState::ShuttingDown), "status shows it going");
    assert_eq!(st.boot_timed_out.as_deref(), Some(first.id.as_str()));
    assert!(!fake.instance(&first.id).unwrap().state.is_alive(), "the silent VM is terminated");

    // The launch protocol relaunches it as the next attempt.
    let (second, v) = pass(&ctx, &sg, &mut st, SignedDuration::from_mins(1)).await;
    let second = second.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(st.launch.as_ref().map(|l| l.attempt), Some(2));
    assert_eq!(v, Verdict::Fine);

    // It misses the deadline too: kept, failed, named.
    let (_, v) = pass(&ctx, &sg, &mut st, SignedDuration::from_mins(20)).await;
    assert!(matches!(&v, Verdict::Failed(m) if m.contains(&second.id) && m.contains(&first.id)), "{v:?}");
    assert_eq!(fake.instance(&second.id).unwrap().state, InstanceState::Running, "kept for inspection");
    let alive: Vec<_> = fake.all_instances().into_iter().filter(|i| i.state.is_alive()).collect();
    assert_eq!(alive.len(), 1, "no third launch");
}

#[tokio::test]
async fn a_report_clears_the_record() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let sg = fake.seed_group("molecule-tenant-b-1", &BTreeMap::new());
    let mut st = TenantStatus { boot_timed_out: Some("i-gone".into()), ..TenantStatus::default() };
    let (current, _) = pass(&ctx, &sg, &mut st, SignedDuration::from_mins(1)).await;
    let id = current.unwrap().id;
    ctx.main.instances.tag(&[id], &BTreeMap::from([(BOOT.to_owned(), "ready".to_owned())])).await.unwrap();
    ctx.main.cache.refresh().await.unwrap();
    let (_, v) = pass(&ctx, &sg, &mut st, SignedDuration::from_mins(60)).await;
    assert_eq!((v, st.boot_timed_out), (Verdict::Fine, None));
}
