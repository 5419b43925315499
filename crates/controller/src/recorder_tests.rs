#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::Value;

use super::{Note, PRUNE_EVERY, Recorder, SERIES_WINDOW};
use crate::testing::ApiStub;

fn obj(kind: &str, ns: Option<&str>, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("moleculesai.app/v1alpha1".into()),
        kind: Some(kind.into()),
        namespace: ns.map(Into::into),
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        ..ObjectReference::default()
    }
}

fn note<'a>(regarding: &'a ObjectReference, reason: &'a str, text: &str) -> Note<'a> {
    Note { warning: false, action: "Reconcile", reason, note: text.into(), regarding, related: None }
}

fn after(t: jiff::Timestamp, d: std::time::Duration) -> jiff::Timestamp {
    t + jiff::SignedDuration::try_from(d).unwrap()
}

fn writes(stub: &ApiStub) -> Vec<String> {
    stub.events().into_iter().map(|(w, _)| w).collect()
}

#[tokio::test]
async fn a_repeat_joins_the_series_of_the_first_event() {
    let stub = ApiStub::start().await;
    let r = Recorder::new(stub.client(), "molecule-test");
    let ws = obj("Workspace", Some("team"), "desk");
    let t0 = jiff::Timestamp::now();
    r.publish_at(&note(&ws, "Launched", "launched i-1"), t0).await.unwrap();
    r.publish_at(&note(&ws, "Launched", "launched i-1"), after(t0, PRUNE_EVERY)).await.unwrap();
    r.publish_at(&note(&ws, "Launched", "launched i-1"), after(t0, 2 * PRUNE_EVERY)).await.unwrap();

    let ev = stub.events();
    assert_eq!(ev.len(), 3, "{ev:?}");
    let (created, first) = &ev[0];
    assert!(created.starts_with("POST /apis/events.k8s.io/v1/namespaces/team/events"), "{created}");
    assert_eq!(first["reason"], "Launched");
    assert_eq!(first["type"], "Normal");
    assert_eq!(first["note"], "launched i-1");
    assert_eq!(first["regarding"]["name"], "desk");
    assert_eq!(first["reportingController"], "molecule-test");
    let name = first["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("desk."), "{name}");
    for (i, (w, body)) in ev[1..].iter().enumerate() {
        assert_eq!(w, &format!("PATCH /apis/events.k8s.io/v1/namespaces/team/events/{name}"));
        assert_eq!(body["series"]["count"], Value::from(i + 2), "{body}");
        assert!(body["series"]["lastObservedTime"].is_string(), "{body}");
    }
    assert_eq!(r.remembered(), 1);
}

#[tokio::test]
async fn other_reasons_objects_and_related_resources_are_events_of_their_own() {
    let stub = ApiStub::start().await;
    let r = Recorder::new(stub.client(), "molecule-test");
    let (a, b, tenant) =
        (obj("Workspace", Some("team"), "a"), obj("Workspace", Some("team"), "b"), obj("Tenant", None, "acme"));
    let (i1, i2) = (obj("Instance", None, "i-1"), obj("Instance", None, "i-2"));
    r.publish(&note(&a, "Launched", "x")).await.unwrap();
    r.publish(&note(&a, "Deleted", "x")).await.unwrap();
    r.publish(&note(&a, "Launched", "another message")).await.unwrap();
    r.publish(&note(&b, "Launched", "x")).await.unwrap();
    r.publish(&Note { warning: true, ..note(&a, "Launched", "x") }).await.unwrap();
    r.publish(&Note { related: Some(&i1), ..note(&a, "Terminated", "x") }).await.unwrap();
    r.publish(&Note { related: Some(&i2), ..note(&a, "Terminated", "x") }).await.unwrap();
    r.publish(&note(&tenant, "Ready", "x")).await.unwrap();

    let w = writes(&stub);
    assert_eq!(w.iter().filter(|w| w.starts_with("POST")).count(), 8, "{w:?}");
    assert!(
        w.last().unwrap().starts_with("POST /apis/events.k8s.io/v1/namespaces/default/events"),
        "a cluster-scoped object's Events go to default: {w:?}"
    );
    assert_eq!(stub.events()[2].1["note"], "another message");
    assert_eq!(stub.events()[4].1["type"], "Warning");
    assert_eq!(stub.events()[5].1["related"]["name"], "i-1");
}

#[tokio::test]
async fn a_series_ends_after_its_window_and_is_forgotten() {
    let stub = ApiStub::start().await;
    let r = Recorder::new(stub.client(), "molecule-test");
    let (a, b) = (obj("Workspace", Some("team"), "a"), obj("Workspace", Some("team"), "b"));
    let t0 = jiff::Timestamp::now();
    r.publish_at(&note(&a, "Launched", "x"), t0).await.unwrap();
    r.publish_at(&note(&b, "Launched", "x"), t0).await.unwrap();
    assert_eq!(r.remembered(), 2);
    // Past the window: a new Event, and the expired series of `b` is dropped.
    r.publish_at(&note(&a, "Launched", "x"), after(t0, SERIES_WINDOW)).await.unwrap();
    assert_eq!(writes(&stub).iter().filter(|w| w.starts_with("POST")).count(), 3, "{:?}", writes(&stub));
    assert_eq!(r.remembered(), 1, "only a's new series is kept");
}

#[tokio::test]
async fn a_series_whose_event_is_gone_starts_again() {
    let stub = ApiStub::start().await;
    let r = Recorder::new(stub.client(), "molecule-test");
    let a = obj("Workspace", Some("team"), "a");
    r.publish(&note(&a, "Launched", "x")).await.unwrap();
    stub.expire_events();
    r.publish(&note(&a, "Launched", "x")).await.unwrap();
    r.publish(&note(&a, "Launched", "x")).await.unwrap();
    let w = writes(&stub);
    assert_eq!(w.len(), 2, "the 404 patch is not kept, a new Event is created, the next repeat joins it: {w:?}");
    assert!(w[0].starts_with("POST") && w[1].starts_with("PATCH"), "{w:?}");
    assert_eq!(stub.events()[1].1["series"]["count"], 2);
}

#[tokio::test]
async fn a_refused_event_is_an_error_and_not_remembered() {
    let stub = ApiStub::start().await;
    let r = Recorder::new(stub.client(), "molecule-test");
    drop(stub);
    let a = obj("Workspace", Some("team"), "a");
    assert!(r.publish(&note(&a, "Launched", "x")).await.is_err());
    assert_eq!(r.remembered(), 0);
}
