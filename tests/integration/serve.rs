//! The `hookline` binary as a user runs it: `serve` on the embedded store and the emulator,
//! `GET /healthz`, then `simulate --url` against it.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hookline::store::{DynamoStore, StateStore};

use crate::store_contract::dynamo_config;
use crate::support::{self, free_port, workspace_bin};

/// Starts `hookline serve` on the emulators with `env`, waits for /healthz, returns its base URL.
pub(crate) async fn start_serve(env: &[(&str, String)]) -> (tokio::process::Child, String) {
    start_serve_of("hookline", free_port(), env).await
}

/// Starts `<bin> serve` (a binary calling `hookline_server::main`) on `port`.
pub(crate) async fn start_serve_of(
    bin: &str,
    port: u16,
    env: &[(&str, String)],
) -> (tokio::process::Child, String) {
    start_serve_with_stderr(bin, port, env, Stdio::null()).await
}

/// [`start_serve_of`] with the server's stderr (its log) going to `stderr`.
pub(crate) async fn start_serve_with_stderr(
    bin: &str,
    port: u16,
    env: &[(&str, String)],
    stderr: Stdio,
) -> (tokio::process::Child, String) {
    let base = format!("http://127.0.0.1:{port}");
    let mut command = tokio::process::Command::new(workspace_bin(bin));
    command
        .arg("serve")
        .env_remove("TAILCHAT_URL")
        .env_remove("TAILCHAT_CALLBACK_TOKEN")
        .env_remove("TENCENT_SDKAPPID")
        .env_remove("TENCENT_CALLBACK_TOKEN")
        .env_remove("TAMTAM_TOKEN")
        .env_remove("TAMTAM_CALLBACK_TOKEN")
        .env_remove("MAX_TOKEN")
        .env_remove("MAX_WEBHOOK_SECRET")
        .env_remove("MAX_WEBHOOK_URL")
        .env_remove("DINGTALK_APP_SECRET")
        .env_remove("DINGTALK_NOTIFY_TOKEN")
        .env_remove("HOOKLINE_TABLE")
        .env("HOOKLINE_BIND", format!("127.0.0.1:{port}"));
    for (name, value) in env {
        command.env(name, value);
    }
    let server = command
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hookline serve");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            ready = r.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "hookline serve did not answer /healthz within 10 s");
    (server, base)
}

async fn simulate(base: &str, text: &str) -> String {
    simulate_on("tailchat", base, text).await
}

async fn simulate_on(platform: &str, base: &str, text: &str) -> String {
    let out = tokio::process::Command::new(workspace_bin("hookline"))
        .args(["simulate", platform, text, "--url", base])
        .env_remove("TENCENT_SDKAPPID")
        .env_remove("TENCENT_CALLBACK_TOKEN")
        .env_remove("TENCENT_BOT_ID")
        .env_remove("TAMTAM_CALLBACK_TOKEN")
        .env_remove("TAILCHAT_CALLBACK_TOKEN")
        .output()
        .await
        .expect("simulate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn serve_answers_healthz_and_simulate_gets_the_bots_reply() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut server, base) =
        start_serve(&[("HOOKLINE_DATA_DIR", data.path().display().to_string())]).await;
    let stdout = simulate(&base, "hello there").await;
    assert!(stdout.contains("-> 200 OK"), "{stdout}");
    assert!(
        stdout.contains("reply: [at=6448e822834c12425646f473][/at] Your message: hello there"),
        "{stdout}"
    );

    // Notes persist in the embedded store between webhooks.
    simulate(&base, "/remember water the plants").await;
    let stdout = simulate(&base, "/notes").await;
    assert!(stdout.contains("1. water the plants"), "{stdout}");

    // Tencent on its emulator, through the same server.
    let stdout = simulate_on("tencent", &base, "hello tencent").await;
    assert!(stdout.contains("/tencent -> 200 OK"), "{stdout}");
    assert!(stdout.contains("Your message: hello tencent"), "{stdout}");
    assert!(stdout.contains("reply: @simulator-"), "{stdout}");

    // TamTam on its emulator (loopback is allowed there), buttons included.
    let stdout = simulate_on("tamtam", &base, "/buttons").await;
    assert!(stdout.contains("/tamtam -> 200 OK"), "{stdout}");
    assert!(
        stdout.contains("reply: Pick one:") && stdout.contains("[buttons: Yes | No]"),
        "{stdout}"
    );

    // DingTalk: a signed callback answered through the session webhook, and the notify endpoint.
    let stdout = simulate_on("dingtalk", &base, "hello dingtalk").await;
    assert!(stdout.contains("/dingtalk -> 200 OK"), "{stdout}");
    assert!(
        stdout.contains("reply: Your message: hello dingtalk @simulator"),
        "{stdout}"
    );
    let notify = reqwest::Client::new()
        .post(format!("{base}/dingtalk/notify"))
        .bearer_auth("emulator-notify-token")
        .json(&serde_json::json!({"text": "deploy finished"}))
        .send()
        .await
        .expect("notify");
    assert_eq!(notify.status().as_u16(), 200);
    assert_eq!(notify.text().await.expect("body"), r#"{"sent":true}"#);

    server.start_kill().expect("stop serve");
    let _ = server.wait().await;
    assert!(
        data.path().join("state.redb").exists(),
        "the embedded store lives in HOOKLINE_DATA_DIR"
    );
}

#[tokio::test]
async fn serve_keeps_its_state_in_dynamodb_when_hookline_table_is_set() {
    let Some(endpoint) = support::dynamodb_endpoint() else {
        return;
    };
    let table = format!("hookline-serve-{:016x}", support::rand_id());
    let clock: hookline::clock::SharedClock = Arc::new(hookline::clock::SystemClock);
    let client = aws_sdk_dynamodb::Client::from_conf(dynamo_config(&endpoint).build());
    let store = DynamoStore::new(client, &table, clock);
    store.create_table_if_missing().await.expect("create table");
    let data = tempfile::tempdir().expect("tempdir");
    let env = [
        ("HOOKLINE_TABLE", table.clone()),
        ("HOOKLINE_DATA_DIR", data.path().display().to_string()),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ];
    let (mut server, base) = start_serve(&env).await;
    let stdout = simulate(&base, "/remember stored in dynamodb").await;
    assert!(stdout.contains("Noted."), "{stdout}");
    let stdout = simulate(&base, "/notes").await;
    assert!(stdout.contains("1. stored in dynamodb"), "{stdout}");
    server.start_kill().expect("stop serve");
    let _ = server.wait().await;

    // The notes and the cached session are in the table, and the embedded store was never made.
    // A note is a JSON string in the echo bot's chat state.
    let notes = store
        .query_prefix(
            "tailchat#tc_656d756c61746f7200000000#state#chat#644f7c9d2a1b3c4d5e6f7082",
            "note#",
        )
        .await
        .expect("query");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].1.value, "\"stored in dynamodb\"");
    assert!(!data.path().join("state.redb").exists());
}

async fn setup_tencent(api_url: &str, key: &str, data: &std::path::Path) -> std::process::Output {
    tokio::process::Command::new(workspace_bin("hookline"))
        .args([
            "setup",
            "tencent",
            "--nick",
            "Jarvis",
            "--group",
            "@TGS#2J4SZEAEL",
        ])
        .env("TENCENT_SDKAPPID", "1400000000")
        .env("TENCENT_SECRET_KEY", key)
        .env("TENCENT_BOT_ID", "@RBT#001")
        // `setup` calls the REST API only: the README runs it before the token exists.
        .env_remove("TENCENT_CALLBACK_TOKEN")
        .env_remove("TENCENT_ALLOW_UNSIGNED")
        .env("TENCENT_API_URL", api_url)
        .env_remove("HOOKLINE_TABLE")
        .env("HOOKLINE_DATA_DIR", data)
        .output()
        .await
        .expect("run hookline setup tencent")
}

#[tokio::test]
async fn setup_tencent_creates_the_chatbot_and_adds_it_to_groups() {
    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    let clock: hookline::clock::SharedClock = Arc::new(hookline::clock::SystemClock);
    let emu = hookline_tencent::emulator::TencentEmulator::new(
        1_400_000_000,
        KEY,
        "administrator",
        clock,
    );
    let api_url = emu.serve_on_loopback().await.expect("emulator");

    let data = tempfile::tempdir().expect("tempdir");
    let out = setup_tencent(&api_url, KEY, data.path()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("chatbot @RBT#001 is a member of @TGS#2J4SZEAEL"),
        "{stdout}"
    );
    let calls = emu.sent();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0]["api"], "create_robot");
    assert_eq!(
        calls[0]["body"],
        serde_json::json!({"UserID": "@RBT#001", "Nick": "Jarvis"})
    );
    assert_eq!(calls[1]["api"], "add_group_member");
    assert_eq!(calls[1]["body"]["GroupId"], "@TGS#2J4SZEAEL");
    assert_eq!(
        calls[1]["body"]["MemberList"],
        serde_json::json!([{"Member_Account": "@RBT#001"}])
    );

    // A key of another app: a clear error naming the variable to fix, and a failing exit.
    let other = tempfile::tempdir().expect("tempdir");
    let out = setup_tencent(&api_url, "not-the-apps-key", other.path()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("TENCENT_SECRET_KEY"), "{stderr}");
    assert!(
        !stderr.contains("not-the-apps-key"),
        "the key reached the output: {stderr}"
    );
    assert_eq!(emu.sent().len(), 2);
}

async fn setup_tamtam(
    api_url: &str,
    args: &[&str],
    data: &std::path::Path,
) -> std::process::Output {
    tokio::process::Command::new(workspace_bin("hookline"))
        .args(["setup", "tamtam"])
        .args(args)
        .env("TAMTAM_TOKEN", "tamtam-setup-token")
        .env("TAMTAM_CALLBACK_TOKEN", "tamtam-callback-token-0123456789")
        .env("TAMTAM_API_URL", api_url)
        .env_remove("HOOKLINE_TABLE")
        .env("HOOKLINE_DATA_DIR", data)
        .output()
        .await
        .expect("run hookline setup tamtam")
}

#[tokio::test]
async fn setup_tamtam_subscribes_lists_removes_stale_and_publishes_commands() {
    let emu = hookline_tamtam::emulator::TamTamEmulator::new(
        "tamtam-setup-token",
        591_000_001,
        "helper_bot",
    );
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    emu.add_subscription("https://old.example.com/tamtam?token=old");
    let data = tempfile::tempdir().expect("tempdir");

    // A port TamTam does not deliver to is refused before any call.
    let out = setup_tamtam(
        &api_url,
        &["--url", "https://bot.example.com:3000/tamtam"],
        data.path(),
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("port 3000"));
    assert_eq!(emu.attempts(), 0);

    // Without --remove-stale the old subscription is listed and kept.
    let out = setup_tamtam(
        &api_url,
        &["--url", "https://bot.example.com/tamtam"],
        data.path(),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("other subscription kept: https://old.example.com/tamtam?token=***"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("tamtam-callback-token-0123456789"),
        "the token reached the output: {stdout}"
    );
    // Progress on stderr, before each call it waits for; no token there either.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let steps = [
        "listing the bot's subscriptions…",
        "subscribing https://bot.example.com/tamtam?token=***…",
        "publishing the bot's commands…",
    ];
    let at: Vec<usize> = steps
        .iter()
        .map(|s| {
            stderr
                .find(s)
                .unwrap_or_else(|| panic!("{s} missing:\n{stderr}"))
        })
        .collect();
    assert!(at.is_sorted(), "{stderr}");
    assert!(
        !stderr.contains("tamtam-callback-token-0123456789"),
        "{stderr}"
    );
    let wanted = "https://bot.example.com/tamtam?token=tamtam-callback-token-0123456789";
    assert_eq!(
        emu.subscriptions(),
        vec![
            "https://old.example.com/tamtam?token=old".to_owned(),
            wanted.to_owned()
        ]
    );

    let out = setup_tamtam(
        &api_url,
        &["--url", "https://bot.example.com/tamtam", "--remove-stale"],
        data.path(),
    )
    .await;
    assert!(out.status.success());
    assert_eq!(emu.subscriptions(), vec![wanted.to_owned()]);
    let subscribe = emu
        .calls()
        .into_iter()
        .rfind(|c| c["method"] == "POST" && c["path"] == "/subscriptions")
        .expect("subscribed");
    assert_eq!(
        subscribe["body"],
        serde_json::json!({"url": wanted, "update_types": ["message_created", "message_callback", "bot_started", "bot_added"], "version": "0.3.0"})
    );
    let commands = emu.commands();
    let names: Vec<&str> = commands
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["help", "remember", "notes", "forget", "buttons"]);
}

#[tokio::test]
async fn beside_a_live_platform_no_emulator_is_mounted() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut serve, base) = start_serve(&[
        ("HOOKLINE_DATA_DIR", data.path().display().to_string()),
        ("TAMTAM_TOKEN", "a-live-tamtam-token".to_owned()),
        (
            "TAMTAM_CALLBACK_TOKEN",
            "a-live-callback-token-0123".to_owned(),
        ),
        ("TAMTAM_API_URL", "http://127.0.0.1:9".to_owned()),
    ])
    .await;
    for platform in ["tailchat", "tencent", "tamtam", "dingtalk"] {
        let status = reqwest::get(format!("{base}/_emulator/{platform}/sent"))
            .await
            .expect("serve")
            .status();
        assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{platform}");
    }
    // The unconfigured platforms are off, not on an emulator with public credentials.
    let status = reqwest::Client::new()
        .post(format!("{base}/tailchat?token=emulator"))
        .body("{}")
        .send()
        .await
        .expect("serve")
        .status();
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    serve.kill().await.expect("kill");
}
