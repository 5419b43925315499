//! Executes the plan's steps. Each create carries its tags; each side effect is written through
//! to the fleet cache at once; the launch token reaches status before RunInstances is called.

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use molecule_crds::resolve::Resolved;
use molecule_crds::v1alpha1::{LaunchRecord, PowerState, Workspace, WorkspacePhase, WorkspaceStatus};
use serde_json::json;

use super::drift::launch_token;
use super::plan::{LaunchReason, SPEC_HASH_TAG, Step, TerminateWhy};
use crate::bootstrap::{self, Display, WorkspaceBoot};
use crate::cloud::cache::FleetCache;
use crate::cloud::tags::{LAUNCH_ATTEMPT, Owner};
use crate::cloud::{ErrorKind, Instance, InstanceState, Instances, LaunchRequest, Volume};
use crate::context::Context;
use crate::reconcile::{Error, kube_err, publish};

/// Device name the data volume is attached at (NVMe instances expose it by volume id instead).
pub const DATA_DEVICE: &str = "/dev/sdf";
/// Field manager of every write the operator makes.
pub const MANAGER: &str = "molecule-operator";

/// What the steps need to know.
#[derive(Debug)]
pub struct Target<'a> {
    /// The Workspace.
    pub ws: &'a Workspace,
    /// Its owner tags.
    pub owner: &'a Owner,
    /// What it resolved to.
    pub resolved: &'a Resolved,
    /// Hash of `resolved`.
    pub spec_hash: &'a str,
    /// Its security group.
    pub sg_id: &'a str,
    /// Its data volume.
    pub data_volume: Option<&'a Volume>,
    /// The tenant's bootstrap bundle ARN, once it has one.
    pub bundle_arn: Option<&'a str>,
    /// Its hostname.
    pub hostname: &'a str,
}

/// Writes the whole status now with server-side apply, as the one field manager of status. Used
/// mid-reconcile where the protocol needs a record before the next side effect (the launch token
/// before RunInstances); the end of every reconcile writes it the same way. One manager, whole
/// status: a field left out (an instance ID after a spot stop) is removed, not kept by an older
/// write of another manager.
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

/// `Ok` once the fleet cache holds a listing that started at or after `t`; until then asks for
/// one (shared by every caller) and waits.
pub fn listing_since(cache: &FleetCache, t: Timestamp, what: &str) -> Result<(), Error> {
    if cache.refreshed_since(t) {
        return Ok(());
    }
    cache.request_refresh();
    Err(Error::Waiting { what: what.to_owned(), retry: std::time::Duration::from_secs(1) })
}

/// Runs `steps` in order; returns the instance of the current attempt afterwards.
pub async fn run(
    ctx: &Context,
    t: &Target<'_>,
    st: &mut WorkspaceStatus,
    steps: Vec<Step>,
    mut current: Option<Instance>,
) -> Result<Option<Instance>, Error> {
    let main = &ctx.main;
    let uid = &t.owner.uid;
    let regarding = t.ws.object_ref(&());
    for step in steps {
        match step {
            Step::Record { attempt, reason } => {
                let token = launch_token(uid, attempt);
                let record = LaunchRecord { token, attempt, spec_hash: t.spec_hash.to_owned(), launched_at: None };
                st.launch = Some(record);
                apply_status(ctx, t.ws, st).await?;
                let (warn, why, note) = record_event(ctx, reason, attempt, st.instance_id.as_deref());
                publish(ctx, &regarding, warn, why, note).await;
                ctx.failpoints.hit("workspace.launch.after-record").await;
                current = Some(launch(ctx, t, st, attempt).await?);
            }
            Step::Launch { attempt } => current = Some(launch(ctx, t, st, attempt).await?),
            Step::Terminate { ids, why } => {
                main.instances.terminate(&ids).await?;
                main.cache.set_instance_state(uid, &ids, InstanceState::ShuttingDown);
                let list = ids.join(", ");
                match why {
                    TerminateWhy::Duplicate => {
                        ctx.metrics
                            .duplicates_terminated
                            .get_or_create(&kind_reason("Duplicate"))
                            .inc_by(ids.len() as u64);
                        publish(
                            ctx,
                            &regarding,
                            true,
                            "DuplicateTerminated",
                            format!("terminated duplicate instance(s) {list}"),
                        )
                        .await;
                    }
                    TerminateWhy::Predecessor => {
                        publish(ctx, &regarding, false, "Replaced", format!("terminated replaced instance(s) {list}"))
                            .await;
                    }
                    TerminateWhy::SpotStop => {
                        st.instance_id = None;
                        current = None;
                        publish(ctx, &regarding, false, "Stopping", format!("spot instance {list} terminated to stop (spot cannot stop); volumes and records are kept")).await;
                    }
                }
            }
            Step::Stop { id } => {
                main.instances.stop(&id).await?;
                main.cache.set_instance_state(uid, std::slice::from_ref(&id), InstanceState::Stopping);
                if let Some(c) = current.as_mut() {
                    c.state = InstanceState::Stopping;
                }
                publish(ctx, &regarding, false, "Stopping", format!("stopping instance {id}")).await;
            }
            Step::Start { id } => {
                main.instances.start(&id).await?;
                main.cache.set_instance_state(uid, std::slice::from_ref(&id), InstanceState::Pending);
                if let Some(c) = current.as_mut() {
                    c.state = InstanceState::Pending;
                }
                publish(ctx, &regarding, false, "Starting", format!("starting instance {id}")).await;
            }
            Step::Detach { volume, from } => {
                main.volumes.detach(&volume, &from).await?;
                if let Some(v) = t.data_volume {
                    main.cache.put(uid, Volume { attached_to: None, state: "available".into(), ..v.clone() });
                }
            }
            Step::Attach { volume, to } => {
                main.volumes.attach(&volume, &to, DATA_DEVICE).await?;
                if let Some(v) = t.data_volume {
                    ctx.main
                        .cache
                        .put(uid, Volume { attached_to: Some(to.clone()), state: "in-use".into(), ..v.clone() });
                }
                publish(ctx, &regarding, false, "VolumeAttached", format!("data volume {volume} attached to {to}"))
                    .await;
            }
        }
    }
    Ok(current)
}

/// The Event of a recorded launch attempt: (warning, reason, note).
fn record_event(ctx: &Context, reason: LaunchReason, attempt: u32, old: Option<&str>) -> (bool, &'static str, String) {
    match reason {
        LaunchReason::First => (false, "Launching", format!("launching attempt {attempt}")),
        LaunchReason::Lost => {
            ctx.metrics.relaunches.get_or_create(&kind_reason("Lost")).inc();
            let old = old.unwrap_or_default();
            (
                true,
                "Relaunching",
                format!("instance {old} was terminated or lost outside the operator; launching attempt {attempt}"),
            )
        }
        LaunchReason::Restart => {
            (false, "Starting", format!("spot workspace started again: launching attempt {attempt}"))
        }
        LaunchReason::Replace => {
            (false, "Replacing", format!("spec.compute changed: launching replacement attempt {attempt}"))
        }
    }
}

fn kind_reason(reason: &'static str) -> crate::metrics::KindReason {
    crate::metrics::KindReason { kind: "Workspace", reason }
}

/// RunInstances for an owner (a Workspace or a Tenant), guarded against a launch whose outcome is
/// unknown: after a 5xx, a throttle or a lost answer the instance may exist, so no new launch for
/// that owner until the account's cache holds a listing that started later (which then finds
/// nothing, or the plan adopts what it finds). The instance is written through to the cache.
pub async fn launch_guarded(
    ctx: &Context,
    instances: &dyn Instances,
    cache: &FleetCache,
    uid: &str,
    req: &LaunchRequest,
) -> Result<Instance, Error> {
    let uncertain = ctx.uncertain_launches.lock().ok().and_then(|m| m.get(uid).copied());
    if let Some(since) = uncertain {
        listing_since(cache, since, "an earlier launch's outcome is unknown; waiting for a fresh instance listing")?;
        if let Ok(mut m) = ctx.uncertain_launches.lock() {
            m.remove(uid);
        }
    }
    match instances.launch(req).await {
        Ok(inst) => {
            cache.put(uid, inst.clone());
            Ok(inst)
        }
        Err(e) => {
            if matches!(e.kind, ErrorKind::Transient | ErrorKind::Throttled)
                && let Ok(mut m) = ctx.uncertain_launches.lock()
            {
                m.insert(uid.to_owned(), Timestamp::now());
            }
            Err(e.into())
        }
    }
}

/// RunInstances for the recorded `attempt`.
async fn launch(ctx: &Context, t: &Target<'_>, st: &mut WorkspaceStatus, attempt: u32) -> Result<Instance, Error> {
    let uid = &t.owner.uid;
    let c = &t.resolved.compute;
    let display = c.display_mode.is_enabled().then(|| {
        let d = t.ws.spec.compute.display.clone().unwrap_or_default();
        Display { mode: c.display_mode, protocol: d.protocol, width: d.width, height: d.height }
    });
    let user_data = bootstrap::workspace(&WorkspaceBoot {
        hostname: t.hostname,
        region: &ctx.settings.region,
        bundle_arn: t.bundle_arn,
        runtime: &t.ws.spec.runtime,
        env: &t.ws.spec.env,
        data_volume_id: t.data_volume.map(|v| v.id.as_str()),
        display,
        gpu: c.gpu.is_some(),
    })?;
    let mut tags = ctx.identity.tags(t.owner);
    tags.insert(LAUNCH_ATTEMPT.into(), attempt.to_string());
    tags.insert(SPEC_HASH_TAG.into(), t.spec_hash.to_owned());
    let req = LaunchRequest {
        client_token: launch_token(uid, attempt),
        instance_type: c.instance_type.clone(),
        image_id: c.ami_id.clone(),
        subnet_id: ctx.settings.subnet_id.clone(),
        security_group_ids: vec![t.sg_id.to_owned()],
        instance_profile: ctx.settings.workspace_profile.clone(),
        root_gb: c.root_gb,
        iops: c.iops,
        throughput_mi_bps: c.throughput_mi_bps,
        spot: c.market == molecule_crds::v1alpha1::Market::Spot,
        user_data,
        tags,
    };
    let inst = launch_guarded(ctx, ctx.main.instances.as_ref(), &ctx.main.cache, uid, &req).await?;
    ctx.failpoints.hit("workspace.launch.after-run").await;
    let now = Timestamp::now().to_string();
    if let Some(l) = st.launch.as_mut() {
        l.launched_at = Some(now);
    }
    st.instance_id = Some(inst.id.clone());
    apply_status(ctx, t.ws, st).await?;
    publish(
        ctx,
        &t.ws.object_ref(&()),
        false,
        "Launched",
        format!("launched instance {} ({}) attempt {attempt}", inst.id, c.instance_type),
    )
    .await;
    Ok(inst)
}
