//! The Tenant's status scope: one reconcile reads the status once, changes a copy, and writes it
//! once at the end with server-side apply, on success and on error (the launch protocol may write
//! it earlier too, where it needs a record before a side effect).

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use molecule_crds::v1alpha1::{Tenant, TenantPhase, TenantStatus};
use serde_json::json;

use super::status;
use crate::context::Context;
use crate::reconcile::launch::verify;
use crate::reconcile::teardown::Blocker;
use crate::reconcile::{Error, Failure, MANAGER, kube_err, publish};

/// The status as read at the start of the reconcile, and the one being built.
#[derive(Debug)]
pub struct Scope<'a> {
    /// Context.
    pub ctx: &'a Context,
    /// The Tenant.
    pub t: &'a Tenant,
    /// Status as read.
    pub old: TenantStatus,
    /// Status being built.
    pub st: TenantStatus,
    /// Now, RFC 3339.
    pub now: String,
}

impl<'a> Scope<'a> {
    /// Opens the scope: the status as read, observedGeneration set.
    pub fn new(ctx: &'a Context, t: &'a Tenant) -> Self {
        let old = t.status.clone().unwrap_or_default();
        let mut st = old.clone();
        st.observed_generation = t.metadata.generation;
        Self { ctx, t, old, st, now: jiff::Timestamp::now().to_string() }
    }

    /// Closes the scope: a failure is said in its condition and Ready (a wait is not a
    /// failure), then the status is written once (when it changed) and the outcome handed back.
    pub async fn close(mut self, res: Result<Action, Failure>) -> Result<Action, Error> {
        match res {
            Ok(action) => {
                finish(self.ctx, self.t, &self.old, &self.st).await?;
                Ok(action)
            }
            Err(Failure { concern, error }) => {
                // An identity mismatch waits, but is said in its condition (Stalled).
                let mismatch = matches!(error.blocker(), Some(Blocker::IdentityMismatch(_)));
                if let Some(c) = concern.filter(|_| error.waiting().is_none() || mismatch) {
                    let generation = self.t.metadata.generation;
                    let msg = error.to_string();
                    let reason = if mismatch { verify::REASON } else { "ReconcileError" };
                    status::set(&mut self.st, c, false, reason, msg, generation, &self.now);
                    status::conclude(&mut self.st, true, false, generation, &self.now);
                }
                if let Err(w) = finish(self.ctx, self.t, &self.old, &self.st).await {
                    tracing::warn!(error = %w, "failed to write the status of a failed reconcile");
                }
                Err(error)
            }
        }
    }
}

/// Publishes the Events of the transitions and writes the status if it changed.
pub(super) async fn finish(ctx: &Context, t: &Tenant, old: &TenantStatus, st: &TenantStatus) -> Result<(), Error> {
    // Derived before the comparison: a resume with nothing else changed must still clear Paused.
    let st = &with_kstatus(t, st);
    let regarding = t.object_ref(&());
    for (warning, reason, note) in status::transitions(old, st) {
        publish(ctx, &regarding, warning, &reason, note).await;
    }
    crate::gauges::observe_ready(&ctx.metrics, "Tenant", &old.conditions, &st.conditions);
    if old == st {
        return Ok(());
    }
    apply_status(ctx, t, st).await
}

/// Writes the whole status with server-side apply (the one field manager of status).
///
/// The orphan fields are left out: the orphan scan owns them (its own field manager).
///
/// `Reconciling`, `Stalled` and `Paused` are derived here from the other conditions.
pub async fn apply_status(ctx: &Context, t: &Tenant, st: &TenantStatus) -> Result<(), Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let st = with_kstatus(t, st);
    let mut status = serde_json::to_value(&st).unwrap_or_default();
    if let Some(m) = status.as_object_mut() {
        for k in ["orphans", "orphanCount", "lastOrphanScanTime"] {
            m.remove(k);
        }
    }
    let patch = json!({ "apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant", "status": status });
    api.patch_status(&t.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(kube_err("write the Tenant status"))?;
    Ok(())
}

/// `st` with `Reconciling`, `Stalled` and `Paused` derived (see [`molecule_crds::kstatus`]).
fn with_kstatus(t: &Tenant, st: &TenantStatus) -> TenantStatus {
    let mut st = st.clone();
    let settled = st.phase == Some(TenantPhase::Stopped);
    crate::reconcile::derive_kstatus(&mut st.conditions, t, settled);
    st
}
