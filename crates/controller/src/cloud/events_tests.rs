//! The EC2 notification consumer and the fed fleet cache, on the fake cloud and the fake queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cloud::Instance;
use crate::cloud::cache::{FleetCache, OwnerRef};
use crate::cloud::fake::queue::{FakeQueue, state_change, tag_change};
use crate::cloud::fake::{FakeCloud, FakeConfig, Fault, InstanceSeed, ops};
use crate::cloud::tags::{BOOT, MANAGED_BY, OWNER, OWNER_KIND, OWNER_UID};

struct World {
    cloud: FakeCloud,
    queue: FakeQueue,
    cache: Arc<FleetCache>,
    consumer: Consumer,
    metrics: Metrics,
}

fn world() -> World {
    world_with(FakeConfig::instant())
}

fn world_with(config: FakeConfig) -> World {
    let cloud = FakeCloud::with_config(config);
    let filter = BTreeMap::from([(MANAGED_BY.to_owned(), "molecule-operator".to_owned())]);
    let metrics = Metrics::new();
    let cache =
        Arc::new(FleetCache::new("main", filter, cloud.instances(), cloud.network(), cloud.volumes(), metrics.clone()));
    let queue = FakeQueue::new();
    let consumer = Consumer::new("main", Arc::new(queue.clone()), cloud.instances(), cache.clone(), metrics.clone());
    World { cloud, queue, cache, consumer, metrics }
}

/// A converged Workspace instance of owner `uid` (running, bootstrap reported).
fn ours(uid: &str, state: InstanceState) -> InstanceSeed {
    let tags = BTreeMap::from([
        (MANAGED_BY.to_owned(), "molecule-operator".to_owned()),
        (OWNER_UID.to_owned(), uid.to_owned()),
        (OWNER_KIND.to_owned(), "Workspace".to_owned()),
        (OWNER.to_owned(), format!("ns/{uid}")),
        (BOOT.to_owned(), "ready".to_owned()),
    ]);
    InstanceSeed { tags, state: Some(state), ..InstanceSeed::default() }
}

fn cached_state(cache: &FleetCache, uid: &str, id: &str) -> Option<InstanceState> {
    cache.instances_of(uid).into_iter().find(|i| i.id == id).map(|i| i.state)
}

fn listings(cloud: &FakeCloud) -> usize {
    cloud.calls().iter().filter(|c| c.op == ops::DESCRIBE_INSTANCES && c.target.is_empty()).count()
}

fn counted(m: &Metrics, outcome: &'static str) -> u64 {
    m.cloud_events.get_or_create(&EventLabel { account: "main", outcome }).get()
}

#[test]
fn parses_eventbridge_events() {
    let e = parse(&state_change("i-1", InstanceState::Terminated)).unwrap();
    assert_eq!(e, Event::State { instance: "i-1".into(), state: InstanceState::Terminated });
    assert_eq!(parse(&tag_change("i-2", "k", "v")).unwrap(), Event::Changed { instance: "i-2".into() });
    let other = r#"{"detail-type":"EBS Volume Notification","detail":{}}"#;
    assert_eq!(parse(other).unwrap(), Event::Ignored);
    let sg_tags = r#"{"detail-type":"Tag Change on Resource","detail":{"service":"ec2","resource-type":"security-group"},"resources":[]}"#;
    assert_eq!(parse(sg_tags).unwrap(), Event::Ignored);
    assert!(parse("not json").is_err());
    assert!(parse(r#"{"detail-type":"EC2 Instance State-change Notification","detail":{"state":"running"}}"#).is_err());
    assert!(
        parse(r#"{"detail-type":"Tag Change on Resource","detail":{"service":"ec2","resource-type":"instance"}}"#)
            .is_err()
    );
}

#[tokio::test]
async fn a_terminate_event_updates_the_cache_and_announces_the_owner_without_a_listing() {
    let w = world();
    let i = w.cloud.seed_instance(ours("u1", InstanceState::Running));
    w.cache.refresh().await.unwrap();
    let mut changes = w.cache.subscribe();
    w.cloud.clear_calls();

    // Somebody terminates it (console, CLI): EventBridge writes the state change to the queue.
    assert!(w.cloud.set_instance_state(&i.id, InstanceState::Terminated));
    w.queue.send(state_change(&i.id, InstanceState::Terminated));
    let got = w.queue.receive(Duration::ZERO).await.unwrap();
    let out = w.consumer.handle(got).await.unwrap();

    assert_eq!(cached_state(&w.cache, "u1", &i.id), Some(InstanceState::Terminated));
    let announced = changes.try_recv().expect("the owner is announced");
    assert_eq!(announced, OwnerRef { kind: "Workspace".into(), namespace: Some("ns".into()), name: "u1".into() });
    assert_eq!(listings(&w.cloud), 0, "no listing: {:?}", w.cloud.calls());
    assert_eq!(w.cloud.count(ops::DESCRIBE_INSTANCES), 1, "one describe by ID");
    assert_eq!(w.cloud.count(ops::DESCRIBE_SECURITY_GROUPS) + w.cloud.count(ops::DESCRIBE_VOLUMES), 0);
    assert_eq!((out.described, out.deleted, w.queue.in_flight()), (1, 1, 0));
}

#[tokio::test]
async fn a_tag_edit_is_seen_and_an_instance_losing_our_tags_leaves_the_cache() {
    let w = world();
    let i = w.cloud.seed_instance(ours("u1", InstanceState::Running));
    w.cache.refresh().await.unwrap();
    // The owner-uid tag is edited out of band: the instance moves to the new owner.
    let mut moved = ours("u2", InstanceState::Running).tags;
    moved.insert("extra".into(), "x".into());
    let found = vec![Instance { tags: moved, ..w.cloud.instance(&i.id).unwrap() }];
    assert_eq!(w.cache.upsert_described(std::slice::from_ref(&i.id), &found), 1);
    assert!(cached_state(&w.cache, "u1", &i.id).is_none());
    assert_eq!(cached_state(&w.cache, "u2", &i.id), Some(InstanceState::Running));
    // Its managed-by tag is removed: not ours any more, gone from the cache.
    let mut foreign = w.cloud.instance(&i.id).unwrap();
    foreign.tags.remove(MANAGED_BY);
    assert_eq!(w.cache.upsert_described(std::slice::from_ref(&i.id), &[foreign]), 1);
    assert!(w.cache.holds_state(&i.id).is_none());
}

#[tokio::test]
async fn a_malformed_message_is_dropped_and_counted_and_does_not_block_the_queue() {
    let w = world();
    let i = w.cloud.seed_instance(ours("u1", InstanceState::Running));
    w.cache.refresh().await.unwrap();
    w.cloud.set_instance_state(&i.id, InstanceState::Stopped);
    w.queue.send("{not json");
    w.queue.send(r#"{"detail-type":"EC2 Instance State-change Notification","detail":{}}"#);
    w.queue.send(state_change(&i.id, InstanceState::Stopped));
    let out = w.consumer.handle(w.queue.receive(Duration::ZERO).await.unwrap()).await.unwrap();
    assert_eq!((out.malformed, out.deleted), (2, 3));
    assert_eq!((w.queue.visible(), w.queue.in_flight()), (0, 0), "nothing is delivered again");
    assert_eq!(cached_state(&w.cache, "u1", &i.id), Some(InstanceState::Stopped), "the good one behind them applied");
    assert_eq!(counted(&w.metrics, "malformed"), 2);
    assert_eq!(counted(&w.metrics, "applied"), 1);
}

#[tokio::test]
async fn events_about_others_and_our_own_changes_cost_no_describe() {
    let w = world();
    let i = w.cloud.seed_instance(ours("u1", InstanceState::Running));
    w.cache.refresh().await.unwrap();
    w.cloud.clear_calls();
    // Not ours (not in the cache), and a state the cache already holds (our own write-through).
    w.queue.send(state_change("i-somebody-else", InstanceState::Running));
    w.queue.send(state_change(&i.id, InstanceState::Running));
    let out = w.consumer.handle(w.queue.receive(Duration::ZERO).await.unwrap()).await.unwrap();
    assert_eq!((out.described, out.deleted), (0, 2));
    assert_eq!(w.cloud.calls().len(), 0, "{:?}", w.cloud.calls());
}

#[tokio::test]
async fn a_failed_describe_leaves_the_messages_for_redelivery() {
    let w = world();
    let i = w.cloud.seed_instance(ours("u1", InstanceState::Running));
    w.cache.refresh().await.unwrap();
    w.cloud.set_instance_state(&i.id, InstanceState::Terminated);
    w.cloud.inject(Fault::server_error(ops::DESCRIBE_INSTANCES));
    w.queue.send(state_change(&i.id, InstanceState::Terminated));
    assert!(w.consumer.handle(w.queue.receive(Duration::ZERO).await.unwrap()).await.is_err());
    assert_eq!(w.queue.in_flight(), 1, "kept");
    assert_eq!(cached_state(&w.cache, "u1", &i.id), Some(InstanceState::Running));
    w.queue.expire();
    w.consumer.handle(w.queue.receive(Duration::ZERO).await.unwrap()).await.unwrap();
    assert_eq!(cached_state(&w.cache, "u1", &i.id), Some(InstanceState::Terminated));
    assert_eq!(w.queue.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn with_a_queue_the_refresh_loop_does_not_list_until_the_resync() {
    let w = world();
    w.cloud.seed_instance(ours("u1", InstanceState::Running));
    w.cache.refresh().await.unwrap();
    w.cloud.clear_calls();
    w.cache.feed_events(Duration::from_mins(10));
    tokio::spawn(w.cache.clone().run(Duration::from_secs(15)));
    tokio::time::sleep(Duration::from_mins(9)).await;
    assert_eq!(listings(&w.cloud), 0, "nothing listed in 9 minutes at rest");
    tokio::time::sleep(Duration::from_mins(2)).await;
    assert_eq!(listings(&w.cloud), 1, "the safety resync listed once");
    // A reconcile's request still lists at once.
    w.cache.request_refresh();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(listings(&w.cloud), 2);
}

#[tokio::test(start_paused = true)]
async fn without_a_queue_or_while_an_instance_settles_the_loop_polls() {
    let w = world();
    w.cache.refresh().await.unwrap();
    w.cloud.clear_calls();
    tokio::spawn(w.cache.clone().run(Duration::from_secs(15)));
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(listings(&w.cloud) >= 3, "polls every 15 s without a queue: {}", listings(&w.cloud));

    // AWS-like timings: the instance stays pending for a while.
    let fed = world_with(FakeConfig::default());
    fed.cloud.seed_instance(ours("u1", InstanceState::Pending));
    fed.cache.refresh().await.unwrap();
    fed.cloud.clear_calls();
    fed.cache.feed_events(Duration::from_mins(10));
    assert!(fed.cache.settling());
    tokio::spawn(fed.cache.clone().run(Duration::from_secs(15)));
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(listings(&fed.cloud) >= 3, "a pending instance is followed at the polling pace");
}
