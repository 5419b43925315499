//! The Workspace's status scope: one reconcile reads the status once, changes a copy, and writes
//! it once at the end with server-side apply, on success and on error (the launch protocol may
//! write it earlier too, where it needs a record before a side effect).

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use molecule_crds::v1alpha1::{PowerState, Workspace, WorkspacePhase, WorkspaceStatus};
use serde_json::json;

use super::status;
use crate::context::Context;
use crate::reconcile::{Error, Failure, MANAGER, kube_err, publish};

/// The status as read at the start of the reconcile, and the one being built.
#[derive(Debug)]
pub struct Scope<'a> {
    /// Context.
    pub ctx: &'a Context,
    /// The Workspace.
    pub ws: &'a Workspace,
    /// Status as read.
    pub old: WorkspaceStatus,
    /// Status being built.
    pub st: WorkspaceStatus,
    /// Now, RFC 3339.
    pub now: String,
}

impl<'a> Scope<'a> {
    /// Opens the scope: the status as read, observedGeneration set.
    pub fn new(ctx: &'a Context, ws: &'a Workspace) -> Self {
        let old = ws.status.clone().unwrap_or_default();
        let mut st = old.clone();
        st.observed_generation = ws.metadata.generation;
        Self { ctx, ws, old, st, now: jiff::Timestamp::now().to_string() }
    }

    /// Closes the scope: a failure is said in its condition and Ready, then the status is
    /// written once (when it changed) and the outcome handed back.
    pub async fn close(mut self, res: Result<Action, Failure>) -> Result<Action, Error> {
        match res {
            Ok(action) => {
                finish(self.ctx, self.ws, &self.old, self.st).await?;
                Ok(action)
            }
            Err(Failure { concern, error }) => {
                if let Some(c) = concern {
                    let generation = self.ws.metadata.generation;
                    status::set_failed(&mut self.st, &[c], "ReconcileError", &error.to_string(), generation, &self.now);
                }
                if let Err(write) = finish(self.ctx, self.ws, &self.old, self.st).await {
                    tracing::warn!(error = %write, "failed to write the status of a failed reconcile");
                }
                Err(error)
            }
        }
    }
}

/// Publishes the Events of the transitions and writes the whole status with server-side apply.
async fn finish(ctx: &Context, ws: &Workspace, old: &WorkspaceStatus, mut st: WorkspaceStatus) -> Result<(), Error> {
    // Derived before the comparison: a resume with nothing else changed must still clear Paused.
    with_kstatus(ws, &mut st);
    let regarding = ws.object_ref(&());
    for (warning, reason, note) in status::transitions(old, &st) {
        publish(ctx, &regarding, warning, &reason, note).await;
    }
    crate::gauges::observe_ready(&ctx.metrics, "Workspace", &old.conditions, &st.conditions);
    if old == &st {
        return Ok(());
    }
    apply_status(ctx, ws, &st).await
}

/// Writes the whole status now with server-side apply, as the one field manager of status. One
/// manager, whole status: a field left out (an instance ID after a spot stop) is removed, not
/// kept by an older write of another manager.
///
/// `Reconciling`, `Stalled` and `Paused` are derived here from the other conditions, so every
/// write, mid-reconcile ones included, tells GitOps tools the same story.
pub async fn apply_status(ctx: &Context, ws: &Workspace, st: &WorkspaceStatus) -> Result<(), Error> {
    let api: Api<Workspace> = Api::namespaced(ctx.client.clone(), &ws.namespace().unwrap_or_default());
    let mut st = st.clone();
    with_kstatus(ws, &mut st);
    let patch = json!({ "apiVersion": "moleculesai.app/v1alpha1", "kind": "Workspace", "status": st });
    api.patch_status(&ws.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(kube_err("write the Workspace status"))?;
    Ok(())
}

/// Derives `Reconciling`, `Stalled` and `Paused` into `st` (see [`molecule_crds::kstatus`]).
pub fn with_kstatus(ws: &Workspace, st: &mut WorkspaceStatus) {
    let settled = ws.spec.state == PowerState::Stopped && st.phase == Some(WorkspacePhase::Stopped);
    crate::reconcile::derive_kstatus(&mut st.conditions, ws, settled);
}
