//! `display status|take|release`: the control Lease `<workspace>-display`, written with
//! optimistic concurrency (a replace carries the resourceVersion it read, so of two takers one
//! gets 409 Conflict, re-reads and sees the winner).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};
use molecule_crds::v1alpha1::{DisplayMode, Workspace};
use serde::Serialize;

use crate::error::{Error, kube as kerr};
use crate::lock::{self, Hold, Refusal, Take};

/// Label the operator watches Leases by.
const LEASE_LABEL: &str = "moleculesai.app/display-lease";

/// Reads a Workspace; errors name it.
pub async fn workspace(client: &kube::Client, ns: &str, name: &str) -> Result<Workspace, Error> {
    let api: Api<Workspace> = Api::namespaced(client.clone(), ns);
    api.get(name).await.map_err(|e| kerr("get", &format!("workspace {ns}/{name}"), e))
}

/// A Workspace that has a desktop.
pub async fn display_workspace(client: &kube::Client, ns: &str, name: &str) -> Result<Workspace, Error> {
    let ws = workspace(client, ns, name).await?;
    let mode = ws.spec.compute.display.as_ref().map_or(DisplayMode::None, |d| d.mode);
    if mode.is_enabled() { Ok(ws) } else { Err(Error::NotDisplay(format!("{ns}/{name}"))) }
}

fn lease_name(ws: &str) -> String {
    format!("{ws}-display")
}

async fn read_lease(api: &Api<Lease>, ns: &str, ws: &str) -> Result<Option<Lease>, Error> {
    api.get_opt(&lease_name(ws)).await.map_err(|e| kerr("get", &format!("lease {ns}/{}", lease_name(ws)), e))
}

/// What `display status` shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// namespace/name.
    pub workspace: String,
    /// none, desktop-control, gpu-desktop-control.
    pub mode: String,
    /// unavailable .. ready.
    pub status: String,
    /// WIDTHxHEIGHT.
    pub resolution: String,
    /// novnc or dcv.
    pub protocol: String,
    /// none, agent or user (from the Lease now; the operator mirrors the same into status).
    pub controller: String,
    /// The holder without its prefix.
    pub holder: String,
    /// When the hold lapses.
    pub expires_at: Option<String>,
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// `display status`.
pub async fn status(client: &kube::Client, ns: &str, name: &str) -> Result<Status, Error> {
    let ws = display_workspace(client, ns, name).await?;
    let d = ws.status.as_ref().and_then(|s| s.display.clone());
    let spec = ws.spec.compute.display.clone().unwrap_or_default();
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    // The Lease is the truth; status.display is the operator's mirror of it (a moment behind).
    let (controller, holder, expires_at) = match read_lease(&api, ns, name).await {
        Ok(l) => match lock::hold(l.as_ref(), Timestamp::now()) {
            Some(h) => {
                let (k, who) = h.identity.split_once(':').unwrap_or_default();
                (k.to_owned(), who.to_owned(), Some(lock::show_time(h.until)))
            }
            None => ("none".to_owned(), String::new(), None),
        },
        Err(Error::Forbidden { .. }) => d.as_ref().map_or(("none".into(), String::new(), None), |d| {
            (d.controller.clone(), d.controlled_by.clone(), d.expires_at.clone())
        }),
        Err(e) => return Err(e),
    };
    Ok(Status {
        workspace: format!("{ns}/{name}"),
        mode: word(&d.as_ref().map_or(spec.mode, |d| d.mode)),
        status: d.as_ref().map_or_else(|| "unavailable".to_owned(), |d| word(&d.status)),
        resolution: d.as_ref().map_or_else(String::new, |d| format!("{}x{}", d.width, d.height)),
        protocol: word(&d.as_ref().map_or(spec.protocol, |d| d.protocol)),
        controller,
        holder,
        expires_at,
    })
}

/// The outcome of a take.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Taken {
    /// The taker.
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires_at: String,
    /// Whom it was taken from (with `--force`).
    pub previous: Option<String>,
}

fn held(object: &str, h: &Hold, hint: &str) -> Error {
    Error::Held {
        object: object.to_owned(),
        holder: h.identity.clone(),
        until: lock::show_time(h.until),
        hint: hint.to_owned(),
    }
}

/// Whom a take by `me` takes the lock from (`None`: it is free or already `me`'s), or why not.
fn taking_from(object: &str, current: Option<&Lease>, me: &str, force: bool) -> Result<Option<String>, Error> {
    match lock::decide(lock::hold(current, Timestamp::now()).as_ref(), me, force) {
        Ok(Take::Free | Take::Renew) => Ok(None),
        Ok(Take::TakeOver(h)) => Ok(Some(h.identity)),
        Err(Refusal::Held(h)) => Err(held(object, &h, " (use --force to take it over)")),
        Err(Refusal::UserHolds(h)) => Err(held(object, &h, " (an agent never takes the desktop from a user)")),
    }
}

/// The Lease's spec once `me` holds it from `now` for `secs` seconds.
fn held_spec(current: Option<&Lease>, me: &str, now: Timestamp, secs: i32) -> LeaseSpec {
    let spec = current.and_then(|l| l.spec.as_ref());
    let renewing = spec.and_then(|s| s.holder_identity.as_deref()) == Some(me);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(secs),
        acquire_time: if renewing { spec.and_then(|s| s.acquire_time.clone()) } else { Some(MicroTime(now)) },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(spec.and_then(|s| s.lease_transitions).unwrap_or(0) + i32::from(!renewing)),
        ..LeaseSpec::default()
    }
}

/// Takes (or renews) the lock as `me` for `secs` seconds. Refuses while someone else holds it,
/// unless `force` (an agent never takes it from a user). A forced take leaves an Event on the
/// Workspace naming both holders, so it is refused before writing if the user may not create one.
pub async fn take(client: &kube::Client, ws: &Workspace, me: &str, secs: i32, force: bool) -> Result<Taken, Error> {
    let ns = ws.namespace().unwrap_or_default();
    let name = ws.name_any();
    let object = format!("{ns}/{name}");
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let mut may_tell = None;
    for _ in 0..5 {
        let now = Timestamp::now();
        let current = read_lease(&api, &ns, &name).await?;
        let previous = taking_from(&object, current.as_ref(), me, force)?;
        if let Some(p) = &previous {
            if may_tell.is_none() {
                may_tell = Some(may_create_events(client, &ns).await);
            }
            if may_tell == Some(false) {
                return Err(cannot_tell(&ns, p));
            }
        }
        let spec = held_spec(current.as_ref(), me, now, secs);
        let written = match current {
            Some(mut l) => {
                l.spec = Some(spec);
                api.replace(&lease_name(&name), &PostParams::default(), &l).await
            }
            None => api.create(&PostParams::default(), &new_lease(ws, spec)).await,
        };
        match written {
            Ok(_) => {
                if let Some(p) = &previous {
                    announce(client, ws, "DisplayTakenOver", &format!("{me} took the display over from {p}")).await?;
                }
                let until = now.checked_add(jiff::SignedDuration::from_secs(i64::from(secs))).unwrap_or(now);
                return Ok(Taken { holder: me.to_owned(), expires_at: lock::show_time(until), previous });
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(kerr("update", &format!("lease {ns}/{}", lease_name(&name)), e)),
        }
    }
    Err(Error::Call {
        action: "take".into(),
        object: format!("the display lock of workspace {object}"),
        message: "it kept changing under us (5 conflicts); try again".into(),
    })
}

/// Why a forced take or release that could not tell the holder did nothing.
fn cannot_tell(ns: &str, holder: &str) -> Error {
    Error::Forbidden {
        action: "create".into(),
        object: format!("events in namespace {ns}"),
        message: format!("--force must tell {holder} through an Event; the lock was left to them"),
    }
}

/// Whether the user may create events.k8s.io Events in `ns` (a SelfSubjectAccessReview; when the
/// review itself fails, the Event's own create answers later).
async fn may_create_events(client: &kube::Client, ns: &str) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("events.k8s.io".into()),
                resource: Some("events".into()),
                verb: Some("create".into()),
                namespace: Some(ns.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review).await.map_or(true, |r| r.status.is_none_or(|s| s.allowed))
}

fn new_lease(ws: &Workspace, spec: LeaseSpec) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(&ws.name_any())),
            namespace: ws.namespace(),
            labels: Some(BTreeMap::from([(LEASE_LABEL.to_owned(), "true".to_owned())])),
            owner_references: ws.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    }
}

/// Gives the lock back (only its holder, or anyone with `force`). Returns the identity that held it.
pub async fn release(client: &kube::Client, ws: &Workspace, me: &str, force: bool) -> Result<Option<String>, Error> {
    let ns = ws.namespace().unwrap_or_default();
    let name = ws.name_any();
    let api: Api<Lease> = Api::namespaced(client.clone(), &ns);
    for _ in 0..5 {
        let Some(mut l) = read_lease(&api, &ns, &name).await? else { return Ok(None) };
        let Some(h) = lock::hold(Some(&l), Timestamp::now()) else { return Ok(None) };
        match lock::decide_release(&h, me, force) {
            Ok(()) => {}
            Err(Refusal::Held(h)) => {
                return Err(held(
                    &format!("{ns}/{name}"),
                    &h,
                    " (only its holder releases it; --force releases it anyway)",
                ));
            }
            Err(Refusal::UserHolds(h)) => {
                return Err(held(&format!("{ns}/{name}"), &h, " (an agent never takes the desktop from a user)"));
            }
        }
        if h.identity != me && !may_create_events(client, &ns).await {
            return Err(cannot_tell(&ns, &h.identity));
        }
        let transitions = l.spec.as_ref().and_then(|s| s.lease_transitions);
        l.spec = Some(LeaseSpec { lease_transitions: transitions, ..LeaseSpec::default() });
        match api.replace(&lease_name(&name), &PostParams::default(), &l).await {
            Ok(_) => {
                if h.identity != me {
                    announce(
                        client,
                        ws,
                        "DisplayReleased",
                        &format!("{me} released the display held by {}", h.identity),
                    )
                    .await?;
                }
                return Ok(Some(h.identity));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(kerr("update", &format!("lease {ns}/{}", lease_name(&name)), e)),
        }
    }
    Err(Error::Call {
        action: "release".into(),
        object: format!("the display lock of workspace {ns}/{name}"),
        message: "it kept changing under us (5 conflicts); try again".into(),
    })
}

/// An Event on the Workspace (events.k8s.io/v1), so the previous holder and `kubectl describe` see it.
async fn announce(client: &kube::Client, ws: &Workspace, reason: &str, note: &str) -> Result<(), Error> {
    let reporter = Reporter { controller: "kubectl-molecule".into(), instance: None };
    let ev = Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note.into()),
        action: "DisplayLock".into(),
        secondary: None,
    };
    Recorder::new(client.clone(), reporter).publish(&ev, &ws.object_ref(&())).await.map_err(|e| {
        kerr("create", &format!("event on workspace {}/{}", ws.namespace().unwrap_or_default(), ws.name_any()), e)
    })
}
