//! Per-request cost of the Tailchat webhook, against a baseline in the same run.
//!
//! `cargo bench -p hookline-tailchat --bench webhook`
//!
//! - `baseline/axum_parse_json`: a bare axum handler that parses the same body and answers 200:
//!   the floor any Rust webhook pays.
//! - `tailchat/reject_forged_token`: a wrong `?token=` (what forged traffic costs us).
//! - `tailchat/ignore_broadcast`: verify + decode of an inbox type we do not answer.
//! - `tailchat/answer_mention`: the whole pipeline for a new message: claim in the embedded store
//!   (an fsync'd redb commit), the bot, `sendMessage` to the emulator over loopback HTTP, complete.
//! - `strip_mention_tag`: the SDK-compatible mention stripping alone.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use hookline::clock::{SharedClock, SystemClock};
use hookline::http::HttpClient;
use hookline::pipeline::Deps;
use hookline::secret::Secret;
use hookline::store::EmbeddedStore;
use hookline_tailchat::TailchatConfig;
use hookline_tailchat::emulator::TailchatEmulator;
use hookline_tailchat::mention::strip_mention_tag;
use tower::ServiceExt;

const T1: &str = r#"{"_id":"6553a1f0c3b1e2a9d4f0aa01","userId":"6552f3a0c3b1e2a9d4f01234","type":"message","payload":{"groupId":"644f7c9d2a1b3c4d5e6f7081","converseId":"644f7c9d2a1b3c4d5e6f7082","messageId":"MESSAGE_ID","messageAuthor":"6448e822834c12425646f473","messageSnippet":"[at=6552f3a0c3b1e2a9d4f01234]EchoBot[/at] what time is it?","messagePlainContent":"@EchoBot what time is it?"},"readed":false,"createdAt":"2023-11-14T22:13:20.123Z","updatedAt":"2023-11-14T22:13:20.123Z","__v":0}"#;
const T3: &str = r#"{"_id":"6553a300c3b1e2a9d4f0ab00","userId":"6552f3a0c3b1e2a9d4f01234","type":"markdown","payload":{"title":"Maintenance","content":"Server restarts at **02:00 UTC**"},"readed":false,"createdAt":"2023-11-14T22:17:04.000Z","updatedAt":"2023-11-14T22:17:04.000Z","__v":0}"#;
const TOKEN: &str = "bench-callback-token-0123456789";

fn request(query: &str, body: String) -> Request<Body> {
    Request::post(format!("/?{query}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

async fn call(router: &Router, query: &str, body: String) -> StatusCode {
    router
        .clone()
        .oneshot(request(query, body))
        .await
        .unwrap()
        .status()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (router, baseline) = rt.block_on(async {
        let emu = TailchatEmulator::new(
            "tc_6448e822834c12425646f470",
            "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5",
            "6552f3a0c3b1e2a9d4f01234",
        );
        let api_url = emu.serve_on_loopback().await.unwrap();
        let clock: SharedClock = Arc::new(SystemClock);
        let store =
            Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"), clock.clone()).unwrap());
        let deps = Deps {
            store,
            clock,
            bot: Arc::new(hookline_bots::echo::bot()),
            http: HttpClient::new().unwrap(),
            deferral: Default::default(),
        };
        let config = TailchatConfig {
            api_url,
            app_id: "tc_6448e822834c12425646f470".into(),
            app_secret: Secret::new("V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5"),
            callback_token: Secret::new(TOKEN),
        };
        let baseline = Router::new().route(
            "/",
            post(|body: Bytes| async move {
                let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                black_box(parsed);
                StatusCode::OK
            }),
        );
        (hookline_tailchat::router(config, deps), baseline)
    });
    let query = format!("token={TOKEN}");
    let n = AtomicU64::new(0);

    c.bench_function("baseline/axum_parse_json", |b| {
        b.iter(|| rt.block_on(call(&baseline, &query, T1.to_owned())))
    });
    c.bench_function("tailchat/reject_forged_token", |b| {
        b.iter(|| {
            assert_eq!(
                rt.block_on(call(&router, "token=forged", T1.to_owned())),
                StatusCode::NOT_FOUND
            )
        })
    });
    c.bench_function("tailchat/ignore_broadcast", |b| {
        b.iter(|| {
            assert_eq!(
                rt.block_on(call(&router, &query, T3.to_owned())),
                StatusCode::OK
            )
        })
    });
    c.bench_function("tailchat/answer_mention", |b| {
        b.iter(|| {
            let id = format!("{:024x}", n.fetch_add(1, Ordering::Relaxed));
            assert_eq!(
                rt.block_on(call(&router, &query, T1.replace("MESSAGE_ID", &id))),
                StatusCode::OK
            );
        })
    });
    c.bench_function("strip_mention_tag", |b| {
        b.iter(|| {
            strip_mention_tag(black_box(
                "[at=6552f3a0c3b1e2a9d4f01234]EchoBot[/at] what time is it?",
            ))
        })
    });
}

criterion_group! {
    name = webhook;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(webhook);
