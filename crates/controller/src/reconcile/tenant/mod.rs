//! The Tenant reconciler: credentials, tunnel, bootstrap bundle, security group, VM, CNAME,
//! redeploys and usage on the apply path; the Article 17 erasure behind the finalizer.

pub mod bundle;
pub mod cloudflare;
pub mod credentials;
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
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use molecule_crds::v1alpha1::{ErasureStatus, PowerState, Tenant, TenantPhase, TenantStatus, Workspace};
use serde_json::json;

use crate::bootstrap::TenantBoot;
use crate::cloud::tags::Owner;
use crate::context::{Account, Context};
use crate::metrics::ReconcileLabels;
use crate::reconcile::workspace::steps::MANAGER;
use crate::reconcile::{Error, kube_err, publish};

/// The finalizer that holds a Tenant until its erasure is complete.
pub const FINALIZER: &str = "moleculesai.app/tenant-erasure";
/// Requeue of a converged Tenant (reads come from caches; Cloudflare is asked once).
const STEADY_REQUEUE: Duration = Duration::from_mins(5);
/// Requeue while provisioning.
const PROVISIONING_REQUEUE: Duration = Duration::from_secs(3);

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
    Owner { kind: "Tenant", uid: t.uid().unwrap_or_default(), namespace: None, name: t.name_any(), tenant: t.name_any() }
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

/// Runs the Tenant controller until shutdown. `workspace_events` is the operator's one
/// Workspace watch (shared with the Workspace controller): a Workspace change updates its
/// Tenant's usage.
pub async fn run(
    ctx: Arc<Context>,
    workspace_events: impl futures::Stream<Item = Arc<Workspace>> + Send + 'static,
    workspaces: Store<Workspace>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let mut wc = watcher::Config::default();
    if let Some(sel) = &ctx.tenant.selector {
        wc = wc.labels(sel);
    }
    let controller = Controller::new(Api::<Tenant>::all(ctx.client.clone()), wc);
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
    let res = finalizer(&api, FINALIZER, t, |ev| async {
        match ev {
            Finalizer::Apply(t) => converge(&t, &r).await,
            Finalizer::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let outcome = match &res {
        Ok(_) => {
            ctx.backoff.succeeded(&key);
            "ok"
        }
        Err(e) => e.category(),
    };
    let labels = ReconcileLabels { kind: "Tenant", outcome };
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    ctx.metrics.reconcile_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    res
}

// kube-runtime's error policy signature takes the Arcs by value.
#[allow(clippy::needless_pass_by_value)]
fn error_policy(t: Arc<Tenant>, e: &Error, r: Arc<Reconciler>) -> Action {
    if let Some(retry) = e.waiting() {
        tracing::debug!(tenant = %t.name_any(), wait = %e, "waiting");
        return Action::requeue(retry);
    }
    let key = format!("tenant/{}", t.name_any());
    let delay = r.ctx.backoff.failed(&key);
    tracing::warn!(tenant = %t.name_any(), category = e.category(), error = %e, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Writes the whole status with server-side apply (the one field manager of status).
pub async fn apply_status(ctx: &Context, t: &Tenant, st: &TenantStatus) -> Result<(), Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let patch = json!({ "apiVersion": "moleculesai.app/v1alpha1", "kind": "Tenant", "status": st });
    api.patch_status(&t.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(kube_err("write the Tenant status"))?;
    Ok(())
}

/// Publishes the Events of the transitions and writes the status if it changed.
async fn finish(ctx: &Context, t: &Tenant, old: &TenantStatus, st: &TenantStatus) -> Result<(), Error> {
    let regarding = t.object_ref(&());
    for (warning, reason, note) in status::transitions(old, st) {
        publish(ctx, &regarding, warning, &reason, note).await;
    }
    if old == st {
        return Ok(());
    }
    apply_status(ctx, t, st).await
}

/// A part failed: say so in its condition and Ready, write status, hand the error back.
async fn failed(ctx: &Context, t: &Tenant, old: &TenantStatus, mut st: TenantStatus, concern: &str, e: Error, now: &str) -> Error {
    if e.waiting().is_none() {
        status::set(&mut st, concern, false, "ReconcileError", e.to_string(), t.metadata.generation, now);
        status::conclude(&mut st, true, false, t.metadata.generation, now);
    }
    if let Err(w) = finish(ctx, t, old, &st).await {
        tracing::warn!(error = %w, "failed to write the status of a failed reconcile");
    }
    e
}

macro_rules! part {
    ($ctx:expr, $t:expr, $old:expr, $st:expr, $concern:expr, $now:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Err(failed($ctx, $t, $old, $st, $concern, e.into(), $now).await),
        }
    };
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
    let slug = t.name_any();
    let owner = owner_of(t);
    let host = hostname(&slug, &ctx.tenant.base_domain);
    st.hostname = Some(host.clone());
    st.usage = Some(status::usage(&slug, r.workspaces.state().iter().map(AsRef::as_ref)));
    let want_running = t.spec.state == PowerState::Running;

    let acct = match account_for(ctx, t) {
        Ok(a) => a.clone(),
        Err((reason, msg)) => return blocked(ctx, t, &old, st, &["InstanceReady"], reason, &msg, &now).await,
    };
    st.account = Some(acct.name.to_owned());
    st.region = Some(acct.region.clone());
    let Some(profile) = acct.tenant_profile.clone() else {
        let msg = "a Secrets Manager bootstrap bundle and an instance profile are required: set EC2_TENANT_IAM_PROFILE \
                   (CANARY_TENANT_IAM_PROFILE for canary tenants); nothing is launched without them";
        return blocked(ctx, t, &old, st, &["InstanceReady", "SecretReady"], "InstanceProfileMissing", msg, &now).await;
    };
    let image = t.spec.image.clone().filter(|i| !i.is_empty()).or_else(|| {
        if t.spec.canary { ctx.tenant.canary_image.clone() } else { ctx.tenant.image.clone() }
    });
    let Some(image) = image else {
        let msg = "spec.image is empty and the operator has no TENANT_IMAGE (CANARY_TENANT_IMAGE for canary tenants)";
        return blocked(ctx, t, &old, st, &["InstanceReady"], "NoPlatformImage", msg, &now).await;
    };
    let Some(ami) = acct.ami.clone() else {
        let msg = format!("no AMI for tenant VMs in the {} account: set EC2_AMI (CANARY_EC2_AMI for canary)", acct.name);
        return blocked(ctx, t, &old, st, &["InstanceReady"], "NoImage", &msg, &now).await;
    };

    let creds = part!(ctx, t, &old, st, "SecretReady", &now, credentials::ensure(ctx, t).await);

    // The tunnel first: its token belongs in the bundle.
    let tunnel_ready = old.tunnel_id.clone().filter(|_| molecule_crds::conditions::is_true(&old.conditions, "TunnelReady"));
    let tunnel = match &ctx.tunnels {
        None => {
            status::set(&mut st, "TunnelReady", false, "CloudflareNotConfigured", "CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_ZONE_ID are not all set: the tenant has no tunnel", generation, &now);
            None
        }
        Some(cf) => {
            let name = cloudflare::tunnel_name(&ctx.identity, &slug);
            let (id, created) = part!(ctx, t, &old, st, "TunnelReady", &now, cloudflare::ensure_tunnel(cf.as_ref(), &name, &host, tunnel_ready.as_deref()).await);
            let token = match ctx.tunnel_tokens.lock().ok().and_then(|m| m.get(&id).cloned()) {
                Some(tok) => tok,
                None => {
                    let tok = part!(ctx, t, &old, st, "TunnelReady", &now, cf.token(&id).await);
                    if let Ok(mut m) = ctx.tunnel_tokens.lock() {
                        m.insert(id.clone(), tok.clone());
                    }
                    tok
                }
            };
            if created {
                publish(ctx, &t.object_ref(&()), false, "TunnelCreated", format!("Cloudflare tunnel {name} ({id}) created for {host}")).await;
            }
            st.tunnel_id = Some(id.clone());
            status::set(&mut st, "TunnelReady", true, "TunnelConfigured", format!("tunnel {id} routes {host} to the platform"), generation, &now);
            Some((id, token))
        }
    };

    let value = bundle::contents(ctx, &slug, &host, &creds, tunnel.as_ref().map(|x| x.1.as_str()));
    let arn = part!(ctx, t, &old, st, "SecretReady", &now, bundle::ensure(ctx, &acct, &owner, &value, old.secret_arn.as_deref()).await);
    st.secret_arn = Some(arn.clone());
    status::set(&mut st, "SecretReady", true, "BundleWritten", "credentials Secret and Secrets Manager bootstrap bundle are written", generation, &now);

    let sg = part!(ctx, t, &old, st, "NetworkReady", &now, vm::ensure_group(ctx, &acct, &owner, old.security_group_id.as_deref()).await);
    st.security_group_id = Some(sg.id.clone());
    status::set(&mut st, "NetworkReady", true, "SecurityGroupReady", format!("security group {} converged", sg.id), generation, &now);

    let instance_type = t.spec.instance_type.clone().unwrap_or_else(|| ctx.tenant.instance_type.clone());
    let launch_image = st.image.clone().unwrap_or_else(|| image.clone());
    let machine = vm::Machine {
        instance_type: &instance_type,
        ami: &ami,
        profile: &profile,
        sg: &sg.id,
        boot: TenantBoot { hostname: &host, region: &acct.region, bundle_arn: &arn, image: &launch_image },
    };
    let (current, drifted) = part!(ctx, t, &old, st, "InstanceReady", &now, vm::converge(ctx, &acct, t, &owner, &machine, want_running, &mut st).await);
    if let Some(c) = &current {
        st.instance_id = Some(c.id.clone());
        st.private_ip.clone_from(&c.private_ip);
    }
    let mut requeue = STEADY_REQUEUE;
    let vm_running = current.as_ref().is_some_and(|c| c.state == crate::cloud::InstanceState::Running);
    let vm_stopped = current.as_ref().is_none_or(|c| c.state == crate::cloud::InstanceState::Stopped);
    match &current {
        Some(c) if vm_running => status::set(&mut st, "InstanceReady", true, "Running", format!("tenant VM {} runs", c.id), generation, &now),
        Some(c) => status::set(&mut st, "InstanceReady", false, if want_running { "Pending" } else { "Stopped" }, format!("tenant VM {} is {}", c.id, c.state), generation, &now),
        None => status::set(&mut st, "InstanceReady", false, "Launching", "no tenant VM yet", generation, &now),
    }
    if drifted {
        status::set(&mut st, "Drifted", true, "SpecChanged", "spec.instanceType (or the tenant AMI) changed since launch; the VM is not replaced automatically", generation, &now);
    } else if molecule_crds::conditions::get(&st.conditions, "Drifted").is_some() {
        status::set(&mut st, "Drifted", false, "InSync", "the VM matches spec.instanceType", generation, &now);
    }
    if let Some(c) = current.as_ref().filter(|_| want_running) {
        if let Some(w) = part!(ctx, t, &old, st, "InstanceReady", &now, vm::redeploy(ctx, &acct, t, c, &image, &mut st).await) {
            requeue = requeue.min(w);
        }
    }

    match (&ctx.tunnels, &tunnel) {
        (Some(cf), Some((id, _))) => {
            let already = old.tunnel_id.as_deref() == Some(id.as_str())
                && molecule_crds::conditions::get(&old.conditions, "DnsReady").is_some_and(|c| c.reason == "RecordWritten" && c.status == molecule_crds::v1alpha1::ConditionStatus::True);
            let res = if already { Ok(cloudflare::Cname::Ready) } else { cloudflare::ensure_cname(cf.as_ref(), &ctx.identity, &owner, &host, id).await };
            match res {
                Ok(cloudflare::Cname::Ready) => status::set(&mut st, "DnsReady", true, "RecordWritten", format!("proxied CNAME {host} → {} and its ownership record", cloudflare::target(id)), generation, &now),
                Ok(cloudflare::Cname::NotOurs(m)) => status::set(&mut st, "DnsReady", false, "RecordNotOurs", m, generation, &now),
                Err(e) => return Err(failed(ctx, t, &old, st, "DnsReady", e, &now).await),
            }
        }
        _ => status::set(&mut st, "DnsReady", false, "NoTunnel", "the CNAME points at the tunnel, which does not exist", generation, &now),
    }
    status::conclude(&mut st, want_running, vm_stopped, generation, &now);
    if st.phase != Some(TenantPhase::Ready) && st.phase != Some(TenantPhase::Stopped) {
        requeue = requeue.min(PROVISIONING_REQUEUE);
    }
    finish(ctx, t, &old, &st).await?;
    Ok(Action::requeue(requeue))
}

/// A Tenant that cannot be provisioned as configured: nothing is created; the condition says why.
#[allow(clippy::too_many_arguments)]
async fn blocked(ctx: &Context, t: &Tenant, old: &TenantStatus, mut st: TenantStatus, concerns: &[&str], reason: &str, msg: &str, now: &str) -> Result<Action, Error> {
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
        publish(ctx, &t.object_ref(&()), false, "ErasureStarted", format!("erasing everything tenant {slug} owns; receipt {}/{receipt_name}", ctx.tenant.operator_namespace)).await;
    }
    st.phase = Some(TenantPhase::Erasing);
    let before = rc.clone();
    let mut accounts: Vec<&Account> = Vec::new();
    let own = account_for(ctx, t).ok().map(AsRef::as_ref);
    accounts.extend(own);
    if !accounts.iter().any(|a| a.name == "main") {
        accounts.push(ctx.main.as_ref());
    }
    if let Ok(c) = &ctx.canary && !accounts.iter().any(|a| a.name == "canary") {
        accounts.push(c.as_ref());
    }
    let host = hostname(&slug, &ctx.tenant.base_domain);
    let mut erasure = erase::Erasure { ctx, tenant: t, owner: &owner, hostname: &host, accounts, receipt: &mut rc, now: now.clone() };
    let outcome = erasure.run().await;
    if rc != before || outcome.is_ok() {
        if outcome.is_ok() {
            rc.completed_at = Some(now.clone());
        }
        receipt::save(ctx, &receipt_name, &rc).await?;
    }
    let generation = t.metadata.generation;
    match outcome {
        Ok(()) => {
            let n = rc.resources.len();
            tracing::info!(tenant = %slug, uid = %owner.uid, resources = n, receipt = %receipt_name, "tenant erasure completed");
            publish(ctx, &t.object_ref(&()), false, "ErasureCompleted", format!("tenant {slug} erased: {n} resources confirmed gone; receipt {}/{receipt_name}", ctx.tenant.operator_namespace)).await;
            ctx.metrics.erasures.inc();
            Ok(Action::await_change())
        }
        Err((step, e)) => {
            let started = t.metadata.deletion_timestamp.as_ref().map(|d| d.0.to_string()).unwrap_or_else(|| rc.started_at.clone());
            st.erasure = Some(ErasureStatus { started_at: started.clone(), step: step.to_owned(), blocked_by: Some(e.to_string()), receipt: format!("{}/{receipt_name}", ctx.tenant.operator_namespace) });
            status::set(&mut st, "Erasing", true, step, e.to_string(), generation, &now);
            let overdue = started.parse::<Timestamp>().is_ok_and(|s| now_ts.duration_since(s).as_secs() > i64::try_from(ctx.settings.deprovision_deadline.as_secs()).unwrap_or(i64::MAX));
            if overdue {
                status::set(&mut st, "Ready", false, "ErasureBlocked", format!("erasure step {step} is blocked past the deadline: {e}"), generation, &now);
            } else {
                status::set(&mut st, "Ready", false, "Erasing", format!("erasure step {step}"), generation, &now);
            }
            finish(ctx, t, &old, &st).await?;
            Err(e)
        }
    }
}
