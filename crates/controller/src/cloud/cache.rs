//! The fleet cache: every instance, security group and volume carrying our managed-by and env
//! tags, read with one paginated describe per resource type per refresh and indexed by owner uid.
//!
//! Reconcilers read from here (no per-object describe in steady state) and write their own
//! mutations through, so the next reconcile sees them before the next refresh does. A refresh that
//! started before a write-through never overwrites it. Owners whose cloud state changed in a
//! refresh are announced, so their reconcile runs at once instead of on a timer.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use super::tags::{OWNER, OWNER_KIND, OWNER_UID, TENANT};
use super::{CloudResult, Instance, Instances, Network, SecurityGroup, Volume, Volumes};
use crate::metrics::Metrics;

#[path = "cache_feed.rs"]
mod feed;

/// Shortest gap between two refreshes, however often one is requested: many reconciles asking
/// for fresh state at once share one describe pass (the batching).
const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);
/// Announcements kept for slow listeners; a listener that lags catches up on its periodic requeue.
const CHANGE_BUFFER: usize = 8192;
/// How long a resource we created may be missing from a listing (AWS's Describe* calls are
/// eventually consistent: seconds, sometimes more) before the cache believes the listing. Until
/// then a listing that lacks it keeps the written-through copy, so no caller creates it twice.
pub const LISTING_LAG: Duration = Duration::from_mins(2);

/// An owner whose cloud state changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnerRef {
    /// Workspace or Tenant.
    pub kind: String,
    /// Namespace, for Workspaces.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// The cache's contents (opaque outside this module).
#[derive(Debug, Default)]
pub struct Snapshot {
    instances: HashMap<String, Vec<Instance>>,
    groups: HashMap<String, Vec<SecurityGroup>>,
    volumes: HashMap<String, Vec<Volume>>,
    owners: HashMap<String, OwnerRef>,
    /// Last write-through per owner uid.
    touched: HashMap<String, Instant>,
    /// Resources we created (by ID, with their owner uid and when), kept through listings that
    /// do not show them yet, for [`LISTING_LAG`].
    created: HashMap<String, (String, Instant)>,
    /// When the last successful refresh started (wall clock: it is compared with Kubernetes
    /// timestamps and with the time a launch's outcome became unknown).
    refreshed: Option<Timestamp>,
}

/// What the cache holds: instances, security groups and volumes, each with an ID and owner tags.
pub trait Cached: Clone {
    /// The resource ID.
    fn id(&self) -> &str;
    /// Its tags.
    fn tags(&self) -> &BTreeMap<String, String>;
    /// Where the snapshot keeps this kind, by owner uid.
    #[doc(hidden)]
    fn index(s: &mut Snapshot) -> &mut HashMap<String, Vec<Self>>;
}

impl Cached for Instance {
    fn id(&self) -> &str {
        &self.id
    }
    fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }
    fn index(s: &mut Snapshot) -> &mut HashMap<String, Vec<Self>> {
        &mut s.instances
    }
}

impl Cached for SecurityGroup {
    fn id(&self) -> &str {
        &self.id
    }
    fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }
    fn index(s: &mut Snapshot) -> &mut HashMap<String, Vec<Self>> {
        &mut s.groups
    }
}

impl Cached for Volume {
    fn id(&self) -> &str {
        &self.id
    }
    fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }
    fn index(s: &mut Snapshot) -> &mut HashMap<String, Vec<Self>> {
        &mut s.volumes
    }
}

/// See the module docs.
pub struct FleetCache {
    account: &'static str,
    filter: BTreeMap<String, String>,
    instances: Arc<dyn Instances>,
    network: Arc<dyn Network>,
    volumes: Arc<dyn Volumes>,
    snap: RwLock<Snapshot>,
    wake: Notify,
    changes: broadcast::Sender<OwnerRef>,
    metrics: Metrics,
    /// The safety resync when EC2 notifications feed the cache (`feed`); polling without.
    resync: std::sync::OnceLock<Duration>,
}

impl std::fmt::Debug for FleetCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetCache").field("filter", &self.filter).finish_non_exhaustive()
    }
}

fn uid_of(tags: &BTreeMap<String, String>) -> Option<&String> {
    tags.get(OWNER_UID)
}

fn owner_of(tags: &BTreeMap<String, String>) -> Option<OwnerRef> {
    let kind = tags.get(OWNER_KIND)?.clone();
    let owner = tags.get(OWNER)?;
    let (namespace, name) = match owner.split_once('/') {
        Some((ns, n)) => (Some(ns.to_owned()), n.to_owned()),
        None => (None, owner.clone()),
    };
    Some(OwnerRef { kind, namespace, name })
}

/// Items by owner uid; items without one (ours by managed-by and env, owner unknown) under "",
/// where only the orphan scan looks.
/// Takes the listing: a copy would hold a third copy of the fleet (listing, old and new snapshot)
/// at the peak of each refresh.
fn group_by<T: Cached>(items: Vec<T>) -> HashMap<String, Vec<T>> {
    let mut m: HashMap<String, Vec<T>> = HashMap::new();
    for i in items {
        m.entry(uid_of(i.tags()).cloned().unwrap_or_default()).or_default().push(i);
    }
    m
}

/// Carries the resources we created less than [`LISTING_LAG`] ago that the new listing lacks
/// from `from` into `to`, and the record of them.
fn carry_created(from: &mut Snapshot, to: &mut Snapshot) {
    let now = Instant::now();
    let recent: Vec<(String, String, Instant)> = from
        .created
        .iter()
        .filter(|(_, (_, at))| now.duration_since(*at) < LISTING_LAG)
        .map(|(id, (uid, at))| (id.clone(), uid.clone(), *at))
        .collect();
    for (id, uid, at) in recent {
        to.created.insert(id.clone(), (uid.clone(), at));
        carry_one::<Instance>(from, to, &uid, &id);
        carry_one::<SecurityGroup>(from, to, &uid, &id);
        carry_one::<Volume>(from, to, &uid, &id);
    }
}

/// Carries resource `id` of `uid` from `from` into `to` when `to` lacks it.
fn carry_one<T: Cached>(from: &mut Snapshot, to: &mut Snapshot, uid: &str, id: &str) {
    let Some(item) = T::index(from).get(uid).and_then(|v| v.iter().find(|x| x.id() == id)).cloned() else { return };
    if !to.owners.contains_key(uid)
        && let Some(o) = owner_of(item.tags())
    {
        to.owners.insert(uid.to_owned(), o);
    }
    let list = T::index(to).entry(uid.to_owned()).or_default();
    if !list.iter().any(|x| x.id() == id) {
        list.push(item);
    }
}

/// Carries `uid`'s entries of one kind from `from` into `to`.
fn keep<T: Cached>(from: &mut Snapshot, to: &mut Snapshot, uid: &str) {
    match T::index(from).get(uid).cloned() {
        Some(v) => T::index(to).insert(uid.to_owned(), v),
        None => T::index(to).remove(uid),
    };
}

fn fingerprint(s: &Snapshot, uid: &str) -> u64 {
    let mut h = DefaultHasher::new();
    format!("{:?}{:?}{:?}", s.instances.get(uid), s.groups.get(uid), s.volumes.get(uid)).hash(&mut h);
    h.finish()
}

impl FleetCache {
    /// A cache of everything carrying `filter` (our managed-by and env tags) in `account`.
    pub fn new(
        account: &'static str,
        filter: BTreeMap<String, String>,
        instances: Arc<dyn Instances>,
        network: Arc<dyn Network>,
        volumes: Arc<dyn Volumes>,
        metrics: Metrics,
    ) -> Self {
        Self {
            account,
            filter,
            instances,
            network,
            volumes,
            snap: RwLock::default(),
            wake: Notify::new(),
            changes: broadcast::channel(CHANGE_BUFFER).0,
            metrics,
            resync: std::sync::OnceLock::new(),
        }
    }

    /// Announcements of owners whose cloud state changed.
    pub fn subscribe(&self) -> broadcast::Receiver<OwnerRef> {
        self.changes.subscribe()
    }

    /// One describe pass over instances, security groups and volumes.
    pub async fn refresh(&self) -> CloudResult<()> {
        let started = Instant::now();
        let started_wall = Timestamp::now();
        let instances = self.instances.list(&self.filter).await?;
        let groups = self.network.list(&self.filter).await?;
        let volumes = self.volumes.list(&self.filter).await?;
        let label = crate::metrics::AccountLabel { account: self.account };
        self.metrics.cache_refreshes.get_or_create(&label).inc();
        self.metrics.cached_instances.get_or_create(&label).set(i64::try_from(instances.len()).unwrap_or(i64::MAX));

        let mut owners = HashMap::new();
        let tag_sets = instances
            .iter()
            .map(|i| &i.tags)
            .chain(groups.iter().map(|g| &g.tags))
            .chain(volumes.iter().map(|v| &v.tags));
        for tags in tag_sets {
            if let (Some(uid), Some(o)) = (uid_of(tags), owner_of(tags)) {
                owners.insert(uid.clone(), o);
            }
        }
        let mut next = Snapshot {
            instances: group_by(instances),
            groups: group_by(groups),
            volumes: group_by(volumes),
            owners,
            touched: HashMap::new(),
            created: HashMap::new(),
            refreshed: Some(started_wall),
        };
        let changed = {
            let Ok(mut cur) = self.snap.write() else { return Ok(()) };
            // Keep write-throughs newer than this pass: it may have read before they happened.
            let newer: Vec<(String, Instant)> =
                cur.touched.iter().filter(|(_, at)| **at >= started).map(|(u, at)| (u.clone(), *at)).collect();
            for (uid, at) in newer {
                next.touched.insert(uid.clone(), at);
                keep::<Instance>(&mut cur, &mut next, &uid);
                keep::<SecurityGroup>(&mut cur, &mut next, &uid);
                keep::<Volume>(&mut cur, &mut next, &uid);
                if let Some(o) = cur.owners.get(&uid) {
                    next.owners.insert(uid, o.clone());
                }
            }
            carry_created(&mut cur, &mut next);
            let uids: std::collections::HashSet<&String> = cur.owners.keys().chain(next.owners.keys()).collect();
            let changed: Vec<OwnerRef> = uids
                .into_iter()
                .filter(|u| fingerprint(&cur, u) != fingerprint(&next, u))
                .filter_map(|u| next.owners.get(u).or_else(|| cur.owners.get(u)).cloned())
                .collect();
            *cur = next;
            changed
        };
        for o in changed {
            // No listener yet is fine: reconciles read the cache anyway.
            let _ = self.changes.send(o);
        }
        Ok(())
    }

    /// Refreshes every `interval` (fed by EC2 notifications: every resync, and every `interval`
    /// while an instance settles; see [`FleetCache::feed_events`]), or sooner when
    /// [`FleetCache::request_refresh`] is called.
    /// Each pass that got an answer (a listing, or an error other than a timeout) is progress for
    /// the watchdog (`fleet-cache/<account>`; only the main account's stall fails `/healthz`).
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let name = format!("fleet-cache/{}", self.account);
        let bound = crate::watchdog::bound_for(self.resync().unwrap_or(interval).max(interval) + MIN_REFRESH_GAP, 3);
        let beat = crate::watchdog::global().register(&name, bound, self.account == crate::watchdog::MAIN_ACCOUNT);
        loop {
            self.wait_next(interval).await;
            match self.refresh().await {
                Ok(()) => beat.progress(),
                Err(e) => {
                    if !e.timed_out() {
                        beat.progress();
                    }
                    tracing::warn!(error = %e, account = self.account, "fleet cache refresh failed; keeping the last snapshot");
                }
            }
            tokio::time::sleep(MIN_REFRESH_GAP).await;
        }
    }

    /// Asks for an early refresh (shared by every caller until it runs).
    pub fn request_refresh(&self) {
        self.wake.notify_one();
    }

    /// When the last successful refresh started.
    pub fn last_refresh(&self) -> Option<Timestamp> {
        self.snap.read().ok().and_then(|s| s.refreshed)
    }

    /// Whether a refresh that started at or after `t` has completed.
    pub fn refreshed_since(&self, t: Timestamp) -> bool {
        self.snap.read().ok().and_then(|s| s.refreshed).is_some_and(|r| r >= t)
    }

    /// Instances of an owner, terminated ones included.
    pub fn instances_of(&self, uid: &str) -> Vec<Instance> {
        self.snap.read().ok().and_then(|s| s.instances.get(uid).cloned()).unwrap_or_default()
    }

    /// Security groups of an owner.
    pub fn groups_of(&self, uid: &str) -> Vec<SecurityGroup> {
        self.snap.read().ok().and_then(|s| s.groups.get(uid).cloned()).unwrap_or_default()
    }

    /// Volumes of an owner.
    pub fn volumes_of(&self, uid: &str) -> Vec<Volume> {
        self.snap.read().ok().and_then(|s| s.volumes.get(uid).cloned()).unwrap_or_default()
    }

    /// Everything in the cache: (instances, groups, volumes).
    pub fn all(&self) -> (Vec<Instance>, Vec<SecurityGroup>, Vec<Volume>) {
        let Ok(s) = self.snap.read() else { return (vec![], vec![], vec![]) };
        (
            s.instances.values().flatten().cloned().collect(),
            s.groups.values().flatten().cloned().collect(),
            s.volumes.values().flatten().cloned().collect(),
        )
    }

    /// Everything tagged with tenant `slug`, whoever owns it: (instances, groups, volumes).
    pub fn of_tenant(&self, slug: &str) -> (Vec<Instance>, Vec<SecurityGroup>, Vec<Volume>) {
        fn pick<T: Cached>(m: &HashMap<String, Vec<T>>, slug: &str) -> Vec<T> {
            m.values().flatten().filter(|x| x.tags().get(TENANT).is_some_and(|t| t == slug)).cloned().collect()
        }
        let Ok(s) = self.snap.read() else { return (vec![], vec![], vec![]) };
        (pick(&s.instances, slug), pick(&s.groups, slug), pick(&s.volumes, slug))
    }

    fn touch(&self, uid: &str, f: impl FnOnce(&mut Snapshot)) {
        if let Ok(mut s) = self.snap.write() {
            f(&mut s);
            s.touched.insert(uid.to_owned(), Instant::now());
        }
    }

    /// Writes an instance, group or volume through (after a create or a change we caused).
    pub fn put<T: Cached>(&self, uid: &str, item: T) {
        self.touch(uid, |s| {
            if let Some(o) = owner_of(item.tags()) {
                s.owners.insert(uid.to_owned(), o);
            }
            let list = T::index(s).entry(uid.to_owned()).or_default();
            list.retain(|x| x.id() != item.id());
            list.push(item);
        });
    }

    /// Writes a resource we just created through, and keeps it through listings that do not
    /// show it yet (for [`LISTING_LAG`]).
    pub fn put_created<T: Cached>(&self, uid: &str, item: T) {
        let id = item.id().to_owned();
        self.put(uid, item);
        if let Ok(mut s) = self.snap.write() {
            s.created.insert(id, (uid.to_owned(), Instant::now()));
        }
    }

    /// The clients this cache lists with (the ones [`super::cached::CachedClients::of`] wraps).
    pub fn clients(&self) -> (Arc<dyn Instances>, Arc<dyn Network>, Arc<dyn Volumes>) {
        (self.instances.clone(), self.network.clone(), self.volumes.clone())
    }

    /// The owner uid under which the cache holds resource `id` of kind `T` ("" when untagged).
    pub fn holder<T: Cached>(&self, id: &str) -> Option<String> {
        let mut s = self.snap.write().ok()?;
        T::index(&mut s).iter().find(|(_, v)| v.iter().any(|x| x.id() == id)).map(|(u, _)| u.clone())
    }

    /// Changes the cached resource `id` in place, wherever it is held (a write-through when the
    /// caller knows the ID but not the owner). False when the cache does not hold it.
    pub fn modify<T: Cached>(&self, id: &str, f: impl FnOnce(&mut T)) -> bool {
        let Ok(mut s) = self.snap.write() else { return false };
        let found =
            T::index(&mut s).iter_mut().find_map(|(u, v)| v.iter_mut().find(|x| x.id() == id).map(|x| (u.clone(), x)));
        let Some((uid, item)) = found else { return false };
        f(item);
        s.touched.insert(uid, Instant::now());
        true
    }

    /// Forgets a deleted resource `id` of kind `T`, wherever it is held. False when not held.
    pub fn forget<T: Cached>(&self, id: &str) -> bool {
        let Some(uid) = self.holder::<T>(id) else { return false };
        self.remove::<T>(&uid, id);
        true
    }

    /// Forgets a deleted instance, group or volume.
    pub fn remove<T: Cached>(&self, uid: &str, id: &str) {
        self.touch(uid, |s| {
            T::index(s).entry(uid.to_owned()).or_default().retain(|x| x.id() != id);
            s.created.remove(id);
        });
    }
}
