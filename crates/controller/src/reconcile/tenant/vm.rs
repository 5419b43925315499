//! The tenant VM: its security group, the launch protocol (the Workspace planner's, without data
//! volume or replacement), stop and start, and the in-place redeploy of the platform image.

use jiff::Timestamp;
use kube::Resource;
use molecule_crds::v1alpha1::{LaunchRecord, RedeployState, RedeployStatus, Tenant, TenantStatus};

use crate::bootstrap::{self, TenantBoot};
use crate::cloud::commands::CommandState;
use crate::cloud::tags::{LAUNCH_ATTEMPT, Owner};
use crate::cloud::{Instance, InstanceState, LaunchRequest, Peer, Rule, SecurityGroup};
use crate::context::{Account, Context};
use crate::reconcile::workspace::drift::launch_token;
use crate::reconcile::workspace::plan::{self, Inputs, LaunchReason, SPEC_HASH_TAG, Step};
use crate::reconcile::workspace::steps::launch_guarded;
use crate::reconcile::{Error, groups, publish};

/// Root volume of the tenant VM: encrypted gp3, AWS's baseline performance.
const ROOT_GB: u32 = 30;
const ROOT_IOPS: u32 = 3000;
const ROOT_THROUGHPUT: u32 = 125;
/// How long a just-launched VM may be missing from an eventually consistent listing.
const LISTING_LAG_SECS: i64 = 120;

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

/// Converges the VM; returns the current instance and whether it drifted from the spec.
pub async fn converge(
    ctx: &Context,
    acct: &Account,
    t: &Tenant,
    owner: &Owner,
    m: &Machine<'_>,
    want_running: bool,
    st: &mut TenantStatus,
) -> Result<(Option<Instance>, bool), Error> {
    let hash = spec_hash(m);
    let instances = acct.cache.instances_of(&owner.uid);
    let just = st
        .launch
        .as_ref()
        .and_then(|l| l.launched_at.as_deref())
        .and_then(|x| x.parse::<Timestamp>().ok())
        .is_some_and(|at| Timestamp::now().duration_since(at).as_secs() < LISTING_LAG_SECS);
    let p = plan::plan(&Inputs {
        instances: &instances,
        status_instance: st.instance_id.as_deref(),
        recorded: st.launch.as_ref().map(|l| (l.attempt, l.spec_hash.as_str())),
        spec_hash: &hash,
        want_running,
        replace_allowed: false,
        data_volume: None,
        just_launched: just,
    });
    let regarding = t.object_ref(&());
    let mut current = p.current.clone();
    for step in p.steps {
        match step {
            Step::Record { attempt, reason } => {
                st.launch = Some(LaunchRecord {
                    token: launch_token(&owner.uid, attempt),
                    attempt,
                    spec_hash: hash.clone(),
                    launched_at: None,
                });
                super::apply_status(ctx, t, st).await?;
                ctx.failpoints.hit("tenant.launch.after-record").await;
                if reason == LaunchReason::Lost {
                    let old = st.instance_id.clone().unwrap_or_default();
                    publish(
                        ctx,
                        &regarding,
                        true,
                        "Relaunching",
                        format!(
                            "tenant VM {old} was terminated or lost outside the operator; launching attempt {attempt}"
                        ),
                    )
                    .await;
                }
                current = Some(launch(ctx, acct, t, owner, m, &hash, attempt, st).await?);
            }
            Step::Launch { attempt } => current = Some(launch(ctx, acct, t, owner, m, &hash, attempt, st).await?),
            Step::Terminate { ids, .. } => {
                acct.instances.terminate(&ids).await?;
                acct.cache.set_instance_state(&owner.uid, &ids, InstanceState::ShuttingDown);
                publish(
                    ctx,
                    &regarding,
                    true,
                    "DuplicateTerminated",
                    format!("terminated duplicate tenant VM(s) {}", ids.join(", ")),
                )
                .await;
            }
            Step::Stop { id } => {
                acct.instances.stop(&id).await?;
                acct.cache.set_instance_state(&owner.uid, std::slice::from_ref(&id), InstanceState::Stopping);
                if let Some(c) = current.as_mut() {
                    c.state = InstanceState::Stopping;
                }
                publish(ctx, &regarding, false, "Stopping", format!("stopping tenant VM {id}")).await;
            }
            Step::Start { id } => {
                acct.instances.start(&id).await?;
                acct.cache.set_instance_state(&owner.uid, std::slice::from_ref(&id), InstanceState::Pending);
                if let Some(c) = current.as_mut() {
                    c.state = InstanceState::Pending;
                }
                publish(ctx, &regarding, false, "Starting", format!("starting tenant VM {id}")).await;
            }
            // No data volume: the planner never asks for these.
            Step::Attach { .. } | Step::Detach { .. } => {}
        }
    }
    Ok((current, p.drifted))
}

#[allow(clippy::too_many_arguments)]
async fn launch(
    ctx: &Context,
    acct: &Account,
    t: &Tenant,
    owner: &Owner,
    m: &Machine<'_>,
    hash: &str,
    attempt: u32,
    st: &mut TenantStatus,
) -> Result<Instance, Error> {
    let uid = &owner.uid;
    let mut tags = ctx.identity.tags(owner);
    tags.insert(LAUNCH_ATTEMPT.into(), attempt.to_string());
    tags.insert(SPEC_HASH_TAG.into(), hash.to_owned());
    let req = LaunchRequest {
        client_token: launch_token(uid, attempt),
        instance_type: m.instance_type.to_owned(),
        image_id: m.ami.to_owned(),
        subnet_id: acct.subnet_id.clone(),
        security_group_ids: vec![m.sg.to_owned()],
        instance_profile: Some(m.profile.to_owned()),
        root_gb: ROOT_GB,
        iops: ROOT_IOPS,
        throughput_mi_bps: ROOT_THROUGHPUT,
        spot: false,
        user_data: bootstrap::tenant(&m.boot)?,
        tags,
    };
    let inst = launch_guarded(ctx, acct.instances.as_ref(), &acct.cache, uid, &req).await?;
    ctx.failpoints.hit("tenant.launch.after-run").await;
    if let Some(l) = st.launch.as_mut() {
        l.launched_at = Some(Timestamp::now().to_string());
    }
    st.instance_id = Some(inst.id.clone());
    st.image = Some(m.boot.image.to_owned());
    st.redeploy = None;
    super::apply_status(ctx, t, st).await?;
    publish(
        ctx,
        &t.object_ref(&()),
        false,
        "Launched",
        format!("launched tenant VM {} ({}) attempt {attempt} in {}", inst.id, m.instance_type, acct.region),
    )
    .await;
    Ok(inst)
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
    let regarding = t.object_ref(&());
    let now = Timestamp::now().to_string();
    if let Some(r) = st.redeploy.as_mut().filter(|r| r.state == RedeployState::Pending) {
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
                let note = format!(
                    "redeploy of {} on {} failed: {why} (SSM command {}); it keeps running {}",
                    r.image,
                    vm.id,
                    r.command_id,
                    st.image.clone().unwrap_or_default()
                );
                publish(ctx, &regarding, true, "RedeployFailed", note).await;
            }
        }
        return Ok(None);
    }
    let already = st.image.as_deref() == Some(image)
        || st.redeploy.as_ref().is_some_and(|r| r.image == image && r.state == RedeployState::Failed);
    if already || vm.state != InstanceState::Running {
        return Ok(None);
    }
    bootstrap::check_image(image)?;
    let cmd = format!("/opt/molecule/redeploy.sh '{image}'");
    let id = acct.commands.send(&vm.id, &format!("molecule redeploy {image}"), &[cmd]).await?;
    st.redeploy = Some(RedeployStatus {
        image: image.to_owned(),
        command_id: id.clone(),
        state: RedeployState::Pending,
        message: None,
        started_at: now,
        finished_at: None,
    });
    publish(
        ctx,
        &regarding,
        false,
        "Redeploying",
        format!("redeploying {image} on tenant VM {} in place (SSM command {id})", vm.id),
    )
    .await;
    Ok(Some(std::time::Duration::from_secs(2)))
}
