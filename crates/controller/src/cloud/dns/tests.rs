//! The zone cache and the change batcher on the fake cloud, which counts every Route 53 call.

use std::sync::Arc;
use std::time::Duration;

use super::{BatchConfig, BatchedDns, named_in};
use crate::cloud::fake::{FakeCloud, FakeConfig, Fault, ops};
use crate::cloud::marks::DnsMark;
use crate::cloud::{Dns, OwnedRecord, RecordSet};
use crate::metrics::Metrics;
use crate::reconcile::workspace::dns::{self as ws_dns, may_touch};

const DOMAIN: &str = "ws.internal";

fn config() -> BatchConfig {
    BatchConfig {
        idle: Duration::from_millis(30),
        max_wait: Duration::from_millis(300),
        delete_idle: Duration::from_millis(100),
        delete_max_wait: Duration::from_secs(1),
        ..BatchConfig::new(Duration::from_mins(1))
    }
}

fn setup(config: BatchConfig) -> (FakeCloud, Arc<BatchedDns>) {
    let cloud = FakeCloud::with_config(FakeConfig::instant());
    let dns = BatchedDns::new(cloud.zone(), cloud.dns(), DOMAIN, config, &Metrics::new());
    (cloud, Arc::new(dns))
}

fn mark(uid: &str) -> DnsMark {
    DnsMark {
        operator_id: "molecule-operator".into(),
        env: "test".into(),
        owner_kind: "Workspace".into(),
        owner_uid: uid.into(),
    }
}

fn host(i: usize) -> String {
    format!("w{i}.acme.{DOMAIN}")
}

fn ip(i: usize) -> String {
    format!("10.0.{}.{}", i / 250, i % 250 + 1)
}

fn route53_calls(cloud: &FakeCloud) -> usize {
    cloud.count(ops::LIST_RECORDS) + cloud.count(ops::CHANGE_RECORDS)
}

/// What `workspace::dns::ensure` does: read, check ownership, upsert unless already there.
async fn ensure(dns: &BatchedDns, i: usize) -> crate::cloud::CloudResult<()> {
    let (name, mark) = (host(i), mark(&format!("u{i}")));
    let current = dns.get(&name, "A").await?;
    assert!(may_touch(&current, &mark), "{name} is not ours");
    let record = OwnedRecord { name, record_type: "A", value: ip(i), owner_mark: mark.render() };
    dns.upsert(&record).await
}

async fn ensure_all(dns: &Arc<BatchedDns>, range: std::ops::Range<usize>) -> Vec<crate::cloud::CloudResult<()>> {
    let tasks: Vec<_> = range
        .map(|i| {
            tokio::spawn({
                let d = dns.clone();
                async move { ensure(&d, i).await }
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `workspace::dns::remove` as the Workspace delete calls it (not waiting for the batch).
async fn remove_soon(dns: &BatchedDns, mark: &DnsMark, host: &str) -> Result<bool, crate::reconcile::Error> {
    ws_dns::remove(dns, mark, host, false).await
}

/// `workspace::dns::remove` until it stops waiting for its batch, as the Workspace delete comes
/// back: whether the record was someone else's.
async fn remove(dns: &BatchedDns, mark: &DnsMark, host: &str) -> Result<bool, crate::reconcile::Error> {
    loop {
        match remove_soon(dns, mark, host).await {
            Err(crate::reconcile::Error::Waiting { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
            other => return other,
        }
    }
}

#[tokio::test]
async fn a_hundred_workspaces_make_at_most_ten_route53_calls() {
    let (cloud, dns) = setup(config());
    let results = ensure_all(&dns, 0..100).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let calls = route53_calls(&cloud);
    assert!(calls <= 10, "100 Workspaces made {calls} Route 53 calls: {:?}", cloud.counts());
    assert_eq!(cloud.count(ops::LIST_RECORDS), 1, "one listing serves every read");
    for i in 0..100 {
        let r = cloud.record(&host(i), "A");
        assert_eq!(r.values, [ip(i)]);
        assert_eq!(r.txt, [mark(&format!("u{i}")).render()]);
    }
    // Get after upsert sees the record, from the cache: no listing.
    let seen = dns.get(&host(42), "A").await.unwrap();
    assert_eq!(seen.values, [ip(42)]);
    assert!(seen.txt.iter().any(|t| mark("u42").matches(t)));
    assert_eq!(cloud.count(ops::LIST_RECORDS), 1, "read after write answered from the cache");
}

#[tokio::test]
async fn a_refused_record_does_not_fail_the_others_of_its_batch() {
    let (cloud, dns) = setup(config());
    dns.get(&host(0), "A").await.unwrap();
    // Written behind the cache's back: the cache says absent, Route 53 refuses our CREATE.
    cloud.seed_record(&host(7), "A", &["192.0.2.7"]);
    cloud.seed_record(&host(7), "TXT", &["heritage=external-dns,external-dns/owner=other"]);
    let results = ensure_all(&dns, 0..10).await;
    for (i, r) in results.iter().enumerate() {
        if i == 7 {
            let e = r.as_ref().expect_err("the foreign name is refused");
            assert_eq!(e.code, "InvalidChangeBatch");
            assert_eq!(e.target, host(7));
        } else {
            assert!(r.is_ok(), "{i}: {r:?}");
            assert_eq!(cloud.record(&host(i), "A").values, [ip(i)]);
        }
    }
    assert_eq!(cloud.record(&host(7), "A").values, ["192.0.2.7"], "the foreign record is untouched");
    // The refusal re-read the name: the next read sees the foreign record and leaves it alone.
    let now = dns.get(&host(7), "A").await.unwrap();
    assert!(!may_touch(&now, &mark("u7")));
}

#[tokio::test]
async fn a_refusal_as_moto_words_it_names_the_record() {
    let (cloud, dns) = setup(config());
    dns.get(&host(0), "A").await.unwrap();
    let moto = format!(
        "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with [Action=DELETE, Name={}, Type=TXT, SetIdentifier=null]",
        host(3)
    );
    assert_eq!(named_in(&moto), [host(3)]);
    cloud.inject(Fault::code(ops::CHANGE_RECORDS, "InvalidInput").message(&moto));
    let results = ensure_all(&dns, 0..6).await;
    assert_eq!(results[3].as_ref().unwrap_err().code, "InvalidInput");
    assert!(results.iter().enumerate().all(|(i, r)| i == 3 || r.is_ok()), "{results:?}");
}

#[tokio::test]
async fn a_refusal_naming_no_record_is_halved_until_it_does_not_fail() {
    let (cloud, dns) = setup(config());
    dns.get(&host(0), "A").await.unwrap();
    cloud.inject(Fault::code(ops::CHANGE_RECORDS, "InvalidChangeBatch"));
    let results = ensure_all(&dns, 0..8).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(cloud.count(ops::CHANGE_RECORDS), 3, "the refused batch, then its two halves");
}

#[tokio::test]
async fn a_foreign_record_is_never_touched() {
    let (cloud, dns) = setup(config());
    cloud.seed_record(&host(1), "A", &["192.0.2.1"]);
    cloud.seed_record(&host(1), "TXT", &[&mark("someone-else").render()]);
    cloud.seed_record(&host(2), "A", &["192.0.2.2"]);
    let upsert =
        |i: usize| OwnedRecord { name: host(i), record_type: "A", value: ip(i), owner_mark: mark("u1").render() };
    for i in [1, 2] {
        let current = dns.get(&host(i), "A").await.unwrap();
        assert!(!may_touch(&current, &mark("u1")), "{i}: the cache shows the foreign record");
        // Even asked to, the batcher refuses before sending anything.
        let e = dns.upsert(&upsert(i)).await.unwrap_err();
        assert_eq!(e.code, "RecordNotOurs");
        assert!(remove(dns.as_ref(), &mark("u1"), &host(i)).await.unwrap(), "{i}: reported as someone else's");
    }
    assert_eq!(cloud.count(ops::CHANGE_RECORDS), 0);
    assert_eq!(cloud.record(&host(1), "A").values, ["192.0.2.1"]);
    assert_eq!(cloud.record(&host(2), "A").values, ["192.0.2.2"]);
}

#[tokio::test]
async fn deletes_of_many_workspaces_share_one_change() {
    let (cloud, dns) = setup(config());
    assert!(ensure_all(&dns, 0..50).await.iter().all(Result::is_ok));
    let (lists, changes) = (cloud.count(ops::LIST_RECORDS), cloud.count(ops::CHANGE_RECORDS));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            tokio::spawn({
                let d = dns.clone();
                async move { remove(d.as_ref(), &mark(&format!("u{i}")), &host(i)).await }
            })
        })
        .collect();
    for t in tasks {
        assert!(!t.await.unwrap().unwrap(), "ours, deleted");
    }
    assert_eq!(cloud.count(ops::LIST_RECORDS), lists, "the deletes read the cache");
    let deleted = cloud.count(ops::CHANGE_RECORDS) - changes;
    assert!((1..=2).contains(&deleted), "50 deletes took {deleted} changes");
    for i in 0..50 {
        assert_eq!(cloud.record(&host(i), "A"), RecordSet::default());
        assert_eq!(dns.get(&host(i), "A").await.unwrap(), RecordSet::default(), "written through");
    }
}

/// As after a delete of many Workspaces: each one's records go once its instance is confirmed
/// terminated, one every 40 ms here (longer than the upsert idle window, 30 ms).
#[tokio::test(start_paused = true)]
async fn deletes_spread_over_time_wait_for_each_other() {
    let (cloud, dns) = setup(config());
    assert!(ensure_all(&dns, 0..10).await.iter().all(Result::is_ok));
    let changes = cloud.count(ops::CHANGE_RECORDS);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let d = dns.clone();
        tasks.push(tokio::spawn(async move { remove(d.as_ref(), &mark(&format!("u{i}")), &host(i)).await }));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    for t in tasks {
        assert!(!t.await.unwrap().unwrap(), "ours, deleted");
    }
    assert_eq!(cloud.count(ops::CHANGE_RECORDS) - changes, 1, "10 deletes 40 ms apart share one change");
}

/// The longer delete windows never hold back an upsert (a Workspace waiting for its name).
#[tokio::test(start_paused = true)]
async fn an_upsert_joining_deletes_is_sent_within_its_own_window() {
    let (cloud, dns) = setup(BatchConfig { delete_max_wait: Duration::from_mins(1), ..config() });
    assert!(ensure_all(&dns, 0..1).await.iter().all(Result::is_ok));
    let d = dns.clone();
    let delete = tokio::spawn(async move { remove(d.as_ref(), &mark("u0"), &host(0)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = tokio::time::Instant::now();
    ensure(&dns, 1).await.unwrap();
    assert!(t0.elapsed() <= config().max_wait, "the upsert waited {:?}", t0.elapsed());
    assert!(!delete.await.unwrap().unwrap(), "the delete went in the same change");
    assert_eq!(cloud.record(&host(1), "A").values, [ip(1)]);
    assert_eq!(cloud.record(&host(0), "A"), RecordSet::default());
}

/// A Workspace delete does not hold its reconcile slot while its change waits for a batch: the
/// first call returns at once, waiting; a later one finds it done.
#[tokio::test(start_paused = true)]
async fn a_delete_returns_at_once_and_is_found_done_later() {
    let (cloud, dns) = setup(BatchConfig { delete_idle: Duration::from_secs(5), ..config() });
    assert!(ensure_all(&dns, 0..1).await.iter().all(Result::is_ok));
    let t0 = tokio::time::Instant::now();
    let first = remove_soon(dns.as_ref(), &mark("u0"), &host(0)).await;
    assert!(matches!(first, Err(crate::reconcile::Error::Waiting { .. })), "{first:?}");
    assert_eq!(t0.elapsed(), Duration::ZERO, "returned without waiting for the batch");
    let again = remove_soon(dns.as_ref(), &mark("u0"), &host(0)).await;
    assert!(matches!(again, Err(crate::reconcile::Error::Waiting { .. })), "still on its way: {again:?}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!remove_soon(dns.as_ref(), &mark("u0"), &host(0)).await.unwrap(), "done: ours, deleted");
    assert_eq!(cloud.record(&host(0), "A"), RecordSet::default());
    assert_eq!(cloud.count(ops::CHANGE_RECORDS), 2, "the create and one delete");
}

/// A detached delete that fails says so to the next call, once; the call after sends it again.
#[tokio::test(start_paused = true)]
async fn a_failed_detached_delete_is_reported_once_then_sent_again() {
    let (cloud, dns) = setup(config());
    assert!(ensure_all(&dns, 0..1).await.iter().all(Result::is_ok));
    cloud.fail(ops::CHANGE_RECORDS, "Throttling", 1);
    assert!(remove_soon(dns.as_ref(), &mark("u0"), &host(0)).await.is_err(), "waiting");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failed = remove_soon(dns.as_ref(), &mark("u0"), &host(0)).await;
    assert!(matches!(failed, Err(crate::reconcile::Error::Cloud(_))), "the failure: {failed:?}");
    assert!(!remove(dns.as_ref(), &mark("u0"), &host(0)).await.unwrap(), "sent again, deleted");
    assert_eq!(cloud.record(&host(0), "A"), RecordSet::default());
}

/// The outcome of a delete nobody came back for (the next read found the name empty) does not
/// stand for a later delete of the same name written again: that one is sent too.
#[tokio::test(start_paused = true)]
async fn an_old_success_does_not_stand_for_a_new_delete_of_the_name() {
    let (cloud, dns) = setup(config());
    assert!(ensure_all(&dns, 0..1).await.iter().all(Result::is_ok));
    assert!(!remove(dns.as_ref(), &mark("u0"), &host(0)).await.unwrap());
    assert!(ensure_all(&dns, 0..1).await.iter().all(Result::is_ok), "written again");
    assert_eq!(cloud.record(&host(0), "A").values, [ip(0)]);
    assert!(!remove(dns.as_ref(), &mark("u0"), &host(0)).await.unwrap());
    assert_eq!(cloud.record(&host(0), "A"), RecordSet::default(), "deleted again, not left in the zone");
}

/// A stop removes its record and waits for the change: its status then says the record is gone
/// (it said RecordFailed, "waiting", while the change waited for its batch).
#[tokio::test(start_paused = true)]
async fn a_removal_that_waits_returns_once_the_record_is_gone() {
    let (cloud, dns) = setup(BatchConfig { delete_idle: Duration::from_secs(5), ..config() });
    assert!(ensure_all(&dns, 0..1).await.iter().all(Result::is_ok));
    assert!(!ws_dns::remove(dns.as_ref(), &mark("u0"), &host(0), true).await.unwrap());
    assert_eq!(cloud.record(&host(0), "A"), RecordSet::default(), "gone when it returns");
}

#[tokio::test]
async fn a_large_batch_is_split_within_the_request_limits() {
    let (cloud, dns) = setup(BatchConfig { max_wait: Duration::from_secs(2), ..config() });
    // 600 Workspaces: 1,200 records and ~70,000 characters, over both of AWS's limits (the
    // fake refuses a request over them, as AWS does).
    assert!(ensure_all(&dns, 0..600).await.iter().all(Result::is_ok));
    let changes = cloud.count(ops::CHANGE_RECORDS);
    assert!((3..=8).contains(&changes), "{changes} changes");
    assert!((0..600).all(|i| cloud.record(&host(i), "A").values == [ip(i)]));
}

#[tokio::test]
async fn the_cache_is_listed_again_once_older_than_its_freshness() {
    let (cloud, dns) = setup(BatchConfig { fresh_for: Duration::from_millis(200), ..config() });
    assert_eq!(dns.get(&host(1), "A").await.unwrap(), RecordSet::default());
    cloud.seed_record(&host(1), "A", &["192.0.2.1"]);
    assert!(dns.get(&host(1), "A").await.unwrap().values.is_empty(), "fresh: answered from the cache");
    assert!(dns.cache().age().unwrap() < Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(dns.get(&host(1), "A").await.unwrap().values, ["192.0.2.1"], "listed again");
    assert_eq!(cloud.count(ops::LIST_RECORDS), 2);
    assert_eq!(dns.cache().refreshes(), 2);
}

#[tokio::test]
async fn a_name_outside_the_domain_goes_to_route53_directly() {
    let (cloud, dns) = setup(config());
    dns.get("other.example.com", "A").await.unwrap();
    assert!(dns.cache().age().is_none(), "no listing for a name the cache does not hold");
    assert_eq!(cloud.count(ops::LIST_RECORDS), 1);
}

#[tokio::test]
async fn a_rewrite_after_a_removal_goes_through() {
    let (cloud, dns) = setup(config());
    ensure(&dns, 5).await.unwrap();
    assert!(!remove(dns.as_ref(), &mark("u5"), &host(5)).await.unwrap());
    // moto refuses a CREATE it journalled before, even after the record was deleted.
    let moto = format!("Tried to create resource record set [name='{}.', type='TXT'] but it already exists", host(5));
    cloud.inject(Fault::code(ops::CHANGE_RECORDS, "InvalidChangeBatch").message(&moto));
    assert_eq!(ensure(&dns, 5).await.unwrap_err().code, "InvalidChangeBatch");
    ensure(&dns, 5).await.unwrap();
    assert_eq!(cloud.record(&host(5), "A").values, [ip(5)]);
}

/// Removes our record at `host(i)` and lists the zone again (it lacks the name).
async fn removed_and_listed(dns: &BatchedDns, i: usize) {
    ensure(dns, i).await.unwrap();
    assert!(!remove(dns, &mark(&format!("u{i}")), &host(i)).await.unwrap());
    dns.cache().invalidate();
    dns.get(&host(0), "A").await.unwrap();
}

#[tokio::test]
async fn a_create_refused_at_a_name_route53_reads_as_empty_goes_through_as_an_upsert() {
    let (cloud, dns) = setup(config());
    removed_and_listed(&dns, 5).await;
    // moto refuses a CREATE it journalled before, even after the record was deleted.
    let moto = format!("Tried to create resource record set [name='{}.', type='TXT'] but it already exists", host(5));
    cloud.inject(Fault::code(ops::CHANGE_RECORDS, "InvalidChangeBatch").message(&moto));
    ensure(&dns, 5).await.unwrap();
    assert_eq!(cloud.record(&host(5), "A").values, [ip(5)]);
}

#[tokio::test]
async fn a_name_written_by_another_after_our_removal_is_not_overwritten() {
    let (cloud, dns) = setup(config());
    removed_and_listed(&dns, 5).await;
    // Written behind the cache's back, after the listing.
    cloud.seed_record(&host(5), "A", &["192.0.2.5"]);
    cloud.seed_record(&host(5), "TXT", &["heritage=external-dns,external-dns/owner=other"]);
    let record = OwnedRecord { name: host(5), record_type: "A", value: ip(5), owner_mark: mark("u5").render() };
    assert_eq!(dns.upsert(&record).await.unwrap_err().code, "InvalidChangeBatch");
    assert_eq!(cloud.record(&host(5), "A").values, ["192.0.2.5"], "the foreign record is untouched");
}

#[tokio::test]
async fn a_sweep_reads_the_cache_and_sees_our_own_changes() {
    let (cloud, dns) = setup(BatchConfig { fresh_for: Duration::from_millis(300), ..config() });
    ensure(&dns, 1).await.unwrap();
    ensure(&dns, 2).await.unwrap();
    assert!(!remove(dns.as_ref(), &mark("u1"), &host(1)).await.unwrap());
    cloud.seed_record(&host(3), "TXT", &[&mark("u3").render()]);
    let lists = cloud.count(ops::LIST_RECORDS);
    let swept = dns.txt_under(&format!("acme.{DOMAIN}")).await.unwrap();
    assert_eq!(swept, [(host(2), vec![mark("u2").render()])], "fresh: our writes and deletes, no listing");
    assert_eq!(cloud.count(ops::LIST_RECORDS), lists);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let swept = dns.txt_under(&format!("acme.{DOMAIN}")).await.unwrap();
    assert_eq!(swept.len(), 2, "older than its freshness: listed, the out-of-band record seen: {swept:?}");
    assert_eq!(cloud.count(ops::LIST_RECORDS), lists + 1);
}
