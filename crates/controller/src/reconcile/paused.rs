//! The `moleculesai.app/paused` annotation: a paused object gets its status written and nothing
//! else (no cloud call, no finalizer change, deletion included) until the annotation goes.

use kube::runtime::controller::Action;
use molecule_crds::v1alpha1::{Condition, PowerState, Tenant, TenantPhase, Workspace, WorkspacePhase};

use crate::context::Context;
use crate::reconcile::{Error, derive_kstatus, publish};

/// A paused Workspace: status says so, nothing else happens.
pub async fn workspace(ctx: &Context, ws: &Workspace) -> Result<Action, Error> {
    let mut st = ws.status.clone().unwrap_or_default();
    let settled = ws.spec.state == PowerState::Stopped && st.phase == Some(WorkspacePhase::Stopped);
    if let Some(c) = conditions(ctx, ws, &st.conditions, settled).await {
        st.conditions = c;
        super::workspace::scope::apply_status(ctx, ws, &st).await?;
    }
    // Removing the annotation is a change of the object: the watch brings it back.
    Ok(Action::await_change())
}

/// A paused Tenant: status says so, nothing else happens (no erasure step either).
pub async fn tenant(ctx: &Context, t: &Tenant) -> Result<Action, Error> {
    let mut st = t.status.clone().unwrap_or_default();
    let settled = st.phase == Some(TenantPhase::Stopped);
    if let Some(c) = conditions(ctx, t, &st.conditions, settled).await {
        st.conditions = c;
        super::tenant::apply_status(ctx, t, &st).await?;
    }
    Ok(Action::await_change())
}

/// For a paused object: the conditions to write, or None when status already says paused. Says
/// so once in an Event. No cloud call is made for a paused object, deletion included.
async fn conditions<K>(ctx: &Context, obj: &K, old: &[Condition], settled: bool) -> Option<Vec<Condition>>
where
    K: kube::Resource<DynamicType = ()> + kube::ResourceExt,
{
    let mut conds = old.to_vec();
    derive_kstatus(&mut conds, obj, settled);
    if conds == old {
        return None;
    }
    if !molecule_crds::conditions::is_true(old, "Paused") {
        let note = "moleculesai.app/paused is \"true\": no cloud call is made until it is removed".to_owned();
        publish(ctx, &obj.object_ref(&()), false, "Paused", note).await;
    }
    Some(conds)
}
