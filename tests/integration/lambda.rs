//! The Lambda code path of `hookline-tailchat`: the real binary, started with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a fake Lambda Runtime API on loopback, fed Function URL
//! events (payload format 2.0), exactly as the Lambda service would.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hookline_tailchat::emulator::TailchatEmulator;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

use crate::support::{self, fixture_json, workspace_bin};

const BOT: &str = "6552f3a0c3b1e2a9d4f01234";
const APP_ID: &str = "tc_6448e822834c12425646f470";
const APP_SECRET: &str = "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5";
const TOKEN: &str = "lambda-test-callback-token-0001";

#[derive(Clone)]
struct FakeRuntime {
    events: Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    results: mpsc::UnboundedSender<(String, &'static str, Value)>,
}

async fn next(State(rt): State<FakeRuntime>) -> impl IntoResponse {
    // Long-poll like the real API: block until the test invokes.
    let Some((id, event)) = rt.events.lock().await.recv().await else {
        return (
            axum::http::StatusCode::GONE,
            HeaderMap::new(),
            String::new(),
        );
    };
    let mut headers = HeaderMap::new();
    let deadline = hookline::clock::Clock::now_ms(&hookline::clock::SystemClock) + 30_000;
    headers.insert("lambda-runtime-aws-request-id", id.parse().expect("header"));
    headers.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().expect("header"),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:hookline-tailchat"
            .parse()
            .expect("header"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793"
            .parse()
            .expect("header"),
    );
    (axum::http::StatusCode::OK, headers, event.to_string())
}

fn record(
    kind: &'static str,
) -> impl Fn(
    State<FakeRuntime>,
    Path<String>,
    axum::body::Bytes,
) -> std::future::Ready<axum::http::StatusCode>
+ Clone {
    move |State(rt): State<FakeRuntime>, Path(id): Path<String>, body: axum::body::Bytes| {
        let value = serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
        let _ = rt.results.send((id, kind, value));
        std::future::ready(axum::http::StatusCode::ACCEPTED)
    }
}

struct Lambda {
    events: mpsc::UnboundedSender<(String, Value)>,
    results: mpsc::UnboundedReceiver<(String, &'static str, Value)>,
    invocations: usize,
    log: std::path::PathBuf,
    _child: tokio::process::Child,
}

impl Lambda {
    async fn invoke(&mut self, event: Value) -> Value {
        self.invocations += 1;
        let id = format!("req-{}", self.invocations);
        self.events
            .send((id.clone(), event))
            .expect("runtime alive");
        let result = tokio::time::timeout(Duration::from_secs(20), self.results.recv()).await;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let (got_id, kind, value) = result
            .unwrap_or_else(|_| panic!("no answer from the function within 20 s; its log:\n{log}"))
            .expect("runtime alive");
        assert_eq!(
            (got_id.as_str(), kind),
            (id.as_str(), "response"),
            "{value}\nlog:\n{log}"
        );
        value
    }
}

async fn start(api_url: &str, dir: &tempfile::TempDir) -> Lambda {
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (result_tx, result_rx) = mpsc::unbounded_channel();
    let runtime = FakeRuntime {
        events: Arc::new(Mutex::new(event_rx)),
        results: result_tx,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(record("response")),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(record("error")),
        )
        .with_state(runtime);
    let runtime_url = support::spawn(app).await;
    let log = dir.path().join("lambda.log");
    let child = tokio::process::Command::new(workspace_bin("hookline-tailchat"))
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            runtime_url.trim_start_matches("http://"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "hookline-tailchat")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/hookline-tailchat")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("HOOKLINE_TABLE")
        .env("HOOKLINE_DATA_DIR", dir.path().join("state"))
        .env("TAILCHAT_URL", api_url)
        .env("TAILCHAT_APP_ID", APP_ID)
        .env("TAILCHAT_APP_SECRET", APP_SECRET)
        .env("TAILCHAT_CALLBACK_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(dir.path().join("stdout.log")).expect("log file"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hookline-tailchat");
    Lambda {
        events: event_tx,
        results: result_rx,
        invocations: 0,
        log,
        _child: child,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_events_run_through_the_lambda_binary() {
    let emu = TailchatEmulator::new(APP_ID, APP_SECRET, BOT);
    let api_url = support::spawn(emu.router()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lambda = start(&api_url, &dir).await;

    let answer = lambda
        .invoke(fixture_json("lambda/function_url_tailchat_group.json"))
        .await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(
        emu.sent(),
        vec![fixture_json("tailchat/reply_message_group.json")]
    );

    // A base64-encoded body (isBase64Encoded: true) is decoded before parsing.
    let answer = lambda
        .invoke(fixture_json("lambda/function_url_tailchat_dm_base64.json"))
        .await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(emu.sent().len(), 2);
    assert_eq!(
        emu.sent()[1]["content"],
        "[at=6448e822834c12425646f473][/at] Your message: ping"
    );

    // A retried delivery is answered without a second message.
    let answer = lambda
        .invoke(fixture_json("lambda/function_url_tailchat_group.json"))
        .await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(emu.sent().len(), 2);

    let answer = lambda
        .invoke(fixture_json(
            "lambda/function_url_tailchat_wrong_token.json",
        ))
        .await;
    assert_eq!(answer["statusCode"], 404, "{answer}");
    assert_eq!(emu.sent().len(), 2);
    assert_eq!(emu.logins(), 1, "the JWT is reused across warm invocations");

    // Logs are JSON lines under Lambda, and carry no secret.
    let log = std::fs::read_to_string(&lambda.log).expect("log");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the function logged nothing");
    for line in &lines {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
    assert!(log.contains("\"status\":404"), "{log}");
    for secret in [TOKEN, APP_SECRET] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
}
