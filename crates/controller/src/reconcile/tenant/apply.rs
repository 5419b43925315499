//! The Tenant's apply path, as named steps in the order of docs/design/tenant.md: prerequisites,
//! credentials, tunnel, bootstrap bundle, IAM identities, security group, the VM (the launch
//! protocol), the
//! redeploy, the CNAME; the conditions are concluded from what they found. The status is written
//! once by the [`Scope`].

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use molecule_crds::v1alpha1::{PowerState, Tenant, TenantPhase, TenantStatus};

use super::controller::Reconciler;
use super::identity::{self, Grant, Outcome};
use super::scope::Scope;
use super::{account_for, bundle, credentials, edge, hostname, owner_of, status, vm};
use crate::bootstrap::TenantBoot;
use crate::context::{Account, Context};
use crate::reconcile::{Failure, failed_in};

/// Requeue of a converged Tenant (reads come from caches; Cloudflare is asked once).
const STEADY_REQUEUE: Duration = Duration::from_mins(5);
/// Requeue while the VM launches (its state is seen in the fleet cache, at no AWS cost).
const PROVISIONING_REQUEUE: Duration = Duration::from_secs(3);
/// Requeue while a setting or a foreign record keeps the Tenant from Ready.
const BLOCKED_REQUEUE: Duration = Duration::from_mins(1);

/// What a Tenant needs before anything is created.
struct Prerequisites {
    acct: Arc<Account>,
    image: String,
    ami: String,
}

/// Why a Tenant cannot be provisioned: (conditions concerned, reason, message).
type Blocked = (&'static [&'static str], &'static str, String);

fn prerequisites(ctx: &Context, t: &Tenant) -> Result<Prerequisites, Blocked> {
    let acct = account_for(ctx, t).map_err(|(reason, msg)| (&["InstanceReady"][..], reason, msg))?;
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
    Ok(Prerequisites { acct, image, ami })
}

/// The apply path; the caller's scope writes the status.
pub async fn converge(s: &mut Scope<'_>, r: &Reconciler) -> Result<Action, Failure> {
    let (ctx, t) = (s.ctx, s.t);
    s.st.erasure = None;
    let host = hostname(&t.name_any(), &ctx.tenant.base_domain);
    s.st.hostname = Some(host.clone());
    s.st.usage = Some(status::usage(&t.name_any(), r.workspaces.state().iter().map(AsRef::as_ref)));
    let want_running = t.spec.state == PowerState::Running;
    let p = match prerequisites(ctx, t) {
        Ok(p) => p,
        Err((concerns, reason, msg)) => {
            status::blocked(&mut s.st, concerns, reason, &msg, t.metadata.generation, &s.now);
            return Ok(Action::requeue(STEADY_REQUEUE));
        }
    };
    s.st.account = Some(p.acct.name.to_owned());
    s.st.region = Some(p.acct.region.clone());
    let (arn, tunnel) = secrets_and_tunnel(s, r, &p, &host).await?;
    let Some(profile) = identities(s, r, &p, &arn).await? else { return Ok(Action::requeue(BLOCKED_REQUEUE)) };
    let sg = vm::ensure_group(ctx, &p.acct, &owner_of(t), s.old.security_group_id.as_deref())
        .await
        .map_err(failed_in("NetworkReady"))?;
    s.st.security_group_id = Some(sg.id.clone());
    let msg = format!("security group {} converged", sg.id);
    status::set(&mut s.st, "NetworkReady", true, "SecurityGroupReady", msg, t.metadata.generation, &s.now);
    let (vm_stopped, mut requeue) = machine(s, &p, &host, &arn, &sg.id, &profile).await?;
    let tunnel_id = tunnel.map(|x| x.0);
    edge::cname_step(ctx, t, &s.old, &mut s.st, &host, tunnel_id.as_deref(), &s.now)
        .await
        .map_err(failed_in("DnsReady"))?;
    status::conclude(&mut s.st, want_running, vm_stopped, t.metadata.generation, &s.now);
    requeue = requeue.min(next_look(&s.st, want_running));
    Ok(Action::requeue(requeue))
}

/// Credentials, the tunnel (its token belongs in the bundle), then the bundle: its ARN and the
/// tunnel (ID, token).
async fn secrets_and_tunnel(
    s: &mut Scope<'_>,
    r: &Reconciler,
    p: &Prerequisites,
    host: &str,
) -> Result<(String, Option<(String, String)>), Failure> {
    let (ctx, t) = (s.ctx, s.t);
    let creds = credentials::ensure(ctx, t).await.map_err(failed_in("SecretReady"))?;
    let tunnel = edge::tunnel_step(ctx, &r.memory, t, &s.old, &mut s.st, host, &s.now)
        .await
        .map_err(failed_in("TunnelReady"))?;
    let value = bundle::contents(ctx, &t.name_any(), host, &creds, tunnel.as_ref().map(|x| x.1.as_str()));
    let old_arn = s.old.secret_arn.clone();
    let arn = bundle::ensure(ctx, &r.memory, &p.acct, &owner_of(t), &value, old_arn.as_deref())
        .await
        .map_err(failed_in("SecretReady"))?;
    s.st.secret_arn = Some(arn.clone());
    let msg = "credentials Secret and Secrets Manager bootstrap bundle are written";
    status::set(&mut s.st, "SecretReady", true, "BundleWritten", msg, t.metadata.generation, &s.now);
    Ok((arn, tunnel))
}

/// The tenant's two IAM identities (after the bundle: the VM's policy names its ARN): the VM's
/// in the tenant's account, the Workspaces' in the main account. The VM's instance profile, or
/// `None` when a role or profile of that name is not this Tenant's (`IamRoleNotOurs`, Stalled).
async fn identities(
    s: &mut Scope<'_>,
    r: &Reconciler,
    p: &Prerequisites,
    bundle_arn: &str,
) -> Result<Option<String>, Failure> {
    let (ctx, t) = (s.ctx, s.t);
    let owner = owner_of(t);
    let prefix = ctx.identity.workspace_secret_prefix(&owner.name);
    let grants = [
        (&p.acct, Grant::Vm { bundle_arn, region: &p.acct.region, workspaces: &prefix }),
        (&ctx.main, Grant::Workspace { prefix: &prefix, region: &ctx.main.region }),
    ];
    let digest = identity::digest(&ctx.tenant.iam, &grants.map(|(acct, grant)| (acct.name, grant)));
    let vm_profile =
        |st: &TenantStatus| st.identity.as_ref().and_then(|ids| ids.vm.as_ref()).map(|vm| vm.instance_profile.clone());
    let complete = s.st.identity.as_ref().is_some_and(|ids| ids.vm.is_some() && ids.workspace.is_some());
    let remembered =
        r.memory.identities.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&owner.uid).cloned();
    if complete && remembered.is_some_and(|(known, at)| known == digest && at.elapsed() < identity::RECHECK) {
        return Ok(vm_profile(&s.st));
    }
    for (acct, grant) in grants {
        let (iam, me, settings) = (acct.identities.as_ref(), &ctx.identity, &ctx.tenant.iam);
        let found =
            identity::ensure(iam, me, settings, &owner, acct.name, &grant).await.map_err(failed_in("InstanceReady"))?;
        let found = match found {
            Outcome::Ready(ready) => ready,
            Outcome::NotOurs(msg) => {
                status::blocked(&mut s.st, &["InstanceReady"], "IamRoleNotOurs", &msg, t.metadata.generation, &s.now);
                return Ok(None);
            }
        };
        let ids = s.st.identity.get_or_insert_with(Default::default);
        match grant {
            Grant::Vm { .. } => ids.vm = Some(found),
            Grant::Workspace { .. } => ids.workspace = Some(found),
        }
    }
    let now = std::time::Instant::now();
    r.memory
        .identities
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(owner.uid.clone(), (digest, now));
    Ok(vm_profile(&s.st))
}

/// The VM and its redeploy: whether it is stopped, and when to look again.
async fn machine(
    s: &mut Scope<'_>,
    p: &Prerequisites,
    host: &str,
    arn: &str,
    sg: &str,
    profile: &str,
) -> Result<(bool, Duration), Failure> {
    let (ctx, t) = (s.ctx, s.t);
    let want_running = t.spec.state == PowerState::Running;
    let instance_type = t.spec.instance_type.clone().unwrap_or_else(|| ctx.tenant.instance_type.clone());
    let launch_image = s.st.image.clone().unwrap_or_else(|| p.image.clone());
    let m = vm::Machine {
        instance_type: &instance_type,
        ami: &p.ami,
        profile,
        sg,
        boot: TenantBoot { hostname: host, region: &p.acct.region, bundle_arn: arn, image: &launch_image },
    };
    let owner = owner_of(t);
    let (mut current, drifted) =
        vm::converge(ctx, &p.acct, t, &owner, &m, want_running, &mut s.st).await.map_err(failed_in("InstanceReady"))?;
    let boot = if want_running {
        vm::boot_deadline(ctx, &p.acct, t, &mut current, &mut s.st).await.map_err(failed_in("InstanceReady"))?
    } else {
        crate::reconcile::boot::Verdict::Fine
    };
    status::instance(&mut s.st, current.as_ref(), want_running, drifted, t.metadata.generation, &s.now);
    status::boot(&mut s.st, &boot, t.metadata.generation, &s.now);
    let mut requeue = STEADY_REQUEUE;
    if let Some(c) = current.as_ref().filter(|_| want_running)
        && let Some(w) =
            vm::redeploy(ctx, &p.acct, t, c, &p.image, &mut s.st).await.map_err(failed_in("InstanceReady"))?
    {
        requeue = requeue.min(w);
    }
    let vm_stopped = current.as_ref().is_none_or(|c| c.state == crate::cloud::InstanceState::Stopped);
    Ok((vm_stopped, requeue))
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
