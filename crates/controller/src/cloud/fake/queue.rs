//! An in-memory SQS queue of EventBridge events ([`EventQueue`]), with builders of the events
//! EventBridge writes for EC2. Received messages stay in flight until deleted; [`FakeQueue::expire`]
//! makes the undeleted ones visible again (the visibility timeout).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::cloud::events::{BATCH, EventQueue, Message, STATE_CHANGE, TAG_CHANGE};
use crate::cloud::{CloudResult, InstanceState};

#[derive(Debug, Default)]
struct Inner {
    visible: VecDeque<Message>,
    in_flight: Vec<Message>,
    next: u64,
    receives: usize,
    deletes: usize,
}

/// See the module docs. Clones share one queue.
#[derive(Clone, Debug, Default)]
pub struct FakeQueue {
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
}

/// The body EventBridge writes for an instance state change.
pub fn state_change(instance: &str, state: InstanceState) -> String {
    serde_json::json!({
        "version": "0", "id": format!("ev-{instance}-{state}"), "detail-type": STATE_CHANGE,
        "source": "aws.ec2", "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{instance}")],
        "detail": { "instance-id": instance, "state": state.to_string() }
    })
    .to_string()
}

/// The body EventBridge writes for a tag change of an instance.
pub fn tag_change(instance: &str, key: &str, value: &str) -> String {
    serde_json::json!({
        "version": "0", "id": format!("tag-{instance}-{key}"), "detail-type": TAG_CHANGE,
        "source": "aws.tag", "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{instance}")],
        "detail": { "changed-tag-keys": [key], "service": "ec2", "resource-type": "instance", "version": 2,
                    "tags": { key: value } }
    })
    .to_string()
}

impl FakeQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a message with `body`.
    pub fn send(&self, body: impl Into<String>) {
        {
            let mut q = self.lock();
            q.next += 1;
            let receipt = format!("r-{}", q.next);
            q.visible.push_back(Message { receipt, body: body.into() });
        }
        self.arrived.notify_waiters();
    }

    /// Messages waiting to be received.
    pub fn visible(&self) -> usize {
        self.lock().visible.len()
    }

    /// Messages received and not deleted.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// ReceiveMessage and DeleteMessageBatch calls so far.
    pub fn calls(&self) -> (usize, usize) {
        let q = self.lock();
        (q.receives, q.deletes)
    }

    /// The visibility timeout passes: messages in flight are visible again.
    pub fn expire(&self) {
        let mut q = self.lock();
        let back: Vec<Message> = q.in_flight.drain(..).collect();
        q.visible.extend(back);
    }

    fn take(&self) -> Vec<Message> {
        let mut q = self.lock();
        q.receives += 1;
        let n = q.visible.len().min(BATCH);
        let got: Vec<Message> = q.visible.drain(..n).collect();
        q.in_flight.extend(got.iter().cloned());
        got
    }
}

#[async_trait]
impl EventQueue for FakeQueue {
    async fn receive(&self, wait: Duration) -> CloudResult<Vec<Message>> {
        let arrived = self.arrived.notified();
        if self.visible() == 0 {
            let _ = tokio::time::timeout(wait, arrived).await;
        }
        Ok(self.take())
    }

    async fn delete(&self, receipts: &[String]) -> CloudResult<()> {
        let mut q = self.lock();
        q.deletes += 1;
        q.in_flight.retain(|m| !receipts.contains(&m.receipt));
        Ok(())
    }
}
