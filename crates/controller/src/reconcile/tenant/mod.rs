//! The Tenant reconciler: credentials, tunnel, bootstrap bundle, security group, VM, CNAME,
//! redeploys and usage on the apply path; the Article 17 erasure behind the finalizer.

pub mod bundle;
pub mod cloudflare;
pub mod credentials;
mod edge;
pub mod erase;
pub mod receipt;
pub mod status;
pub mod vm;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use molecule_crds::v1alpha1::{PowerState, Tenant, TenantPhase, TenantStatus, Workspace};
use serde_json::json;

use crate::bootstrap::TenantBoot;
use crate::cloud::tags::Owner;
use crate::context::{Account, Context};
use crate::reconcile::workspace::steps::MANAGER;
use crate::reconcile::{Error, kube_err, publish};

/// The finalizer that holds a Tenant until its erasure is complete.
pub const FINALIZER: &str = "moleculesai.app/tenant-erasure";
/// Requeue of a converged Tenant (reads come from caches; Cloudflare is asked once).
const STEADY_REQUEUE: Duration = Duration::from_mins(5);
/// Requeue while the VM launches (its state is seen in the fleet cache, at no AWS cost).
const PROVISIONING_REQUEUE: Duration = Duration::from_secs(3);
/// Requeue while a setting or a foreign record keeps the Tenant from Ready.
const BLOCKED_REQUEUE: Duration = Duration::from_mins(1);
/// The reconciler's shared state.
pub struct Reconciler {
    /// Shared context.
    pub ctx: Arc<Context>,
    /// Every Workspace this operator sees (usage).
    pub workspaces: Store<Workspace>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").finish_non_exhaustive()
    }
}

/// Owner tags of a Tenant.
pub fn owner_of(t: &Tenant) -> Owner {
    Owner {
        kind: "Tenant",
        uid: t.uid().unwrap_or_default(),
        namespace: None,
        name: t.name_any(),
        tenant: t.name_any(),
    }
}

/// The tenant hostname.
pub fn hostname(slug: &str, base: &str) -> String {
    format!("{slug}.{base}")
}

/// A hash of what Workspaces read of their Tenant (spec, deletion, group, bundle, account): the
/// Tenant watch wakes Workspaces only when it changes, not on usage or orphan updates.
pub fn workspace_facing_hash(t: &Tenant) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    t.metadata.generation.hash(&mut h);
    t.metadata.deletion_timestamp.is_some().hash(&mut h);
    if let Some(s) = &t.status {
        (&s.security_group_id, &s.secret_arn, &s.account).hash(&mut h);
        // A waiting Workspace turns TenantStalled (and back) when its Tenant does.
        let stalled = molecule_crds::conditions::get(&s.conditions, "Stalled");
        stalled.map(|c| (c.status == molecule_crds::v1alpha1::ConditionStatus::True, &c.reason)).hash(&mut h);
    }
    h.finish()
}

/// The account a Tenant lives in, or (reason, message) why it cannot be provisioned.
pub fn account_for<'a>(ctx: &'a Context, t: &Tenant) -> Result<&'a Arc<Account>, (&'static str, String)> {
    if !t.spec.canary {
        return Ok(&ctx.main);
    }
    ctx.canary.as_ref().map_err(|why| ("CanaryNotConfigured", format!("spec.canary: {why}")))
}

/// Runs the Tenant controller until shutdown, on the operator's one Tenant watch
/// (`tenant_events`, its store in the Context). `workspace_events` is the operator's one
/// Workspace watch (shared with the Workspace controller): a Workspace change updates its
/// Tenant's usage.
pub async fn run(
    ctx: Arc<Context>,
    tenant_events: impl futures::Stream<Item = Arc<Tenant>> + Send + 'static,
    workspace_events: impl futures::Stream<Item = Arc<Workspace>> + Send + 'static,
    workspaces: Store<Workspace>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::for_shared_stream(tenant_events, ctx.tenants.clone());
    let mut changes = vec![ctx.main.cache.subscribe()];
    if let Ok(c) = &ctx.canary {
        changes.push(c.cache.subscribe());
    }
    let cloud = futures::stream::select_all(changes.into_iter().map(|rx| {
        crate::reconcile::workspace::tokio_stream_from(rx)
            .filter_map(|o| async move { (o.kind == "Tenant").then(|| ObjectRef::<Tenant>::new(&o.name)) })
            .boxed()
    }));
    let concurrency = ctx.settings.concurrency;
    let r = Arc::new(Reconciler { ctx, workspaces });
    controller
        .watches_shared_stream(workspace_events, |w: Arc<Workspace>| Some(ObjectRef::new(&w.spec.tenant)))
        .reconcile_on(cloud)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, r)
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(t: Arc<Tenant>, r: Arc<Reconciler>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let ctx = r.ctx.clone();
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let key = format!("tenant/{}", t.name_any());
    if crate::reconcile::is_paused(t.as_ref()) {
        let res = crate::reconcile::paused::tenant(&ctx, &t).await;
        crate::reconcile::record(&ctx, "Tenant", &key, started, &res);
        return res;
    }
    let res = finalizer(&api, FINALIZER, t, |ev| async {
        match ev {
            Finalizer::Apply(t) => converge(&t, &r).await,
            Finalizer::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    crate::reconcile::record(&ctx, "Tenant", &key, started, &res);
    res
}

// kube-runtime's error policy signature takes the Arcs by value.
#[allow(clippy::needless_pass_by_value)]
fn error_policy(t: Arc<Tenant>, e: &Error, r: Arc<Reconciler>) -> Action {
    crate::reconcile::requeue_after(&r.ctx, "Tenant", &format!("tenant/{}", t.name_any()), e)
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

/// Publishes the Events of the transitions and writes the status if it changed.
async fn finish(ctx: &Context, t: &Tenant, old: &TenantStatus, st: &TenantStatus) -> Result<(), Error> {
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

/// A part failed: say so in its condition and Ready, write status, hand the error back.
async fn failed(
    ctx: &Context,
    t: &Tenant,
    old: &TenantStatus,
    mut st: TenantStatus,
    concern: &str,
    e: Error,
    now: &str,
) -> Error {
    if e.waiting().is_none() {
        status::set(&mut st, concern, false, "ReconcileError", e.to_string(), t.metadata.generation, now);
        status::conclude(&mut st, true, false, t.metadata.generation, now);
    }
    if let Err(w) = finish(ctx, t, old, &st).await {
        tracing::warn!(error = %w, "failed to write the status of a failed reconcile");
    }
    e
}

/// What a Tenant needs before anything is created, or why it cannot be provisioned:
/// (conditions concerned, reason, message).
struct Prerequisites {
    acct: Arc<Account>,
    profile: String,
    image: String,
    ami: String,
}

type Blocked = (&'static [&'static str], &'static str, String);

fn prerequisites(ctx: &Context, t: &Tenant) -> Result<Prerequisites, Blocked> {
    let acct = account_for(ctx, t).map_err(|(reason, msg)| (&["InstanceReady"][..], reason, msg))?.clone();
    let profile = acct.tenant_profile.clone().ok_or_else(|| {
        let msg = "a Secrets Manager bootstrap bundle and an instance profile are required: set EC2_TENANT_IAM_PROFILE \
                   (CANARY_TENANT_IAM_PROFILE for canary tenants); nothing is launched without them";
        (&["InstanceReady", "SecretReady"][..], "InstanceProfileMissing", msg.to_owned())
    })?;
    let default_image = if t.spec.canary { &ctx.tenant.canary_image } else { &ctx.tenant.image };
    let image = t.spec.image.clone().filter(|i| !i.is_empty()).or_else(|| default_image.clone()).ok_or_else(|| {
        let msg = "spec.image is empty and the operator has no TENANT_IMAGE (CANARY_TENANT_IMAGE for canary tenants)";
        (&["InstanceReady"][..], "NoPlatformImage", msg.to_owned())
    })?;
    let ami = acct.ami.clone().ok_or_else(|| {
        let msg =
            format!("no AMI for tenant VMs in the {} account: set EC2_AMI (CANARY_EC2_AMI for canary)", acct.name);
        (&["InstanceReady"][..], "NoImage", msg)
    })?;
    Ok(Prerequisites { acct, profile, image, ami })
}

/// The apply path, in the order of docs/design/tenant.md.
async fn converge(t: &Tenant, r: &Reconciler) -> Result<Action, Error> {
    let ctx = &r.ctx;
    let old = t.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let generation = t.metadata.generation;
    st.observed_generation = generation;
    st.erasure = None;
    let now = Timestamp::now().to_string();
    let (slug, owner) = (t.name_any(), owner_of(t));
    let host = hostname(&slug, &ctx.tenant.base_domain);
    st.hostname = Some(host.clone());
    st.usage = Some(status::usage(&slug, r.workspaces.state().iter().map(AsRef::as_ref)));
    let want_running = t.spec.state == PowerState::Running;
    let p = match prerequisites(ctx, t) {
        Ok(p) => p,
        Err((concerns, reason, msg)) => return blocked(ctx, t, &old, st, concerns, reason, &msg, &now).await,
    };
    let acct = p.acct.clone();
    st.account = Some(acct.name.to_owned());
    st.region = Some(acct.region.clone());
    // A failed part says so in its condition and in Ready, with the status written, then fails.
    macro_rules! part {
        ($concern:expr, $e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err(failed(ctx, t, &old, st, $concern, e.into(), &now).await),
            }
        };
    }

    let creds = part!("SecretReady", credentials::ensure(ctx, t).await);
    // The tunnel first: its token belongs in the bundle.
    let tunnel = part!("TunnelReady", edge::tunnel_step(ctx, t, &old, &mut st, &host, &now).await);
    let value = bundle::contents(ctx, &slug, &host, &creds, tunnel.as_ref().map(|x| x.1.as_str()));
    let arn = part!("SecretReady", bundle::ensure(ctx, &acct, &owner, &value, old.secret_arn.as_deref()).await);
    st.secret_arn = Some(arn.clone());
    let msg = "credentials Secret and Secrets Manager bootstrap bundle are written";
    status::set(&mut st, "SecretReady", true, "BundleWritten", msg, generation, &now);
    let sg = part!("NetworkReady", vm::ensure_group(ctx, &acct, &owner, old.security_group_id.as_deref()).await);
    st.security_group_id = Some(sg.id.clone());
    let msg = format!("security group {} converged", sg.id);
    status::set(&mut st, "NetworkReady", true, "SecurityGroupReady", msg, generation, &now);

    let instance_type = t.spec.instance_type.clone().unwrap_or_else(|| ctx.tenant.instance_type.clone());
    let launch_image = st.image.clone().unwrap_or_else(|| p.image.clone());
    let machine = vm::Machine {
        instance_type: &instance_type,
        ami: &p.ami,
        profile: &p.profile,
        sg: &sg.id,
        boot: TenantBoot { hostname: &host, region: &acct.region, bundle_arn: &arn, image: &launch_image },
    };
    let (current, drifted) =
        part!("InstanceReady", vm::converge(ctx, &acct, t, &owner, &machine, want_running, &mut st).await);
    status::instance(&mut st, current.as_ref(), want_running, drifted, generation, &now);
    let mut requeue = STEADY_REQUEUE;
    if let Some(c) = current.as_ref().filter(|_| want_running)
        && let Some(w) = part!("InstanceReady", vm::redeploy(ctx, &acct, t, c, &p.image, &mut st).await)
    {
        requeue = requeue.min(w);
    }
    let tunnel_id = tunnel.as_ref().map(|x| x.0.clone());
    part!("DnsReady", edge::cname_step(ctx, t, &old, &mut st, &host, tunnel_id.as_deref(), &now).await);
    let vm_stopped = current.as_ref().is_none_or(|c| c.state == crate::cloud::InstanceState::Stopped);
    status::conclude(&mut st, want_running, vm_stopped, generation, &now);
    requeue = requeue.min(next_look(&st, want_running));
    finish(ctx, t, &old, &st).await?;
    Ok(Action::requeue(requeue))
}

/// When to look again: soon while the VM launches or boots, once a minute while something else
/// keeps it from Ready (a setting, a record that is not ours), else the steady requeue.
fn next_look(st: &TenantStatus, want_running: bool) -> Duration {
    let inst = molecule_crds::conditions::get(&st.conditions, "InstanceReady");
    if want_running && inst.is_some_and(|c| ["Launching", "Pending"].contains(&c.reason.as_str())) {
        return PROVISIONING_REQUEUE;
    }
    if matches!(st.phase, Some(TenantPhase::Ready | TenantPhase::Stopped)) { STEADY_REQUEUE } else { BLOCKED_REQUEUE }
}

/// A Tenant that cannot be provisioned as configured: nothing is created; the condition says why.
#[allow(clippy::too_many_arguments)]
async fn blocked(
    ctx: &Context,
    t: &Tenant,
    old: &TenantStatus,
    mut st: TenantStatus,
    concerns: &[&str],
    reason: &str,
    msg: &str,
    now: &str,
) -> Result<Action, Error> {
    status::blocked(&mut st, concerns, reason, msg, t.metadata.generation, now);
    finish(ctx, t, old, &st).await?;
    Ok(Action::requeue(STEADY_REQUEUE))
}

/// The delete path: the erasure, then the receipt, then (by returning Ok) the finalizer.
async fn cleanup(t: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let slug = t.name_any();
    let owner = owner_of(t);
    let now_ts = Timestamp::now();
    let now = now_ts.to_string();
    let old = t.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let receipt_name = receipt::name(&slug, &owner.uid);
    let mut rc = receipt::load(ctx, &receipt_name).await?.unwrap_or_else(|| receipt::Receipt {
        tenant: slug.clone(),
        tenant_uid: owner.uid.clone(),
        started_at: now.clone(),
        ..receipt::Receipt::default()
    });
    if st.phase != Some(TenantPhase::Erasing) {
        tracing::info!(tenant = %slug, uid = %owner.uid, receipt = %receipt_name, "tenant erasure started");
        publish(
            ctx,
            &t.object_ref(&()),
            false,
            "ErasureStarted",
            format!("erasing everything tenant {slug} owns; receipt {}/{receipt_name}", ctx.tenant.operator_namespace),
        )
        .await;
    }
    st.phase = Some(TenantPhase::Erasing);
    let before = rc.clone();
    let accounts = match erasure_accounts(ctx, t) {
        Ok(a) => a,
        Err(e) => {
            erase::blocked_status(&mut st, t, ctx, &rc.started_at, &receipt_name, "Workspaces", &e, now_ts);
            finish(ctx, t, &old, &st).await?;
            return Err(e);
        }
    };
    let host = hostname(&slug, &ctx.tenant.base_domain);
    let mut erasure =
        erase::Erasure { ctx, tenant: t, owner: &owner, hostname: &host, accounts, receipt: &mut rc, now: now.clone() };
    let outcome = erasure.run().await;
    if rc != before || outcome.is_ok() {
        if outcome.is_ok() {
            rc.completed_at.get_or_insert_with(|| now.clone());
        }
        receipt::save(ctx, &receipt_name, &rc).await?;
        ctx.failpoints.hit("tenant.erase.after-progress").await;
    }
    match outcome {
        Ok(()) => {
            let n = rc.resources.len();
            tracing::info!(tenant = %slug, uid = %owner.uid, resources = n, receipt = %receipt_name, "tenant erasure completed");
            publish(
                ctx,
                &t.object_ref(&()),
                false,
                "ErasureCompleted",
                format!(
                    "tenant {slug} erased: {n} resources confirmed gone; receipt {}/{receipt_name}",
                    ctx.tenant.operator_namespace
                ),
            )
            .await;
            ctx.metrics.erasures.inc();
            Ok(Action::await_change())
        }
        Err((step, e)) => {
            erase::blocked_status(&mut st, t, ctx, &rc.started_at, &receipt_name, step, &e, now_ts);
            finish(ctx, t, &old, &st).await?;
            Err(e)
        }
    }
}

/// The accounts an erasure looks in: the Tenant's own first, then every other one reachable.
/// A Tenant whose own account is unreachable waits: erasing the rest and calling it complete
/// would leave its resources behind unseen.
fn erasure_accounts<'a>(ctx: &'a Context, t: &Tenant) -> Result<Vec<&'a Account>, Error> {
    let own = account_for(ctx, t).map_err(|(_, why)| Error::Waiting {
        what: format!("the canary account to erase the Tenant: {why}"),
        retry: Duration::from_mins(1),
    })?;
    let mut accounts: Vec<&Account> = vec![own.as_ref()];
    if own.name != "main" {
        accounts.push(ctx.main.as_ref());
    }
    if let Ok(c) = &ctx.canary
        && own.name != "canary"
    {
        accounts.push(c.as_ref());
    }
    Ok(accounts)
}
