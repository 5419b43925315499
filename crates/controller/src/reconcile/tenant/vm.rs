//! The tenant VM: its security group, the launch protocol (`reconcile::launch`, without data
//! volume or replacement), stop and start, and the in-place redeploy of the platform image.

use async_trait::async_trait;
use jiff::Timestamp;
use kube::{Resource, ResourceExt};
use molecule_crds::v1alpha1::{LaunchRecord, RedeployState, RedeployStatus, Tenant, TenantStatus};

use crate::bootstrap::{self, TenantBoot};
use crate::cloud::commands::CommandState;
use crate::cloud::tags::Owner;
use crate::cloud::{Instance, InstanceState, LaunchRequest, Peer, Rule, SecurityGroup};
use crate::context::{Account, Context};
use crate::reconcile::launch::{self, Env, Subject};
use crate::reconcile::teardown::Blocker;
use crate::reconcile::{Error, boot, groups, publish};

/// Root volume of the tenant VM: encrypted gp3, AWS's baseline performance.
const ROOT_GB: u32 = 30;
/// How often a Tenant whose VM lives under another identity looks again.
const MISMATCH_RETRY: std::time::Duration = std::time::Duration::from_secs(30);
const ROOT_IOPS: u32 = 3000;
const ROOT_THROUGHPUT: u32 = 125;

/// The tenant's group: SSH from the EC2 Instance Connect endpoint only; all egress (the tunnel
/// dials out). Nothing reaches the VM from outside: the hostname is served through the tunnel.
pub async fn ensure_group(
    ctx: &Context,
    acct: &Account,
    owner: &Owner,
    status_sg: Option<&str>,
) -> Result<SecurityGroup, Error> {
    let ingress: Vec<Rule> = acct
        .eic_sg
        .iter()
        .map(|g| Rule { protocol: "tcp".into(), from_port: 22, to_port: 22, peer: Peer::Group(g.clone()) })
        .collect();
    let d = groups::Desired {
        uid: &owner.uid,
        status_sg,
        name: format!("molecule-tenant-{}", owner.uid),
        description: format!("molecule tenant {}", owner.name),
        tags: ctx.identity.tags(owner),
        ingress,
        egress: vec![Rule::all_with("0.0.0.0/0")],
        failpoint: "tenant.sg.after-create",
    };
    groups::converge(acct.network.as_ref(), &acct.cache, &ctx.failpoints, d).await
}

/// What the VM is launched from.
#[derive(Debug)]
pub struct Machine<'a> {
    /// Instance type.
    pub instance_type: &'a str,
    /// AMI.
    pub ami: &'a str,
    /// Instance profile.
    pub profile: &'a str,
    /// Security group.
    pub sg: &'a str,
    /// User-data inputs.
    pub boot: TenantBoot<'a>,
}

fn spec_hash(m: &Machine<'_>) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(format!("{}|{}", m.instance_type, m.ami).as_bytes())[..8])
}

/// The tenant VM as the launch protocol's [`Subject`].
struct Vm<'a> {
    ctx: &'a Context,
    acct: &'a Account,
    t: &'a Tenant,
    owner: &'a Owner,
    m: &'a Machine<'a>,
    hash: String,
}

#[async_trait]
impl Subject for Vm<'_> {
    type Status = TenantStatus;

    fn owner(&self) -> &Owner {
        self.owner
    }

    fn noun(&self) -> &'static str {
        "tenant VM"
    }

    fn spec_hash(&self) -> &str {
        &self.hash
    }

    fn request(&self) -> Result<LaunchRequest, Error> {
        Ok(LaunchRequest {
            client_token: String::new(),
            instance_type: self.m.instance_type.to_owned(),
            image_id: self.m.ami.to_owned(),
            subnet_id: self.acct.subnet_id.clone(),
            security_group_ids: vec![self.m.sg.to_owned()],
            instance_profile: Some(self.m.profile.to_owned()),
            root_gb: ROOT_GB,
            iops: ROOT_IOPS,
            throughput_mi_bps: ROOT_THROUGHPUT,
            spot: false,
            user_data: bootstrap::tenant(&self.m.boot)?,
            tags: std::collections::BTreeMap::new(),
        })
    }

    fn record<'s>(&self, st: &'s mut TenantStatus) -> &'s mut Option<LaunchRecord> {
        &mut st.launch
    }

    fn instance_id<'s>(&self, st: &'s mut TenantStatus) -> &'s mut Option<String> {
        &mut st.instance_id
    }

    fn launched(&self, st: &mut TenantStatus, _inst: &Instance) {
        st.image = Some(self.m.boot.image.to_owned());
        st.redeploy = None;
    }

    async fn persist(&self, st: &TenantStatus) -> Result<(), Error> {
        super::scope::apply_status(self.ctx, self.t, st).await
    }

    async fn event(&self, warning: bool, reason: &'static str, note: String) {
        publish(self.ctx, &self.t.object_ref(&()), warning, reason, note).await;
    }
}

/// Converges the VM with the launch protocol (no data volume, no replacement); returns the
/// current instance and whether it drifted from the spec.
pub async fn converge(
    ctx: &Context,
    acct: &Account,
    t: &Tenant,
    owner: &Owner,
    m: &Machine<'_>,
    want_running: bool,
    st: &mut TenantStatus,
) -> Result<(Option<Instance>, bool), Error> {
    let vm = Vm { ctx, acct, t, owner, m, hash: spec_hash(m) };
    let env = Env { account: acct, identity: &ctx.identity, failpoints: &ctx.failpoints, metrics: &ctx.metrics };
    let p = launch::plan_for(&env, &vm, st, want_running, false).await;
    if let Some(m) = p.mismatch {
        let what = m.to_string();
        return Err(crate::reconcile::teardown::wait_on(Blocker::IdentityMismatch(m), what, MISMATCH_RETRY));
    }
    let current = launch::exec::run(&env, &vm, st, p.steps, p.current).await?;
    Ok((current, p.drifted))
}

/// Follows the pending redeploy command to its end; when to look again while it runs.
async fn follow(
    ctx: &Context,
    acct: &Account,
    t: &Tenant,
    vm: &Instance,
    st: &mut TenantStatus,
) -> Result<Option<std::time::Duration>, Error> {
    if st.redeploy.as_ref().is_some_and(|r| r.command_id.is_empty()) {
        return send_recorded(ctx, acct, t, vm, st, true).await;
    }
    let Some(r) = st.redeploy.as_mut() else { return Ok(None) };
    let now = Timestamp::now().to_string();
    let regarding = t.object_ref(&());
    match acct.commands.state(&r.command_id, &vm.id).await? {
        CommandState::Running => return Ok(Some(std::time::Duration::from_secs(5))),
        CommandState::Succeeded => {
            r.state = RedeployState::Succeeded;
            r.finished_at = Some(now);
            st.image = Some(r.image.clone());
            let note = format!("tenant VM {} now runs {} (SSM command {})", vm.id, r.image, r.command_id);
            publish(ctx, &regarding, false, "Redeployed", note).await;
        }
        CommandState::Failed(why) => {
            r.state = RedeployState::Failed;
            r.finished_at = Some(now);
            r.message = Some(why.clone());
            let keeps = st.image.clone().unwrap_or_default();
            let note = format!(
                "redeploy of {} on {} failed: {why} (SSM command {}); it keeps running {keeps}",
                r.image, vm.id, r.command_id
            );
            publish(ctx, &regarding, true, "RedeployFailed", note).await;
        }
    }
    Ok(None)
}

/// Moves the running VM to `image` in place (SSM Run Command; no reboot, no terminate), one
/// command at a time, and follows it to its end. Returns when to look again, if it runs.
pub async fn redeploy(
    ctx: &Context,
    acct: &Account,
    t: &Tenant,
    vm: &Instance,
    image: &str,
    st: &mut TenantStatus,
) -> Result<Option<std::time::Duration>, Error> {
    let now = Timestamp::now().to_string();
    if st.redeploy.as_ref().is_some_and(|r| r.state == RedeployState::Pending) {
        return follow(ctx, acct, t, vm, st).await;
    }
    let already = st.image.as_deref() == Some(image)
        || st.redeploy.as_ref().is_some_and(|r| r.image == image && r.state == RedeployState::Failed);
    if already || vm.state != InstanceState::Running {
        return Ok(None);
    }
    bootstrap::check_image(image)?;
    // The intent reaches status before the command is sent: a crash in between finds it and
    // looks for the command by its marker instead of sending a second one.
    st.redeploy = Some(RedeployStatus {
        image: image.to_owned(),
        command_id: String::new(),
        state: RedeployState::Pending,
        message: None,
        started_at: now,
        finished_at: None,
    });
    super::scope::apply_status(ctx, t, st).await?;
    ctx.failpoints.hit("tenant.redeploy.after-intent").await;
    send_recorded(ctx, acct, t, vm, st, false).await
}

/// The comment of the redeploy recorded in `r`: a marker derived from the Tenant, the image and
/// the time the intent was recorded, so a retry after a crash finds the command it sent.
pub fn comment(uid: &str, r: &RedeployStatus) -> String {
    use sha2::{Digest, Sha256};
    let marker = hex::encode(&Sha256::digest(format!("{uid}|{}|{}", r.image, r.started_at).as_bytes())[..8]);
    format!("molecule redeploy {marker}")
}

/// Sends the command of the recorded intent (after looking for one already sent with its
/// marker, when `look` says a crash may have come between the send and the status write) and
/// records its ID.
async fn send_recorded(
    ctx: &Context,
    acct: &Account,
    t: &Tenant,
    vm: &Instance,
    st: &mut TenantStatus,
    look: bool,
) -> Result<Option<std::time::Duration>, Error> {
    let Some(r) = st.redeploy.as_mut().filter(|_| vm.state == InstanceState::Running) else { return Ok(None) };
    let comment = comment(&t.uid().unwrap_or_default(), r);
    let found = if look { acct.commands.find(&vm.id, &comment).await? } else { None };
    let (id, how) = if let Some(id) = found {
        (id, "found after a restart")
    } else {
        let cmd = format!("/opt/molecule/redeploy.sh '{}'", r.image);
        let id = acct.commands.send(&vm.id, &comment, &[cmd]).await?;
        ctx.failpoints.hit("tenant.redeploy.after-send").await;
        (id, "sent")
    };
    r.command_id.clone_from(&id);
    let note = format!("redeploying {} on tenant VM {} in place (SSM command {id}, {how})", r.image, vm.id);
    publish(ctx, &t.object_ref(&()), false, "Redeploying", note).await;
    Ok(Some(std::time::Duration::from_secs(2)))
}

/// The boot deadline of the VM ([`boot`]): terminated to be relaunched once as the next attempt
/// (an Event says so; `current` is shown shutting down), the next one that misses it is kept,
/// failed. The verdict goes to [`super::status::boot`].
pub async fn boot_deadline(
    ctx: &Context,
    acct: &Account,
    t: &Tenant,
    current: &mut Option<Instance>,
    st: &mut TenantStatus,
) -> Result<boot::Verdict, Error> {
    let deadline = (ctx.settings.boot_deadline, Timestamp::now());
    let v =
        boot::enforce(acct.instances.as_ref(), current.as_mut(), &mut st.boot_timed_out, deadline, "tenant VM").await?;
    if let boot::Verdict::Relaunch(m) = &v {
        publish(ctx, &t.object_ref(&()), true, "BootTimedOut", m.clone()).await;
    }
    Ok(v)
}
