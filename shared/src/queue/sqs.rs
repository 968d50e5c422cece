//! Amazon SQS: the webhook functions send ([`SqsQueue`]), the worker function consumes through
//! an event source mapping with `ReportBatchItemFailures` ([`SqsWorker`]).
//!
//! A failed record is reported in `batchItemFailures`, so only it is redelivered; before that
//! its visibility timeout is set to [`retry_delay`] of its receive count, so the wait grows with
//! every attempt. After `maxReceiveCount` receives SQS moves it to the dead-letter queue; the
//! worker's last attempt has already marked it dead for `hookline doctor` (a worker killed on its
//! last attempt leaves that to the dead-letter queue's depth, which doctor reads too).

use std::collections::HashMap;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use serde::{Deserialize, Serialize};

use super::{Attempt, Job, Queue, QueueConfig, QueueError, Worked, Workers, encode, retry_delay};

/// The SQS queue deferred events go to.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    /// A queue at `url` through `client`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// The queue at `url`, with the standard AWS configuration (`AWS_REGION`,
    /// `AWS_ENDPOINT_URL_SQS` for a local SQS-compatible server).
    pub async fn from_env(url: &str) -> Self {
        Self::new(client_from_env().await, url)
    }
}

/// An SQS client with the standard AWS configuration.
pub async fn client_from_env() -> Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&config)
}

#[async_trait]
impl Queue for SqsQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        let body = encode(job)?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}

/// The SQS event a worker function receives.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SqsEvent {
    /// The messages of the batch.
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsRecord>,
}

/// One message of an [`SqsEvent`].
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    /// The message id: what a batch item failure names.
    pub message_id: String,
    /// What changes its visibility.
    pub receipt_handle: String,
    /// The job, as JSON.
    pub body: String,
    /// SQS's attributes; `ApproximateReceiveCount` counts the attempts.
    #[serde(default)]
    pub attributes: HashMap<String, String>,
}

impl SqsRecord {
    /// How many times the message has been received, this time included.
    pub fn receive_count(&self) -> u32 {
        self.attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }
}

/// A worker function's answer: the messages to redeliver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// The records that failed.
    pub batch_item_failures: Vec<ItemFailure>,
}

/// One failed record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    /// Its `messageId`.
    pub item_identifier: String,
}

/// The worker function: runs a batch's jobs concurrently and reports the failures.
#[derive(Debug, Clone)]
pub struct SqsWorker {
    workers: std::sync::Arc<Workers>,
    client: Option<Client>,
    config: QueueConfig,
}

impl SqsWorker {
    /// A worker running jobs on `workers`; `client` (with `config.url`) changes a retried
    /// message's visibility timeout.
    pub fn new(
        workers: std::sync::Arc<Workers>,
        client: Option<Client>,
        config: QueueConfig,
    ) -> Self {
        Self {
            workers,
            client,
            config,
        }
    }

    /// Runs one batch. `deadline_ms` is the invocation's deadline (Unix ms) and `calls_end`
    /// when outbound calls must stop.
    pub async fn handle(
        &self,
        event: SqsEvent,
        deadline_ms: i64,
        calls_end: Option<Instant>,
    ) -> BatchResponse {
        let runs = event.records.into_iter().map(|record| async move {
            let worked = self.run(&record, deadline_ms, calls_end).await;
            match worked {
                Worked::Done => None,
                Worked::Retry(why) => {
                    let wait = retry_delay(self.config.retry_base, record.receive_count());
                    tracing::warn!(message = %record.message_id, reason = %why, ?wait, "retrying the event later");
                    self.set_visibility(&record, wait.as_secs()).await;
                    Some(record.message_id)
                }
                Worked::Dead(why) => {
                    tracing::error!(message = %record.message_id, reason = %why, "dead-lettering the event");
                    // Back at once, so that SQS moves it to the dead-letter queue.
                    self.set_visibility(&record, 0).await;
                    Some(record.message_id)
                }
            }
        });
        let failed = futures_util::future::join_all(runs).await;
        BatchResponse {
            batch_item_failures: failed
                .into_iter()
                .flatten()
                .map(|item_identifier| ItemFailure { item_identifier })
                .collect(),
        }
    }

    async fn run(
        &self,
        record: &SqsRecord,
        deadline_ms: i64,
        calls_end: Option<Instant>,
    ) -> Worked {
        let job: Job = match serde_json::from_str(&record.body) {
            Ok(job) => job,
            Err(e) => {
                // Never ours (only the webhook functions may send): keep it for a human in the
                // dead-letter queue.
                return Worked::Dead(format!("message {} is not a job: {e}", record.message_id));
            }
        };
        let receives = record.receive_count();
        let attempt = Attempt {
            number: receives,
            last: receives >= self.config.max_attempts,
            take_over: false,
            lease_until_ms: deadline_ms,
        };
        let work = self.workers.work(job, attempt);
        match calls_end {
            Some(end) => crate::http::with_deadline(end, work).await,
            None => work.await,
        }
    }

    async fn set_visibility(&self, record: &SqsRecord, seconds: u64) {
        let (Some(client), Some(url)) = (&self.client, &self.config.url) else {
            return;
        };
        let result = client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(&record.receipt_handle)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await;
        if let Err(e) = result {
            // The message comes back after the queue's own visibility timeout instead.
            tracing::warn!(message = %record.message_id, error = %DisplayErrorContext(e), "could not change the visibility timeout");
        }
    }
}

/// The depth of the queue at `url` (`ApproximateNumberOfMessages`): for doctor's dead-letter
/// check.
pub async fn depth(client: &Client, url: &str) -> Result<u64, String> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(e).to_string())?;
    out.attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| "no ApproximateNumberOfMessages in the answer".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_sqs_event_and_the_partial_batch_answer_have_lambdas_shapes() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [{
            "messageId": "m1", "receiptHandle": "r1", "body": "{}",
            "attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1"},
            "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"
        }]}))
        .unwrap();
        assert_eq!(event.records[0].receive_count(), 3);
        let answer = BatchResponse {
            batch_item_failures: vec![ItemFailure {
                item_identifier: "m1".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(answer).unwrap(),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m1"}]})
        );
    }
}
