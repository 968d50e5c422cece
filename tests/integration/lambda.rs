//! The Lambda code path of `hookline-tailchat`: the real binary, started with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a fake Lambda Runtime API on loopback, fed Function URL
//! events (payload format 2.0), exactly as the Lambda service would.

use hookline_tailchat::emulator::TailchatEmulator;
use serde_json::Value;

use crate::fake_lambda::Lambda;
use crate::support::{fixture_json, workspace_bin};

const BOT: &str = "6552f3a0c3b1e2a9d4f01234";
const APP_ID: &str = "tc_6448e822834c12425646f470";
const APP_SECRET: &str = "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5";
const TOKEN: &str = "lambda-test-callback-token-0001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_events_run_through_the_lambda_binary() {
    let emu = TailchatEmulator::new(APP_ID, APP_SECRET, BOT);
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("TAILCHAT_URL", api_url.clone()),
        ("TAILCHAT_APP_ID", APP_ID.into()),
        ("TAILCHAT_APP_SECRET", APP_SECRET.into()),
        ("TAILCHAT_CALLBACK_TOKEN", TOKEN.into()),
        ("RUST_LOG", "info".into()),
    ];
    let mut lambda = Lambda::start(&workspace_bin("hookline-tailchat"), &env, dir.path()).await;

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

    assert!(
        lambda.child.try_wait().unwrap().is_none(),
        "the function keeps running between invocations"
    );

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
