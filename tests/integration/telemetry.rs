//! Logs and metrics of the real Lambda binary: one JSON line per webhook with its outcome,
//! Lambda's own log controls, and CloudWatch EMF documents on stdout, validated against the
//! format's JSON Schema (`tests/schemas/emf.json`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fake_lambda::{Lambda, function_url_event};
use crate::support::{TAILCHAT_TOKEN, tailchat_message, workspace_bin};

const BOT: &str = "6552f3a0c3b1e2a9d4f01234";
const APP_ID: &str = "tc_telemetry";
const APP_SECRET: &str = "V1StGXR8_Z5jdHi6B-telemetry-SECRET";

async fn start(
    extra: &[(&str, &str)],
    dir: &Path,
) -> (hookline_tailchat::emulator::TailchatEmulator, Lambda) {
    let emu = hookline_tailchat::emulator::TailchatEmulator::new(APP_ID, APP_SECRET, BOT);
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let mut env = vec![
        ("TAILCHAT_URL", api_url),
        ("TAILCHAT_APP_ID", APP_ID.to_owned()),
        ("TAILCHAT_APP_SECRET", APP_SECRET.to_owned()),
        ("TAILCHAT_CALLBACK_TOKEN", TAILCHAT_TOKEN.to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let lambda = Lambda::start(&workspace_bin("hookline-tailchat"), &env, dir).await;
    (emu, lambda)
}

/// A Function URL event of a group message mentioning the bot, with message id `id`.
fn mention(id: &str) -> Value {
    tailchat_message(id, "[at=6552f3a0c3b1e2a9d4f01234]x[/at] hi")
}

/// `event` with a webhook token that is not the function's.
fn with_wrong_token(mut event: Value) -> Value {
    event["rawQueryString"] = "token=guess".into();
    event["queryStringParameters"] = serde_json::json!({"token": "guess"});
    event
}

/// The webhook lines of a JSON log (every line must be JSON).
fn webhook_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["target"] == hookline::telemetry::WEBHOOK_TARGET)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_has_one_json_line_with_its_outcome_and_emf_metrics_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, mut lambda) = start(
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
            ("HOOKLINE_METRICS_NAMESPACE", "hookline-test"),
        ],
        dir.path(),
    )
    .await;
    let message = mention("6553a1f0c3b1e2a9d4f0b001");
    let mut own = message.clone();
    let mut body: Value = serde_json::from_str(own["body"].as_str().unwrap()).unwrap();
    body["payload"]["messageId"] = "6553a1f0c3b1e2a9d4f0b002".into();
    body["payload"]["messageAuthor"] = BOT.into();
    own["body"] = body.to_string().into();
    let wrong_token = with_wrong_token(message.clone());
    let malformed = function_url_event(
        &format!("token={TAILCHAT_TOKEN}"),
        b"{not json",
        "203.0.113.9",
    );
    let denied = mention("6553a1f0c3b1e2a9d4f0b003");
    let huge = function_url_event(
        &format!("token={TAILCHAT_TOKEN}"),
        &vec![b' '; hookline::pipeline::MAX_BODY_BYTES + 1],
        "203.0.113.9",
    );
    let expected = [
        (message.clone(), 200, "answered"),
        (message, 200, "duplicate"),
        (own, 200, "ignored"),
        (wrong_token, 404, "rejected:unknown_token"),
        (malformed, 400, "rejected:malformed"),
        (huge, 413, "rejected:body_too_large"),
        // The bot was removed from the group: refused for good, dropped with a 200.
        (denied, 200, "failed:platform_permission"),
    ];
    for (event, status, outcome) in &expected {
        if outcome.starts_with("failed") {
            emu.deny_group("644f7c9d2a1b3c4d5e6f7081");
        }
        let answer = lambda.invoke(event.clone()).await;
        assert_eq!(answer["statusCode"], *status, "{answer}");
    }
    assert_eq!(emu.sent().len(), 1);

    let log = std::fs::read_to_string(&lambda.log).unwrap();
    let lines = webhook_lines(&log);
    assert_eq!(lines.len(), expected.len(), "one line per webhook:\n{log}");
    for (n, (line, (_, status, outcome))) in lines.iter().zip(&expected).enumerate() {
        assert_eq!(line["request_id"], format!("req-{}", n + 1), "{line}");
        assert_eq!(line["platform"], "tailchat", "{line}");
        assert_eq!(line["outcome"], *outcome, "{line}");
        assert_eq!(line["status"], *status, "{line}");
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0, "{line}");
        assert_eq!(line["cold_start"], n == 0, "{line}");
        assert_eq!(line["message"], "webhook", "{line}");
        let level = match outcome.split(':').next() {
            Some("rejected") => "WARN",
            Some("failed") => "ERROR",
            _ => "INFO",
        };
        assert_eq!(line["level"], level, "{line}");
    }
    assert_eq!(lines[0]["event_id"], "6553a1f0c3b1e2a9d4f0b001");
    assert_eq!(lines[1]["event_id"], "6553a1f0c3b1e2a9d4f0b001");
    assert_eq!(lines[2]["reason"], "the bot's own message");
    assert!(
        lines[3].get("event_id").is_none(),
        "refused before decoding"
    );
    assert!(lines[4]["error"].as_str().unwrap().contains("malformed"));
    assert!(
        !log.contains("\"message\":\"request\""),
        "a webhook has no second, generic request line:\n{log}"
    );
    for secret in [TAILCHAT_TOKEN, APP_SECRET] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }

    let stdout = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
    let docs = emf_documents(&stdout);
    validate_against_emf_schema(&stdout);
    let mut totals: HashMap<String, f64> = HashMap::new();
    for doc in &docs {
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        for directive in directives {
            assert_eq!(directive["Namespace"], "hookline-test");
            for dims in directive["Dimensions"].as_array().unwrap() {
                for dim in dims.as_array().unwrap() {
                    let name = dim.as_str().unwrap();
                    assert!(doc[name].is_string(), "dimension {name} missing: {doc}");
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                let value = doc[name]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{name}: {doc}"));
                let key = match name {
                    "events" => format!("events/{}", doc["outcome"].as_str().unwrap()),
                    other => other.to_owned(),
                };
                *totals.entry(key).or_default() += value;
            }
        }
    }
    for outcome in [
        "answered",
        "duplicate",
        "ignored",
        "rejected:unknown_token",
        "rejected:malformed",
        "rejected:body_too_large",
    ] {
        assert_eq!(
            totals.get(&format!("events/{outcome}")),
            Some(&1.0),
            "{totals:?}"
        );
    }
    assert_eq!(totals.get("replies"), Some(&1.0), "{totals:?}");
    assert_eq!(totals.get("send_failures"), Some(&1.0), "{totals:?}");
    let failure = docs
        .iter()
        .find(|d| d.get("send_failures").is_some())
        .unwrap();
    assert_eq!(failure["kind"], "platform_permission", "{failure}");
    assert_eq!(
        totals.get("events/failed:platform_permission"),
        Some(&1.0),
        "{totals:?}"
    );
    assert_eq!(totals.get("cold_starts"), Some(&1.0), "{totals:?}");
    assert!(totals.contains_key("send_latency"), "{totals:?}");
    assert!(!stdout.contains(APP_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambdas_log_level_and_text_format_apply_when_rust_log_is_unset() {
    let dir = tempfile::tempdir().unwrap();
    let (_emu, mut lambda) = start(
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
            ("HOOKLINE_METRICS", "off"),
        ],
        dir.path(),
    )
    .await;
    let answered = mention("6553a1f0c3b1e2a9d4f0b101");
    let refused = with_wrong_token(answered.clone());
    assert_eq!(lambda.invoke(answered).await["statusCode"], 200);
    assert_eq!(lambda.invoke(refused).await["statusCode"], 404);
    let log = std::fs::read_to_string(&lambda.log).unwrap();
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "AWS_LAMBDA_LOG_FORMAT=Text: no JSON lines\n{log}"
    );
    assert!(log.contains("outcome=rejected:unknown_token"), "{log}");
    assert!(
        !log.contains("outcome=answered"),
        "INFO is below WARN:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "no colours in CloudWatch:\n{log}");
    let stdout = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
    assert!(
        emf_documents(&stdout).is_empty(),
        "HOOKLINE_METRICS=off:\n{stdout}"
    );
}

/// The EMF documents among stdout's lines.
fn emf_documents(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

/// The Python of `tests/run-all` (`HOOKLINE_TEST_PYTHON`), which has `jsonschema`.
fn test_python() -> PathBuf {
    if let Some(python) = std::env::var_os("HOOKLINE_TEST_PYTHON") {
        return python.into();
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.hookline/test-env/bin/python");
    assert!(
        local.exists(),
        "HOOKLINE_TEST_PYTHON is not set: run the suite with tests/run-all, which installs \
         Python's jsonschema to validate the EMF documents"
    );
    local
}

/// Validates every line of `stdout` that is an EMF document against the schema.
fn validate_against_emf_schema(stdout: &str) {
    let docs = emf_documents(stdout);
    assert!(!docs.is_empty(), "no EMF document on stdout:\n{stdout}");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/emf.json");
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  jsonschema.Draft7Validator.check_schema(schema)\n\
                  v = jsonschema.Draft7Validator(schema)\n\
                  n = 0\n\
                  for line in sys.stdin:\n\
                  \x20   errors = [e.message for e in v.iter_errors(json.loads(line))]\n\
                  \x20   if errors: sys.exit(f'{errors}: {line}')\n\
                  \x20   n += 1\n\
                  print(n)\n";
    let input: String = docs.iter().map(|d| format!("{d}\n")).collect();
    let mut child = std::process::Command::new(test_python())
        .args(["-c", script])
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "an EMF document fails the schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        docs.len().to_string()
    );

    // The validator can fail: a document without its namespace does.
    let mut bad = docs[0].clone();
    bad["_aws"]["CloudWatchMetrics"][0]
        .as_object_mut()
        .unwrap()
        .remove("Namespace");
    let mut child = std::process::Command::new(test_python())
        .args(["-c", script])
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{bad}\n").as_bytes())
        .unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the schema let {bad} through"
    );
}

#[tokio::test]
async fn serve_logs_each_webhook_with_a_request_id_and_counts_it_at_metrics_on_loopback() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("serve.log");
    let metrics_port = crate::support::free_port();
    let (mut server, base) = crate::serve::start_serve_with_stderr(
        "hookline",
        crate::support::free_port(),
        &[
            ("HOOKLINE_DATA_DIR", data.path().display().to_string()),
            ("HOOKLINE_METRICS", "prometheus".into()),
            ("HOOKLINE_METRICS_BIND", format!("127.0.0.1:{metrics_port}")),
        ],
        std::fs::File::create(&log).unwrap().into(),
    )
    .await;
    let out = tokio::process::Command::new(workspace_bin("hookline"))
        .args(["simulate", "tailchat", "hello metrics", "--url", &base])
        .env_remove("TAILCHAT_CALLBACK_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let refused = reqwest::Client::new()
        .post(format!("{base}/tailchat?token=guess"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);

    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.text().await.unwrap();
    for series in [
        r#"hookline_events_total{platform="tailchat",outcome="answered"} 1"#,
        r#"hookline_events_total{platform="tailchat",outcome="rejected:unknown_token"} 1"#,
        r#"hookline_replies_total{platform="tailchat"} 1"#,
        r#"hookline_cold_starts_total{platform="tailchat"} 1"#,
        r#"hookline_send_latency_seconds_count{platform="tailchat"} 1"#,
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    // Not on the webhook address.
    let public = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(public.status(), 404);

    server.start_kill().unwrap();
    let _ = server.wait().await;
    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("hookline::webhook"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    let request_id = lines[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("request_id="))
        .unwrap_or_else(|| panic!("no request_id: {}", lines[0]));
    assert_eq!(request_id.len(), 32, "{request_id}");
    assert!(request_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(lines[0].contains("outcome=answered"), "{log}");
    assert!(
        lines[1].contains("outcome=rejected:unknown_token") && lines[1].contains("status=404"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "metrics: GET http://127.0.0.1:{metrics_port}/metrics"
        )),
        "{log}"
    );
}
