//! EC2 notifications from a queue (issue 16): EventBridge sends "EC2 Instance State-change
//! Notification" and "Tag Change on Resource" events of the account to an SQS queue a platform
//! team creates; the operator long-polls it, describes the instances named (one call per batch),
//! writes them into the account's [`FleetCache`] (announcing owners whose instance changed, so
//! their reconcile runs at once), and deletes the messages. With a queue the cache lists the
//! fleet only at the slow safety resync (see [`FleetCache::run`]); without one it polls as before.
//!
//! Malformed messages are deleted and counted (never retried: they would block nothing but would
//! come back forever). Messages about instances the cache does not hold are deleted unread (the
//! rule sees every instance of the account; a launch of ours not listed yet is covered by the
//! launch protocol's own refresh requests). A failed describe leaves its messages in the queue:
//! SQS delivers them again after the visibility timeout.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::cache::FleetCache;
use super::{CloudResult, InstanceState, Instances};
use crate::metrics::{EventLabel, Metrics};

/// Long-poll wait of one ReceiveMessage (SQS's maximum).
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// Messages per ReceiveMessage (SQS's maximum).
pub const BATCH: usize = 10;
/// First and longest wait after a failed receive.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// EventBridge's detail-type of an instance state change.
pub const STATE_CHANGE: &str = "EC2 Instance State-change Notification";
/// EventBridge's detail-type of a tag change (source aws.tag).
pub const TAG_CHANGE: &str = "Tag Change on Resource";
/// EventBridge's detail-type of a spot interruption warning (the instance stops or terminates
/// two minutes later; its state-change event follows).
pub const SPOT_WARNING: &str = "EC2 Spot Instance Interruption Warning";

/// One received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The handle DeleteMessage takes.
    pub receipt: String,
    /// The body: an EventBridge event as JSON.
    pub body: String,
}

/// An SQS queue of EventBridge events.
#[async_trait]
pub trait EventQueue: Send + Sync + std::fmt::Debug {
    /// Waits up to `wait` for messages; at most [`BATCH`].
    async fn receive(&self, wait: Duration) -> CloudResult<Vec<Message>>;
    /// Deletes messages by receipt handle (one DeleteMessageBatch per [`BATCH`]).
    async fn delete(&self, receipts: &[String]) -> CloudResult<()>;
}

/// What an event says about an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An instance changed state (to `state`).
    State { instance: String, state: InstanceState },
    /// An instance's tags changed (or it is about to be interrupted): read it again.
    Changed { instance: String },
    /// Another kind of event, or a tag change of something other than an instance: nothing to do.
    Ignored,
}

impl Event {
    /// The instance the event names.
    pub fn instance(&self) -> Option<&str> {
        match self {
            Self::State { instance, .. } | Self::Changed { instance } => Some(instance),
            Self::Ignored => None,
        }
    }
}

/// Why a message could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

/// The instance ID at the end of an EC2 instance ARN (`arn:aws:ec2:r:a:instance/i-0abc`).
fn instance_of_arn(arn: &str) -> Option<&str> {
    arn.rsplit_once(":instance/").map(|(_, id)| id).filter(|id| id.starts_with("i-"))
}

/// Parses one EventBridge event (the body of an SQS message the rule's target wrote).
pub fn parse(body: &str) -> Result<Event, Malformed> {
    let v: Value = serde_json::from_str(body).map_err(|e| Malformed(format!("not JSON: {e}")))?;
    let kind = v.get("detail-type").and_then(Value::as_str).ok_or_else(|| Malformed("no detail-type".into()))?;
    let detail = v.get("detail").ok_or_else(|| Malformed("no detail".into()))?;
    let id_in_detail = || {
        detail
            .get("instance-id")
            .and_then(Value::as_str)
            .filter(|id| id.starts_with("i-"))
            .map(str::to_owned)
            .ok_or_else(|| Malformed(format!("{kind} without an instance-id")))
    };
    match kind {
        STATE_CHANGE => {
            let instance = id_in_detail()?;
            let state = detail.get("state").and_then(Value::as_str).ok_or_else(|| Malformed("no state".into()))?;
            Ok(Event::State { instance, state: InstanceState::parse(state) })
        }
        SPOT_WARNING => Ok(Event::Changed { instance: id_in_detail()? }),
        TAG_CHANGE => {
            if detail.get("service").and_then(Value::as_str) != Some("ec2")
                || detail.get("resource-type").and_then(Value::as_str) != Some("instance")
            {
                return Ok(Event::Ignored);
            }
            let arn = v
                .get("resources")
                .and_then(Value::as_array)
                .and_then(|r| r.iter().filter_map(Value::as_str).find_map(instance_of_arn))
                .ok_or_else(|| Malformed("tag change without an instance ARN".into()))?;
            Ok(Event::Changed { instance: arn.to_owned() })
        }
        _ => Ok(Event::Ignored),
    }
}

/// What one batch came to (for tests and the log).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Instances described.
    pub described: usize,
    /// Messages deleted.
    pub deleted: usize,
    /// Malformed messages (deleted).
    pub malformed: usize,
    /// Messages kept for redelivery (their describe failed).
    pub kept: usize,
}

/// Reads an account's queue into its fleet cache.
pub struct Consumer {
    account: &'static str,
    queue: Arc<dyn EventQueue>,
    instances: Arc<dyn Instances>,
    cache: Arc<FleetCache>,
    metrics: Metrics,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("account", &self.account).field("queue", &self.queue).finish_non_exhaustive()
    }
}

impl Consumer {
    /// A consumer of `queue` describing with `instances` (the raw client, not the cached one).
    pub fn new(
        account: &'static str,
        queue: Arc<dyn EventQueue>,
        instances: Arc<dyn Instances>,
        cache: Arc<FleetCache>,
        metrics: Metrics,
    ) -> Self {
        Self { account, queue, instances, cache, metrics }
    }

    fn count(&self, outcome: &'static str, n: usize) {
        let label = EventLabel { account: self.account, outcome };
        self.metrics.cloud_events.get_or_create(&label).inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Handles one batch of messages: parse, describe what changed, write into the cache,
    /// delete. An error of the describe or the delete is returned after what could be done.
    pub async fn handle(&self, messages: Vec<Message>) -> CloudResult<Outcome> {
        let mut out = Outcome::default();
        let mut done = Vec::new();
        let mut pending: Vec<(String, String)> = Vec::new();
        for m in messages {
            match parse(&m.body) {
                Err(Malformed(why)) => {
                    tracing::warn!(account = self.account, why, "malformed EC2 event deleted");
                    out.malformed += 1;
                    done.push(m.receipt);
                }
                // Our own write-through already says so (a stop, start or terminate we made).
                Ok(Event::State { instance, state }) if self.cache.holds_state(&instance) == Some(state) => {
                    done.push(m.receipt);
                }
                Ok(e) => match e.instance() {
                    Some(id) if self.cache.holds_state(id).is_some() => pending.push((id.to_owned(), m.receipt)),
                    _ => done.push(m.receipt),
                },
            }
        }
        let ids: Vec<String> = pending.iter().map(|(id, _)| id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let described = if ids.is_empty() { Ok(()) } else { self.describe(&ids).await };
        match &described {
            Ok(()) => {
                out.described = ids.len();
                done.extend(pending.into_iter().map(|(_, r)| r));
            }
            Err(_) => out.kept = pending.len(),
        }
        self.count("malformed", out.malformed);
        self.count("applied", done.len() - out.malformed);
        out.deleted = done.len();
        if !done.is_empty() {
            self.queue.delete(&done).await?;
        }
        described.map(|()| out)
    }

    async fn describe(&self, ids: &[String]) -> CloudResult<()> {
        let found = self.instances.describe(ids).await?;
        let changed = self.cache.upsert_described(ids, &found);
        tracing::debug!(account = self.account, described = ids.len(), changed, "EC2 events applied");
        Ok(())
    }

    /// Long-polls the queue forever. Each answered receive (messages or none, or an error other
    /// than a timeout) is progress for the watchdog (`ec2-events/<account>`).
    pub async fn run(self) {
        let name = format!("ec2-events/{}", self.account);
        let bound = crate::watchdog::bound_for(LONG_POLL, 3);
        let beat = crate::watchdog::global().register(&name, bound, self.account == crate::watchdog::MAIN_ACCOUNT);
        let mut delay = RETRY_FIRST;
        loop {
            let received = self.queue.receive(LONG_POLL).await;
            let result = match received {
                Ok(messages) if messages.is_empty() => Ok(Outcome::default()),
                Ok(messages) => self.handle(messages).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => {
                    beat.progress();
                    delay = RETRY_FIRST;
                }
                Err(e) => {
                    if !e.timed_out() {
                        beat.progress();
                    }
                    tracing::warn!(error = %e, account = self.account, retry_in = ?delay, "EC2 event queue failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
