//! Admission: tenant binding, the resolution rules and the Tenant's quotas, decided before any
//! cloud call.
//!
//! Serialisation: every decision for a tenant takes that tenant's ledger lock, reads the usage of
//! the Workspaces already admitted (this ledger first, then, for Workspaces the ledger has not
//! seen yet, the watch cache: `Admitted=True` or launched, deleting ones included until their
//! cleanup releases them), decides, and records the decision in
//! the ledger before the lock is released. Two Workspaces applied at the same moment are therefore
//! decided one after the other, the second seeing the first. One active replica decides
//! (leader election), so the ledger in its memory is the only one; after a restart it is rebuilt
//! from the persisted statuses.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use molecule_crds::conditions;
use molecule_crds::quota::{self, EffectiveQuotas};
use molecule_crds::reasons::{Reason, Rejection};
use molecule_crds::resolve::{Resolved, resolve};
use molecule_crds::v1alpha1::{Tenant, TenantUsage, Workspace};

use crate::context::Context;

/// What a Workspace was admitted with, and under which quotas.
#[derive(Debug)]
struct Entry {
    usage: TenantUsage,
    quotas: EffectiveQuotas,
}

/// Per-tenant ledgers: tenant -> Workspace uid -> what it was admitted with.
#[derive(Debug, Default)]
pub struct Admission(Mutex<HashMap<String, HashMap<String, Entry>>>);

/// Sum of the usages of `ledger`.
fn total<'a>(usages: impl Iterator<Item = &'a TenantUsage>) -> TenantUsage {
    usages.fold(TenantUsage::default(), |acc, u| quota::add(acc, *u))
}

impl Admission {
    /// Decides whether `ws` is admitted against `tenant`; records the decision.
    ///
    /// `others` gives the other Workspaces of the tenant from the watch cache. It is called only
    /// when the decision needs them: a Workspace the ledger admitted with the same usage under
    /// the same quotas is admitted again without summing the tenant (every Workspace admitted
    /// since counted it), so a converged Workspace's reconcile does not cost O(Workspaces of
    /// the tenant) (docs/benchmarks.md, the fake cloud at 10,000).
    pub fn decide(
        &self,
        tenant: &Tenant,
        ws: &Workspace,
        resolved: &Resolved,
        others: impl FnOnce() -> Vec<Arc<Workspace>>,
    ) -> Result<(), Rejection> {
        let uid = ws.uid().unwrap_or_default();
        let Ok(mut all) = self.0.lock() else {
            return Err(Rejection::new(Reason::QuotaExceeded, "spec.tenant", "admission ledger unavailable; retrying"));
        };
        let ledger = all.entry(tenant.name_any()).or_default();
        let (usage, quotas) =
            (quota::usage_of(resolved), EffectiveQuotas::new(tenant.spec.tier, tenant.spec.quotas.as_ref()));
        if ledger.get(&uid).is_some_and(|e| e.usage == usage && e.quotas == quotas) {
            return Ok(());
        }
        let others = others();
        // Only `others` count, so an entry of a Workspace that is gone counts for nothing; it is
        // dropped when the ledger holds more than the live Workspaces it was found for.
        let mut usages: Vec<TenantUsage> = Vec::with_capacity(others.len());
        let mut found = usize::from(ledger.contains_key(&uid));
        for o in &others {
            if let Some(e) = o.metadata.uid.as_deref().and_then(|ou| ledger.get(ou)) {
                found += 1;
                usages.push(e.usage);
            } else if let Some(st) = &o.status
                && (conditions::is_true(&st.conditions, "Admitted") || st.launch.is_some())
                && let Some(r) = &st.resolved
            {
                usages.push(quota::usage_of_compute(r));
            }
        }
        if ledger.len() > found {
            let live: HashSet<&str> = others.iter().filter_map(|o| o.metadata.uid.as_deref()).collect();
            ledger.retain(|u, _| *u == uid || live.contains(u.as_str()));
        }
        let launched = ws.status.as_ref().is_some_and(|s| s.launch.is_some());
        match quota::check(&quotas, total(usages.iter()), resolved) {
            Ok(()) => {
                ledger.insert(uid, Entry { usage, quotas });
                Ok(())
            }
            Err(r) => {
                // A launched Workspace keeps counting with what it runs until it is gone.
                if !launched {
                    ledger.remove(&uid);
                }
                Err(r)
            }
        }
    }

    /// Forgets a Workspace (deleted).
    pub fn release(&self, tenant: &str, uid: &str) {
        if let Ok(mut all) = self.0.lock()
            && let Some(l) = all.get_mut(tenant)
        {
            l.remove(uid);
        }
    }
}

/// Tenant binding and resolution (quota aside): the checks that need no ledger.
pub fn bind_and_resolve(ctx: &Context, ws: &Workspace) -> Result<(std::sync::Arc<Tenant>, Resolved), Rejection> {
    let slug = &ws.spec.tenant;
    let ns = ws.namespace().unwrap_or_default();
    let Some(tenant) = ctx.tenants.get(&kube::runtime::reflector::ObjectRef::new(slug)) else {
        return Err(Rejection::new(Reason::TenantNotFound, "spec.tenant", format!("Tenant {slug} does not exist")));
    };
    if tenant.metadata.deletion_timestamp.is_some() {
        return Err(Rejection::new(Reason::TenantErasing, "spec.tenant", format!("Tenant {slug} is being erased")));
    }
    if !tenant.spec.allowed_namespaces(slug).contains(ns.as_str()) {
        return Err(Rejection::new(
            Reason::NamespaceNotAllowed,
            "metadata.namespace",
            format!("namespace {ns} is not in spec.namespaces of Tenant {slug}"),
        ));
    }
    let resolved = resolve(&ws.spec, &ctx.catalog, &ctx.images)?;
    Ok((tenant, resolved))
}

#[cfg(test)]
mod tests {
    use molecule_crds::catalog::Catalog;
    use molecule_crds::images::ImageCatalog;

    use super::*;

    fn tenant(max_workspaces: u32) -> Tenant {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
            "spec": {"tier": 2, "quotas": {"maxWorkspaces": max_workspaces}}
        }))
        .unwrap()
    }

    fn workspace(name: &str) -> Arc<Workspace> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace",
                "metadata": {"name": name, "namespace": "acme", "uid": format!("uid-{name}")},
                "spec": {"tenant": "acme", "runtime": "codex"}
            }))
            .unwrap(),
        )
    }

    fn resolved(ws: &Workspace) -> Resolved {
        let images = ImageCatalog::from_yaml("images: []\n", Some("ami-0def")).unwrap();
        resolve(&ws.spec, &Catalog::builtin(), &images).unwrap()
    }

    #[test]
    fn the_ledger_counts_the_live_workspaces_and_forgets_the_gone() {
        let (adm, t) = (Admission::default(), tenant(2));
        let [a, b, c] = ["a", "b", "c"].map(workspace);
        assert!(adm.decide(&t, &a, &resolved(&a), Vec::new).is_ok());
        assert!(adm.decide(&t, &b, &resolved(&b), || vec![a.clone()]).is_ok(), "two fit");
        // The ledger remembers a and b (their statuses say nothing yet): the third does not fit.
        let refused = adm.decide(&t, &c, &resolved(&c), || vec![a.clone(), b.clone()]).unwrap_err();
        assert_eq!(refused.reason, Reason::QuotaExceeded, "{refused:?}");
        // b is gone from the watch cache: its entry no longer counts, and c fits.
        assert!(adm.decide(&t, &c, &resolved(&c), || vec![a.clone()]).is_ok());
        // b comes back (another uid would be another Workspace; this is a relist): refused.
        let again = adm.decide(&t, &b, &resolved(&b), || vec![a.clone(), c.clone()]).unwrap_err();
        assert_eq!(again.reason, Reason::QuotaExceeded);
    }

    #[test]
    fn an_admitted_workspace_is_admitted_again_without_the_others_until_the_quotas_change() {
        let adm = Admission::default();
        let [a, b] = ["a", "b"].map(workspace);
        assert!(adm.decide(&tenant(2), &a, &resolved(&a), Vec::new).is_ok());
        assert!(adm.decide(&tenant(2), &b, &resolved(&b), || vec![a.clone()]).is_ok());
        let unread = || -> Vec<Arc<Workspace>> { panic!("the others were read for a converged Workspace") };
        assert!(adm.decide(&tenant(2), &b, &resolved(&b), unread).is_ok());
        // The quotas shrink: the decision is taken again, with the others.
        let refused = adm.decide(&tenant(1), &b, &resolved(&b), || vec![a.clone()]).unwrap_err();
        assert_eq!(refused.reason, Reason::QuotaExceeded, "{refused:?}");
        // Another spec (more disk): taken again too.
        let mut bigger = resolved(&b);
        bigger.compute.root_gb += 10;
        assert!(adm.decide(&tenant(2), &b, &bigger, || vec![a.clone()]).is_ok());
    }
}
