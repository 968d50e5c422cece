//! Webhook acknowledgement latency with a bot that takes 2 s: inline (the webhook waits for
//! the bot and its reply) against deferred mode (the webhook answers once the event is queued).
//!
//! ```sh
//! cargo bench -p hookline-tests --bench deferred_ack
//! ```
//!
//! Each mode runs an in-process server (`hookline_server::testing::TestServer`, the platforms on
//! their emulators, a fresh embedded store in the temp folder), then posts `REQUESTS` TamTam
//! webhooks, `CONCURRENCY` at a time, through one keep-alive client, and reports p50/p99/max of
//! the time to the webhook's answer. The deferred modes are `serve`'s durable queue and, when
//! `HOOKLINE_TEST_DYNAMODB_ENDPOINT` names a moto server (tests/run-all starts one; so does
//! `.hookline/test-env/bin/python tests/moto-serial.py 127.0.0.1 <port>`), the Lambda shape:
//! an SQS queue on it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline::bot::{Ctx, Handlers};
use hookline::model::Reply;
use hookline_server::simulate::simulation;
use hookline_server::testing::TestServer;

const REQUESTS: usize = 100;
const CONCURRENCY: usize = 10;
const BOT_TIME: Duration = Duration::from_secs(2);

fn bot() -> Handlers {
    Handlers::new().on_text(|cx: Ctx| async move {
        tokio::time::sleep(BOT_TIME).await;
        Ok(vec![Reply::text(format!("thought about {}", cx.text()))])
    })
}

/// Posts the webhooks; their answer times, sorted.
async fn run(server: &TestServer) -> Vec<Duration> {
    let env = std::collections::HashMap::<String, String>::new();
    let http = reqwest::Client::new();
    let base = server.base().to_owned();
    let webhooks: Vec<_> = (0..REQUESTS)
        .map(|i| simulation(&env, "tamtam", &format!("question {i}"), false, &base))
        .collect();
    let mut times = Vec::with_capacity(REQUESTS);
    for chunk in webhooks.chunks(CONCURRENCY) {
        let posts = chunk.iter().map(|w| {
            let http = http.clone();
            let url = format!("{base}{}", w.path);
            async move {
                let started = Instant::now();
                let status = http
                    .post(url)
                    .query(&w.query)
                    .json(&w.body)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert!(status.is_success(), "{status}");
                started.elapsed()
            }
        });
        times.extend(futures_util::future::join_all(posts).await);
    }
    times.sort();
    times
}

fn at(times: &[Duration], q: f64) -> Duration {
    let i = ((times.len() as f64 - 1.0) * q).round() as usize;
    times[i.min(times.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    println!(
        "webhook acknowledgement, TamTam, bot sleeps {BOT_TIME:?}, {REQUESTS} requests, {CONCURRENCY} at a time"
    );
    println!("| mode | p50 | p99 | max |");
    println!("| --- | --- | --- | --- |");
    let mut rows = Vec::new();

    let inline = TestServer::start(bot()).await.unwrap();
    rows.push(("inline (the webhook waits for the bot)", run(&inline).await));

    let deferred = TestServer::start(bot().slow()).await.unwrap();
    rows.push((
        "deferred, serve's queue (embedded store)",
        run(&deferred).await,
    ));

    if let Ok(endpoint) = std::env::var("HOOKLINE_TEST_DYNAMODB_ENDPOINT") {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "bench",
            ))
            .endpoint_url(endpoint)
            .build();
        let client = aws_sdk_sqs::Client::from_conf(config);
        let url = client
            .create_queue()
            .queue_name(format!("bench-{}", std::process::id()))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_owned();
        let queue = Arc::new(hookline::queue::sqs::SqsQueue::new(client, url));
        let sqs = TestServer::start_deferred(bot(), queue).await.unwrap();
        rows.push(("deferred, SQS (moto on loopback)", run(&sqs).await));
    }
    for (mode, times) in &rows {
        println!(
            "| {mode} | {} | {} | {} |",
            ms(at(times, 0.5)),
            ms(at(times, 0.99)),
            ms(*times.last().unwrap())
        );
    }
    let base = at(&rows[0].1, 0.5).as_secs_f64();
    for (mode, times) in rows.iter().skip(1) {
        println!(
            "inline p50 / {mode} p50 = {:.0}x",
            base / at(times, 0.5).as_secs_f64()
        );
    }
}
