//! The launch protocol, once, for every kind that owns one instance (a Workspace, a Tenant's
//! VM): observe the owner's instances in its account's fleet cache, plan (pure, [`plan`]), then
//! execute the steps ([`exec`]) with the launch token in status before RunInstances, the
//! uncertain-launch guard, duplicate repair, stop/start, replacement and the data volume.
//!
//! A kind plugs in through [`Subject`]: who owns the instance, what to launch, and how its
//! status records the attempt. Nothing here knows Workspaces or Tenants.

pub mod exec;
pub mod plan;
pub mod verify;

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use molecule_crds::v1alpha1::LaunchRecord;

use crate::cloud::tags::Owner;
use crate::cloud::{Instance, LaunchRequest, Volume};
use crate::context::Account;
use crate::failpoints::Failpoints;
use crate::metrics::Metrics;
use crate::reconcile::Error;

pub use self::plan::{Inputs, LaunchReason, Plan, SPEC_HASH_TAG, Step, TerminateWhy};

/// How long a just-launched instance may be missing from DescribeInstances (eventually
/// consistent) before it counts as lost: the fleet cache's own allowance, so the cache stops
/// carrying a written-through instance exactly when the protocol stops waiting for it.
pub use crate::cloud::cache::LISTING_LAG;

/// Device name the data volume is attached at (NVMe instances expose it by volume id instead).
pub const DATA_DEVICE: &str = "/dev/sdf";

/// The object that owns the instance, as the protocol needs to see it.
#[async_trait]
pub trait Subject: Send + Sync {
    /// The owner's status, which records the launch attempt and the instance.
    type Status: Send;

    /// Owner tags (kind, uid, names).
    fn owner(&self) -> &Owner;
    /// What Events call the instance ("instance", "tenant VM").
    fn noun(&self) -> &'static str;
    /// Hash of what the instance is made of (tagged on it; a different hash is drift).
    fn spec_hash(&self) -> &str;
    /// The RunInstances request, without token and tags (the executor adds them).
    fn request(&self) -> Result<LaunchRequest, Error>;
    /// The data volume, when the owner has one.
    fn data_volume(&self) -> Option<&Volume> {
        None
    }
    /// The attempt recorded in status.
    fn record<'s>(&self, st: &'s mut Self::Status) -> &'s mut Option<LaunchRecord>;
    /// The instance ID in status.
    fn instance_id<'s>(&self, st: &'s mut Self::Status) -> &'s mut Option<String>;
    /// Called once RunInstances succeeded, before the status is written.
    fn launched(&self, _st: &mut Self::Status, _inst: &Instance) {}
    /// Writes the whole status now (the protocol needs a record before the next side effect).
    async fn persist(&self, st: &Self::Status) -> Result<(), Error>;
    /// Publishes an Event about the owner.
    async fn event(&self, warning: bool, reason: &'static str, note: String);
}

/// What the executor works with: the owner's account and the process's failpoints and metrics.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The account the instance lives in.
    pub account: &'a Account,
    /// The operator's tags.
    pub identity: &'a crate::cloud::tags::Identity,
    /// Armed failpoints (tests only).
    pub failpoints: &'a Failpoints,
    /// Metrics.
    pub metrics: &'a Metrics,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("account", &self.account.name).finish_non_exhaustive()
    }
}

/// The EC2 ClientToken of a launch attempt: deterministic per (kind, uid, attempt), naming its
/// kind, at most 64 characters.
pub fn token(owner: &Owner, attempt: u32) -> String {
    use crate::cloud::marks::{LaunchToken, OwnerKind};
    use sha2::{Digest, Sha256};
    let kind = if owner.kind == "Tenant" { OwnerKind::Tenant } else { OwnerKind::Workspace };
    if let Some(t) = LaunchToken::new(kind, &owner.uid, attempt) {
        return t.render();
    }
    // A uid too long for a readable token (Kubernetes uids are 36 characters): hashed, same kind.
    let h = Sha256::digest(format!("{}:{attempt}", owner.uid).as_bytes());
    let prefix = LaunchToken::new(kind, "x", 0).map(|t| t.render()).unwrap_or_default();
    format!("{}{}", prefix.trim_end_matches("x-0"), hex::encode(&h[..24]))
}

/// When the recorded attempt was launched.
pub fn launched_at(rec: Option<&LaunchRecord>) -> Option<Timestamp> {
    rec.and_then(|l| l.launched_at.as_deref()).and_then(|t| t.parse::<Timestamp>().ok())
}

/// Whether the recorded attempt was launched less than [`LISTING_LAG`] before `now`.
pub fn just_launched(rec: Option<&LaunchRecord>, now: Timestamp) -> bool {
    let lag = i64::try_from(LISTING_LAG.as_secs()).unwrap_or(i64::MAX);
    launched_at(rec).is_some_and(|t| now.duration_since(t).as_secs() < lag)
}

/// `Ok` once the fleet cache holds a listing that started at or after `t`; until then asks for
/// one (shared by every caller) and waits.
pub fn listing_since(cache: &crate::cloud::cache::FleetCache, t: Timestamp, what: &str) -> Result<(), Error> {
    if cache.refreshed_since(t) {
        return Ok(());
    }
    cache.request_refresh();
    Err(Error::waiting_for(what, Duration::from_secs(1)))
}

/// When `s`'s last launch failed with an unknown outcome, if it did: the account's memory or,
/// after a restart or a change of leader, `status.launch.uncertainSince`.
pub fn uncertain_since<S: Subject>(env: &Env<'_>, s: &S, st: &mut S::Status) -> Option<Timestamp> {
    let persisted = s.record(st).as_ref().and_then(|r| r.uncertain_since.as_deref()).and_then(|t| t.parse().ok());
    env.account.guard.since(&s.owner().uid).into_iter().chain(persisted).max()
}

/// Before a plan reads the cache: an uncertain launch is cleared once the cache holds a listing
/// that started after it, so the plan that follows is made from that listing (the executor
/// launches nothing while one is pending); otherwise it is kept in memory too (the delete path
/// reads it there) and a listing is asked for.
fn settle_guard<S: Subject>(env: &Env<'_>, s: &S, st: &mut S::Status) {
    let Some(t) = uncertain_since(env, s, st) else { return };
    let uid = &s.owner().uid;
    if env.account.cache.refreshed_since(t) {
        env.account.guard.clear(uid);
        if let Some(r) = s.record(st).as_mut() {
            r.uncertain_since = None;
        }
    } else {
        env.account.guard.mark(uid, t);
        env.account.cache.request_refresh();
    }
}

/// Plans the next steps for `s` from its account's fleet cache and its status. A status instance
/// the cache does not list is described by ID first ([`verify::unlisted`]): ours (a lagging
/// listing) joins the plan, gone is lost, one living under another identity stops the plan (no
/// step at all) with [`Plan::mismatch`] set, and a failed describe is not lost yet.
pub async fn plan_for<S: Subject>(
    env: &Env<'_>,
    s: &S,
    st: &mut S::Status,
    want_running: bool,
    replace_allowed: bool,
) -> Plan {
    let uid = s.owner().uid.clone();
    settle_guard(env, s, st);
    let mut instances = env.account.cache.instances_of(&uid);
    let status_instance = s.instance_id(st).clone();
    let rec = s.record(st).clone();
    let mut recent = just_launched(rec.as_ref(), Timestamp::now());
    let mut mismatch = None;
    if let Some(id) = status_instance.as_deref().filter(|id| !instances.iter().any(|x| x.id == *id)) {
        match verify::unlisted(env.account, env.identity, &uid, id).await {
            verify::Unlisted::Gone => {}
            verify::Unlisted::Found(i) => instances.push(i),
            verify::Unlisted::Foreign(m) => mismatch = Some(m),
            verify::Unlisted::Unknown => recent = true,
        }
    }
    let p = plan::plan(&Inputs {
        instances: &instances,
        status_instance: status_instance.as_deref(),
        recorded: rec.as_ref().map(|l| (l.attempt, l.spec_hash.as_str())),
        spec_hash: s.spec_hash(),
        want_running,
        replace_allowed,
        data_volume: s.data_volume(),
        just_launched: recent,
        launched: rec.as_ref().is_some_and(|l| l.launched_at.is_some()),
    });
    match mismatch {
        // Nothing is launched, terminated, stopped or attached while the instance in status lives
        // under another identity.
        Some(m) => Plan { attempt: p.attempt, mismatch: Some(m), ..Plan::default() },
        None => p,
    }
}
