//! Bounded memory: the per-object maps of the [`Context`] drop the entries of objects that are
//! gone, so a long-running operator with churning Workspaces and Tenants does not grow without
//! end. Pruned after each orphan scan (which lists every Workspace and Tenant that exists), and,
//! for the Tenant watch's hashes, on the watch's own delete events and relists.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::watcher::Event;
use molecule_crds::v1alpha1::{Tenant, Workspace};

use crate::context::Context;

/// What the per-object maps may keep.
#[derive(Debug, Default)]
pub struct Keep {
    /// Uids of every Workspace and Tenant that exists, selected or not (launch guards and bundle
    /// digests: an object moved out of the shard and back keeps its guard).
    pub uids: HashSet<String>,
    /// Backoff keys of the selected objects (`namespace/name`, `tenant/name`).
    pub keys: HashSet<String>,
    /// Tunnel IDs named in the selected Tenants' status.
    pub tunnels: HashSet<String>,
}

impl Keep {
    /// From the uids of every existing object and the watch stores' contents.
    pub fn new(
        existing: impl IntoIterator<Item = String>,
        workspaces: &[Arc<Workspace>],
        tenants: &[Arc<Tenant>],
    ) -> Self {
        let mut keys: HashSet<String> =
            workspaces.iter().map(|w| format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any())).collect();
        keys.extend(tenants.iter().map(|t| format!("tenant/{}", t.name_any())));
        let tunnels = tenants.iter().filter_map(|t| t.status.as_ref()?.tunnel_id.clone()).collect();
        // The stores too: an object created after the list was read is in them, not in the list.
        let mut uids: HashSet<String> = existing.into_iter().collect();
        uids.extend(workspaces.iter().filter_map(|w| w.uid()));
        uids.extend(tenants.iter().filter_map(|t| t.uid()));
        Self { uids, keys, tunnels }
    }
}

/// Keeps the entries of `map` whose key passes `keep`; returns how many were dropped.
pub fn retain<V, S: std::hash::BuildHasher>(map: &Mutex<HashMap<String, V, S>>, keep: impl Fn(&str) -> bool) -> usize {
    map.lock().map_or(0, |mut m| {
        let before = m.len();
        m.retain(|k, _| keep(k));
        before - m.len()
    })
}

/// Per-object memory of a reconciler, pruned of the objects that are gone.
pub trait Prune: Send + Sync + std::fmt::Debug {
    /// Drops the entries `keep` does not name; returns how many were dropped.
    fn prune(&self, keep: &Keep) -> usize;
}

/// Drops the entries of gone objects from the Context's maps (each account's launch guard, the
/// backoff) and from every reconciler's `memory`; returns how many were dropped.
pub fn prune(ctx: &Context, memory: &[Arc<dyn Prune>], keep: &Keep) -> usize {
    let guards: usize = ctx.accounts().iter().map(|a| a.guard.retain(|k| keep.uids.contains(k))).sum();
    guards + memory.iter().map(|m| m.prune(keep)).sum::<usize>() + ctx.backoff.retain(|k| keep.keys.contains(k))
}

/// Which Tenant watch events wake the Tenant's Workspaces: a change of what they read of it
/// (`workspace_facing_hash`) or its deletion (a delete event also comes when it leaves the
/// selector). The hash of a deleted Tenant is forgotten, and a relist forgets every Tenant it did
/// not list (deleted while the watch was down).
#[derive(Debug, Default)]
pub struct TenantWakes {
    seen: HashMap<String, u64>,
    relist: Option<HashSet<String>>,
}

impl TenantWakes {
    /// The name of the Tenant whose Workspaces to wake, if any.
    pub fn on_event(&mut self, ev: &Event<Tenant>) -> Option<String> {
        match ev {
            Event::Apply(t) | Event::InitApply(t) => {
                let uid = t.uid().unwrap_or_default();
                if let (Event::InitApply(_), Some(r)) = (ev, self.relist.as_mut()) {
                    r.insert(uid.clone());
                }
                let h = crate::reconcile::workspace::wakes::workspace_facing_hash(t);
                (self.seen.insert(uid, h) != Some(h)).then(|| t.name_any())
            }
            Event::Delete(t) => {
                self.seen.remove(&t.uid().unwrap_or_default());
                Some(t.name_any())
            }
            Event::Init => {
                self.relist = Some(HashSet::new());
                None
            }
            Event::InitDone => {
                if let Some(listed) = self.relist.take() {
                    self.seen.retain(|uid, _| listed.contains(uid));
                }
                None
            }
        }
    }

    /// Tenants remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// The annotation `kubectl apply` (client side) keeps its copy of the applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the watch caches keep of an object: all of it but the API server's field-ownership
/// record (`metadata.managedFields`) and `kubectl apply`'s copy of the last applied object.
/// Nothing in the operator reads either, and at 10,000 Workspaces they were more than half of
/// each cached Workspace (docs/benchmarks.md, the fake cloud at 10,000).
pub fn slim<K: kube::Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

#[cfg(test)]
mod tests {
    use molecule_crds::v1alpha1::{TenantSpec, TenantStatus};

    use super::*;

    fn tenant(name: &str, uid: &str, tunnel: Option<&str>) -> Tenant {
        let mut t = Tenant::new(name, serde_json::from_value::<TenantSpec>(serde_json::json!({})).unwrap());
        t.metadata.uid = Some(uid.into());
        t.status = Some(TenantStatus { tunnel_id: tunnel.map(str::to_owned), ..TenantStatus::default() });
        t
    }

    #[test]
    fn a_cached_object_keeps_all_but_the_field_owners_and_the_last_applied_copy() {
        let mut t = tenant("acme", "u-acme", Some("tun-1"));
        t.metadata.managed_fields =
            Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry::default()]);
        t.metadata.annotations = Some(
            [(LAST_APPLIED, "{...}"), ("moleculesai.app/paused", "true")].map(|(k, v)| (k.into(), v.into())).into(),
        );
        let kept = t.clone();
        slim(&mut t);
        assert_eq!(t.metadata.managed_fields, None);
        let annotations = t.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["moleculesai.app/paused"], "other annotations stay");
        assert_eq!((t.spec, t.status, t.metadata.uid), (kept.spec, kept.status, kept.metadata.uid));
    }

    #[test]
    fn maps_keep_only_what_exists() {
        let t = Arc::new(tenant("acme", "u-acme", Some("tun-1")));
        let keep = Keep::new(["u-ws".to_owned()], &[], &[t]);
        let m: Mutex<HashMap<String, u8>> =
            Mutex::new([("u-acme", 1), ("u-ws", 1), ("u-gone", 1)].map(|(k, v)| (k.to_owned(), v)).into());
        assert_eq!(retain(&m, |k| keep.uids.contains(k)), 1);
        assert!(m.lock().is_ok_and(|m| m.len() == 2 && !m.contains_key("u-gone")));
        assert!(keep.tunnels.contains("tun-1") && keep.keys.contains("tenant/acme"), "{keep:?}");
        assert!(keep.uids.contains("u-acme"), "a uid from the store counts");
    }

    #[test]
    fn a_deleted_tenant_is_forgotten_and_wakes_its_workspaces() {
        let mut w = TenantWakes::default();
        let a = tenant("a", "u-a", None);
        assert_eq!(w.on_event(&Event::Apply(a.clone())), Some("a".into()));
        assert_eq!(w.on_event(&Event::Apply(a.clone())), None, "unchanged: no wake");
        assert_eq!(w.len(), 1);
        assert_eq!(w.on_event(&Event::Delete(a)), Some("a".into()));
        assert!(w.is_empty());
    }

    #[test]
    fn a_relist_forgets_tenants_deleted_while_the_watch_was_down() {
        let mut w = TenantWakes::default();
        let (a, b) = (tenant("a", "u-a", None), tenant("b", "u-b", None));
        w.on_event(&Event::Apply(a.clone()));
        w.on_event(&Event::Apply(b));
        w.on_event(&Event::Init);
        assert_eq!(w.on_event(&Event::InitApply(a)), None, "unchanged across the relist");
        w.on_event(&Event::InitDone);
        assert_eq!(w.len(), 1);
    }
}
