//! Deferred mode through a real SQS-protocol server (moto, started by `tests/run-all`): the
//! webhook answers at once and queues the claimed event; the worker (`SqsWorker`, the Lambda
//! worker function's handler) runs it. An event source mapping stand-in receives batches, hands
//! them to the worker and deletes what it did not report failed, as Lambda's does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use hookline::bot::{Bot, BotError, BotResult, Ctx};
use hookline::idempotency::Idempotency;
use hookline::model::Reply;
use hookline::queue::QueueConfig;
use hookline::queue::sqs::{SqsEvent, SqsQueue, SqsRecord, SqsWorker};
use hookline_server::testing::{PLATFORMS, TestServer};

use crate::support;

/// A queue and its dead-letter queue on moto.
struct Sqs {
    client: aws_sdk_sqs::Client,
    url: String,
    dlq: String,
    max_receives: u32,
}

fn client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "hookline-tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A fresh queue whose messages go to a dead-letter queue after `max_receives` receives, as the
/// template's do. `None` when the moto suite is skipped locally.
async fn sqs(max_receives: u32) -> Option<Sqs> {
    // moto serves every AWS protocol on one port.
    let endpoint = support::dynamodb_endpoint()?;
    let client = client(&endpoint);
    let name = format!("hookline-{:016x}", support::rand_id());
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create the dead-letter queue");
    let dlq = dlq.queue_url().expect("a url").to_owned();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("dead-letter queue attributes")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("its arn");
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives});
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .expect("create the queue")
        .queue_url()
        .expect("a url")
        .to_owned();
    Some(Sqs {
        client,
        url,
        dlq,
        max_receives,
    })
}

impl Sqs {
    fn queue(&self) -> Arc<SqsQueue> {
        Arc::new(SqsQueue::new(self.client.clone(), &self.url))
    }

    fn worker(&self, server: &TestServer) -> SqsWorker {
        SqsWorker::new(
            server.workers(),
            Some(self.client.clone()),
            QueueConfig {
                url: Some(self.url.clone()),
                max_attempts: self.max_receives,
                retry_base: Duration::from_secs(1),
                workers: 1,
            },
        )
    }

    /// One poll of the event source mapping: receive a batch, run it, delete the records not
    /// reported failed. Returns (received, failed) message ids.
    async fn poll(&self, worker: &SqsWorker) -> (Vec<String>, Vec<String>) {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .expect("receive");
        let messages = out.messages().to_vec();
        let records: Vec<SqsRecord> = messages
            .iter()
            .map(|m| SqsRecord {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                attributes: m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        let received: Vec<String> = records.iter().map(|r| r.message_id.clone()).collect();
        if records.is_empty() {
            return (received, Vec::new());
        }
        let deadline = hookline::clock::Clock::now_ms(&hookline::clock::SystemClock) + 60_000;
        let answer = worker.handle(SqsEvent { records }, deadline, None).await;
        let failed: Vec<String> = answer
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        for m in &messages {
            if !failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        (received, failed)
    }

    /// Messages in `url`, visible or not.
    async fn depth(&self, url: &str) -> u64 {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let attrs = out.attributes().cloned().unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|k| attrs.get(k).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0))
        .sum()
    }
}

/// Answers "done: <text>"; text containing "fail" asks to retry `fails` times per event
/// (`usize::MAX`: always).
#[derive(Clone, Default)]
struct Moody {
    fails: usize,
    attempts: Arc<Mutex<HashMap<String, usize>>>,
}

#[hookline::async_trait]
impl Bot for Moody {
    async fn handle(&self, cx: Ctx) -> BotResult {
        let attempt = {
            let mut attempts = self.attempts.lock().expect("lock");
            let n = attempts.entry(cx.event_id().to_string()).or_default();
            *n += 1;
            *n
        };
        if cx.text().contains("fail") && attempt <= self.fails {
            return Err(BotError::retry(format!("attempt {attempt} failed")));
        }
        Ok(vec![Reply::text(format!("done: {}", cx.text()))])
    }
}

#[tokio::test]
async fn every_platform_is_acknowledged_at_once_and_answered_once_by_the_worker() {
    let Some(sqs) = sqs(3).await else { return };
    let server = TestServer::start_deferred(Moody::default(), sqs.queue())
        .await
        .unwrap();
    let worker = sqs.worker(&server);
    let mut webhooks = Vec::new();
    for platform in PLATFORMS {
        let webhook = server.webhook(platform, "hello from the queue");
        let first = server.deliver(&webhook).await.unwrap();
        assert!((200..300).contains(&first.status), "{platform}: {}", first.body);
        assert_eq!(
            first.replies.unwrap(),
            Vec::<String>::new(),
            "{platform}: nothing is answered inside the webhook"
        );
        webhooks.push(webhook);
    }
    assert_eq!(sqs.depth(&sqs.url).await, 4, "one message per event");
    let (received, failed) = sqs.poll(&worker).await;
    assert_eq!((received.len(), failed.len()), (4, 0));
    for webhook in &webhooks {
        let replies = server.replies(webhook).await.unwrap();
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert!(replies[0].contains("done: hello from the queue"), "{replies:?}");
    }
    assert_eq!(sqs.depth(&sqs.url).await, 0, "worked messages are deleted");
}

#[tokio::test]
async fn a_retry_later_comes_back_after_its_visibility_timeout_and_is_answered_once() {
    let Some(sqs) = sqs(3).await else { return };
    let bot = Moody {
        fails: 1,
        ..Moody::default()
    };
    let attempts = bot.attempts.clone();
    let server = TestServer::start_deferred(bot, sqs.queue()).await.unwrap();
    let worker = sqs.worker(&server);
    let webhook = server.webhook("tamtam", "please fail once");
    assert_eq!(server.deliver(&webhook).await.unwrap().status, 200);
    let (received, failed) = sqs.poll(&worker).await;
    assert_eq!((received.len(), failed), (1, received.clone()));
    // Its visibility timeout is the first retry's wait (1 s here): not back at once.
    assert_eq!(sqs.poll(&worker).await.0.len(), 0, "not visible yet");
    assert!(server.replies(&webhook).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (received, failed) = sqs.poll(&worker).await;
    assert_eq!((received.len(), failed.len()), (1, 0));
    let replies = server.replies(&webhook).await.unwrap();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(attempts.lock().unwrap().values().sum::<usize>(), 2);
    assert_eq!(sqs.depth(&sqs.url).await, 0);
}

#[tokio::test]
async fn a_platform_redelivery_while_the_event_is_queued_gets_no_second_reply() {
    let Some(sqs) = sqs(3).await else { return };
    let server = TestServer::start_deferred(Moody::default(), sqs.queue())
        .await
        .unwrap();
    let worker = sqs.worker(&server);
    for platform in PLATFORMS {
        let webhook = server.webhook(platform, "said twice");
        let first = server.deliver(&webhook).await.unwrap();
        let again = server.deliver(&webhook).await.unwrap();
        assert!((200..300).contains(&first.status), "{platform}");
        assert!(
            (200..300).contains(&again.status),
            "{platform}: a queued event's duplicate is acknowledged: {}",
            again.body
        );
        assert_eq!(sqs.depth(&sqs.url).await, 1, "{platform}: queued once");
        sqs.poll(&worker).await;
        // And once more after it was answered.
        server.deliver(&webhook).await.unwrap();
        assert_eq!(sqs.depth(&sqs.url).await, 0, "{platform}");
        let replies = server.replies(&webhook).await.unwrap();
        assert_eq!(replies.len(), 1, "{platform}: {replies:?}");
    }
}

#[tokio::test]
async fn a_poison_event_goes_to_the_dead_letter_queue_after_max_receives_and_is_reported() {
    let Some(sqs) = sqs(2).await else { return };
    let bot = Moody {
        fails: usize::MAX,
        ..Moody::default()
    };
    let server = TestServer::start_deferred(bot, sqs.queue()).await.unwrap();
    let worker = sqs.worker(&server);
    let webhook = server.webhook("dingtalk", "always fail");
    assert_eq!(server.deliver(&webhook).await.unwrap().status, 200);
    assert_eq!(sqs.poll(&worker).await.1.len(), 1, "attempt 1 fails");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(sqs.poll(&worker).await.1.len(), 1, "attempt 2, the last, fails");
    // The last attempt set its visibility to 0: the next receive moves it to the DLQ.
    let (received, _) = sqs.poll(&worker).await;
    assert!(received.is_empty(), "moved, not received again: {received:?}");
    assert_eq!(sqs.depth(&sqs.dlq).await, 1, "in the dead-letter queue");
    assert_eq!(sqs.depth(&sqs.url).await, 0);
    let dead = Idempotency::dead_letters(server.store()).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].platform, hookline::model::Platform::DingTalk);
    assert!(dead[0].reason.contains("attempt 2 failed"), "{dead:?}");
    assert!(server.replies(&webhook).await.unwrap().is_empty());
    // What doctor reads: the dead-letter queue's depth.
    assert_eq!(
        hookline::queue::sqs::depth(&sqs.client, &sqs.dlq).await.unwrap(),
        1
    );
    // A platform redelivery of a dead-lettered event is a duplicate, not a new attempt.
    server.deliver(&webhook).await.unwrap();
    assert_eq!(sqs.depth(&sqs.url).await, 0);
}

#[tokio::test]
async fn a_batch_with_one_failing_event_redelivers_only_that_one() {
    let Some(sqs) = sqs(3).await else { return };
    let bot = Moody {
        fails: 1,
        ..Moody::default()
    };
    let attempts = bot.attempts.clone();
    let server = TestServer::start_deferred(bot, sqs.queue()).await.unwrap();
    let worker = sqs.worker(&server);
    let texts = ["first", "this one fails", "third"];
    let webhooks: Vec<_> = texts
        .iter()
        .map(|t| server.webhook("tailchat", t))
        .collect();
    for webhook in &webhooks {
        assert_eq!(server.deliver(webhook).await.unwrap().status, 200);
    }
    let (received, failed) = sqs.poll(&worker).await;
    assert_eq!(received.len(), 3, "one batch");
    assert_eq!(failed.len(), 1, "only the failing record is reported");
    assert_eq!(sqs.depth(&sqs.url).await, 1, "its batch-mates are deleted");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (received, failed) = sqs.poll(&worker).await;
    assert_eq!((received.len(), failed.len()), (1, 0));
    for webhook in &webhooks {
        assert_eq!(server.replies(webhook).await.unwrap().len(), 1);
    }
    // Batch-mates ran once each; the failing one twice.
    let mut counts: Vec<usize> = attempts.lock().unwrap().values().copied().collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 1, 2]);
}
