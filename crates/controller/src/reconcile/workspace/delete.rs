//! The delete protocol: terminate every instance with the owner's uid, wait until AWS reports
//! them terminated, then delete the security group, the volumes and the DNS records, and only
//! then let the finalizer go. A 5xx is never success; past the deadline a condition names what
//! blocks, and the operator keeps trying.
//!
//! The listing shows only what carries our identity tags, so the IDs in status (instance, group,
//! data volume) are also described by ID ([`verify`]) before the finalizer goes: one that lives
//! under another operator id, env or owner tag is never deleted and blocks the delete as
//! [`Blocker::IdentityMismatch`], said at once with reason IdentityMismatch.

use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use molecule_crds::conditions;
use molecule_crds::v1alpha1::{DeletionPolicy, Workspace, WorkspacePhase};

use super::controller::Reconciler;
use super::scope::apply_status;
use super::{display, dns, owner_of};
use crate::cloud::InstanceState;
use crate::context::Context;
use crate::reconcile::launch::listing_since;
use crate::reconcile::launch::verify::{self, Mismatch, Seen};
use crate::reconcile::teardown::{self, Blocker, Outcome, wait_on};
use crate::reconcile::{Error, publish};

/// How often a delete looks again while AWS works.
const POLL: Duration = Duration::from_secs(3);
/// How often a delete blocked by an identity mismatch looks again (a person has to act).
const MISMATCH_POLL: Duration = Duration::from_secs(15);

fn wait(on: Blocker, what: String) -> Error {
    wait_on(on, what, POLL)
}

/// Runs the protocol; an `Err(Waiting)` means "not yet" and requeues.
pub async fn cleanup(ws: &Workspace, r: &Reconciler) -> Result<Action, Error> {
    let result = steps(ws, r).await;
    if let Err(e) = &result {
        report_blocker(ws, &r.ctx, e).await;
    }
    result
}

async fn steps(ws: &Workspace, r: &Reconciler) -> Result<Action, Error> {
    let ctx = r.ctx.as_ref();
    let owner = owner_of(ws);
    let uid = owner.uid.clone();
    if ws.status.as_ref().and_then(|s| s.phase) != Some(WorkspacePhase::Terminating) {
        let mut st = ws.status.clone().unwrap_or_default();
        st.phase = Some(WorkspacePhase::Terminating);
        apply_status(ctx, ws, &st).await?;
        publish(
            ctx,
            &ws.object_ref(&()),
            false,
            "Terminating",
            "deleting the instance, security group, volumes and DNS records".into(),
        )
        .await;
    }
    if ws.spec.deletion_policy == DeletionPolicy::Retain {
        return retain(ws, r, &owner).await;
    }
    instances_gone(ws, ctx, &uid).await?;
    status_instance_gone(ws, ctx, &uid).await?;
    // The Workspace's own secret, once no instance of it can read it any more. Once confirmed
    // deleted, the later passes (waiting for the DNS delete) do not list and describe it again:
    // nothing creates a deleting Workspace's secret; a restarted operator looks once more.
    if !r.secrets_gone.seen(&uid) {
        let known = ws.status.as_ref().and_then(|s| s.secret_arn.as_deref());
        if let Some(arn) = super::secret::remove(ctx, &ctx.main, &owner, known).await?.first() {
            return Err(Error::waiting_for(format!("secret {arn} to be deleted"), POLL));
        }
        r.secrets_gone.mark(&uid);
    }
    groups_and_volumes_gone(ctx, &uid).await?;
    status_group_and_volume_gone(ws, ctx, &uid).await?;
    forget_gone(ws, ctx).await?;

    records_gone(ws, ctx, &owner).await?;

    // 5. The Lease, the ledger; then the finalizer goes (the caller removes it on Ok).
    display::remove(ctx, &r.leases, ws).await?;
    r.admission.release(&ws.spec.tenant, &uid);
    tracing::info!(workspace = %owner.qualified(), uid = %uid, "workspace deleted: instance, security group, volumes and records confirmed gone");
    publish(
        ctx,
        &ws.object_ref(&()),
        false,
        "Deleted",
        "instance, security group, volumes and DNS records confirmed gone".into(),
    )
    .await;
    Ok(Action::await_change())
}

/// Everything status names is confirmed gone: status forgets the IDs, so the passes that wait
/// for the DNS delete and the finalizer's do not describe them by ID and delete the secret again
/// (at 1,000 Workspaces that was about 3 DescribeInstances, 3 DescribeSecurityGroups and 3
/// DeleteSecret per Workspace). One status write; a crash before it repeats the confirmations.
async fn forget_gone(ws: &Workspace, ctx: &Context) -> Result<(), Error> {
    let Some(st) = ws.status.as_ref() else { return Ok(()) };
    if st.instance_id.is_none()
        && st.security_group_id.is_none()
        && st.data_volume_id.is_none()
        && st.secret_arn.is_none()
    {
        return Ok(());
    }
    let mut st = st.clone();
    (st.instance_id, st.security_group_id, st.data_volume_id, st.secret_arn) = (None, None, None, None);
    apply_status(ctx, ws, &st).await
}

/// Step 4, DNS. The name is derived, not read from status: a record written just before a crash
/// may never have reached status. A record that is not this Workspace's is left untouched.
async fn records_gone(ws: &Workspace, ctx: &Context, owner: &crate::cloud::tags::Owner) -> Result<(), Error> {
    let Some(d) = ctx.dns.as_deref() else { return Ok(()) };
    let ns = owner.namespace.as_deref().unwrap_or_default();
    let host = dns::hostname(&owner.name, ns, &owner.tenant, &ctx.settings.workspace_domain);
    if dns::remove(d, &ctx.identity.dns_mark(owner), &host, false).await? {
        let note = format!("{host} has a record that is not this Workspace's; left untouched");
        publish(ctx, &ws.object_ref(&()), true, "RecordNotOwned", note).await;
    }
    ctx.failpoints.hit("workspace.delete.after-dns").await;
    Ok(())
}

/// `deletionPolicy: Retain`: tags every cloud resource of the Workspace as retained and lets it
/// go, touching nothing else. The DNS record stays; the orphan scan reports the lot as retained.
async fn retain(ws: &Workspace, r: &Reconciler, owner: &crate::cloud::tags::Owner) -> Result<Action, Error> {
    let ctx = r.ctx.as_ref();
    // Tag from a listing newer than the delete and than any launch whose outcome is unknown: an
    // instance launched just before must be tagged too, or the scan would call it an orphan.
    let uid = owner.uid.as_str();
    listing_since(&ctx.main.cache, complete_listing_since(ws, ctx, uid), "a fleet listing newer than the delete")?;
    let mut ids: Vec<String> =
        ctx.main.cache.instances_of(uid).into_iter().filter(|i| i.state.is_alive()).map(|i| i.id).collect();
    ids.extend(ctx.main.cache.groups_of(uid).into_iter().map(|g| g.id));
    ids.extend(
        ctx.main
            .cache
            .volumes_of(uid)
            .into_iter()
            .filter(|v| !matches!(v.state.as_str(), "deleting" | "deleted"))
            .map(|v| v.id),
    );
    let tags = std::collections::BTreeMap::from([(crate::cloud::tags::RETAINED.to_owned(), "true".to_owned())]);
    // Written through to the cache (the account's clients do) before the finalizer goes: the
    // orphan scan reads the cache, and until the next listing it would otherwise see these as
    // untagged resources of a gone owner.
    ctx.main.instances.tag(&ids, &tags).await?;
    ids.extend(super::secret::retain(ctx, owner).await?);
    display::remove(ctx, &r.leases, ws).await?;
    r.admission.release(&ws.spec.tenant, uid);
    let list = if ids.is_empty() { "nothing".to_owned() } else { ids.join(", ") };
    tracing::info!(workspace = %owner.qualified(), uid = %uid, retained = %list, "workspace deleted with deletionPolicy Retain: cloud resources left in place");
    publish(
        ctx,
        &ws.object_ref(&()),
        false,
        "Retained",
        format!("deletionPolicy Retain: left in place and tagged moleculesai.app/retained=true: {list}"),
    )
    .await;
    Ok(Action::await_change())
}

/// Terminates every instance of `uid` and waits until a fresh listing shows them terminated.
async fn instances_gone(ws: &Workspace, ctx: &Context, uid: &str) -> Result<(), Error> {
    let uid = uid.to_owned();
    // 1. Instances: terminate all, wait for all to be terminated.
    let instances = ctx.main.cache.instances_of(&uid);
    let to_terminate: Vec<String> = instances.iter().filter(|i| i.state.is_alive()).map(|i| i.id.clone()).collect();
    if !to_terminate.is_empty() {
        teardown::terminate(&ctx.main, &to_terminate).await?;
        ctx.failpoints.hit("workspace.delete.after-terminate").await;
    }
    let pending: Vec<&str> =
        instances.iter().filter(|i| i.state != InstanceState::Terminated).map(|i| i.id.as_str()).collect();
    if let Some(first) = pending.first() {
        ctx.main.cache.request_refresh();
        return Err(wait(
            Blocker::Instance((*first).to_owned()),
            format!("instance {} to be terminated", pending.join(", ")),
        ));
    }
    // The cache says all gone. Trust it only from a listing that started after the delete did
    // (deletionTimestamp has whole seconds: one more) and after any launch whose outcome is
    // unknown: every launch for this Workspace happened before that, so an instance the cache
    // had not seen would be in that listing. One listing serves every Workspace being deleted.
    listing_since(&ctx.main.cache, complete_listing_since(ws, ctx, &uid), "a fleet listing newer than the delete")?;
    Ok(())
}

fn mismatch(m: Mismatch) -> Error {
    let what = m.to_string();
    wait_on(Blocker::IdentityMismatch(m), what, MISMATCH_POLL)
}

/// The instance status names, described by ID (the listing sees only what carries our identity
/// tags): gone or terminated lets the delete go on; ours but unlisted is terminated and waited
/// for; alive under another identity blocks the delete (never terminated by us).
async fn status_instance_gone(ws: &Workspace, ctx: &Context, uid: &str) -> Result<(), Error> {
    let Some(id) = ws.status.as_ref().and_then(|s| s.instance_id.clone()) else { return Ok(()) };
    match verify::instance(&ctx.main, &ctx.identity, uid, &id).await? {
        Seen::Absent => Ok(()),
        Seen::Ours(i) | Seen::Foreign(i, _) if i.state == InstanceState::Terminated => Ok(()),
        Seen::Foreign(i, m) if i.state.is_alive() => Err(mismatch(m)),
        Seen::Ours(i) | Seen::Foreign(i, _) => {
            if i.state.is_alive() {
                teardown::terminate(&ctx.main, std::slice::from_ref(&i.id)).await?;
            }
            Err(wait(Blocker::Instance(i.id.clone()), format!("instance {} ({}) to be terminated", i.id, i.state)))
        }
    }
}

/// The security group and data volume status names, described by ID after the listed ones are
/// deleted: ours but unlisted are deleted now; under another identity they block the delete.
async fn status_group_and_volume_gone(ws: &Workspace, ctx: &Context, uid: &str) -> Result<(), Error> {
    let st = ws.status.as_ref();
    if let Some(id) = st.and_then(|s| s.security_group_id.as_deref()) {
        match verify::group(&ctx.main, &ctx.identity, uid, id).await? {
            Seen::Absent => {}
            Seen::Foreign(_, m) => return Err(mismatch(m)),
            Seen::Ours(g) => {
                if let Outcome::InUse { code, .. } = teardown::delete_group(&ctx.main, &g.id).await? {
                    let what = format!("security group {} is still in use ({code})", g.id);
                    return Err(wait(Blocker::SecurityGroup(g.id), what));
                }
            }
        }
    }
    if let Some(id) = st.and_then(|s| s.data_volume_id.as_deref()) {
        match verify::volume(&ctx.main, &ctx.identity, uid, id).await? {
            Seen::Absent => {}
            Seen::Ours(v) | Seen::Foreign(v, _) if !teardown::volume_alive(&v) => {}
            Seen::Foreign(_, m) => return Err(mismatch(m)),
            Seen::Ours(v) => match teardown::delete_volume(&ctx.main, uid, &v, true).await? {
                Outcome::Deleted => {}
                Outcome::Detaching | Outcome::InUse { .. } => {
                    return Err(wait(Blocker::Volume(v.id.clone()), format!("volume {} to be deleted", v.id)));
                }
            },
        }
    }
    Ok(())
}

/// When a listing must have started to hold every instance of `uid`: after the delete
/// (deletionTimestamp has whole seconds: one more), and, for a launch the status records within
/// the listing lag (`launchedAt`, or a RunInstances whose outcome is unknown: the in-memory guard
/// or the persisted `uncertainSince`), at least the listing allowance after it (a listing lags a
/// new instance by up to `LISTING_LAG`; ERASURE_LISTING_ALLOWANCE_SECONDS).
fn complete_listing_since(ws: &Workspace, ctx: &Context, uid: &str) -> Timestamp {
    let deleted = ws.metadata.deletion_timestamp.as_ref().map_or_else(Timestamp::now, |t| t.0);
    let launch = ws.status.as_ref().and_then(|s| s.launch.as_ref());
    let persisted = launch.and_then(|l| l.uncertain_since.as_deref()).and_then(|t| t.parse::<Timestamp>().ok());
    let uncertain = ctx.main.guard.since(uid).into_iter().chain(persisted).max();
    let launched = launch.and_then(|l| l.launched_at.as_deref()).and_then(|t| t.parse::<Timestamp>().ok());
    let allowance =
        jiff::SignedDuration::try_from(ctx.settings.erasure_listing_allowance).unwrap_or(jiff::SignedDuration::MAX);
    let after = |t: Timestamp| t.checked_add(allowance).unwrap_or(Timestamp::MAX);
    uncertain.into_iter().chain(launched).map(after).fold(deleted + jiff::SignedDuration::from_secs(1), Timestamp::max)
}

/// Deletes the security groups and volumes of `uid`.
async fn groups_and_volumes_gone(ctx: &Context, uid: &str) -> Result<(), Error> {
    let uid = uid.to_owned();
    // 2. Security groups.
    for g in ctx.main.cache.groups_of(&uid) {
        if let Outcome::InUse { code, .. } = teardown::delete_group(&ctx.main, &g.id).await? {
            let what = format!("security group {} is still in use ({code})", g.id);
            return Err(wait(Blocker::SecurityGroup(g.id), what));
        }
        ctx.failpoints.hit("workspace.delete.after-sg").await;
    }

    // 3. Volumes: the data volume, and any root volume EC2 kept.
    for v in ctx.main.cache.volumes_of(&uid).into_iter().filter(teardown::volume_alive) {
        match teardown::delete_volume(&ctx.main, &uid, &v, true).await? {
            Outcome::Deleted => {}
            Outcome::Detaching => {
                let from = v.attached_to.clone().unwrap_or_default();
                return Err(wait(Blocker::Volume(v.id.clone()), format!("volume {} to detach from {from}", v.id)));
            }
            Outcome::InUse { .. } => {
                return Err(wait(Blocker::Volume(v.id.clone()), format!("volume {} is still in use", v.id)));
            }
        }
        if v.attached_to.is_none() {
            ctx.failpoints.hit("workspace.delete.after-volume").await;
        }
    }

    Ok(())
}

/// The cloud resource a failed delete step is about: the typed blocker of a wait, or the target of
/// a failed cloud call; a listing otherwise.
fn related_id(e: &Error) -> &str {
    match (e.blocker(), e) {
        (Some(b), _) => b.id(),
        (None, Error::Cloud(c)) if !c.target.is_empty() => &c.target,
        _ => Blocker::Listing.id(),
    }
}

/// Past the deadline, says in a condition (and one Event) what blocks the delete; an identity
/// mismatch at once, with its own reason (waiting will not fix it).
async fn report_blocker(ws: &Workspace, ctx: &Context, e: &Error) {
    let Some(since) = ws.metadata.deletion_timestamp.as_ref().map(|t| t.0) else { return };
    let elapsed = Timestamp::now().duration_since(since).as_secs();
    let mismatch = matches!(e.blocker(), Some(Blocker::IdentityMismatch(_)));
    if !mismatch && u64::try_from(elapsed).unwrap_or(0) < ctx.settings.deprovision_deadline.as_secs() {
        return;
    }
    let what = match e {
        Error::Waiting { what, .. } => what.clone(),
        other => other.to_string(),
    };
    let message = format!("delete blocked: {what}; waiting since {elapsed}s, still retrying");
    let old = ws.status.as_ref().and_then(|s| conditions::get(&s.conditions, "Ready"));
    let reason = if mismatch { verify::REASON } else { "DeletionBlocked" };
    if old.as_ref().is_some_and(|c| c.reason == reason && c.message.split(';').next() == message.split(';').next()) {
        return;
    }
    // The blocking resource is the Event's related object: Events about different blockers stay
    // separate series (the recorder folds repeats of one Event, related object included).
    // The Event goes first, so whoever sees the condition finds the Event too.
    let related = k8s_openapi::api::core::v1::ObjectReference {
        kind: Some("AwsResource".into()),
        name: Some(related_id(e).to_owned()),
        ..Default::default()
    };
    crate::reconcile::publish_about(ctx, &ws.object_ref(&()), Some(related), true, reason, message.clone()).await;
    let mut st = ws.status.clone().unwrap_or_default();
    let now = Timestamp::now().to_string();
    super::status::set_failed(&mut st, &[], reason, &message, ws.metadata.generation, &now);
    if let Err(err) = apply_status(ctx, ws, &st).await {
        tracing::warn!(error = %err, "failed to write the DeletionBlocked condition");
    }
    tracing::warn!(workspace = %ws.name_any(), blocker = %what, "delete past its deadline");
}
