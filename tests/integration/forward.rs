//! The forward bridge (`HOOKLINE_BOT=forward`): the README's Python endpoint
//! (`examples/forward_endpoint.py`) behind `hookline serve`; the retry rule for the endpoint's
//! failures; and the JSON Schema kept in step with the code.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use hookline::secret::Secret;
use hookline_bots::forward::{ForwardBot, ForwardRequest, SIGNATURE_HEADER, signature};
use hookline_server::testing::TestServer;
use serde_json::Value;

use crate::serve::start_serve;
use crate::support::workspace_bin;

const SECRET: &str = "forward-test-secret-0123456789";

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

#[tokio::test]
async fn the_python_example_answers_through_hookline_serve() {
    use tokio::io::AsyncBufReadExt as _;
    // Port 0: the endpoint binds a free port and prints its URL once it listens (no port race
    // with the other tests' servers, no wait for it to start).
    let mut python = tokio::process::Command::new("python3")
        .arg(repo("examples/forward_endpoint.py"))
        .arg("0")
        .env("HOOKLINE_FORWARD_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs the example endpoint");
    let mut first = String::new();
    tokio::io::BufReader::new(python.stdout.take().unwrap())
        .read_line(&mut first)
        .await
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the endpoint said {first:?}"))
        .to_owned();
    let data = tempfile::tempdir().unwrap();
    let (mut server, base) = start_serve(&[
        ("HOOKLINE_DATA_DIR", data.path().display().to_string()),
        ("HOOKLINE_BOT", "forward".into()),
        ("HOOKLINE_FORWARD_URL", url),
        ("HOOKLINE_FORWARD_SECRET", SECRET.into()),
    ])
    .await;
    let out = simulate("tamtam", &base, "hello from TamTam").await;
    assert!(
        out.contains("reply: Python heard Simulator: hello from TamTam"),
        "{out}"
    );
    let out = simulate("dingtalk", &base, "hi").await;
    assert!(out.contains("reply: Python heard"), "{out}");
    server.kill().await.ok();
    python.kill().await.ok();
}

async fn simulate(platform: &str, base: &str, text: &str) -> String {
    let out = tokio::process::Command::new(workspace_bin("hookline"))
        .args(["simulate", platform, text, "--url", base])
        .env_remove("TAMTAM_CALLBACK_TOKEN")
        .env_remove("DINGTALK_APP_SECRET")
        .output()
        .await
        .expect("simulate");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fake endpoint: checks the signature, counts calls, answers `status` with `body`.
async fn endpoint(status: StatusCode, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: axum::http::HeaderMap, raw: bytes::Bytes| {
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let header = headers[SIGNATURE_HEADER].to_str().unwrap().to_owned();
                let t: i64 = header[2..header.find(',').unwrap()].parse().unwrap();
                assert_eq!(header, signature(&Secret::new(SECRET), t, &raw));
                let request: ForwardRequest = serde_json::from_slice(&raw).unwrap();
                assert_eq!(request.version, 1);
                (status, body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

fn bridge(url: &str) -> ForwardBot {
    ForwardBot::new(url, Secret::new(SECRET)).unwrap()
}

#[tokio::test]
async fn an_unavailable_endpoint_is_retried_then_the_event_redelivered() {
    let (url, calls) = endpoint(StatusCode::SERVICE_UNAVAILABLE, "").await;
    let server = TestServer::start(bridge(&url)).await.unwrap();
    let webhook = server.webhook("tamtam", "hi");
    let exchange = server.deliver(&webhook).await.unwrap();
    assert_eq!(exchange.status, 503, "{}", exchange.body);
    // Tried again within the invocation (the retry rule), then released for a redelivery.
    let first = calls.load(Ordering::SeqCst);
    assert!(first >= 2, "{first} calls");
    server.deliver(&webhook).await.unwrap();
    assert!(
        calls.load(Ordering::SeqCst) > first,
        "the redelivery called again"
    );
}

#[tokio::test]
async fn an_invalid_answer_or_a_refusal_is_given_up_without_a_reply() {
    for (status, body) in [
        (
            StatusCode::OK,
            r#"{"replies": [{"type": "photo", "url": "x"}]}"#,
        ),
        (StatusCode::OK, "<html>oops</html>"),
        (StatusCode::UNAUTHORIZED, "bad signature"),
    ] {
        let (url, calls) = endpoint(status, body).await;
        let server = TestServer::start(bridge(&url)).await.unwrap();
        let webhook = server.webhook("tamtam", "hi");
        for _ in 0..2 {
            let exchange = server.deliver(&webhook).await.unwrap();
            assert_eq!(exchange.status, 200, "{body}");
            assert_eq!(exchange.replies.unwrap().len(), 0, "{body}");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{body}: given up, not retried"
        );
    }
}

#[tokio::test]
async fn valid_answers_are_sent_in_order() {
    let (url, _) = endpoint(
        StatusCode::OK,
        r#"{"replies": [{"type": "text", "text": "one"},
                        {"type": "choices", "text": "two?", "choices": [{"label": "A", "payload": "a"}]}]}"#,
    )
    .await;
    let replies = hookline_server::testing::simulate(bridge(&url), "tamtam", "go")
        .await
        .unwrap();
    assert_eq!(replies, ["one", "two?\n[buttons: A]"]);
}

#[test]
fn the_json_schema_matches_what_is_sent_and_accepted() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("schemas/forward.schema.json")).unwrap(),
    )
    .unwrap();
    let defs = &schema["$defs"];
    let t = hookline::testing::TestBot::new(hookline::bot::Handlers::new());
    let request = serde_json::to_value(ForwardRequest::of(
        &t.context(hookline::testing::Message::text("/x y")),
    ))
    .unwrap();
    let mut sent: Vec<&str> = request
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut required: Vec<&str> = defs["request"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    sent.sort_unstable();
    required.sort_unstable();
    assert_eq!(sent, required);
    // The platform enum names every platform.
    let mut platforms: Vec<&str> = defs["request"]["properties"]["platform"]["enum"]
        .as_array()
        .expect("the platform enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut every = hookline_server::testing::PLATFORMS.to_vec();
    platforms.sort_unstable();
    every.sort_unstable();
    assert_eq!(platforms, every);
    // Every reply type of the schema is accepted, and nothing else.
    for reply in defs["reply"]["oneOf"].as_array().unwrap() {
        let kind = reply["properties"]["type"]["const"].as_str().unwrap();
        let mut example = serde_json::json!({"type": kind});
        for field in reply["required"].as_array().unwrap() {
            let field = field.as_str().unwrap();
            if field != "type" {
                example[field] = if field == "choices" {
                    serde_json::json!([{"label": "L", "payload": "p"}])
                } else {
                    "x".into()
                };
            }
        }
        let answer = serde_json::json!({"replies": [example]}).to_string();
        assert!(
            hookline_bots::forward::parse_answer(answer.as_bytes()).is_ok(),
            "{answer}"
        );
    }
}
