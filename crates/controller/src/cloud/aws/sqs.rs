//! [`EventQueue`] on SQS: the queue an EventBridge rule fills with the account's EC2
//! notifications (docs/operations.md says how a platform team creates both).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use aws_smithy_types::timeout::TimeoutConfig;

use super::{Aws, cloud_error, deadlines};
use crate::cloud::events::{BATCH, EventQueue, Message};
use crate::cloud::{CloudError, CloudResult, ErrorKind};

/// The queue at `url`, read with the clients of one account.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    aws: Aws,
    url: String,
}

impl SqsQueue {
    /// The queue at `url` (its account's credentials must allow sqs:ReceiveMessage and
    /// sqs:DeleteMessage on it).
    pub fn new(aws: Aws, url: impl Into<String>) -> Self {
        Self { aws, url: url.into() }
    }
}

/// The deadlines of a long poll of `wait`: the usual ones, lengthened by the wait (SQS holds the
/// answer that long when the queue is empty).
fn long_poll_timeouts(wait: Duration) -> TimeoutConfig {
    let d = deadlines();
    TimeoutConfig::builder()
        .connect_timeout(d.connect)
        .read_timeout(d.read + wait)
        .operation_timeout(d.operation + wait)
        .build()
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn receive(&self, wait: Duration) -> CloudResult<Vec<Message>> {
        let secs = i32::try_from(wait.as_secs()).unwrap_or(20);
        let out = self
            .aws
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(BATCH).unwrap_or(10))
            .wait_time_seconds(secs)
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(long_poll_timeouts(wait)))
            .send()
            .await
            .map_err(|e| cloud_error(&e, "receive EC2 events from", &self.url))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Message { receipt: m.receipt_handle()?.to_owned(), body: m.body().unwrap_or_default().to_owned() })
            })
            .collect())
    }

    async fn delete(&self, receipts: &[String]) -> CloudResult<()> {
        for chunk in receipts.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(r).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CloudError {
                    kind: ErrorKind::Rejected,
                    action: "delete EC2 events from",
                    target: self.url.clone(),
                    code: "Construction".into(),
                    message: e.to_string(),
                })?;
            let out = self
                .aws
                .sqs
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| cloud_error(&e, "delete EC2 events from", &self.url))?;
            // A failed entry (an expired receipt handle) comes back after the visibility timeout
            // and is handled again: harmless, the cache write is idempotent.
            if let Some(f) = out.failed().first() {
                tracing::debug!(code = f.code(), "an EC2 event was not deleted; it will be delivered again");
            }
        }
        Ok(())
    }
}
