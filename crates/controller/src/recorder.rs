//! The Event recorder: publishes `events.k8s.io/v1` Events and folds a repeat of one (same type,
//! action, reason, note, regarding and related object, within [`SERIES_WINDOW`]) into the first
//! one's `series`, as kube-runtime's and client-go's recorders do. Unlike kube-runtime's, the note
//! is part of the key: a repeat with another message (a relaunch names another instance, a retry
//! fails differently) is an Event of its own; kube-runtime folded it into the first Event, whose
//! note then hid it.
//!
//! Ours because kube-runtime's `Recorder` keeps a clone of every Event it published in the last 6
//! minutes (1–2 KB each, its reference strings included) and scans them all, under a write lock,
//! on every publish: at 10,000 Workspaces it was the largest heap consumer at the peak (28% of it
//! at 2,000, heaptrack) and about 10% of the create CPU. This one keeps, per series, a hash of its
//! key and what a repeat needs (the Event's name, the count, the last time; the namespace is the
//! regarding object's, part of the key): under 100 bytes; expired series are dropped at most
//! every [`PRUNE_EVERY`].

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// A repeat within this long of the series' last Event joins it (kube-runtime: 6 minutes).
pub const SERIES_WINDOW: Duration = Duration::from_mins(6);
/// Expired series are dropped on a publish at most this often.
pub const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// One Event to publish.
#[derive(Clone, Debug)]
pub struct Note<'a> {
    /// `Warning`, else `Normal`.
    pub warning: bool,
    /// What the controller did (`Reconcile`).
    pub action: &'a str,
    /// Why: a CamelCase reason.
    pub reason: &'a str,
    /// The message (at most 1 KB: the API server refuses longer).
    pub note: String,
    /// The object it is about.
    pub regarding: &'a ObjectReference,
    /// A second object it names (a cloud resource), if any.
    pub related: Option<&'a ObjectReference>,
}

/// What a repeat of a published Event needs.
#[derive(Clone, Debug)]
struct Series {
    name: String,
    count: i32,
    last: Timestamp,
}

#[derive(Debug, Default)]
struct Memory {
    series: HashMap<u64, Series>,
    pruned: Option<Timestamp>,
}

/// See the module docs.
pub struct Recorder {
    client: kube::Client,
    controller: String,
    memory: Mutex<Memory>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("controller", &self.controller).finish_non_exhaustive()
    }
}

fn key(n: &Note<'_>) -> u64 {
    let mut h = DefaultHasher::new();
    let reference = |r: &ObjectReference, h: &mut DefaultHasher| {
        (&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid).hash(h);
    };
    (n.warning, n.action, n.reason, &n.note).hash(&mut h);
    reference(n.regarding, &mut h);
    if let Some(r) = n.related {
        reference(r, &mut h);
    }
    h.finish()
}

impl Recorder {
    /// Events of `controller` (also its reporting instance) through `client`.
    pub fn new(client: kube::Client, controller: &str) -> Self {
        Self { client, controller: controller.to_owned(), memory: Mutex::new(Memory::default()) }
    }

    /// The series that `n` repeats, if one is live at `now` (expired ones are dropped first, at
    /// most every [`PRUNE_EVERY`]).
    fn live(&self, k: u64, now: Timestamp) -> Option<Series> {
        let Ok(mut m) = self.memory.lock() else { return None };
        let window = jiff::SignedDuration::try_from(SERIES_WINDOW).unwrap_or_default();
        let every = jiff::SignedDuration::try_from(PRUNE_EVERY).unwrap_or_default();
        if m.pruned.is_none_or(|p| p + every <= now) {
            m.series.retain(|_, s| s.last + window > now);
            m.pruned = Some(now);
        }
        m.series.get(&k).filter(|s| s.last + window > now).cloned()
    }

    fn remember(&self, k: u64, s: Series) {
        if let Ok(mut m) = self.memory.lock() {
            m.series.insert(k, s);
        }
    }

    /// Series remembered (tests).
    pub fn remembered(&self) -> usize {
        self.memory.lock().map_or(0, |m| m.series.len())
    }

    /// Publishes `n`: a new Event, or the next count of its live series (a series whose Event is
    /// gone from the API starts again).
    ///
    /// # Errors
    ///
    /// The API server's refusal.
    pub async fn publish(&self, n: &Note<'_>) -> Result<(), kube::Error> {
        self.publish_at(n, Timestamp::now()).await
    }

    async fn publish_at(&self, n: &Note<'_>, now: Timestamp) -> Result<(), kube::Error> {
        let k = key(n);
        let namespace = n.regarding.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Some(s) = self.live(k, now) {
            let count = s.count + 1;
            let patch = serde_json::json!({"series": EventSeries { count, last_observed_time: MicroTime(now) }});
            match api.patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    self.remember(k, Series { count, last: now, ..s });
                    return Ok(());
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.event(n, &namespace, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &event).await?;
        self.remember(k, Series { name, count: 1, last: now });
        Ok(())
    }

    fn event(&self, n: &Note<'_>, namespace: &str, now: Timestamp) -> Event {
        let base = n.regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{base}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            action: Some(n.action.to_owned()),
            reason: Some(n.reason.to_owned()),
            note: Some(n.note.chars().take(1024).collect()),
            type_: Some(if n.warning { "Warning" } else { "Normal" }.to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(n.regarding.clone()),
            related: n.related.cloned(),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.controller.clone()),
            ..Event::default()
        }
    }
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
