//! The Workspace's apply path, as named steps: admission, the Tenant gate, network and data
//! volume, the instance (the launch protocol), DNS, the desktop, and the conditions computed
//! from a pure [`View`]. The status is written once by the [`Scope`].

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use molecule_crds::conditions;
use molecule_crds::resolve::Resolved;
use molecule_crds::v1alpha1::{
    PowerState, Tenant, TenantStatus, UpdatePolicy, Workspace, WorkspacePhase, WorkspaceStatus,
};

use super::controller::Reconciler;
use super::scope::Scope;
use super::status::{self, DnsState, View};
use super::subject::Machine;
use super::{RECREATE_AT, admit, display, dns, drift, network, owner_of, secret, volume};
use crate::cloud::tags::Owner;
use crate::cloud::{Instance, InstanceState, SecurityGroup, Volume};
use crate::context::Context;
use crate::metrics::KindReason;
use crate::reconcile::launch::{self, Env, LaunchReason, Plan, Step};
use crate::reconcile::{Error, Failure, boot, failed_in, publish};

/// Requeue of a converged Workspace: reads come from the cache, so this costs no AWS call.
pub const STEADY_REQUEUE: Duration = Duration::from_mins(5);
/// Requeue while the data volume moves to the current instance.
const VOLUME_POLL: Duration = Duration::from_secs(2);

/// The apply path: observe, plan, apply; the caller's scope writes the status.
pub async fn converge(s: &mut Scope<'_>, r: &Reconciler) -> Result<Action, Failure> {
    let (ctx, ws) = (s.ctx, s.ws);
    let owner = owner_of(ws);
    // Observe + admit (no cloud call before this passes).
    let (tenant, resolved) = match admission(r, ws) {
        Ok(x) => x,
        Err(rej) => return Ok(not_admitted(s, &rej)),
    };
    // Said at once: an early failure below must not leave an old refusal (and Stalled) standing.
    status::admitted(&mut s.st, ws.metadata.generation, &s.now);
    let tenant_status = tenant.status.clone().unwrap_or_default();
    if s.st.launch.is_none()
        && let Some((reason, message)) = tenant_gate(&tenant_status)
    {
        return Ok(waiting_for_tenant(s, reason, &message));
    }
    // Network and data volume come before the instance that needs them.
    let (sg, data_volume) = network_and_volume(ctx, ws, &owner, &resolved, &tenant_status, &mut s.st).await?;
    // A data volume in another zone than the subnet: no launch or attach there can succeed.
    let zone = data_volume.as_ref().and_then(|v| volume::zone_mismatch(v, &ctx.main.zone));
    s.st.security_group_id = Some(sg.id.clone());
    s.st.data_volume_id = data_volume.as_ref().map(|v| v.id.clone());
    // The Workspace's own secret (never the tenant's bundle), before the instance that reads it.
    let secret_arn =
        secret::ensure(ctx, &owner, s.st.secret_arn.as_deref()).await.map_err(failed_in("InstanceReady"))?;
    s.st.secret_arn = Some(secret_arn.clone());

    let display_spec = ws.spec.compute.display.as_ref().filter(|d| d.mode.is_enabled());
    let spec_hash = drift::spec_hash(&resolved.compute, display_spec);
    let host = dns::hostname(
        &ws.name_any(),
        &ws.namespace().unwrap_or_default(),
        &ws.spec.tenant,
        &ctx.settings.workspace_domain,
    );
    let machine = Machine {
        ctx,
        ws,
        owner: &owner,
        resolved: &resolved,
        spec_hash: &spec_hash,
        sg_id: &sg.id,
        data_volume: data_volume.as_ref(),
        secret_arn: &secret_arn,
        tenant_hostname: tenant_status.hostname.as_deref(),
        instance_profile: workspace_profile(&tenant_status),
        hostname: &host,
    };
    let out = instance(s, &machine, zone.is_some()).await;
    let dns_state = dns::step(ctx, &owner, &host, dns_want(&out), &s.old).await;
    s.st.hostname = Some(host);
    conclude(s, r, &resolved, (data_volume.as_ref(), zone), out, dns_state).await
}

/// What the launch protocol left: the instance afterwards, an error kept for status and requeue
/// (the instance the plan saw stays the one reported), or a wait, which is not an error but says
/// when to look again; and what the plan saw.
struct Launched {
    current: Option<Instance>,
    error: Option<Error>,
    wait: Option<Duration>,
    plan: Plan,
    /// What the boot deadline said about `current`.
    boot: boot::Verdict,
}

/// The instance: the launch protocol, planned from the fleet cache and executed (without launch
/// and attach while `hold`: the data volume is in another zone).
async fn instance(scope: &mut Scope<'_>, machine: &Machine<'_>, hold: bool) -> Launched {
    let ctx = scope.ctx;
    let env = Env { account: &ctx.main, identity: &ctx.identity, failpoints: &ctx.failpoints, metrics: &ctx.metrics };
    let want_running = scope.ws.spec.state == PowerState::Running;
    let replace = replace_allowed(scope.ws, &scope.st);
    let plan = launch::plan_for(&env, machine, &mut scope.st, want_running, replace).await;
    let steps = if hold { volume::held_back(plan.steps.clone()) } else { plan.steps.clone() };
    status::before_steps(&mut scope.st, &steps, scope.ws.metadata.generation, &scope.now);
    let (current, error, wait) =
        match launch::exec::run(&env, machine, &mut scope.st, steps, plan.current.clone()).await {
            Ok(c) => (c, None, None),
            Err(e) => match e.waiting() {
                Some(w) => (plan.current.clone(), None, Some(w)),
                None => (plan.current.clone(), Some(e), None),
            },
        };
    if let Some(c) = &current {
        scope.st.instance_id = Some(c.id.clone());
        scope.st.private_ip.clone_from(&c.private_ip);
    }
    let mut out = Launched { current, error, wait, plan, boot: boot::Verdict::Fine };
    if want_running && out.error.is_none() {
        boot_deadline(scope, &mut out).await;
    }
    out
}

/// The boot deadline ([`boot`]): an instance whose bootstrap has not reported in time is
/// terminated to be relaunched once (an Event says so), the next one is reported failed.
async fn boot_deadline(scope: &mut Scope<'_>, out: &mut Launched) {
    let ctx = scope.ctx;
    let deadline = (ctx.settings.boot_deadline, jiff::Timestamp::now());
    let timed_out = &mut scope.st.boot_timed_out;
    match boot::enforce(ctx.main.instances.as_ref(), out.current.as_mut(), timed_out, deadline, "instance").await {
        Ok(v) => {
            let new = conditions::get(&scope.old.conditions, "Ready").is_none_or(|c| c.reason != "BootTimedOut");
            if let boot::Verdict::Relaunch(m) | boot::Verdict::Failed(m) = &v
                && (new || matches!(v, boot::Verdict::Relaunch(_)))
            {
                publish(ctx, &scope.ws.object_ref(&()), true, "BootTimedOut", m.clone()).await;
            }
            out.boot = v;
        }
        Err(e) => out.error = Some(e),
    }
}

/// The record the instance calls for: its address once it has one, nothing while no instance is
/// pending or running (a stopped or terminated instance's address may be another's next), and
/// unchanged after an error.
fn dns_want(out: &Launched) -> dns::Want<'_> {
    // An instance living under another identity may still serve: its record stays as it is.
    if out.error.is_some() || out.plan.mismatch.is_some() {
        return dns::Want::Unknown;
    }
    match out.current.as_ref().filter(|c| matches!(c.state, InstanceState::Pending | InstanceState::Running)) {
        Some(c) => c.private_ip.as_deref().map_or(dns::Want::Unknown, dns::Want::Address),
        None => dns::Want::Absent,
    }
}

/// The desktop and its Lease, then the conditions from the view, the phase and the machine shown.
async fn conclude(
    s: &mut Scope<'_>,
    r: &Reconciler,
    resolved: &Resolved,
    (data_volume, mut zone): (Option<&Volume>, Option<String>),
    mut out: Launched,
    dns: DnsState,
) -> Result<Action, Failure> {
    let (ctx, ws) = (s.ctx, s.ws);
    let want_running = ws.spec.state == PowerState::Running;
    let ready = out.current.as_ref().is_some_and(|c| c.tag(crate::cloud::tags::BOOT) == Some("ready"));
    let mut requeue = if want_running && ready { STEADY_REQUEUE } else { ctx.settings.refresh_interval * 2 };
    // An attach refused for its zone is a state to report (Stalled), not an error to back off on.
    if let Some(m) = out.error.as_ref().and_then(|e| volume::zone_error(e, data_volume)) {
        (zone, out.error) = (Some(m), None);
    }
    let uid = owner_of(ws).uid;
    let volume = volume::state(ctx, &uid, data_volume, out.current.as_ref(), resolved.compute.data_gb, zone);
    if want_running && matches!(volume, status::VolumeState::Moving { .. }) {
        // The attach follows the detach or the predecessor's end: look again soon.
        requeue = requeue.min(VOLUME_POLL);
    }
    let replacing_now = out.plan.steps.iter().any(|s| matches!(s, Step::Record { reason: LaunchReason::Replace, .. }));
    let drifted = out.plan.drifted && !replacing_now;
    let drift_msg = drifted.then(|| {
        let changes = s.st.resolved.as_ref().map(|o| drift::changes(o, &resolved.compute)).unwrap_or_default();
        drift::message(&changes, data_volume.is_some(), ws.spec.update_policy == UpdatePolicy::Manual)
    });
    let view = View {
        rejection: None,
        want_running,
        current: out.current.as_ref(),
        replacing: !out.plan.predecessors.is_empty() || replacing_now,
        dns,
        display_mode: resolved.compute.display_mode,
        drift: drift_msg,
        error: out.error.as_ref().map(ToString::to_string),
        mismatch: out.plan.mismatch.as_ref().map(ToString::to_string),
        volume,
    };
    s.st.display =
        display::desktop(ctx, &r.leases, ws, &view, &mut requeue).await.map_err(failed_in("DisplayReady"))?;
    // The machine that runs is what status shows; a pending drift shows in Drifted.
    let phase = status::phase(&view);
    status::show_machine(&mut s.st, resolved, out.current.as_ref(), drifted, phase, &ctx.catalog);
    status::set_conditions(&mut s.st, &view, ws.metadata.generation, &s.now);
    s.st.phase = Some(phase);
    boot_verdict(s, &out.boot);
    match (out.error, out.wait) {
        (Some(e), _) => Err(e.into()),
        (None, Some(w)) => Ok(Action::requeue(requeue.min(w))),
        (None, None) => Ok(Action::requeue(requeue)),
    }
}

/// What the boot deadline decided, said in InstanceReady (and the phase when it failed).
fn boot_verdict(s: &mut Scope<'_>, verdict: &boot::Verdict) {
    let generation = s.ws.metadata.generation;
    match verdict {
        boot::Verdict::Failed(m) => {
            status::set_failed(&mut s.st, &["InstanceReady"], "BootTimedOut", m, generation, &s.now);
            s.st.phase = Some(WorkspacePhase::Failed);
        }
        boot::Verdict::Relaunch(m) => {
            status::set_failed(&mut s.st, &["InstanceReady"], "Relaunching", m, generation, &s.now);
        }
        boot::Verdict::Fine => {}
    }
}

/// The security group and the data volume, which the instance needs first; a failure names the
/// condition it concerns.
async fn network_and_volume(
    ctx: &Context,
    ws: &Workspace,
    owner: &Owner,
    resolved: &Resolved,
    tenant: &TenantStatus,
    st: &mut WorkspaceStatus,
) -> Result<(SecurityGroup, Option<Volume>), Failure> {
    // A canary tenant's group lives in another account: it cannot be a rule's source here.
    let tenant_sg = tenant.security_group_id.as_deref().filter(|_| tenant.account.as_deref() != Some("canary"));
    let sg = network::ensure(ctx, ws, owner, tenant_sg, st.security_group_id.as_deref())
        .await
        .map_err(failed_in("NetworkReady"))?;
    let data_volume = match resolved.compute.data_gb {
        Some(gb) => Some(volume::ensure(ctx, ws, owner, gb, st).await.map_err(failed_in("InstanceReady"))?),
        None => None,
    };
    Ok((sg, data_volume))
}

/// The instance profile the Tenant's Workspaces run under: the tenant's own Workspace identity,
/// which may read this tenant's Workspace secrets only (never its bundle, never another tenant's).
fn workspace_profile(tenant: &TenantStatus) -> Option<&str> {
    tenant.identity.as_ref().and_then(|i| i.workspace.as_ref()).map(|w| w.instance_profile.as_str())
}

/// Why a Workspace may not launch yet although admitted: its Tenant has no bootstrap bundle or
/// group yet, or no Workspace instance profile to read the Workspace's own secret with.
fn tenant_gate(tenant: &TenantStatus) -> Option<(&'static str, String)> {
    if tenant.account.as_deref() == Some("canary") {
        return Some((
            "CanaryTenant",
            "the Tenant lives in the canary account, whose bootstrap bundle a main-account workspace cannot read: \
             Workspaces of canary Tenants are not launched"
                .into(),
        ));
    }
    let profile = workspace_profile(tenant);
    match (&tenant.secret_arn, &tenant.security_group_id) {
        (Some(_), Some(_)) if profile.is_some() => None,
        // Waiting cannot help while the Tenant itself is stalled: say so (Stalled for kstatus).
        _ if conditions::is_true(&tenant.conditions, "Stalled") => {
            let c = conditions::get(&tenant.conditions, "Stalled");
            let (reason, msg) = c.map_or(("", ""), |c| (c.reason.as_str(), c.message.as_str()));
            Some(("TenantStalled", format!("the Tenant cannot be provisioned ({reason}): {msg}")))
        }
        (Some(_), Some(_)) => Some((
            "TenantIdentityPending",
            "the Tenant has no Workspace instance profile yet (status.identity.workspace): a workspace could not \
             read its own secret"
                .into(),
        )),
        _ => Some((
            "WaitingForTenant",
            "the Tenant has no bootstrap bundle and security group yet (status.secretArn, status.securityGroupId)"
                .into(),
        )),
    }
}

/// An admitted Workspace that waits for its Tenant: said in status, nothing created.
fn waiting_for_tenant(s: &mut Scope<'_>, reason: &str, message: &str) -> Action {
    status::set_failed(&mut s.st, &["InstanceReady"], reason, message, s.ws.metadata.generation, &s.now);
    s.st.phase = Some(molecule_crds::v1alpha1::WorkspacePhase::Pending);
    // The Tenant's status change wakes this Workspace; the requeue is a backstop.
    Action::requeue(s.ctx.settings.refresh_interval * 4)
}

/// Tenant binding, resolution and quotas, serialised per tenant (see [`admit`]).
fn admission(r: &Reconciler, ws: &Workspace) -> Result<(Arc<Tenant>, Resolved), molecule_crds::reasons::Rejection> {
    let (tenant, resolved) = admit::bind_and_resolve(&r.ctx, ws)?;
    // Read from the watch cache only when the decision needs them (see `Admission::decide`).
    let others = || {
        r.workspaces
            .state()
            .into_iter()
            // Workspaces being deleted still count until their cleanup releases them: their
            // instances run until AWS confirms them gone.
            .filter(|w| w.spec.tenant == ws.spec.tenant && w.metadata.uid != ws.metadata.uid)
            .collect()
    };
    r.admission.decide(&tenant, ws, &resolved, others)?;
    Ok((tenant, resolved))
}

/// A Workspace that is not admitted: say why in status and an Event; touch nothing in AWS. A
/// launched Workspace whose new spec is refused keeps its instance as it is.
fn not_admitted(s: &mut Scope<'_>, rej: &molecule_crds::reasons::Rejection) -> Action {
    let reason = KindReason { kind: "Workspace", reason: rej.reason.as_str() };
    s.ctx.metrics.not_admitted.get_or_create(&reason).inc();
    let v = View {
        rejection: Some((rej.reason.as_str(), &rej.message)),
        want_running: s.ws.spec.state == PowerState::Running,
        current: None,
        replacing: false,
        dns: DnsState::Pending,
        display_mode: molecule_crds::v1alpha1::DisplayMode::None,
        drift: None,
        error: None,
        mismatch: None,
        volume: status::VolumeState::None,
    };
    status::set_conditions(&mut s.st, &v, s.ws.metadata.generation, &s.now);
    if s.st.launch.is_none() {
        s.st.phase = Some(status::phase(&v));
    }
    Action::requeue(STEADY_REQUEUE)
}

/// Whether a pending drift may be applied now: Recreate, or recreate-at after the last launch.
fn replace_allowed(ws: &Workspace, st: &WorkspaceStatus) -> bool {
    let recreate_at = ws.annotations().get(RECREATE_AT).and_then(|t| t.parse::<jiff::Timestamp>().ok());
    ws.spec.update_policy == UpdatePolicy::Recreate
        || matches!((recreate_at, launch::launched_at(st.launch.as_ref())), (Some(at), Some(l)) if at > l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launched(state: Option<InstanceState>, error: bool) -> Launched {
        let current = state.map(|state| Instance {
            id: "i-1".into(),
            state,
            image_id: String::new(),
            private_ip: Some("10.0.0.5".into()),
            launch_time: None,
            tags: std::collections::BTreeMap::new(),
            spot: true,
        });
        let error = error.then(|| Error::Waiting { what: "boom".into(), on: None, retry: Duration::from_secs(1) });
        Launched { current, error, wait: None, plan: Plan::default(), boot: boot::Verdict::Fine }
    }

    #[test]
    fn the_record_follows_a_pending_or_running_instance() {
        use dns::Want;
        assert_eq!(dns_want(&launched(Some(InstanceState::Running), false)), Want::Address("10.0.0.5"));
        assert_eq!(dns_want(&launched(Some(InstanceState::Pending), false)), Want::Address("10.0.0.5"));
        for gone in [InstanceState::Stopped, InstanceState::Stopping, InstanceState::Terminated] {
            assert_eq!(dns_want(&launched(Some(gone), false)), Want::Absent, "{gone}");
        }
        assert_eq!(dns_want(&launched(None, false)), Want::Absent);
        assert_eq!(dns_want(&launched(None, true)), Want::Unknown, "an error changes nothing");
    }
}
