//! The fake's own semantics: each test pins one AWS behaviour the executors rely on.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::cloud::tags::{MANAGED_BY, OWNER, OWNER_KIND, OWNER_UID};
use crate::cloud::{InstanceState, LaunchRequest, OwnedRecord, Peer, RecordSet, Rule, RuleChange, VolumeRequest};

pub(super) fn tags(uid: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), "molecule-operator".to_owned()),
        (OWNER_UID.to_owned(), uid.to_owned()),
        (OWNER_KIND.to_owned(), "Workspace".to_owned()),
        (OWNER.to_owned(), format!("ns/{uid}")),
    ])
}

pub(super) fn req(token: &str, uid: &str, groups: &[&str]) -> LaunchRequest {
    LaunchRequest {
        client_token: token.to_owned(),
        instance_type: "t3.small".into(),
        image_id: "ami-1".into(),
        subnet_id: "subnet-1".into(),
        security_group_ids: groups.iter().map(|g| (*g).to_owned()).collect(),
        instance_profile: None,
        root_gb: 20,
        iops: 3000,
        throughput_mi_bps: 125,
        spot: false,
        user_data: "#!/bin/sh".into(),
        tags: tags(uid),
    }
}

fn vreq(token: &str, uid: &str) -> VolumeRequest {
    VolumeRequest { client_token: token.into(), size_gb: 10, zone: "us-east-1a".into(), tags: tags(uid) }
}

fn mine(uid: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(OWNER_UID.to_owned(), uid.to_owned())])
}

#[tokio::test]
async fn launch_is_pending_until_boot_time_passes() {
    let cloud = FakeCloud::new();
    let i = cloud.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    assert_eq!(i.state, InstanceState::Pending);
    assert!(i.private_ip.is_some() && i.launch_time.is_some());
    cloud.advance(Duration::from_secs(29));
    assert_eq!(cloud.instance(&i.id).unwrap().state, InstanceState::Pending);
    cloud.advance(Duration::from_secs(1));
    assert_eq!(cloud.instance(&i.id).unwrap().state, InstanceState::Running);

    let instant = FakeCloud::with_config(FakeConfig::instant());
    let j = instant.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    assert_eq!(j.state, InstanceState::Running, "zero boot time answers running");
}

#[tokio::test]
async fn same_token_and_request_return_the_same_instance() {
    let cloud = FakeCloud::new();
    let api = cloud.instances();
    let a = api.launch(&req("t1", "u1", &[])).await.unwrap();
    let b = api.launch(&req("t1", "u1", &[])).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(cloud.all_instances().len(), 1);
    let c = api.launch(&req("t2", "u1", &[])).await.unwrap();
    assert_ne!(a.id, c.id, "another token launches another instance");
}

#[tokio::test]
async fn same_token_with_other_parameters_is_a_mismatch() {
    let cloud = FakeCloud::new();
    let api = cloud.instances();
    api.launch(&req("t1", "u1", &[])).await.unwrap();
    let mut other = req("t1", "u1", &[]);
    other.instance_type = "t3.large".into();
    let e = api.launch(&other).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Rejected, "IdempotentParameterMismatch"));
    // The token keeps a digest of the user-data, not the user-data: a change still mismatches.
    let mut script = req("t1", "u1", &[]);
    script.user_data.push_str("\necho changed");
    assert_eq!(api.launch(&script).await.unwrap_err().code, "IdempotentParameterMismatch");
    assert_eq!(cloud.all_instances().len(), 1);
}

#[tokio::test]
async fn token_of_a_purged_instance_answers_idempotent_instance_terminated() {
    let cloud = FakeCloud::with_config(FakeConfig { purge_after: Duration::from_mins(10), ..FakeConfig::instant() });
    let api = cloud.instances();
    let i = api.launch(&req("t1", "u1", &[])).await.unwrap();
    api.terminate(std::slice::from_ref(&i.id)).await.unwrap();
    let again = api.launch(&req("t1", "u1", &[])).await.unwrap();
    assert_eq!((again.id.as_str(), again.state), (i.id.as_str(), InstanceState::Terminated), "not purged yet");
    cloud.advance(Duration::from_mins(10));
    let e = api.launch(&req("t1", "u1", &[])).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Rejected, "IdempotentInstanceTerminated"));
    assert!(cloud.all_instances().is_empty());
}

#[tokio::test]
async fn listing_lag_hides_new_resources_then_shows_them() {
    let cloud = FakeCloud::with_config(FakeConfig { listing_lag: Duration::from_secs(5), ..FakeConfig::instant() });
    let i = cloud.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    let g = cloud.network().create("sg-a", "d", &tags("u1")).await.unwrap();
    let v = cloud.volumes().create(&vreq("v1", "u1")).await.unwrap();
    assert!(cloud.instance(&i.id).is_some(), "lookups see it at once");
    assert!(cloud.instances().list(&mine("u1")).await.unwrap().is_empty());
    assert!(cloud.network().list(&mine("u1")).await.unwrap().is_empty());
    assert!(cloud.volumes().list(&mine("u1")).await.unwrap().is_empty());
    cloud.advance(Duration::from_secs(5));
    assert_eq!(cloud.instances().list(&mine("u1")).await.unwrap()[0].id, i.id);
    assert_eq!(cloud.network().list(&mine("u1")).await.unwrap()[0].id, g);
    let vols: Vec<String> = cloud.volumes().list(&mine("u1")).await.unwrap().into_iter().map(|v| v.id).collect();
    assert!(vols.contains(&v.id) && vols.len() == 2, "data and root volume: {vols:?}");
}

#[tokio::test]
async fn terminate_goes_through_shutting_down_and_is_purged_later() {
    let cloud = FakeCloud::new();
    let api = cloud.instances();
    let i = api.launch(&req("t1", "u1", &[])).await.unwrap();
    api.terminate(&[i.id.clone(), "i-missing".into()]).await.unwrap();
    assert_eq!(cloud.instance(&i.id).unwrap().state, InstanceState::ShuttingDown);
    cloud.advance(Duration::from_mins(1));
    assert_eq!(api.list(&mine("u1")).await.unwrap()[0].state, InstanceState::Terminated);
    assert!(cloud.all_volumes().is_empty(), "the root volume goes with its instance");
    cloud.advance(Duration::from_hours(1));
    assert!(api.list(&mine("u1")).await.unwrap().is_empty(), "purged from listings");
}

#[tokio::test]
async fn group_in_use_by_a_live_instance_is_a_dependency_violation() {
    let cloud = FakeCloud::new();
    let net = cloud.network();
    let g = net.create("ws-a", "d", &tags("u1")).await.unwrap();
    assert_eq!(net.create("ws-a", "d", &tags("u1")).await.unwrap(), g, "an existing name returns its group");
    let i = cloud.instances().launch(&req("t1", "u1", &[&g])).await.unwrap();
    let e = net.delete(&g).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::InUse, "DependencyViolation"));
    cloud.instances().terminate(std::slice::from_ref(&i.id)).await.unwrap();
    assert_eq!(net.delete(&g).await.unwrap_err().kind, ErrorKind::InUse, "shutting-down still holds it");
    cloud.advance(Duration::from_mins(1));
    net.delete(&g).await.unwrap();
    assert!(cloud.group(&g).is_none());
    net.delete(&g).await.unwrap();
    assert!(cloud.instances().launch(&req("t2", "u1", &[&g])).await.unwrap_err().kind == ErrorKind::NotFound);
}

#[tokio::test]
async fn group_referenced_by_another_groups_rule_cannot_go() {
    let cloud = FakeCloud::new();
    let net = cloud.network();
    let a = net.create("a", "d", &tags("u1")).await.unwrap();
    let b = net.create("b", "d", &tags("u1")).await.unwrap();
    let rule = Rule { protocol: "tcp".into(), from_port: 22, to_port: 22, peer: Peer::Group(a.clone()) };
    net.change_rules(&b, std::slice::from_ref(&rule), RuleChange::AuthorizeIngress).await.unwrap();
    net.change_rules(&b, std::slice::from_ref(&rule), RuleChange::AuthorizeIngress).await.unwrap();
    assert_eq!(cloud.group(&b).unwrap().ingress, vec![rule.clone()], "a duplicate authorize is tolerated");
    assert_eq!(net.delete(&a).await.unwrap_err().code, "DependencyViolation");
    net.change_rules(&b, std::slice::from_ref(&rule), RuleChange::RevokeIngress).await.unwrap();
    net.change_rules(&b, std::slice::from_ref(&rule), RuleChange::RevokeIngress).await.unwrap();
    net.delete(&a).await.unwrap();
    let e = net.change_rules("sg-gone", &[rule], RuleChange::AuthorizeEgress).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn attached_volume_is_in_use_until_detached() {
    let cloud = FakeCloud::with_config(FakeConfig::instant());
    let vols = cloud.volumes();
    let i = cloud.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    let v = vols.create(&vreq("v1", "u1")).await.unwrap();
    assert_eq!(vols.create(&vreq("v1", "u1")).await.unwrap().id, v.id, "same token, same volume");
    let mut bigger = vreq("v1", "u1");
    bigger.size_gb = 11;
    assert_eq!(vols.create(&bigger).await.unwrap_err().code, "IdempotentParameterMismatch");
    vols.attach(&v.id, &i.id, "/dev/sdf").await.unwrap();
    assert_eq!(vols.attach(&v.id, &i.id, "/dev/sdf").await.unwrap_err().kind, ErrorKind::InUse);
    let e = vols.delete(&v.id).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::InUse, "VolumeInUse"));
    vols.detach(&v.id, &i.id).await.unwrap();
    // As EC2 (and moto) answer a detach naming an instance the volume is not attached to.
    let again = vols.detach(&v.id, &i.id).await.unwrap_err();
    assert_eq!((again.kind, again.code.as_str()), (ErrorKind::NotFound, crate::cloud::NOT_ATTACHED));
    assert_eq!(cloud.volume(&v.id).unwrap().state, "available");
    vols.delete(&v.id).await.unwrap();
    vols.delete(&v.id).await.unwrap();
    assert!(cloud.volume(&v.id).is_none());
    assert_eq!(vols.detach(&v.id, &i.id).await.unwrap_err().kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn terminated_behind_our_back_releases_volumes() {
    let cloud = FakeCloud::with_config(FakeConfig::instant());
    let i = cloud.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    let data = cloud.seed_volume(&tags("u1"), Some(&i.id));
    assert_eq!(cloud.all_volumes().len(), 2);
    assert!(cloud.set_instance_state(&i.id, InstanceState::Terminated));
    let left = cloud.all_volumes();
    assert_eq!(left.len(), 1, "root volume deleted");
    assert_eq!(
        (left[0].id.as_str(), left[0].state.as_str(), &left[0].attached_to),
        (data.id.as_str(), "available", &None)
    );
    assert!(!cloud.set_instance_state("i-nope", InstanceState::Running));
}

#[tokio::test]
async fn injected_fault_fires_count_times_then_calls_succeed() {
    let cloud = FakeCloud::new();
    cloud.inject(Fault::throttle(ops::RUN_INSTANCES).times(2));
    let api = cloud.instances();
    for _ in 0..2 {
        let e = api.launch(&req("t1", "u1", &[])).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Throttled, "RequestLimitExceeded"));
    }
    assert!(cloud.all_instances().is_empty(), "a failed call has no effect");
    api.launch(&req("t1", "u1", &[])).await.unwrap();
    assert_eq!(cloud.count(ops::RUN_INSTANCES), 3);
    assert_eq!(cloud.pending_faults(), 0);
    cloud.fail(ops::DELETE_VOLUME, "VolumeInUse", 1);
    assert_eq!(cloud.volumes().delete("vol-x").await.unwrap_err().kind, ErrorKind::InUse);
}

#[tokio::test]
async fn faults_match_only_their_owner_and_target() {
    let cloud = FakeCloud::new();
    cloud.inject(Fault::server_error(ops::RUN_INSTANCES).owner("u2").always());
    let api = cloud.instances();
    api.launch(&req("t1", "u1", &[])).await.unwrap();
    for _ in 0..3 {
        assert_eq!(api.launch(&req("t2", "u2", &[])).await.unwrap_err().kind, ErrorKind::Transient);
    }
    let a = api.launch(&req("t3", "u3", &[])).await.unwrap();
    let b = api.launch(&req("t4", "u3", &[])).await.unwrap();
    cloud.inject(Fault::code(ops::TERMINATE_INSTANCES, "InvalidParameterValue").target(&b.id));
    api.terminate(std::slice::from_ref(&a.id)).await.unwrap();
    let e = api.terminate(&[a.id.clone(), b.id.clone()]).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Rejected, "InvalidParameterValue"));
    assert_eq!(cloud.instance(&b.id).unwrap().state, InstanceState::Pending, "no effect");
}

#[tokio::test]
async fn lost_answer_launches_and_reports_transient() {
    let cloud = FakeCloud::new();
    cloud.inject(Fault::lost(ops::RUN_INSTANCES));
    let api = cloud.instances();
    let e = api.launch(&req("t1", "u1", &[])).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    let all = cloud.all_instances();
    assert_eq!(all.len(), 1, "the call took effect");
    let retry = api.launch(&req("t1", "u1", &[])).await.unwrap();
    assert_eq!(retry.id, all[0].id, "the token's retry finds it");
}

#[tokio::test]
async fn calls_are_logged_with_owner_and_counted() {
    let cloud = FakeCloud::new();
    let i = cloud.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    cloud.instances().stop(&i.id).await.unwrap_err();
    cloud.instances().list(&mine("u1")).await.unwrap();
    cloud.instances().terminate(&[]).await.unwrap();
    let calls = cloud.calls();
    assert_eq!(
        calls.iter().map(|c| c.op).collect::<Vec<_>>(),
        [ops::RUN_INSTANCES, ops::STOP_INSTANCES, ops::DESCRIBE_INSTANCES]
    );
    assert_eq!((calls[1].target.as_str(), calls[1].owner.as_deref()), (i.id.as_str(), Some("u1")));
    assert_eq!(cloud.counts().get(ops::STOP_INSTANCES), Some(&1));
    assert_eq!(cloud.count(ops::TERMINATE_INSTANCES), 0, "an empty terminate makes no call");
}

#[tokio::test]
async fn reset_clears_state_rules_and_log() {
    let cloud = FakeCloud::new();
    let old = cloud.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    cloud.seed_group("g", &tags("u1"));
    cloud
        .dns()
        .upsert(&OwnedRecord { name: "a.x".into(), record_type: "A", value: "10.0.0.1".into(), owner_mark: "m".into() })
        .await
        .unwrap();
    cloud.inject(Fault::throttle(ops::RUN_INSTANCES).always());
    cloud.advance(Duration::from_secs(10));
    cloud.reset();
    assert!(cloud.all_instances().is_empty() && cloud.all_groups().is_empty() && cloud.all_volumes().is_empty());
    assert_eq!(cloud.record("a.x", "A"), RecordSet::default());
    assert!(cloud.calls().is_empty());
    assert_eq!(cloud.now(), Duration::ZERO);
    let fresh = cloud.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    assert_ne!(fresh.id, old.id, "rules and tokens are gone; IDs never repeat");
}

#[tokio::test]
async fn stop_and_start_follow_ec2_states() {
    let cloud = FakeCloud::new();
    let api = cloud.instances();
    let i = api.launch(&req("t1", "u1", &[])).await.unwrap();
    assert_eq!(api.stop(&i.id).await.unwrap_err().code, "IncorrectInstanceState", "pending cannot stop");
    cloud.advance(Duration::from_secs(30));
    api.stop(&i.id).await.unwrap();
    assert_eq!(cloud.instance(&i.id).unwrap().state, InstanceState::Stopping);
    assert_eq!(api.start(&i.id).await.unwrap_err().kind, ErrorKind::Transient, "stopping cannot start");
    cloud.advance(Duration::from_secs(30));
    api.start(&i.id).await.unwrap();
    assert_eq!(cloud.instance(&i.id).unwrap().state, InstanceState::Pending);
    let mut spot = req("t2", "u1", &[]);
    spot.spot = true;
    let s = api.launch(&spot).await.unwrap();
    cloud.advance(Duration::from_secs(30));
    assert_eq!(api.stop(&s.id).await.unwrap_err().code, "UnsupportedOperation");
    assert_eq!(api.stop("i-nope").await.unwrap_err().kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn tags_land_on_any_resource_and_unknown_ids_fail() {
    let cloud = FakeCloud::with_config(FakeConfig::instant());
    let i = cloud.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    let g = cloud.seed_group("g", &tags("u1"));
    let extra = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    cloud.instances().tag(&[i.id.clone(), g.clone()], &extra).await.unwrap();
    assert_eq!(cloud.instance(&i.id).unwrap().tag("k"), Some("v"));
    assert_eq!(cloud.group(&g).unwrap().tags.get("k").map(String::as_str), Some("v"));
    let e = cloud.instances().tag(&["vol-gone".into()], &extra).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::NotFound, "InvalidVolume.NotFound"));
}
