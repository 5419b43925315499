//! The display control Lease: kept beside the Workspace, never held by the operator, mirrored
//! into `status.display`.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use molecule_crds::v1alpha1::Workspace;

use crate::context::Context;
use crate::reconcile::{Error, kube_err};

/// Label on every display Lease (the operator watches only these).
pub const LEASE_LABEL: &str = "moleculesai.app/display-lease";

/// Name of a Workspace's Lease.
pub fn lease_name(ws: &str) -> String {
    format!("{ws}-display")
}

/// Who holds the desktop, as mirrored into status.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Holder {
    /// none, agent or user.
    pub controller: String,
    /// Identity without its prefix.
    pub controlled_by: String,
    /// When the hold lapses (RFC 3339).
    pub expires_at: Option<String>,
    /// Seconds until it lapses, to requeue then.
    pub lapses_in: Option<u64>,
}

/// Reads the holder from a Lease at `now`. An expired or unparsable hold reads as none. Pure.
pub fn holder(lease: Option<&Lease>, now: Timestamp) -> Holder {
    let none = Holder { controller: "none".into(), ..Holder::default() };
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else { return none };
    let Some(id) = spec.holder_identity.as_deref().filter(|s| !s.is_empty()) else { return none };
    let Some((kind, who)) = id.split_once(':').filter(|(k, _)| *k == "agent" || *k == "user") else { return none };
    let Some(since) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0) else { return none };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let Ok(until) = since.checked_add(SignedDuration::from_secs(secs)) else { return none };
    if until <= now {
        return none;
    }
    let lapses = u64::try_from(until.duration_since(now).as_secs()).unwrap_or(0);
    Holder {
        controller: kind.to_owned(),
        controlled_by: who.to_owned(),
        expires_at: Some(until.to_string()),
        lapses_in: Some(lapses.max(1)),
    }
}

/// Creates the Lease if it is missing (owned by the Workspace, no holder) and returns the holder.
/// Reads come from the controller's Lease watch (`leases`), so a reconcile costs no API call once
/// the Lease exists; a change of holder triggers the reconcile through that watch.
pub async fn ensure(ctx: &Context, leases: &Store<Lease>, ws: &Workspace) -> Result<Holder, Error> {
    let ns = ws.namespace().unwrap_or_default();
    let name = lease_name(&ws.name_any());
    let lease = if let Some(l) = cached(leases, ws) {
        l.as_ref().clone()
    } else {
        let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &ns);
        let l = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns),
                labels: Some(BTreeMap::from([(LEASE_LABEL.to_owned(), "true".to_owned())])),
                owner_references: ws.controller_owner_ref(&()).map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec::default()),
        };
        match api.create(&PostParams::default(), &l).await {
            Ok(created) => created,
            Err(kube::Error::Api(s)) if s.is_already_exists() => l,
            Err(e) => return Err(kube_err("create the display lease")(e)),
        }
    };
    Ok(holder(Some(&lease), Timestamp::now()))
}

/// `ws`'s Lease as the Lease watch holds it.
fn cached(leases: &Store<Lease>, ws: &Workspace) -> Option<std::sync::Arc<Lease>> {
    leases.get(&ObjectRef::new(&lease_name(&ws.name_any())).within(&ws.namespace().unwrap_or_default()))
}

/// Deletes the Lease (the test world has no garbage collector; a cluster's would do it too).
/// Only when there may be one: `ws` asks for a display, or the Lease watch holds its Lease (the
/// kubectl plugin can make it). For a Workspace with neither no call is made (it was one DELETE
/// per Workspace delete, nearly always a 404).
pub async fn remove(ctx: &Context, leases: &Store<Lease>, ws: &Workspace) -> Result<(), Error> {
    if ws.spec.compute.display.is_none() && cached(leases, ws).is_none() {
        return Ok(());
    }
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &ws.namespace().unwrap_or_default());
    match api.delete(&lease_name(&ws.name_any()), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(kube_err("delete the display lease")(e)),
    }
}

/// The desktop status and its Lease holder; shortens `requeue` to when the hold lapses.
pub(super) async fn desktop(
    ctx: &Context,
    leases: &Store<Lease>,
    ws: &Workspace,
    view: &super::status::View<'_>,
    requeue: &mut std::time::Duration,
) -> Result<Option<molecule_crds::v1alpha1::DisplayStatus>, Error> {
    if !view.display_mode.is_enabled() {
        return Ok(None);
    }
    let holder = ensure(ctx, leases, ws).await?;
    if let Some(s) = holder.lapses_in {
        *requeue = (*requeue).min(std::time::Duration::from_secs(s));
    }
    let d = ws.spec.compute.display.clone().unwrap_or_default();
    Ok(Some(molecule_crds::v1alpha1::DisplayStatus {
        mode: view.display_mode,
        status: super::status::display_status(view),
        width: d.width,
        height: d.height,
        protocol: d.protocol,
        controller: holder.controller,
        controlled_by: holder.controlled_by,
        expires_at: holder.expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;

    fn lease(holder: &str, renewed: Timestamp, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(secs),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn holders_and_expiry() {
        let now: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let h = holder(Some(&lease("user:alice", now, 60)), now);
        assert_eq!((h.controller.as_str(), h.controlled_by.as_str()), ("user", "alice"));
        assert_eq!(h.expires_at.as_deref(), Some("2026-11-23T10:01:00Z"));
        assert_eq!(h.lapses_in, Some(60));
        let h = holder(Some(&lease("agent:a-7", now, 30)), now);
        assert_eq!(h.controller, "agent");
        let later: Timestamp = "2026-11-23T10:02:00Z".parse().unwrap();
        assert_eq!(holder(Some(&lease("user:alice", now, 60)), later).controller, "none", "expired reads as none");
        assert_eq!(holder(Some(&lease("robot:x", now, 60)), now).controller, "none");
        assert_eq!(holder(None, now).controller, "none");
    }

    fn ws(display: bool) -> Workspace {
        let mut compute = serde_json::json!({});
        if display {
            compute["display"] = serde_json::json!({"mode": "desktop-control"});
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "w", "namespace": "team", "uid": "u"},
            "spec": {"tenant": "acme", "runtime": "codex", "compute": compute},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn remove_calls_only_when_there_may_be_a_lease() {
        let fake = crate::testing::cloud();
        let (ctx, api) = crate::testing::context(&fake).await;
        let deletes = || {
            api.requests().into_iter().filter(|q| q.starts_with("DELETE") && q.contains("/leases/w-display")).count()
        };
        let (empty, _) = kube::runtime::reflector::store::<Lease>();
        remove(&ctx, &empty, &ws(false)).await.unwrap();
        assert_eq!(deletes(), 0, "no display, no Lease in the watch: no call");
        remove(&ctx, &empty, &ws(true)).await.unwrap();
        assert_eq!(deletes(), 1, "a display Workspace: its Lease may not be in the watch yet");
        let (held, mut writer) = kube::runtime::reflector::store::<Lease>();
        let mut l = lease("user:alice", Timestamp::now(), 60);
        l.metadata =
            ObjectMeta { name: Some("w-display".into()), namespace: Some("team".into()), ..ObjectMeta::default() };
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(l));
        remove(&ctx, &held, &ws(false)).await.unwrap();
        assert_eq!(deletes(), 2, "a Lease the plugin made for a Workspace without a display");
    }
}
