//! The Workspace reconciler: admission, security group, data volume, the launch protocol,
//! DNS, the display Lease and status; and the delete protocol behind the finalizer.

pub mod admit;
mod delete;
pub mod display;
pub mod dns;
pub mod drift;
pub mod network;
pub mod plan;
pub mod status;
pub mod steps;
mod volume;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use molecule_crds::conditions;
use molecule_crds::v1alpha1::{PowerState, Tenant, UpdatePolicy, Workspace, WorkspaceStatus};

use self::plan::Inputs;
use self::status::{DnsState, View};
use crate::cloud::tags::Owner;
use crate::context::Context;
use crate::metrics::KindReason;
use crate::reconcile::{Error, publish};

/// The finalizer that holds a Workspace until its cloud resources are confirmed gone.
pub const FINALIZER: &str = "moleculesai.app/workspace-cleanup";
/// Annotation that applies a pending drift under `updatePolicy: Manual`.
pub const RECREATE_AT: &str = "moleculesai.app/recreate-at";
/// How long a just-launched instance may be missing from DescribeInstances (eventually
/// consistent) before it counts as lost.
const LISTING_LAG: Duration = Duration::from_mins(2);
/// Requeue of a converged Workspace: reads come from the cache, so this costs no AWS call.
const STEADY_REQUEUE: Duration = Duration::from_mins(5);

/// The reconciler's shared state: the Context and the watch caches.
pub struct Reconciler {
    /// Shared context.
    pub ctx: Arc<Context>,
    /// Every Workspace, from the controller's own watch.
    pub workspaces: Store<Workspace>,
    /// The display Leases, from the watch that also triggers their Workspaces.
    pub leases: Store<Lease>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").finish_non_exhaustive()
    }
}

/// Owner tags of a Workspace.
pub fn owner_of(ws: &Workspace) -> Owner {
    Owner {
        kind: "Workspace",
        uid: ws.uid().unwrap_or_default(),
        namespace: ws.namespace(),
        name: ws.name_any(),
        tenant: ws.spec.tenant.clone(),
    }
}

/// Runs the Workspace controller until shutdown, on the operator's one Workspace watch (`events`
/// and its `workspaces` store, shared with the Tenant controller). `tenant_changes` names the
/// Tenants that changed (from the operator's one Tenant watch); their Workspaces are reconciled.
pub async fn run(
    ctx: Arc<Context>,
    events: impl futures::Stream<Item = Arc<Workspace>> + Send + 'static,
    workspaces: Store<Workspace>,
    tenant_changes: tokio::sync::broadcast::Receiver<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let controller = Controller::for_shared_stream(events, workspaces.clone());
    let by_tenant = workspaces.clone();
    let changes = ctx.main.cache.subscribe();
    let cloud_changes = tokio_stream_from(changes).filter_map(|o| async move {
        (o.kind == "Workspace").then(|| ObjectRef::new(&o.name).within(o.namespace.as_deref().unwrap_or_default()))
    });
    let tenant_refs = tokio_stream_from(tenant_changes).flat_map(move |name| {
        let refs: Vec<ObjectRef<Workspace>> = by_tenant
            .state()
            .into_iter()
            .filter(|w| w.spec.tenant == name)
            .map(|w| ObjectRef::from_obj(w.as_ref()))
            .collect();
        futures::stream::iter(refs)
    });
    let lease_cfg = watcher::Config::default().labels(&format!("{}=true", display::LEASE_LABEL));
    let (leases, lease_writer) = kube::runtime::reflector::store::<Lease>();
    let lease_events =
        watcher(Api::<Lease>::all(client), lease_cfg).default_backoff().reflect(lease_writer).touched_objects();
    let concurrency = ctx.settings.concurrency;
    let reconciler = Arc::new(Reconciler { ctx, workspaces, leases });
    controller
        .owns_stream(lease_events)
        .reconcile_on(futures::stream::select(cloud_changes, tenant_refs))
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, reconciler)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// A broadcast receiver as a stream; a lagging receiver skips (periodic requeues catch up).
pub(crate) fn tokio_stream_from<T: Clone + Send + 'static>(
    rx: tokio::sync::broadcast::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((v, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

async fn reconcile(ws: Arc<Workspace>, r: Arc<Reconciler>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let ctx = r.ctx.clone();
    let api: Api<Workspace> = Api::namespaced(ctx.client.clone(), &ws.namespace().unwrap_or_default());
    let key = format!("{}/{}", ws.namespace().unwrap_or_default(), ws.name_any());
    if crate::reconcile::is_paused(ws.as_ref()) {
        let res = crate::reconcile::paused::workspace(&ctx, &ws).await;
        crate::reconcile::record(&ctx, "Workspace", &key, started, &res);
        return res;
    }
    // A Tenant missing from a store that has not been filled yet is not a missing Tenant.
    crate::reconcile::store_ready(&ctx.tenants).await;
    let res = finalizer(&api, FINALIZER, ws, |ev| async {
        match ev {
            Finalizer::Apply(ws) => converge(&ws, &r).await,
            Finalizer::Cleanup(ws) => delete::cleanup(&ws, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    crate::reconcile::record(&ctx, "Workspace", &key, started, &res);
    res
}

// kube-runtime's error policy signature takes the Arcs by value.
#[allow(clippy::needless_pass_by_value)]
fn error_policy(ws: Arc<Workspace>, e: &Error, r: Arc<Reconciler>) -> Action {
    crate::reconcile::requeue_after(
        &r.ctx,
        "Workspace",
        &format!("{}/{}", ws.namespace().unwrap_or_default(), ws.name_any()),
        e,
    )
}

/// The apply path: observe, plan, apply, status.
async fn converge(ws: &Workspace, r: &Reconciler) -> Result<Action, Error> {
    let ctx = &r.ctx;
    let old = ws.status.clone().unwrap_or_default();
    let mut st = old.clone();
    st.observed_generation = ws.metadata.generation;
    let now = Timestamp::now().to_string();
    let owner = owner_of(ws);
    let want_running = ws.spec.state == PowerState::Running;

    // Observe + admit (no cloud call before this passes).
    let (tenant, resolved) = match admission(r, ws) {
        Ok(x) => x,
        Err(rej) => return not_admitted(ctx, ws, &old, st, &rej, &now).await,
    };
    // Said at once: an early failure below must not leave an old refusal (and Stalled) standing.
    status::admitted(&mut st, ws.metadata.generation, &now);

    let spec_hash =
        drift::spec_hash(&resolved.compute, ws.spec.compute.display.as_ref().filter(|d| d.mode.is_enabled()));
    let host = dns::hostname(
        &ws.name_any(),
        &ws.namespace().unwrap_or_default(),
        &ws.spec.tenant,
        &ctx.settings.workspace_domain,
    );
    let tenant_status = tenant.status.clone().unwrap_or_default();
    if st.launch.is_none()
        && let Some((reason, message)) = tenant_gate(ctx, &tenant_status)
    {
        return waiting_for_tenant(ctx, ws, &old, st, reason, &message, &now).await;
    }
    // Network and data volume come before the instance that needs them.
    let (sg, data_volume) = match network_and_volume(ctx, ws, &owner, &resolved, &tenant_status, &st).await {
        Ok(x) => x,
        Err((e, concerns)) => return Err(early_failure(ctx, ws, &old, st, e, &now, concerns).await),
    };
    st.security_group_id = Some(sg.id.clone());
    st.data_volume_id = data_volume.as_ref().map(|v| v.id.clone());

    // Plan (pure) and apply.
    let instances = ctx.main.cache.instances_of(&owner.uid);
    let p = plan::plan(&Inputs {
        instances: &instances,
        status_instance: st.instance_id.as_deref(),
        recorded: st.launch.as_ref().map(|l| (l.attempt, l.spec_hash.as_str())),
        spec_hash: &spec_hash,
        want_running,
        replace_allowed: replace_allowed(ws, &st),
        data_volume: data_volume.as_ref(),
        just_launched: just_launched(&st),
    });
    let target = steps::Target {
        ws,
        owner: &owner,
        resolved: &resolved,
        spec_hash: &spec_hash,
        sg_id: &sg.id,
        data_volume: data_volume.as_ref(),
        bundle_arn: tenant_status.secret_arn.as_deref(),
        hostname: &host,
    };
    let replacing_now =
        p.steps.iter().any(|s| matches!(s, plan::Step::Record { reason: plan::LaunchReason::Replace, .. }));
    let (current, step_error, wait) = apply_steps(ctx, &target, &mut st, &p).await;
    if let Some(c) = &current {
        st.instance_id = Some(c.id.clone());
        st.private_ip.clone_from(&c.private_ip);
    }

    // DNS once the instance has an address.
    let ip = current.as_ref().and_then(|c| c.private_ip.clone()).filter(|_| step_error.is_none());
    let dns_state = dns::step(ctx, &owner, &host, ip.as_deref(), &old).await;
    st.hostname = Some(host.clone());

    // Desktop and its Lease.
    let mode = resolved.compute.display_mode;
    let mut requeue =
        if want_running && current.as_ref().is_some_and(|c| c.tag(crate::cloud::tags::BOOT) == Some("ready")) {
            STEADY_REQUEUE
        } else {
            ctx.settings.refresh_interval * 2
        };
    let drifted = p.drifted && !replacing_now;
    let drift_msg = drifted.then(|| {
        let changes = st.resolved.as_ref().map(|o| drift::changes(o, &resolved.compute)).unwrap_or_default();
        drift::message(&changes, data_volume.is_some(), ws.spec.update_policy == UpdatePolicy::Manual)
    });
    let view = View {
        rejection: None,
        want_running,
        current: current.as_ref(),
        replacing: !p.predecessors.is_empty() || replacing_now,
        dns: dns_state,
        display_mode: mode,
        drift: drift_msg,
        error: step_error.as_ref().map(ToString::to_string),
    };
    st.display = match display::desktop(ctx, &r.leases, ws, &view, &mut requeue).await {
        Ok(d) => d,
        Err(e) => return Err(early_failure(ctx, ws, &old, st, e, &now, "DisplayReady").await),
    };
    // The machine that runs is what status shows; a pending drift shows in Drifted.
    show_machine(&mut st, &resolved, current.as_ref(), drifted, status::phase(&view), &ctx.catalog);
    status::set_conditions(&mut st, &view, ws.metadata.generation, &now);
    st.phase = Some(status::phase(&view));
    finish(ctx, ws, &old, st).await?;
    match (step_error, wait) {
        (Some(e), _) => Err(e),
        (None, Some(w)) => Ok(Action::requeue(requeue.min(w))),
        (None, None) => Ok(Action::requeue(requeue)),
    }
}

/// Runs the plan's steps: the instance afterwards, an error kept for status and requeue (the
/// instance the plan saw stays the one reported), or a wait, which is not an error but says
/// when to look again.
async fn apply_steps(
    ctx: &Context,
    target: &steps::Target<'_>,
    st: &mut WorkspaceStatus,
    p: &plan::Plan,
) -> (Option<crate::cloud::Instance>, Option<Error>, Option<Duration>) {
    match steps::run(ctx, target, st, p.steps.clone(), p.current.clone()).await {
        Ok(c) => (c, None, None),
        Err(e) => match e.waiting() {
            Some(w) => (p.current.clone(), None, Some(w)),
            None => (p.current.clone(), Some(e), None),
        },
    }
}

/// The machine that runs is what status shows; a pending drift shows in Drifted. A new catalog
/// image is not drift: the AMI shown is the one the instance really runs. A Stopped Workspace
/// costs only its volumes.
fn show_machine(
    st: &mut WorkspaceStatus,
    resolved: &molecule_crds::resolve::Resolved,
    current: Option<&crate::cloud::Instance>,
    drifted: bool,
    phase: molecule_crds::v1alpha1::WorkspacePhase,
    catalog: &molecule_crds::catalog::Catalog,
) {
    if drifted && st.resolved.is_some() {
        return;
    }
    let mut shown = resolved.compute.clone();
    if let Some(c) = current.filter(|c| !c.image_id.is_empty()) {
        shown.ami_id.clone_from(&c.image_id);
    }
    st.resolved = Some(shown);
    let instance = catalog.get(&resolved.compute.instance_type).map(|t| t.hourly).unwrap_or_default();
    st.estimated_hourly_usd = Some(status::hourly_usd(resolved.hourly, instance, phase));
}

/// When the current attempt was launched.
fn launched_at(st: &WorkspaceStatus) -> Option<Timestamp> {
    st.launch.as_ref().and_then(|l| l.launched_at.as_deref()).and_then(|t| t.parse::<Timestamp>().ok())
}

/// Whether the current attempt was launched less than [`LISTING_LAG`] ago.
fn just_launched(st: &WorkspaceStatus) -> bool {
    launched_at(st).is_some_and(|t| {
        Timestamp::now().duration_since(t).as_secs() < i64::try_from(LISTING_LAG.as_secs()).unwrap_or(i64::MAX)
    })
}

/// The security group and the data volume, which the instance needs first. On error, also says
/// which condition it concerns.
async fn network_and_volume(
    ctx: &Context,
    ws: &Workspace,
    owner: &Owner,
    resolved: &molecule_crds::resolve::Resolved,
    tenant: &molecule_crds::v1alpha1::TenantStatus,
    st: &WorkspaceStatus,
) -> Result<(crate::cloud::SecurityGroup, Option<crate::cloud::Volume>), (Error, &'static str)> {
    // A canary tenant's group lives in another account: it cannot be a rule's source here.
    let tenant_sg = tenant.security_group_id.as_deref().filter(|_| tenant.account.as_deref() != Some("canary"));
    let sg = network::ensure(ctx, ws, owner, tenant_sg, st.security_group_id.as_deref())
        .await
        .map_err(|e| (e, "NetworkReady"))?;
    let data_volume = match resolved.compute.data_gb {
        Some(gb) => {
            Some(volume::ensure(ctx, owner, gb, st.data_volume_id.as_deref()).await.map_err(|e| (e, "InstanceReady"))?)
        }
        None => None,
    };
    Ok((sg, data_volume))
}

/// A step before the plan failed: say so in status (the condition it concerns and Ready), then
/// hand the error back for the requeue. Status is written on errors too.
async fn early_failure(
    ctx: &Context,
    ws: &Workspace,
    old: &WorkspaceStatus,
    mut st: WorkspaceStatus,
    e: Error,
    now: &str,
    concerns: &str,
) -> Error {
    status::set_failed(&mut st, &[concerns], "ReconcileError", &e.to_string(), ws.metadata.generation, now);
    if let Err(write) = finish(ctx, ws, old, st).await {
        tracing::warn!(error = %write, "failed to write the status of a failed reconcile");
    }
    e
}

/// Why a Workspace may not launch yet although admitted: its Tenant has no bootstrap bundle or
/// group yet, or the operator has no workspace instance profile to read the bundle with.
fn tenant_gate(ctx: &Context, tenant: &molecule_crds::v1alpha1::TenantStatus) -> Option<(&'static str, String)> {
    if ctx.settings.workspace_profile.is_none() {
        return Some((
            "InstanceProfileMissing",
            "the operator has no EC2_WORKSPACE_IAM_PROFILE: a workspace could not read its tenant's bootstrap bundle"
                .into(),
        ));
    }
    if tenant.account.as_deref() == Some("canary") {
        return Some((
            "CanaryTenant",
            "the Tenant lives in the canary account, whose bootstrap bundle a main-account workspace cannot read: \
             Workspaces of canary Tenants are not launched"
                .into(),
        ));
    }
    match (&tenant.secret_arn, &tenant.security_group_id) {
        (Some(_), Some(_)) => None,
        // Waiting cannot help while the Tenant itself is stalled: say so (Stalled for kstatus).
        _ if conditions::is_true(&tenant.conditions, "Stalled") => {
            let c = conditions::get(&tenant.conditions, "Stalled");
            let (reason, msg) = c.map_or(("", ""), |c| (c.reason.as_str(), c.message.as_str()));
            Some(("TenantStalled", format!("the Tenant cannot be provisioned ({reason}): {msg}")))
        }
        _ => Some((
            "WaitingForTenant",
            "the Tenant has no bootstrap bundle and security group yet (status.secretArn, status.securityGroupId)"
                .into(),
        )),
    }
}

/// An admitted Workspace that waits for its Tenant: said in status, nothing created.
async fn waiting_for_tenant(
    ctx: &Context,
    ws: &Workspace,
    old: &WorkspaceStatus,
    mut st: WorkspaceStatus,
    reason: &str,
    message: &str,
    now: &str,
) -> Result<Action, Error> {
    let generation = ws.metadata.generation;
    status::set_failed(&mut st, &["InstanceReady"], reason, message, generation, now);
    st.phase = Some(molecule_crds::v1alpha1::WorkspacePhase::Pending);
    finish(ctx, ws, old, st).await?;
    // The Tenant's status change wakes this Workspace; the requeue is a backstop.
    Ok(Action::requeue(ctx.settings.refresh_interval * 4))
}

/// Tenant binding, resolution and quotas, serialised per tenant (see [`admit`]).
fn admission(
    r: &Reconciler,
    ws: &Workspace,
) -> Result<(Arc<Tenant>, molecule_crds::resolve::Resolved), molecule_crds::reasons::Rejection> {
    let others: Vec<Arc<Workspace>> = r
        .workspaces
        .state()
        .into_iter()
        // Workspaces being deleted still count until their cleanup releases them: their
        // instances run until AWS confirms them gone.
        .filter(|w| w.spec.tenant == ws.spec.tenant && w.uid() != ws.uid())
        .collect();
    let (tenant, resolved) = admit::bind_and_resolve(&r.ctx, ws)?;
    let refs: Vec<&Workspace> = others.iter().map(AsRef::as_ref).collect();
    r.ctx.admission.decide(&tenant, ws, &resolved, &refs)?;
    Ok((tenant, resolved))
}

/// A Workspace that is not admitted: say why in status and an Event; touch nothing in AWS. A
/// launched Workspace whose new spec is refused keeps its instance as it is.
async fn not_admitted(
    ctx: &Context,
    ws: &Workspace,
    old: &WorkspaceStatus,
    mut st: WorkspaceStatus,
    rej: &molecule_crds::reasons::Rejection,
    now: &str,
) -> Result<Action, Error> {
    ctx.metrics.not_admitted.get_or_create(&KindReason { kind: "Workspace", reason: rej.reason.as_str() }).inc();
    let v = View {
        rejection: Some((rej.reason.as_str(), &rej.message)),
        want_running: ws.spec.state == PowerState::Running,
        current: None,
        replacing: false,
        dns: DnsState::Pending,
        display_mode: molecule_crds::v1alpha1::DisplayMode::None,
        drift: None,
        error: None,
    };
    status::set_conditions(&mut st, &v, ws.metadata.generation, now);
    if st.launch.is_none() {
        st.phase = Some(status::phase(&v));
    }
    finish(ctx, ws, old, st).await?;
    Ok(Action::requeue(STEADY_REQUEUE))
}

/// Whether a pending drift may be applied now: Recreate, or recreate-at after the last launch.
fn replace_allowed(ws: &Workspace, st: &WorkspaceStatus) -> bool {
    let recreate_at = ws.annotations().get(RECREATE_AT).and_then(|t| t.parse::<Timestamp>().ok());
    ws.spec.update_policy == UpdatePolicy::Recreate
        || matches!((recreate_at, launched_at(st)), (Some(at), Some(l)) if at > l)
}

/// Publishes the Events of the transitions and writes the whole status with server-side apply.
async fn finish(ctx: &Context, ws: &Workspace, old: &WorkspaceStatus, mut st: WorkspaceStatus) -> Result<(), Error> {
    // Derived before the comparison: a resume with nothing else changed must still clear Paused.
    steps::with_kstatus(ws, &mut st);
    let regarding = ws.object_ref(&());
    for (warning, reason, note) in status::transitions(old, &st) {
        publish(ctx, &regarding, warning, &reason, note).await;
    }
    crate::gauges::observe_ready(&ctx.metrics, "Workspace", &old.conditions, &st.conditions);
    if old == &st {
        return Ok(());
    }
    steps::apply_status(ctx, ws, &st).await
}
