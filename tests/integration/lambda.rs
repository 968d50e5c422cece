//! The Lambda code path of `hookline-tailchat`: the real binary, started with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a fake Lambda Runtime API on loopback, fed Function URL
//! events (payload format 2.0), exactly as the Lambda service would.

use hookline_tailchat::emulator::TailchatEmulator;
use serde_json::Value;

use crate::fake_lambda::{Lambda, function_url_event, function_url_event_with_headers};
use crate::support::{fixture, fixture_json, workspace_bin};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_callbacks_run_through_the_lambda_binary() {
    use hookline_tencent::emulator::TencentEmulator;
    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    let clock: hookline::clock::SharedClock = std::sync::Arc::new(hookline::clock::SystemClock);
    let emu = TencentEmulator::new(1_400_000_000, KEY, "administrator", clock);
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("TENCENT_SDKAPPID", "1400000000".to_owned()),
        ("TENCENT_SECRET_KEY", KEY.to_owned()),
        ("TENCENT_BOT_ID", "@RBT#001".to_owned()),
        ("TENCENT_API_URL", api_url),
        ("RUST_LOG", "info".to_owned()),
    ];
    // Without callback authentication the function refuses to start, naming the variable.
    let refused = tokio::process::Command::new(workspace_bin("hookline-tencent"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("HOOKLINE_DATA_DIR", dir.path())
        .output()
        .await
        .expect("run hookline-tencent");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("TENCENT_CALLBACK_TOKEN") && stderr.contains("TENCENT_ALLOW_UNSIGNED"),
        "{stderr}"
    );
    // The explicit opt-out runs, with a warning.
    let mut env = env.to_vec();
    env.push(("TENCENT_ALLOW_UNSIGNED", "1".to_owned()));
    let mut lambda = Lambda::start(&workspace_bin("hookline-tencent"), &env, dir.path()).await;
    let query = "SdkAppid=1400000000&CallbackCommand=Bot.OnGroupMessage&contenttype=json&ClientIP=198.51.100.20&OptPlatform=Web";
    let event = function_url_event(
        query,
        &fixture("tencent/group_message_topic.json"),
        "203.0.113.7",
    );
    let answer = lambda.invoke(event).await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let body: Value =
        serde_json::from_str(answer["body"].as_str().unwrap_or_default()).expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0})
    );
    assert_eq!(emu.sent().len(), 1);
    assert_eq!(
        emu.sent()[0]["body"]["MsgBody"][0]["MsgContent"]["Text"],
        "@lucy Your message: summarise this"
    );

    let foreign = function_url_event(
        &query.replace("1400000000", "1400000001"),
        &fixture("tencent/group_message_topic.json"),
        "203.0.113.7",
    );
    assert_eq!(lambda.invoke(foreign).await["statusCode"], 401);
    assert_eq!(emu.sent().len(), 1);
    let log = std::fs::read_to_string(&lambda.log).expect("log");
    assert!(!log.contains(KEY), "the secret key reached the log");
    assert!(
        log.contains("TENCENT_ALLOW_UNSIGNED=1"),
        "no warning: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamtam_updates_are_accepted_only_from_tamtams_subnets_under_lambda() {
    use hookline_tamtam::emulator::TamTamEmulator;
    let emu = TamTamEmulator::new("tamtam-lambda-token", 591_000_001, "helper_bot");
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("TAMTAM_TOKEN", "tamtam-lambda-token".to_owned()),
        (
            "TAMTAM_CALLBACK_TOKEN",
            "tamtam-callback-token-0123456789".to_owned(),
        ),
        ("TAMTAM_API_URL", api_url),
        ("RUST_LOG", "info".to_owned()),
        // Even when told to trust a proxy, a Function URL's caller cannot pick its address.
        ("HOOKLINE_TRUST_PROXY", "1".to_owned()),
    ];
    let mut lambda = Lambda::start(&workspace_bin("hookline-tamtam"), &env, dir.path()).await;
    let query = "token=tamtam-callback-token-0123456789";
    let m1 = fixture("tamtam/message_created_group_mention.json");

    let outside = function_url_event(query, &m1, "203.0.113.9");
    assert_eq!(lambda.invoke(outside).await["statusCode"], 403);
    assert!(emu.sent().is_empty());
    let spoofed = function_url_event_with_headers(
        query,
        &[("x-forwarded-for", "185.16.150.153")],
        &m1,
        "203.0.113.9",
    );
    assert_eq!(lambda.invoke(spoofed).await["statusCode"], 403);
    assert!(emu.sent().is_empty());

    let inside = function_url_event(query, &m1, "185.16.150.153");
    assert_eq!(lambda.invoke(inside).await["statusCode"], 200);
    assert_eq!(emu.sent().len(), 1);
    assert_eq!(
        emu.sent()[0]["body"]["link"]["mid"],
        "mid.ffffc0391c4485ec0189ad2161fe3a6c"
    );

    let log = std::fs::read_to_string(&lambda.log).expect("log");
    assert!(
        !log.contains("tamtam-lambda-token") && !log.contains("tamtam-callback-token-0123456789"),
        "a secret reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_callbacks_and_notifies_run_through_the_lambda_binary() {
    use hookline::clock::{Clock, SystemClock};
    use hookline_dingtalk::emulator::DingTalkEmulator;
    const APP_SECRET: &str = "Jq3kX0b9yQ2mV7rT1sW5uZ8aC4dE6fG0hI2jK4lM6nO8pQ0rS2tU4vW6xY8zA0bC";
    let clock: hookline::clock::SharedClock = std::sync::Arc::new(SystemClock);
    let emu = DingTalkEmulator::new("robot-token", "SECrobot-secret", clock);
    let emu_url = emu.serve_on_loopback().await.expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("DINGTALK_APP_SECRET", APP_SECRET.to_owned()),
        ("DINGTALK_ROBOT_CODE", "dingue4kfzdxbyn0pjqd".to_owned()),
        ("DINGTALK_WEBHOOK_TOKEN", "robot-token".to_owned()),
        ("DINGTALK_WEBHOOK_SECRET", "SECrobot-secret".to_owned()),
        (
            "DINGTALK_NOTIFY_TOKEN",
            "notify-token-0123456789".to_owned(),
        ),
        ("DINGTALK_API_URL", emu_url.clone()),
        (
            "DINGTALK_SESSION_HOSTS",
            format!(
                "oapi.dingtalk.com,{}",
                emu_url.trim_start_matches("http://")
            ),
        ),
        ("RUST_LOG", "info".to_owned()),
    ];
    let mut lambda = Lambda::start(&workspace_bin("hookline-dingtalk"), &env, dir.path()).await;

    // A callback signed now: the binary runs on the real clock.
    let now = SystemClock.now_ms();
    let ts = now.to_string();
    let sign = hookline_dingtalk::sign::sign(APP_SECRET, &ts);
    let mut d1 = fixture_json("dingtalk/text_group_mention.json");
    d1["sessionWebhook"] = serde_json::json!(format!("{emu_url}/robot/sendBySession?session=s1"));
    d1["sessionWebhookExpiredTime"] = serde_json::json!(now + 600_000);
    let headers = [("timestamp", ts.as_str()), ("sign", sign.as_str())];
    let event =
        function_url_event_with_headers("", &headers, d1.to_string().as_bytes(), "203.0.113.7");
    assert_eq!(lambda.invoke(event).await["statusCode"], 200);
    assert_eq!(
        emu.sent()[0]["body"]["text"]["content"],
        "Your message: deploy status? @manager4021"
    );

    let forged_headers = [("timestamp", ts.as_str()), ("sign", "AAAA")];
    let forged = function_url_event_with_headers(
        "",
        &forged_headers,
        d1.to_string().as_bytes(),
        "203.0.113.7",
    );
    assert_eq!(lambda.invoke(forged).await["statusCode"], 401);

    let auth = [("authorization", "Bearer notify-token-0123456789")];
    let mut notify =
        function_url_event_with_headers("", &auth, br#"{"text":"from lambda"}"#, "203.0.113.7");
    notify["rawPath"] = serde_json::json!("/notify");
    notify["requestContext"]["http"]["path"] = serde_json::json!("/notify");
    let answer = lambda.invoke(notify).await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(emu.sent().len(), 2);
    assert_eq!(emu.sent()[1]["via"], "robot");
    let log = std::fs::read_to_string(&lambda.log).expect("log");
    for secret in [APP_SECRET, "SECrobot-secret", "notify-token-0123456789"] {
        assert!(!log.contains(secret), "{secret} reached the log");
    }
}
