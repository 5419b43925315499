//! Deletes and their blockers, as the Workspace delete, the erasure and the reaper run them.

use std::time::Duration;

use crate::cloud::fake::{InstanceSeed, ops};
use crate::cloud::{InstanceState, VolumeRequest};
use crate::metrics::Metrics;
use crate::reconcile::teardown::{self, Outcome};
use crate::testing;

#[tokio::test]
async fn a_group_is_in_use_until_its_instance_is_terminated() {
    let fake = testing::cloud();
    fake.configure(|c| c.terminate_time = Duration::from_mins(1));
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let tags = testing::tags(&testing::workspace_owner("d1"));
    let sg = acct.network.create("g", "d", &tags).await.unwrap();
    let i = fake.seed_instance(InstanceSeed { tags, security_groups: vec![sg.clone()], ..InstanceSeed::default() });
    assert!(
        matches!(teardown::delete_group(&acct, &sg).await.unwrap(), Outcome::InUse { code, .. } if code == "DependencyViolation")
    );
    teardown::terminate(&acct, std::slice::from_ref(&i.id)).await.unwrap();
    assert!(matches!(teardown::delete_group(&acct, &sg).await.unwrap(), Outcome::InUse { .. }), "still shutting down");
    fake.advance(Duration::from_mins(2));
    assert_eq!(teardown::delete_group(&acct, &sg).await.unwrap(), Outcome::Deleted);
    assert!(fake.group(&sg).is_none());
    assert!(acct.cache.groups_of("d1").is_empty(), "written through");
}

#[tokio::test]
async fn terminate_is_written_through_before_any_listing() {
    let fake = testing::cloud();
    fake.configure(|c| c.terminate_time = Duration::from_mins(1));
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let i = fake.seed_instance(InstanceSeed {
        tags: testing::tags(&testing::workspace_owner("d2")),
        ..InstanceSeed::default()
    });
    acct.cache.refresh().await.unwrap();
    teardown::terminate(&acct, std::slice::from_ref(&i.id)).await.unwrap();
    assert_eq!(acct.cache.instances_of("d2")[0].state, InstanceState::ShuttingDown);
    assert_eq!(fake.count(ops::TERMINATE_INSTANCES), 1);
}

#[tokio::test]
async fn an_attached_volume_is_detached_first_then_deleted() {
    let fake = testing::cloud();
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let owner = testing::workspace_owner("d3");
    let i = fake.seed_instance(InstanceSeed { tags: testing::tags(&owner), ..InstanceSeed::default() });
    let req =
        VolumeRequest { client_token: "v".into(), size_gb: 5, zone: "eu-west-1a".into(), tags: testing::tags(&owner) };
    let v = acct.volumes.create(&req).await.unwrap();
    acct.volumes.attach(&v.id, &i.id, "/dev/sdf").await.unwrap();
    acct.cache.refresh().await.unwrap();
    let cached = acct.cache.volumes_of("d3").remove(0);
    assert_eq!(teardown::delete_volume(&acct, "d3", &cached, true).await.unwrap(), Outcome::Detaching);
    let after = acct.cache.volumes_of("d3").remove(0);
    assert_eq!(after.attached_to, None, "the detach is written through");
    assert_eq!(teardown::delete_volume(&acct, "d3", &after, true).await.unwrap(), Outcome::Deleted);
    assert!(fake.volume(&v.id).is_none_or(|v| v.state == "deleted" || v.state == "deleting"));
}

#[tokio::test]
async fn an_attached_volume_deleted_without_detach_is_in_use() {
    let fake = testing::cloud();
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let owner = testing::workspace_owner("d4");
    let i = fake.seed_instance(InstanceSeed { tags: testing::tags(&owner), ..InstanceSeed::default() });
    let v = fake.seed_volume(&testing::tags(&owner), Some(&i.id));
    assert!(matches!(teardown::delete_volume(&acct, "d4", &v, false).await.unwrap(), Outcome::InUse { .. }));
}

#[tokio::test]
async fn a_blocker_is_typed_not_read_from_the_message() {
    let e =
        teardown::wait_on(teardown::Blocker::SecurityGroup("sg-1".into()), "anything at all".into(), Duration::ZERO);
    assert_eq!(e.blocker().map(teardown::Blocker::id), Some("sg-1"));
    assert_eq!(crate::reconcile::Error::waiting_for("instance i-1 to go", Duration::ZERO).blocker(), None);
}

/// Issue 13: a data volume that its instance's termination already released answers the detach
/// with InvalidAttachment.NotFound; it was read as "volume gone" and never deleted (a leak).
#[tokio::test]
async fn a_volume_already_detached_is_deleted_not_skipped() {
    let fake = testing::cloud();
    let acct = testing::account(&fake, "main", &Metrics::new()).await;
    let owner = testing::workspace_owner("d5");
    let i = fake.seed_instance(InstanceSeed { tags: testing::tags(&owner), ..InstanceSeed::default() });
    let v = fake.seed_volume(&testing::tags(&owner), Some(&i.id));
    acct.cache.refresh().await.unwrap();
    fake.set_instance_state(&i.id, InstanceState::Terminated);
    let stale = acct.cache.volumes_of("d5").into_iter().find(|x| x.id == v.id).unwrap();
    assert_eq!(stale.attached_to.as_deref(), Some(i.id.as_str()), "the cache still says attached");
    let first = teardown::delete_volume(&acct, "d5", &stale, true).await.unwrap();
    assert_eq!(first, Outcome::Detaching, "not Deleted: the volume is still there");
    let after = acct.cache.volumes_of("d5").into_iter().find(|x| x.id == v.id).unwrap();
    assert_eq!(teardown::delete_volume(&acct, "d5", &after, true).await.unwrap(), Outcome::Deleted);
    assert!(fake.volume(&v.id).is_none(), "deleted, not leaked");
}
