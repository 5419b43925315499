//! [`BatchedDns`]: the [`Dns`] the reconcilers use. Reads from the zone cache, changes through
//! one worker that gathers the upserts and deletes of many callers into one
//! ChangeResourceRecordSets per idle window (Karpenter's batcher for EC2 does the same).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::cache::ZoneCache;
use super::detached::{Detached, Poll};
use super::{Action, MAX_CHARS, MAX_RECORDS, RecordChange, Zone, ZoneRecord, is_bad_change, named_in, norm};
use crate::cloud::marks::DnsMark;
use crate::cloud::{CloudError, CloudResult, Dns, ErrorKind, OwnedRecord, RecordSet};
use crate::metrics::Metrics;

/// TTL of the records we write: short, so a replacement's new IP is seen within a minute.
pub const TTL: i64 = 60;

/// How the batcher gathers and how old the cache may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// A batch is sent once no new change came for this long...
    pub idle: Duration,
    /// ...or this long after its first change came, whichever is first.
    pub max_wait: Duration,
    /// The same two for a batch of deletes only. No one waits on a delete but a finalizer, and
    /// deletes come as each Workspace's instance is confirmed terminated, spread over seconds:
    /// they wait longer so they share a change. An upsert joining them cuts the wait back.
    pub delete_idle: Duration,
    /// See `delete_idle`.
    pub delete_max_wait: Duration,
    /// The cache is listed again when a read finds it older than this.
    pub fresh_for: Duration,
    /// ResourceRecord elements per request (AWS: 1,000).
    pub max_records: usize,
    /// Characters of Value elements per request (AWS: 32,000).
    pub max_chars: usize,
}

impl BatchConfig {
    /// 100 ms idle, 1 s at most (deletes only: 3 s idle, 10 s at most), AWS's request limits,
    /// the cache fresh for `fresh_for` (the fleet cache's refresh interval).
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            idle: Duration::from_millis(100),
            max_wait: Duration::from_secs(1),
            delete_idle: Duration::from_secs(3),
            delete_max_wait: Duration::from_secs(10),
            fresh_for,
            max_records: MAX_RECORDS,
            max_chars: MAX_CHARS,
        }
    }
}

enum Request {
    Upsert(OwnedRecord),
    Delete { name: String, record_type: &'static str, current: RecordSet },
}

struct Op {
    name: String,
    request: Request,
    reply: oneshot::Sender<CloudResult<()>>,
}

/// An op with its changes, built against the cache when its batch is formed.
struct Ready {
    name: String,
    request: Request,
    changes: Vec<RecordChange>,
    reply: oneshot::Sender<CloudResult<()>>,
}

/// See the module docs.
pub struct BatchedDns {
    raw: Arc<dyn Dns>,
    cache: Arc<ZoneCache>,
    tx: mpsc::UnboundedSender<Op>,
    detached: Detached,
}

impl std::fmt::Debug for BatchedDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedDns").field("cache", &self.cache).finish_non_exhaustive()
    }
}

impl BatchedDns {
    /// Records of `zone` under `domain`, batched; names outside `domain` go to `raw` one call
    /// each. Spawns the worker (it ends when the last handle is dropped): call within a Tokio
    /// runtime.
    pub fn new(zone: Arc<dyn Zone>, raw: Arc<dyn Dns>, domain: &str, config: BatchConfig, metrics: &Metrics) -> Self {
        let cache = Arc::new(ZoneCache::new(zone.clone(), domain, config.fresh_for));
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker { zone, cache: cache.clone(), config, metrics: metrics.clone() };
        tokio::spawn(worker.run(rx));
        Self { raw, cache, tx, detached: Detached::default() }
    }

    /// The zone cache (tests, metrics).
    pub fn cache(&self) -> &ZoneCache {
        &self.cache
    }

    async fn send(&self, name: &str, request: Request) -> CloudResult<()> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Op { name: norm(name), request, reply }).map_err(|_| stopped(name))?;
        answer.await.map_err(|_| stopped(name))?
    }
}

fn stopped(name: &str) -> CloudError {
    CloudError {
        kind: ErrorKind::Transient,
        action: "change records of",
        target: name.to_owned(),
        code: "BatcherStopped".into(),
        message: "the Route 53 change batcher stopped".into(),
    }
}

#[async_trait]
impl Dns for BatchedDns {
    async fn get(&self, name: &str, record_type: &'static str) -> CloudResult<RecordSet> {
        if !self.cache.covers(name) {
            return self.raw.get(name, record_type).await;
        }
        self.cache.ensure_fresh().await?;
        Ok(self.cache.get(name, record_type))
    }

    async fn upsert(&self, record: &OwnedRecord) -> CloudResult<()> {
        if !self.cache.covers(&record.name) {
            return self.raw.upsert(record).await;
        }
        self.send(&record.name, Request::Upsert(record.clone())).await
    }

    async fn delete(&self, name: &str, record_type: &'static str, current: &RecordSet) -> CloudResult<()> {
        if current.values.is_empty() && current.txt.is_empty() {
            return Ok(());
        }
        if !self.cache.covers(name) {
            return self.raw.delete(name, record_type, current).await;
        }
        let request = Request::Delete { name: norm(name), record_type, current: current.clone() };
        self.send(name, request).await
    }

    /// Joins the delete to a batch and returns at once; the caller polls again for the outcome
    /// (see [`super::detached`]).
    async fn delete_soon(&self, name: &str, record_type: &'static str, current: &RecordSet) -> CloudResult<bool> {
        if current.values.is_empty() && current.txt.is_empty() {
            return Ok(true);
        }
        if !self.cache.covers(name) {
            return self.raw.delete(name, record_type, current).await.map(|()| true);
        }
        let key = norm(name);
        match self.detached.poll(&key) {
            Poll::Waiting => return Ok(false),
            Poll::Done(Err(e)) => return Err(e),
            // A success stands only if the cache (written through before it was recorded) shows
            // the name empty: one left over from an earlier delete of a name written again since
            // would let the finalizer go with the new record in the zone.
            Poll::Done(Ok(())) if self.cache.get(&key, record_type) == RecordSet::default() => return Ok(true),
            Poll::Done(Ok(())) => self.detached.mark_sent(&key),
            Poll::Start => {}
        }
        let (reply, answer) = oneshot::channel();
        let request = Request::Delete { name: key.clone(), record_type, current: current.clone() };
        if self.tx.send(Op { name: key.clone(), request, reply }).is_err() {
            self.detached.finish(key, Err(stopped(name)));
            return Err(stopped(name));
        }
        let detached = self.detached.clone();
        tokio::spawn(async move {
            let outcome = answer.await.unwrap_or_else(|_| Err(stopped(&key)));
            detached.finish(key, outcome);
        });
        Ok(false)
    }

    async fn txt_under(&self, suffix: &str) -> CloudResult<Vec<(String, Vec<String>)>> {
        if !self.cache.covers(suffix) {
            return self.raw.txt_under(suffix).await;
        }
        // A sweep (the erasure's, the orphan scan's) reads the cache like every other read: at
        // most `fresh_for` old, and what we wrote or deleted since is in it. Listing the zone for
        // each sweep made the orphan scan (every 2 s in the e2e scenarios) the largest Route 53
        // cost of a create.
        self.cache.ensure_fresh().await?;
        Ok(self.cache.txt_under(suffix))
    }
}

fn record(name: &str, record_type: &str, ttl: i64, values: Vec<String>) -> ZoneRecord {
    ZoneRecord { name: name.to_owned(), record_type: record_type.to_owned(), ttl, values }
}

fn not_ours(name: &str) -> CloudError {
    CloudError {
        kind: ErrorKind::Rejected,
        action: "change records of",
        target: name.to_owned(),
        code: "RecordNotOurs".into(),
        message: "the zone holds a record at this name whose ownership record is not this owner's".into(),
    }
}

/// Whether TXT value `v` is the mark `mark` (the same owner), whatever its rendering.
fn same_mark(v: &str, mark: &str) -> bool {
    v == mark || DnsMark::parse(v).is_some_and(|m| DnsMark::parse(mark).as_ref() == Some(&m))
}

/// The changes of `request`, conditional on what the cache holds at its name: what the cache
/// does not hold is CREATEd (refused if it exists after all), a record whose TXT is not the
/// upsert's mark is refused before anything is sent.
fn changes_of(request: &Request, cache: &ZoneCache) -> CloudResult<Vec<RecordChange>> {
    let change = |action, record| RecordChange { action, record };
    match request {
        Request::Upsert(r) => {
            let name = norm(&r.name);
            let sets = cache.sets(&name);
            let txt = sets.get("TXT");
            let main = sets.get(r.record_type);
            let ours = txt.is_some_and(|(_, v)| v.iter().any(|v| same_mark(v, &r.owner_mark)));
            if (txt.is_some() || main.is_some()) && !ours {
                return Err(not_ours(&name));
            }
            // Absent from a cache that a targeted read (or our own delete) confirmed since the
            // last listing: UPSERT (see `Worker::created_at_empty`).
            let new = if cache.confirmed_absent(&name) { Action::Upsert } else { Action::Create };
            let txt_action = if ours { Action::Upsert } else { new };
            let main_action = if main.is_some() { Action::Upsert } else { new };
            Ok(vec![
                change(txt_action, record(&name, "TXT", TTL, vec![r.owner_mark.clone()])),
                change(main_action, record(&name, r.record_type, TTL, vec![r.value.clone()])),
            ])
        }
        Request::Delete { name, record_type, current } => {
            let mut out = Vec::new();
            if !current.values.is_empty() {
                let ttl = current.ttl.unwrap_or(TTL);
                out.push(change(Action::Delete, record(name, record_type, ttl, current.values.clone())));
            }
            if !current.txt.is_empty() {
                let ttl = current.txt_ttl.unwrap_or(TTL);
                out.push(change(Action::Delete, record(name, "TXT", ttl, current.txt.clone())));
            }
            Ok(out)
        }
    }
}

fn weight(changes: &[RecordChange]) -> (usize, usize) {
    changes.iter().map(RecordChange::weight).fold((0, 0), |a, w| (a.0 + w.0, a.1 + w.1))
}

struct Worker {
    zone: Arc<dyn Zone>,
    cache: Arc<ZoneCache>,
    config: BatchConfig,
    metrics: Metrics,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Op>) {
        let mut carry: VecDeque<Op> = VecDeque::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if carry.is_empty() {
                tokio::select! {
                    op = rx.recv() => match op {
                        Some(op) => carry.push_back(op),
                        None => return,
                    },
                    _ = tick.tick() => {
                        self.gauge();
                        continue;
                    }
                }
            }
            self.collect(&mut rx, &mut carry).await;
            let batch = self.form(&mut carry);
            self.submit(batch).await;
            self.gauge();
        }
    }

    fn gauge(&self) {
        let age = self.cache.age().map_or(-1, |a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX));
        self.metrics.dns_cache_age.set(age);
    }

    /// Waits for more changes until none came for the idle time, the longest wait passed, or a
    /// full batch is waiting (the delete windows while `carry` holds deletes only).
    async fn collect(&self, rx: &mut mpsc::UnboundedReceiver<Op>, carry: &mut VecDeque<Op>) {
        let start = Instant::now();
        while carry.len() < self.config.max_records {
            let deletes_only = carry.iter().all(|op| matches!(op.request, Request::Delete { .. }));
            let (idle, max_wait) = if deletes_only {
                (self.config.delete_idle, self.config.delete_max_wait)
            } else {
                (self.config.idle, self.config.max_wait)
            };
            let (deadline, now) = (start + max_wait, Instant::now());
            if now >= deadline {
                return;
            }
            match tokio::time::timeout(idle.min(deadline - now), rx.recv()).await {
                Ok(Some(op)) => carry.push_back(op),
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Takes from `carry`, in order, what fits one request: one op per name (a later op on a name
    /// waits for the next batch), within the limits. Ops refused before sending are answered.
    fn form(&self, carry: &mut VecDeque<Op>) -> Vec<Ready> {
        let (mut records, mut chars) = (0, 0);
        let mut names = HashSet::new();
        let mut batch = Vec::new();
        let mut later = VecDeque::new();
        while let Some(op) = carry.pop_front() {
            if names.contains(&op.name) {
                later.push_back(op);
                continue;
            }
            let changes = match changes_of(&op.request, &self.cache) {
                Ok(c) => c,
                Err(e) => {
                    let _ = op.reply.send(Err(e));
                    continue;
                }
            };
            let (r, c) = weight(&changes);
            if !batch.is_empty() && (records + r > self.config.max_records || chars + c > self.config.max_chars) {
                later.push_back(op);
                later.extend(carry.drain(..));
                break;
            }
            records += r;
            chars += c;
            names.insert(op.name.clone());
            batch.push(Ready { name: op.name, request: op.request, changes, reply: op.reply });
        }
        *carry = later;
        batch
    }

    /// Sends `batch`; a refused change is taken out and answered, the others are sent again
    /// (when the refusal names no record, the batch is halved until it does).
    async fn submit(&self, batch: Vec<Ready>) {
        let mut groups = vec![batch];
        while let Some(group) = groups.pop() {
            if group.is_empty() {
                continue;
            }
            let changes: Vec<RecordChange> = group.iter().flat_map(|r| r.changes.iter().cloned()).collect();
            if changes.is_empty() {
                for r in group {
                    let _ = r.reply.send(Ok(()));
                }
                continue;
            }
            self.metrics.dns_batch_ops.observe(f64::from(u32::try_from(group.len()).unwrap_or(u32::MAX)));
            match self.zone.change(&changes).await {
                Ok(()) => {
                    self.cache.apply(&changes);
                    for r in group {
                        let _ = r.reply.send(Ok(()));
                    }
                }
                Err(e) if is_bad_change(&e) => {
                    let named = named_in(&e.message);
                    let (bad, good): (Vec<Ready>, Vec<Ready>) =
                        group.into_iter().partition(|r| named.contains(&r.name));
                    if !bad.is_empty() {
                        for r in bad {
                            self.refused(r, &e).await;
                        }
                        groups.push(good);
                    } else if good.len() == 1 {
                        for r in good {
                            self.refused(r, &e).await;
                        }
                    } else {
                        let mut good = good;
                        let half = good.split_off(good.len() / 2);
                        groups.push(good);
                        groups.push(half);
                    }
                }
                Err(e) => {
                    // Throttled, denied or no answer: the outcome of a timeout is unknown.
                    if e.kind == ErrorKind::Transient {
                        self.cache.invalidate();
                    }
                    for r in group {
                        let _ = r.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    async fn refused(&self, r: Ready, e: &CloudError) {
        tracing::info!(name = %r.name, code = %e.code, message = %e.message, "Route 53 refused a change; the others of its batch are sent without it");
        self.cache.reread(&r.name).await;
        let answer = match self.created_at_empty(&r, e).await {
            Some(answer) => answer,
            None => Err(CloudError { target: r.name, ..e.clone() }),
        };
        let _ = r.reply.send(answer);
    }

    /// A CREATE refused as existing at a name the re-read found empty is sent once more, as the UPSERT the
    /// cache now builds for a name confirmed absent (moto refuses a CREATE it journalled before,
    /// even after the record was deleted: a Workspace stopped and started again writes the same
    /// TXT). `None`: the refusal stands (another reason, the name holds records, or nothing was
    /// CREATEd).
    async fn created_at_empty(&self, r: &Ready, e: &CloudError) -> Option<CloudResult<()>> {
        let created = r.changes.iter().any(|c| c.action == Action::Create);
        if !created || !e.message.contains("already exists") || !self.cache.confirmed_absent(&r.name) {
            return None;
        }
        let changes = match changes_of(&r.request, &self.cache) {
            Ok(changes) => changes,
            Err(e) => return Some(Err(e)),
        };
        let sent = self.zone.change(&changes).await;
        match &sent {
            Ok(()) => self.cache.apply(&changes),
            Err(e) if e.kind == ErrorKind::Transient => self.cache.invalidate(),
            Err(_) => {}
        }
        Some(sent)
    }
}
