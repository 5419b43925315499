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

use std::collections::HashMap;
use std::sync::Mutex;

use kube::ResourceExt;
use molecule_crds::conditions;
use molecule_crds::quota::{self, EffectiveQuotas};
use molecule_crds::reasons::{Reason, Rejection};
use molecule_crds::resolve::{Resolved, resolve};
use molecule_crds::v1alpha1::{Tenant, TenantUsage, Workspace};

use crate::context::Context;

/// Per-tenant ledgers: tenant -> Workspace uid -> what it was admitted with.
#[derive(Debug, Default)]
pub struct Admission(Mutex<HashMap<String, HashMap<String, TenantUsage>>>);

/// Sum of the usages of `ledger`.
fn total<'a>(usages: impl Iterator<Item = &'a TenantUsage>) -> TenantUsage {
    usages.fold(TenantUsage::default(), |acc, u| quota::add(acc, *u))
}

impl Admission {
    /// Decides whether `ws` is admitted against `tenant`; records the decision.
    ///
    /// `others` are the other Workspaces of the tenant from the watch cache.
    pub fn decide(
        &self,
        tenant: &Tenant,
        ws: &Workspace,
        resolved: &Resolved,
        others: &[&Workspace],
    ) -> Result<(), Rejection> {
        let uid = ws.uid().unwrap_or_default();
        let Ok(mut all) = self.0.lock() else {
            return Err(Rejection::new(Reason::QuotaExceeded, "spec.tenant", "admission ledger unavailable; retrying"));
        };
        let ledger = all.entry(tenant.name_any()).or_default();
        // Workspaces that are gone no longer count.
        ledger.retain(|u, _| u == &uid || others.iter().any(|o| o.uid().as_deref() == Some(u.as_str())));
        let mut usages: Vec<TenantUsage> = Vec::new();
        for o in others {
            let ou = o.uid().unwrap_or_default();
            if let Some(u) = ledger.get(&ou) {
                usages.push(*u);
            } else if let Some(st) = &o.status
                && (conditions::is_true(&st.conditions, "Admitted") || st.launch.is_some())
                && let Some(r) = &st.resolved
            {
                usages.push(quota::usage_of_compute(r));
            }
        }
        let q = EffectiveQuotas::new(tenant.spec.tier, tenant.spec.quotas.as_ref());
        let launched = ws.status.as_ref().is_some_and(|s| s.launch.is_some());
        match quota::check(&q, total(usages.iter()), resolved) {
            Ok(()) => {
                ledger.insert(uid, quota::usage_of(resolved));
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
