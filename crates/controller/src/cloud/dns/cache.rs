//! The zone record cache: the record sets under the workspace domain, from one paginated
//! listing, kept no older than `fresh_for` when it answers, written through by our own changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{Action, RecordChange, Zone, ZoneRecord, is_under, norm};
use crate::cloud::{CloudResult, RecordSet};

/// The record sets at one name: type to (TTL, values).
pub type Sets = BTreeMap<String, (i64, Vec<String>)>;

/// The [`RecordSet`] of one name's `sets`: its `record_type` set and its TXT.
pub fn record_set(sets: &Sets, record_type: &str) -> RecordSet {
    let main = sets.get(record_type);
    let txt = sets.get("TXT");
    RecordSet {
        values: main.map(|m| m.1.clone()).unwrap_or_default(),
        ttl: main.map(|m| m.0),
        txt: txt.map(|t| t.1.clone()).unwrap_or_default(),
        txt_ttl: txt.map(|t| t.0),
    }
}

#[derive(Debug, Default)]
struct Inner {
    names: HashMap<String, Sets>,
    /// When the listing the cache holds started; `None`: never loaded, or invalidated.
    loaded: Option<Instant>,
    /// Names we changed (or re-read) and when: newer than a listing that started before.
    written: HashMap<String, Instant>,
    /// Names a targeted read or our own change found or left empty, and when (until a listing
    /// or a change of ours).
    absent: HashMap<String, Instant>,
}

/// See the module docs.
pub struct ZoneCache {
    zone: Arc<dyn Zone>,
    suffix: String,
    fresh_for: Duration,
    inner: Mutex<Inner>,
    refreshing: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
}

impl std::fmt::Debug for ZoneCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneCache")
            .field("suffix", &self.suffix)
            .field("fresh_for", &self.fresh_for)
            .finish_non_exhaustive()
    }
}

impl ZoneCache {
    /// The records of `zone` under `suffix`, listed again when older than `fresh_for`.
    pub fn new(zone: Arc<dyn Zone>, suffix: &str, fresh_for: Duration) -> Self {
        Self {
            zone,
            suffix: norm(suffix.trim_start_matches('.')),
            fresh_for,
            inner: Mutex::default(),
            refreshing: tokio::sync::Mutex::new(()),
            refreshes: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the cache holds `name` (it is the workspace domain or under it).
    pub fn covers(&self, name: &str) -> bool {
        is_under(&norm(name), &self.suffix)
    }

    /// Time since the listing the cache holds started; `None` when it holds none.
    pub fn age(&self) -> Option<Duration> {
        self.lock().loaded.map(|t| t.elapsed())
    }

    /// Full listings made so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    fn is_fresh(&self) -> bool {
        self.age().is_some_and(|a| a < self.fresh_for)
    }

    /// Lists the zone again unless the cache is younger than `fresh_for`; concurrent callers
    /// share one listing. An error leaves the cache as it was (and the caller without answer).
    pub async fn ensure_fresh(&self) -> CloudResult<()> {
        if self.is_fresh() {
            return Ok(());
        }
        let _one = self.refreshing.lock().await;
        if self.is_fresh() {
            return Ok(());
        }
        self.list().await
    }

    async fn list(&self) -> CloudResult<()> {
        let started = Instant::now();
        let listed = self.zone.list_under(&self.suffix).await?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let mut names: HashMap<String, Sets> = HashMap::new();
        for r in listed {
            names.entry(norm(&r.name)).or_default().insert(r.record_type, (r.ttl, r.values));
        }
        let mut inner = self.lock();
        // What we changed after the listing started is newer than the listing.
        let newer: Vec<String> = inner.written.iter().filter(|(_, t)| **t >= started).map(|(n, _)| n.clone()).collect();
        for n in newer {
            match inner.names.get(&n) {
                Some(sets) => names.insert(n, sets.clone()),
                None => names.remove(&n),
            };
        }
        inner.written.retain(|_, t| *t >= started);
        // Marks older than the listing go: after it, a name it lacks is CREATEd (refused if
        // someone wrote it since), and a refused CREATE at a name a re-read finds empty is sent
        // again as an UPSERT by the batcher.
        inner.absent.retain(|_, t| *t >= started);
        inner.names = names;
        inner.loaded = Some(started);
        Ok(())
    }

    /// The record sets at `name`, as the cache holds them.
    pub fn sets(&self, name: &str) -> Sets {
        self.lock().names.get(&norm(name)).cloned().unwrap_or_default()
    }

    /// What the zone holds at `name` for `record_type` and TXT (absent: not in the cache).
    pub fn get(&self, name: &str, record_type: &str) -> RecordSet {
        record_set(&self.sets(name), record_type)
    }

    /// Every name under `suffix` with a TXT record, with its values.
    pub fn txt_under(&self, suffix: &str) -> Vec<(String, Vec<String>)> {
        let suffix = norm(suffix.trim_start_matches('.'));
        let inner = self.lock();
        let mut out: Vec<(String, Vec<String>)> = inner
            .names
            .iter()
            .filter(|(n, _)| n.len() > suffix.len() && is_under(n, &suffix))
            .filter_map(|(n, sets)| sets.get("TXT").map(|t| (n.clone(), t.1.clone())))
            .collect();
        out.sort();
        out
    }

    /// Applies changes Route 53 accepted, in order.
    pub fn apply(&self, changes: &[RecordChange]) {
        let now = Instant::now();
        let mut inner = self.lock();
        for c in changes {
            let name = norm(&c.record.name);
            let sets = inner.names.entry(name.clone()).or_default();
            match c.action {
                Action::Create | Action::Upsert => {
                    sets.insert(c.record.record_type.clone(), (c.record.ttl, c.record.values.clone()));
                }
                Action::Delete => {
                    sets.remove(&c.record.record_type);
                }
            }
            // A name our own change left empty is confirmed absent (its next write UPSERTs).
            if sets.is_empty() {
                inner.names.remove(&name);
                inner.absent.insert(name.clone(), now);
            } else {
                inner.absent.remove(&name);
            }
            inner.written.insert(name, now);
        }
    }

    /// Whether a targeted read found nothing at `name`, or our own change left it empty, since
    /// the last listing (and we wrote nothing there since).
    pub fn confirmed_absent(&self, name: &str) -> bool {
        self.lock().absent.contains_key(&norm(name))
    }

    /// Replaces what the cache holds at `name` with a targeted read (after Route 53 refused a
    /// change there); if that read fails, the whole cache is listed again before it answers.
    pub async fn reread(&self, name: &str) {
        let name = norm(name);
        match self.zone.read(&name).await {
            Ok(records) => self.replace(&name, records),
            Err(e) => {
                tracing::warn!(name = %name, error = %e, "re-reading a refused record failed; the zone cache is listed again");
                self.invalidate();
            }
        }
    }

    fn replace(&self, name: &str, records: Vec<ZoneRecord>) {
        let mut sets = Sets::new();
        for r in records.into_iter().filter(|r| norm(&r.name) == name) {
            sets.insert(r.record_type, (r.ttl, r.values));
        }
        let mut inner = self.lock();
        if sets.is_empty() {
            inner.names.remove(name);
            inner.absent.insert(name.to_owned(), Instant::now());
        } else {
            inner.absent.remove(name);
            inner.names.insert(name.to_owned(), sets);
        }
        inner.written.insert(name.to_owned(), Instant::now());
    }

    /// Forgets the listing: the next read lists the zone again (a change whose outcome is
    /// unknown).
    pub fn invalidate(&self) {
        self.lock().loaded = None;
    }
}
