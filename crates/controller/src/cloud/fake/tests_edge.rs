//! Route 53, Cloudflare, Secrets Manager and Run Command in the fake.

use std::collections::BTreeMap;
use std::time::Duration;

use super::tests::{req, tags};
use super::*;
use crate::cloud::commands::CommandState;
use crate::cloud::{InstanceState, OwnedRecord};

fn record(name: &str, ip: &str, mark: &str) -> OwnedRecord {
    OwnedRecord { name: name.into(), record_type: "A", value: ip.into(), owner_mark: mark.into() }
}

#[tokio::test]
async fn dns_upsert_and_delete_move_record_and_mark_together() {
    let cloud = FakeCloud::new();
    let dns = cloud.dns();
    dns.upsert(&record("w1.ws.internal", "10.0.0.1", "owner=a")).await.unwrap();
    dns.upsert(&record("w1.ws.internal.", "10.0.0.2", "owner=b")).await.unwrap();
    let set = dns.get("w1.ws.internal", "A").await.unwrap();
    assert_eq!((set.values, set.txt, set.ttl), (vec!["10.0.0.2".to_owned()], vec!["owner=b".to_owned()], Some(60)));
    let under = dns.txt_under("ws.internal").await.unwrap();
    assert_eq!(under, vec![("w1.ws.internal".to_owned(), vec!["owner=b".to_owned()])]);

    // A delete naming what is no longer there fails as a whole: nothing is removed.
    let mut stale = dns.get("w1.ws.internal", "A").await.unwrap();
    stale.txt = vec!["owner=a".into()];
    let e = dns.delete("w1.ws.internal", "A", &stale).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Rejected, "InvalidChangeBatch"));
    assert_eq!(cloud.record("w1.ws.internal", "A").values, ["10.0.0.2"]);

    let current = dns.get("w1.ws.internal", "A").await.unwrap();
    dns.delete("w1.ws.internal", "A", &current).await.unwrap();
    assert_eq!(cloud.record("w1.ws.internal", "A"), crate::cloud::RecordSet::default());
    let calls = cloud.count(ops::CHANGE_RECORDS);
    dns.delete("w1.ws.internal", "A", &crate::cloud::RecordSet::default()).await.unwrap();
    assert_eq!(cloud.count(ops::CHANGE_RECORDS), calls, "nothing to delete makes no call");
}

#[tokio::test]
async fn tunnels_are_found_by_name_and_delete_is_idempotent() {
    let cloud = FakeCloud::new();
    let cf = cloud.tunnels();
    assert_eq!(cf.find("t-acme").await.unwrap(), None);
    let t = cf.create("t-acme").await.unwrap();
    assert_eq!(cf.find("t-acme").await.unwrap(), Some(t.clone()));
    assert_eq!(cf.create("t-acme").await.unwrap_err().kind, ErrorKind::Rejected, "names are unique");
    assert!(cf.token(&t.id).await.unwrap().contains(&t.id));
    cf.configure(&t.id, "acme.example", "http://localhost:8080").await.unwrap();
    assert_eq!(cloud.all_tunnels()[0].1, Some(("acme.example".to_owned(), "http://localhost:8080".to_owned())));
    cf.delete(&t.id).await.unwrap();
    cf.delete(&t.id).await.unwrap();
    assert_eq!(cf.token(&t.id).await.unwrap_err().kind, ErrorKind::NotFound);
    assert!(cf.list_all().await.unwrap().is_empty());
    cf.create("t-acme").await.unwrap();
}

#[tokio::test]
async fn cloudflare_records_refuse_a_second_cname_or_an_identical_record() {
    let cloud = FakeCloud::new();
    let cf = cloud.tunnels();
    let r = cf.create_record("CNAME", "acme.example", "x.cfargotunnel.com").await.unwrap();
    let e = cf.create_record("CNAME", "acme.example", "y.cfargotunnel.com").await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Rejected, "400/81053"));
    cf.create_record("TXT", "acme.example", "owner=a").await.unwrap();
    assert_eq!(cf.create_record("TXT", "acme.example", "owner=a").await.unwrap_err().code, "400/81058");
    assert_eq!(cf.records("CNAME", "acme.example").await.unwrap(), vec![r.clone()]);
    assert_eq!(cf.all_records("TXT").await.unwrap().len(), 1);
    cf.delete_record(&r.id).await.unwrap();
    cf.delete_record(&r.id).await.unwrap();
    assert!(cf.records("CNAME", "acme.example").await.unwrap().is_empty());
}

#[tokio::test]
async fn secrets_exist_until_deleted_and_names_are_unique() {
    let cloud = FakeCloud::new();
    let sm = cloud.secrets();
    let s = sm.create("tenant/acme", "v1", &tags("u1")).await.unwrap();
    let e = sm.create("tenant/acme", "v2", &tags("u1")).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Rejected, "ResourceExistsException"));
    sm.put(&s.arn, "v3").await.unwrap();
    assert_eq!(cloud.secret_value(&s.arn).as_deref(), Some("v3"));
    let listed = sm.list(&BTreeMap::from([(crate::cloud::tags::OWNER_UID.to_owned(), "u1".to_owned())])).await.unwrap();
    assert_eq!(listed, vec![s.clone()]);
    assert!(sm.exists(&s.arn).await.unwrap());
    sm.delete(&s.arn).await.unwrap();
    sm.delete(&s.arn).await.unwrap();
    assert!(!sm.exists(&s.arn).await.unwrap());
    assert_eq!(sm.put(&s.arn, "v4").await.unwrap_err().kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn commands_run_on_running_instances_and_finish_after_their_time() {
    let cloud = FakeCloud::new();
    let i = cloud.instances().launch(&req("t1", "u1", &[])).await.unwrap();
    let ssm = cloud.commands();
    assert_eq!(ssm.send(&i.id, "redeploy", &["true".into()]).await.unwrap_err().code, "InvalidInstanceId");
    cloud.advance(Duration::from_secs(30));
    let id = ssm.send(&i.id, "redeploy", &["true".into()]).await.unwrap();
    assert_eq!(ssm.state(&id, &i.id).await.unwrap(), CommandState::Running);
    cloud.advance(Duration::from_secs(20));
    assert_eq!(ssm.state(&id, &i.id).await.unwrap(), CommandState::Succeeded);
    cloud.set_command_outcome(&i.id, CommandState::Failed("exit 1".into()));
    let bad = ssm.send(&i.id, "redeploy", &["false".into()]).await.unwrap();
    cloud.advance(Duration::from_secs(20));
    assert_eq!(ssm.state(&bad, &i.id).await.unwrap(), CommandState::Failed("exit 1".into()));
    assert_eq!(cloud.sent_commands().len(), 2);
    assert_eq!(cloud.calls().last().unwrap().owner.as_deref(), Some("u1"));
    cloud.set_instance_state(&i.id, InstanceState::Stopped);
    assert!(ssm.send(&i.id, "redeploy", &[]).await.is_err());
}
