//! The Workspace's A record follows its instance: written while one is pending or running,
//! removed (with its ownership TXT) while none is, written again when it runs (issue 13: a
//! stopped spot Workspace kept a record pointing at a released address).

use molecule_crds::conditions;
use molecule_crds::v1alpha1::WorkspaceStatus;

use crate::cloud::fake::ops;
use crate::reconcile::workspace::dns::{self, Want};
use crate::reconcile::workspace::status::DnsState;
use crate::testing;

const HOST: &str = "ws-u1.acme.ws.example.test";

/// The status a reconcile that reached `dns` leaves behind.
fn after(dns: &DnsState, ip: Option<&str>) -> WorkspaceStatus {
    let (ok, reason) = match dns {
        DnsState::Ready => (true, "RecordWritten"),
        DnsState::Removed => (true, "RecordRemoved"),
        _ => (false, "RecordPending"),
    };
    let mut st = WorkspaceStatus {
        hostname: Some(HOST.into()),
        private_ip: ip.map(str::to_owned),
        ..WorkspaceStatus::default()
    };
    conditions::set(&mut st.conditions, conditions::new("DnsReady", ok, reason, "", Some(1), "2026-01-01T00:00:00Z"));
    st
}

#[tokio::test]
async fn the_record_goes_while_no_instance_runs_and_comes_back_when_one_does() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let owner = testing::workspace_owner("u1");
    let first = dns::step(&ctx, &owner, HOST, Want::Address("10.0.0.5"), &WorkspaceStatus::default()).await;
    assert_eq!(first, DnsState::Ready);
    assert_eq!(fake.record(HOST, "A").values, ["10.0.0.5"]);
    assert_eq!(fake.record(HOST, "A").txt.len(), 1, "the ownership TXT beside it");

    // Stopped (or a spot instance terminated): the address is released.
    let gone = dns::step(&ctx, &owner, HOST, Want::Absent, &after(&first, Some("10.0.0.5"))).await;
    assert_eq!(gone, DnsState::Removed);
    let rs = fake.record(HOST, "A");
    assert!(rs.values.is_empty() && rs.txt.is_empty(), "A and TXT removed: {rs:?}");

    // Said in status: the next pass costs no Route 53 call.
    let reads = fake.count(ops::LIST_RECORDS);
    assert_eq!(dns::step(&ctx, &owner, HOST, Want::Absent, &after(&gone, None)).await, DnsState::Removed);
    assert_eq!(fake.count(ops::LIST_RECORDS), reads);

    // Started again on another address.
    let back = dns::step(&ctx, &owner, HOST, Want::Address("10.0.0.7"), &after(&gone, None)).await;
    assert_eq!(back, DnsState::Ready);
    assert_eq!(fake.record(HOST, "A").values, ["10.0.0.7"]);
}

#[tokio::test]
async fn a_record_that_is_not_ours_is_left_and_an_unknown_address_changes_nothing() {
    let fake = testing::cloud();
    let (ctx, _api) = testing::context(&fake).await;
    let owner = testing::workspace_owner("u1");
    fake.seed_record(HOST, "A", &["10.0.0.9"]);
    fake.seed_record(HOST, "TXT", &["\"heritage=someone-else\""]);
    let st = after(&DnsState::Pending, None);
    assert_eq!(dns::step(&ctx, &owner, HOST, Want::Absent, &st).await, DnsState::Removed);
    assert_eq!(fake.record(HOST, "A").values, ["10.0.0.9"], "someone else's record stays");

    let mine = testing::workspace_owner("u2");
    let host = "ws-u2.acme.ws.example.test";
    dns::step(&ctx, &mine, host, Want::Address("10.0.0.3"), &WorkspaceStatus::default()).await;
    assert_eq!(dns::step(&ctx, &mine, host, Want::Unknown, &st).await, DnsState::Pending);
    assert_eq!(fake.record(host, "A").values, ["10.0.0.3"], "an error leaves the record as it is");
}
