//! What EC2 notifications ([`super::super::events`]) write into the fleet cache, and when a cache
//! fed by them still lists: at the safety resync, on request, and while an instance is settling
//! (pending, stopping, shutting down, or running without its bootstrap's report yet), so that
//! progress a lost notification would hide is still seen at the polling pace.

use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use super::super::tags::BOOT;
use super::super::{Instance, InstanceState};
use super::{FleetCache, LISTING_LAG, OwnerRef, owner_of, uid_of};

/// How long after its launch a running instance without a boot report counts as settling (the
/// default boot deadline is 15 minutes; after it the reconciler terminates or reports it).
const BOOT_SETTLE: Duration = Duration::from_mins(20);

/// Whether `i` is between two steady states.
fn settling(i: &Instance, now: Timestamp) -> bool {
    match i.state {
        InstanceState::Pending | InstanceState::Stopping | InstanceState::ShuttingDown => true,
        InstanceState::Running if i.tag(BOOT).is_none() => i
            .launch_time
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|at| now.duration_since(at).unsigned_abs() < BOOT_SETTLE),
        _ => false,
    }
}

impl FleetCache {
    /// Lists only every `resync` (and on request, and while an instance settles): the cache is fed
    /// by EC2 notifications. Call before [`FleetCache::run`].
    pub fn feed_events(&self, resync: Duration) {
        let _ = self.resync.set(resync);
    }

    /// The safety resync, when the cache is fed by notifications.
    pub fn resync(&self) -> Option<Duration> {
        self.resync.get().copied()
    }

    /// Whether an instance of ours is between two steady states.
    pub fn settling(&self) -> bool {
        let now = Timestamp::now();
        self.snap.read().is_ok_and(|s| s.instances.values().flatten().any(|i| settling(i, now)))
    }

    /// Waits until the next listing is due: `interval` without notifications; with them, the
    /// resync (checked every `interval`, cut short while an instance settles). A request wakes it.
    pub(super) async fn wait_next(&self, interval: Duration) {
        let since = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {},
                () = self.wake.notified() => return,
            }
            match self.resync() {
                None => return,
                Some(resync) if since.elapsed() >= resync || self.settling() => return,
                Some(_) => {}
            }
        }
    }

    /// The state in which the cache holds instance `id`, if it holds it.
    pub fn holds_state(&self, id: &str) -> Option<InstanceState> {
        let s = self.snap.read().ok()?;
        s.instances.values().flatten().find(|i| i.id == id).map(|i| i.state)
    }

    /// Writes what a describe of `ids` found: each found instance (still carrying our tags)
    /// replaces the cached copy, wherever its owner tags now put it; an ID not found is dropped,
    /// unless we created it less than [`LISTING_LAG`] ago (describes lag too). Owners whose
    /// instance changed are announced. Returns how many instances changed.
    pub fn upsert_described(&self, ids: &[String], found: &[Instance]) -> usize {
        let mut announce: Vec<OwnerRef> = Vec::new();
        let mut changed = 0;
        {
            let Ok(mut guard) = self.snap.write() else { return 0 };
            let s = &mut *guard;
            let now = Instant::now();
            for id in ids {
                let held = s
                    .instances
                    .iter()
                    .find_map(|(u, v)| v.iter().find(|x| &x.id == id).map(|x| (u.clone(), x.clone())));
                let new = found
                    .iter()
                    .find(|x| &x.id == id)
                    .filter(|n| self.filter.iter().all(|(k, v)| n.tags.get(k) == Some(v)))
                    .cloned();
                let recent = s.created.get(id).is_some_and(|(_, at)| now.duration_since(*at) < LISTING_LAG);
                if new.is_none() && recent || held.as_ref().map(|(_, x)| x) == new.as_ref() {
                    continue;
                }
                changed += 1;
                if let Some((uid, _)) = &held {
                    s.instances.entry(uid.clone()).or_default().retain(|x| &x.id != id);
                    s.touched.insert(uid.clone(), now);
                    announce.extend(s.owners.get(uid).cloned());
                }
                if let Some(n) = new {
                    let uid = uid_of(&n.tags).cloned().unwrap_or_default();
                    if let Some(o) = owner_of(&n.tags) {
                        s.owners.insert(uid.clone(), o.clone());
                        announce.push(o);
                    }
                    s.touched.insert(uid.clone(), now);
                    s.instances.entry(uid).or_default().push(n);
                } else {
                    s.created.remove(id);
                }
            }
        }
        announce.dedup();
        for o in announce {
            let _ = self.changes.send(o);
        }
        changed
    }
}
