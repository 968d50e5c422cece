//! Deferred mode through a real SQS-protocol server (moto, started by `tests/run-all`): the
//! webhook answers at once and queues the claimed event; the worker (`SqsWorker`, the Lambda
//! worker function's handler) runs it. An event source mapping stand-in receives batches, hands
//! them to the worker and deletes what it did not report failed, as Lambda's does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// A fresh queue whose messages go to a dead-letter queue after `max_receives` receives, as the
/// template's do. `None` when the moto suite is skipped locally.
async fn sqs(max_receives: u32) -> Option<Sqs> {
    // moto serves every AWS protocol on one port.
    let endpoint = support::dynamodb_endpoint()?;
    let client = support::sqs_client(&endpoint);
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
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives});
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

    /// A webhook server for `bot` deferring to this queue, and the worker that consumes it.
    async fn serve(&self, bot: impl Bot) -> (TestServer, SqsWorker) {
        let server = TestServer::start_deferred(bot, self.queue()).await.unwrap();
        let worker = self.worker(&server);
        (server, worker)
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
        .map(|k| {
            attrs
                .get(k)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
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
    let (server, worker) = sqs.serve(Moody::default()).await;
    let mut webhooks = Vec::new();
    for platform in PLATFORMS {
        let webhook = server.webhook(platform, "hello from the queue");
        let first = server.deliver(&webhook).await.unwrap();
        assert!(
            (200..300).contains(&first.status),
            "{platform}: {}",
            first.body
        );
        assert_eq!(
            first.replies.unwrap(),
            Vec::<String>::new(),
            "{platform}: nothing is answered inside the webhook"
        );
        webhooks.push(webhook);
    }
    assert_eq!(
        sqs.depth(&sqs.url).await,
        PLATFORMS.len() as u64,
        "one message per event"
    );
    let (received, failed) = sqs.poll(&worker).await;
    assert_eq!((received.len(), failed.len()), (PLATFORMS.len(), 0));
    for webhook in &webhooks {
        let replies = server.replies(webhook).await.unwrap();
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert!(
            replies[0].contains("done: hello from the queue"),
            "{replies:?}"
        );
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
    let (server, worker) = sqs.serve(bot).await;
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
    let (server, worker) = sqs.serve(Moody::default()).await;
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
    let (server, worker) = sqs.serve(bot).await;
    let webhook = server.webhook("dingtalk", "always fail");
    assert_eq!(server.deliver(&webhook).await.unwrap().status, 200);
    assert_eq!(sqs.poll(&worker).await.1.len(), 1, "attempt 1 fails");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        sqs.poll(&worker).await.1.len(),
        1,
        "attempt 2, the last, fails"
    );
    // The last attempt set its visibility to 0: the next receive moves it to the DLQ.
    let (received, _) = sqs.poll(&worker).await;
    assert!(
        received.is_empty(),
        "moved, not received again: {received:?}"
    );
    assert_eq!(sqs.depth(&sqs.dlq).await, 1, "in the dead-letter queue");
    assert_eq!(sqs.depth(&sqs.url).await, 0);
    let dead = Idempotency::dead_letters(server.store()).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].platform, hookline::model::Platform::DingTalk);
    assert!(dead[0].reason.contains("attempt 2 failed"), "{dead:?}");
    assert!(server.replies(&webhook).await.unwrap().is_empty());
    // What doctor reads: the dead-letter queue's depth.
    assert_eq!(
        hookline::queue::sqs::depth(&sqs.client, &sqs.dlq)
            .await
            .unwrap(),
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
    let (server, worker) = sqs.serve(bot).await;
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

// ---- `hookline serve`: the durable queue in the embedded store ----

mod serve {
    use std::time::{Duration, Instant};

    use hookline_server::simulate::{Simulation, simulation};
    use hookline_tamtam::emulator::TamTamEmulator;

    use crate::serve::start_serve_of;
    use crate::support::free_port;

    const TOKEN: &str = "tamtam-queue-token";
    const CALLBACK: &str = "tamtam-queue-callback-0123456789";

    /// A TamTam emulator in this process (it outlives the server it answers), and the variables
    /// that take `serve`'s TamTam live against it.
    async fn tamtam(
        dir: &std::path::Path,
        workers: usize,
    ) -> (TamTamEmulator, Vec<(&'static str, String)>) {
        let emu = TamTamEmulator::new(TOKEN, 591_000_001, "helper_bot");
        let api = emu.serve_on_loopback().await.expect("emulator");
        let env = vec![
            ("TAMTAM_TOKEN", TOKEN.to_owned()),
            ("TAMTAM_CALLBACK_TOKEN", CALLBACK.to_owned()),
            ("TAMTAM_API_URL", api),
            ("TAMTAM_ALLOWED_SUBNETS", "127.0.0.0/8".to_owned()),
            ("HOOKLINE_DATA_DIR", dir.display().to_string()),
            ("HOOKLINE_WORKERS", workers.to_string()),
        ];
        (emu, env)
    }

    /// A `hookline-test-bot serve` with `workers`, and `count` webhooks of a bot taking `ms`,
    /// delivered.
    struct Queued {
        _dir: tempfile::TempDir,
        emu: TamTamEmulator,
        env: Vec<(&'static str, String)>,
        port: u16,
        server: tokio::process::Child,
        base: String,
        webhooks: Vec<Simulation>,
        http: reqwest::Client,
    }

    async fn queued(workers: usize, count: usize, ms: u64) -> Queued {
        let dir = tempfile::tempdir().unwrap();
        let (emu, env) = tamtam(dir.path(), workers).await;
        let port = free_port();
        let (server, base) = start_serve_of("hookline-test-bot", port, &env).await;
        let webhooks = webhooks(count, ms, &base);
        let http = reqwest::Client::new();
        for w in &webhooks {
            assert_eq!(deliver(&http, &base, w).await, 200);
        }
        Queued {
            _dir: dir,
            emu,
            env,
            port,
            server,
            base,
            webhooks,
            http,
        }
    }

    fn webhooks(count: usize, ms: u64, base: &str) -> Vec<Simulation> {
        let env = std::collections::HashMap::from([("TAMTAM_CALLBACK_TOKEN", CALLBACK)]);
        (0..count)
            .map(|i| {
                simulation(
                    &env,
                    "tamtam",
                    &format!("/slow {ms} event-{i}"),
                    false,
                    base,
                )
            })
            .collect()
    }

    /// Posts a webhook as TamTam would; its status.
    async fn deliver(http: &reqwest::Client, base: &str, webhook: &Simulation) -> u16 {
        http.post(format!("{base}{}", webhook.path))
            .query(&webhook.query)
            .json(&webhook.body)
            .send()
            .await
            .expect("serve answers")
            .status()
            .as_u16()
    }

    /// The replies to each webhook the emulator recorded.
    fn replies(emu: &TamTamEmulator, webhooks: &[Simulation]) -> Vec<Vec<String>> {
        let sent = emu.sent();
        webhooks
            .iter()
            .map(|w| sent.iter().filter_map(|m| (w.reply_in)(m)).collect())
            .collect()
    }

    async fn wait_for_all(emu: &TamTamEmulator, webhooks: &[Simulation], timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end && replies(emu, webhooks).iter().any(Vec::is_empty) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn assert_each_answered_once(emu: &TamTamEmulator, webhooks: &[Simulation]) {
        for (i, got) in replies(emu, webhooks).iter().enumerate() {
            assert_eq!(got.len(), 1, "event-{i}: {got:?}");
            assert!(got[0].ends_with(&format!("event-{i}")), "{got:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn twenty_slow_events_are_accepted_within_a_second_and_each_answered_once() {
        let dir = tempfile::tempdir().unwrap();
        let (emu, env) = tamtam(dir.path(), 8).await;
        let (_server, base) = start_serve_of("hookline-test-bot", free_port(), &env).await;
        let webhooks = webhooks(20, 1500, &base);
        let http = reqwest::Client::new();
        let started = Instant::now();
        let answers =
            futures_util::future::join_all(webhooks.iter().map(|w| deliver(&http, &base, w))).await;
        let accepted = started.elapsed();
        assert_eq!(answers, vec![200; 20]);
        assert!(
            accepted < Duration::from_secs(1),
            "20 webhooks of a 1.5 s bot took {accepted:?} to be acknowledged"
        );
        assert!(emu.sent().is_empty(), "nothing answered inside a webhook");
        wait_for_all(&emu, &webhooks, Duration::from_secs(30)).await;
        // Time for a duplicate, if there were to be one.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_each_answered_once(&emu, &webhooks);
        // "Typing…" in each event's chat while the bot worked.
        let typing: Vec<_> = emu
            .calls()
            .into_iter()
            .filter(|c| c["path"] == "/chats/actions")
            .collect();
        assert_eq!(typing.len(), 20, "{typing:?}");
        assert!(typing.iter().all(|c| c["body"]["action"] == "typing_on"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_queued_at_a_kill_9_are_answered_once_after_the_restart() {
        // `_dir` is bound: the server's store must outlive the test.
        let Queued {
            _dir: _store,
            emu,
            env,
            port,
            mut server,
            base,
            webhooks,
            http,
            ..
        } = queued(2, 6, 2000).await;
        // Two in flight (mid-sleep), four waiting: then the process dies without warning.
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.start_kill().expect("SIGKILL");
        server.wait().await.expect("reaped");
        assert!(emu.sent().is_empty(), "killed before any answer");
        let (_restarted, _) = start_serve_of("hookline-test-bot", port, &env).await;
        wait_for_all(&emu, &webhooks, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_each_answered_once(&emu, &webhooks);
        // And a redelivery of any of them now is a duplicate.
        assert_eq!(deliver(&http, &base, &webhooks[0]).await, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_each_answered_once(&emu, &webhooks);
    }

    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_finishes_the_events_in_flight_and_keeps_the_rest_for_the_next_start() {
        // `_dir` is bound: the server's store must outlive the test.
        let Queued {
            _dir: _store,
            emu,
            env,
            port,
            mut server,
            webhooks,
            ..
        } = queued(2, 4, 2000).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pid = server.id().expect("running");
        let term = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(term.success());
        let status = tokio::time::timeout(Duration::from_secs(15), server.wait())
            .await
            .expect("serve stops within its grace period")
            .expect("exit status");
        assert!(status.success(), "{status:?}");
        let answered: usize = replies(&emu, &webhooks).iter().map(Vec::len).sum();
        assert_eq!(
            answered, 2,
            "the two in flight were finished, the others kept"
        );
        let (_restarted, _) = start_serve_of("hookline-test-bot", port, &env).await;
        wait_for_all(&emu, &webhooks, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_each_answered_once(&emu, &webhooks);
    }
}

/// A queue that keeps what it is given (the jobs a webhook function would send to SQS).
#[derive(Debug, Default)]
struct Captured(Mutex<Vec<String>>);

#[hookline::async_trait]
impl hookline::queue::Queue for Captured {
    async fn enqueue(&self, job: &hookline::queue::Job) -> Result<(), hookline::queue::QueueError> {
        let body = hookline::queue::encode(job)?;
        self.0.lock().expect("lock").push(body);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_function_answers_a_batch_under_the_lambda_runtime_and_reports_its_failures() {
    use crate::fake_lambda::Lambda;
    use hookline_tamtam::emulator::TamTamEmulator;
    // A job exactly as the TamTam webhook queues it.
    let captured = Arc::new(Captured::default());
    let server = TestServer::start_deferred(Moody::default(), captured.clone())
        .await
        .unwrap();
    let webhook = server.webhook("tamtam", "hello from SQS");
    assert_eq!(server.deliver(&webhook).await.unwrap().status, 200);
    let job = captured.0.lock().unwrap().pop().expect("one job");
    let parsed: serde_json::Value = serde_json::from_str(&job).unwrap();
    let mid = parsed["inbound"]["context"]["reply_to"]
        .as_str()
        .unwrap()
        .to_owned();
    // The worker: the `hookline-worker` binary as the template deploys it, TamTam live on an
    // emulator.
    let emu = TamTamEmulator::new("worker-token", 591_000_001, "helper_bot");
    let api = emu.serve_on_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HOOKLINE_FUNCTION", "worker".to_owned()),
        ("TAMTAM_TOKEN", "worker-token".to_owned()),
        (
            "TAMTAM_CALLBACK_TOKEN",
            "worker-callback-token-0123456789".to_owned(),
        ),
        ("TAMTAM_API_URL", api),
        ("RUST_LOG", "info".to_owned()),
    ];
    let mut lambda =
        Lambda::start(&support::workspace_bin("hookline-worker"), &env, dir.path()).await;
    let record = |id: &str, body: &str| {
        serde_json::json!({"messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
            "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"})
    };
    let event = serde_json::json!({"Records": [record("m1", &job), record("m2", "not a job")]});
    let answer = lambda.invoke(event.clone()).await;
    assert_eq!(
        answer,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m2"}]}),
        "only the unreadable message fails"
    );
    let sent = emu.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["body"]["link"]["mid"], mid.as_str());
    assert!(
        sent[0]["body"]["text"]
            .as_str()
            .unwrap()
            .contains("hello from SQS"),
        "{sent:?}"
    );
    // SQS delivering the same message again: answered already, dropped.
    let again = lambda
        .invoke(serde_json::json!({"Records": [record("m1", &job)]}))
        .await;
    assert_eq!(again, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(emu.sent().len(), 1);
    let log = std::fs::read_to_string(&lambda.log).unwrap();
    assert!(!log.contains("worker-token"), "a secret reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_waits_for_the_reply_of_a_deferred_event() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let (mut server, base) = crate::serve::start_serve_with_stderr(
        "hookline-test-bot",
        support::free_port(),
        &[("HOOKLINE_DATA_DIR", dir.path().display().to_string())],
        std::fs::File::create(&log).unwrap().into(),
    )
    .await;
    let out = tokio::process::Command::new(support::workspace_bin("hookline-test-bot"))
        .args(["simulate", "tamtam", "/slow 700 patience", "--url", &base])
        .env_remove("TAMTAM_CALLBACK_TOKEN")
        .output()
        .await
        .expect("simulate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("reply: slept 700 ms: patience"), "{stdout}");
    assert!(
        stdout.contains("(deferred: answered from the queue)"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("waiting up to 60 s for the reply…"),
        "progress while simulate waits: {out:?}"
    );
    server.start_kill().unwrap();
    let _ = server.wait().await;
    // The webhook's line says deferred; the worker's says how the event ended.
    let log = std::fs::read_to_string(&log).unwrap();
    let webhook = log
        .lines()
        .find(|l| l.contains("hookline::webhook"))
        .unwrap_or_else(|| panic!("no webhook line:\n{log}"));
    assert!(
        webhook.contains("platform=tamtam") && webhook.contains("outcome=deferred"),
        "{webhook}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("worked a queued event") && l.contains("outcome=answered")),
        "{log}"
    );
}
