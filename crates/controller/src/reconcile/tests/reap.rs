//! The reaper: deletes an orphan, and re-checks DNS marks before deleting a record.

use molecule_crds::v1alpha1::OrphanKind;

use crate::cloud::fake::InstanceSeed;
use crate::orphans::classify::{Finding, Live, LiveOwner, OrphanReason};
use crate::orphans::gather::Handle;
use crate::orphans::reap;
use crate::testing;

fn finding(kind: OrphanKind, id: &str, uid: &str) -> Finding {
    Finding {
        kind,
        id: id.into(),
        region: "eu-west-1".into(),
        tenant: Some("acme".into()),
        reason: OrphanReason::OwnerGone { kind: "Workspace".into(), owner: "acme/gone".into(), uid: uid.into() },
        owner_uid: Some(uid.into()),
    }
}

#[tokio::test]
async fn an_orphan_group_and_instance_are_deleted_and_written_through() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let tags = testing::tags(&testing::workspace_owner("gone"));
    let sg = fake.seed_group("orphan", &tags);
    let i = fake.seed_instance(InstanceSeed { tags, ..InstanceSeed::default() });
    ctx.main.cache.refresh().await.unwrap();
    let live = Live::default();
    assert!(
        reap::delete(&ctx, &finding(OrphanKind::Instance, &i.id, "gone"), &Handle::Ec2("main"), &live).await.unwrap()
    );
    assert!(!fake.instance(&i.id).unwrap().state.is_alive());
    assert!(
        reap::delete(&ctx, &finding(OrphanKind::SecurityGroup, &sg, "gone"), &Handle::Ec2("main"), &live)
            .await
            .unwrap()
    );
    assert!(fake.group(&sg).is_none() && ctx.main.cache.groups_of("gone").is_empty());
}

#[tokio::test]
async fn a_record_beside_a_live_owners_mark_is_not_reaped() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let name = "a.acme.acme.ws.example.test";
    let (gone, alive) = (testing::workspace_owner("gone"), testing::workspace_owner("alive"));
    fake.seed_record(name, "A", &["10.0.0.1"]);
    let marks = [ctx.identity.dns_mark(&gone).render(), ctx.identity.dns_mark(&alive).render()];
    fake.seed_record(name, "TXT", &[&marks[0], &marks[1]]);
    let mut live = Live::default();
    let owner = LiveOwner { qualified: "acme/alive".into(), instance_id: None, replacing: false, attempt: None };
    live.owners.insert("alive".into(), owner);
    let reaped =
        reap::delete(&ctx, &finding(OrphanKind::DnsRecord, name, "gone"), &Handle::Route53, &live).await.unwrap();
    assert!(!reaped);
    assert_eq!(fake.record(name, "A").values, vec!["10.0.0.1".to_owned()]);
    live.owners.clear();
    assert!(reap::delete(&ctx, &finding(OrphanKind::DnsRecord, name, "gone"), &Handle::Route53, &live).await.unwrap());
    assert!(fake.record(name, "A").values.is_empty());
}
