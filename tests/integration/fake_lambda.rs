//! A fake Lambda Runtime API on loopback, and a function process started against it with
//! `AWS_LAMBDA_RUNTIME_API`, exactly as the Lambda service would start it. Used by the Lambda
//! integration test and by the cold-start benchmark (`benches/cold_start.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

#[derive(Clone)]
struct FakeRuntime {
    events: Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    results: mpsc::UnboundedSender<(String, &'static str, Value)>,
}

async fn next(State(rt): State<FakeRuntime>) -> impl IntoResponse {
    // Long-poll like the real API: block until the test invokes.
    let Some((id, event)) = rt.events.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let mut headers = HeaderMap::new();
    let deadline = hookline::clock::Clock::now_ms(&hookline::clock::SystemClock) + 30_000;
    let values = [
        ("lambda-runtime-aws-request-id", id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:hookline".into(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793".into(),
        ),
    ];
    for (name, value) in values {
        if let Ok(v) = value.parse() {
            headers.insert(name, v);
        }
    }
    (StatusCode::OK, headers, event.to_string())
}

async fn record(
    rt: FakeRuntime,
    id: String,
    kind: &'static str,
    body: axum::body::Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    let _ = rt.results.send((id, kind, value));
    StatusCode::ACCEPTED
}

/// A Lambda Function URL event (payload format 2.0) for a POST to `/?query` with `body`.
pub fn function_url_event(query: &str, body: &[u8], source_ip: &str) -> Value {
    function_url_event_with_headers(query, &[], body, source_ip)
}

/// [`function_url_event`] with extra request headers.
pub fn function_url_event_with_headers(
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    source_ip: &str,
) -> Value {
    let mut event = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": source_ip, "userAgent": "test"},
            "requestId": "r", "routeKey": "$default", "stage": "$default",
            "time": "14/Nov/2023:22:13:20 +0000", "timeEpoch": 1_700_000_000_123_i64
        },
        "body": String::from_utf8_lossy(body), "isBase64Encoded": false
    });
    for (name, value) in headers {
        event["headers"][*name] = Value::String((*value).to_owned());
    }
    event
}

/// A function process under the fake runtime.
pub struct Lambda {
    events: mpsc::UnboundedSender<(String, Value)>,
    results: mpsc::UnboundedReceiver<(String, &'static str, Value)>,
    invocations: usize,
    /// The function's stderr.
    pub log: PathBuf,
    /// The process.
    pub child: tokio::process::Child,
}

impl Lambda {
    /// Starts `bin` with the Lambda variables, `env`, and its logs in `dir`.
    pub async fn start(bin: &Path, env: &[(&str, String)], dir: &Path) -> Lambda {
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
                post(
                    |State(rt): State<FakeRuntime>, UrlPath(id): UrlPath<String>, body| {
                        record(rt, id, "response", body)
                    },
                ),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(
                    |State(rt): State<FakeRuntime>, UrlPath(id): UrlPath<String>, body| {
                        record(rt, id, "error", body)
                    },
                ),
            )
            .with_state(runtime);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let runtime_addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let log = dir.join("lambda.log");
        let mut command = tokio::process::Command::new(bin);
        // Nothing of the test's own environment: the function sees what Lambda would give it.
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime_addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "hookline")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/hookline")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOOKLINE_DATA_DIR", dir.join("state"));
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdout(std::fs::File::create(dir.join("stdout.log")).expect("log file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        Lambda {
            events: event_tx,
            results: result_rx,
            invocations: 0,
            log,
            child,
        }
    }

    /// Invokes the function with `event` and returns its response document.
    pub async fn invoke(&mut self, event: Value) -> Value {
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
