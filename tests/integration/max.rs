//! MAX end to end: updates through the MAX router with the secret header, the MAX emulator as
//! the fake API on loopback (it refuses a token anywhere in a URL and wants it in
//! `Authorization`), MAX's limits, setup and the scheduled check, and `MAX_CA_PEM` against a
//! loopback HTTPS API whose certificate is signed by a test CA.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hookline::clock::{SharedClock, SystemClock};
use hookline::secret::Secret;
use hookline::store::SharedStore;
use hookline_tamtam::MaxConfig;
use hookline_tamtam::emulator::TamTamEmulator;
use serde_json::{Value, json};

use crate::support::{self, CountingStore, post_with};

const BOT_TOKEN: &str = "max-test-bot-token";
const SECRET: &str = "max-webhook-secret_0123456789abcdef";
const BOT_ID: i64 = 591_000_001;
/// Above 2^53: a float64 parser would change them.
const BIG_CHAT: i64 = 9_007_199_254_740_993;
const BIG_SEQ: i64 = 117_411_127_858_129_491;

struct Harness {
    emu: TamTamEmulator,
    router: Router,
    store: Arc<CountingStore>,
    _dir: tempfile::TempDir,
}

fn config(api_url: String, subnets: Option<&str>) -> MaxConfig {
    MaxConfig {
        token: Secret::new(BOT_TOKEN),
        webhook_secrets: vec![Secret::new(SECRET)],
        api_url,
        allowed_subnets: subnets.map(|s| hookline_tamtam::parse_subnets("test", s).unwrap()),
        ca_pem: None,
    }
}

async fn harness_with(subnets: Option<&str>) -> Harness {
    let clock: SharedClock = Arc::new(SystemClock);
    let (inner, dir) = support::embedded(clock.clone());
    let store = Arc::new(CountingStore::new(inner));
    let emu = TamTamEmulator::max(BOT_TOKEN, BOT_ID, "helper_bot");
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let shared: SharedStore = store.clone();
    let router =
        hookline_tamtam::max_router(config(api_url, subnets), support::deps(shared, clock));
    Harness {
        emu,
        router,
        store,
        _dir: dir,
    }
}

async fn harness() -> Harness {
    harness_with(None).await
}

impl Harness {
    async fn deliver_as(&self, ip: &str, secret: Option<&str>, body: &Value) -> StatusCode {
        let headers: Vec<(&str, &str)> = secret
            .map(|s| vec![("X-Max-Bot-Api-Secret", s)])
            .unwrap_or_default();
        post_with(
            &self.router,
            Some(ip),
            "",
            &headers,
            body.to_string().into_bytes(),
        )
        .await
        .0
    }

    async fn deliver(&self, body: &Value) -> StatusCode {
        self.deliver_as("203.0.113.7", Some(SECRET), body).await
    }
}

/// A dialog message as MAX sends it (X1): `recipient.user_id` is the bot.
fn dialog(mid: &str, chat_id: Option<i64>, text: &str) -> Value {
    json!({
        "message": {
            "recipient": {"chat_type": "dialog", "chat_id": chat_id, "user_id": BOT_ID},
            "timestamp": 1_791_551_633_577_i64,
            "body": {"mid": mid, "seq": BIG_SEQ, "text": text},
            "sender": {"user_id": 146_983_203, "first_name": "Илья", "is_bot": false,
                       "last_name": "", "name": "Илья"}
        },
        "timestamp": 1_791_551_633_577_i64, "user_locale": "ru", "update_type": "message_created"
    })
}

#[tokio::test]
async fn a_dialog_message_is_answered_in_its_chat_with_the_token_in_the_header_only() {
    let h = harness().await;
    assert_eq!(
        h.deliver(&dialog("mid.a1", Some(BIG_CHAT), "hi")).await,
        StatusCode::OK
    );
    let sent = h.emu.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    // Exactly the id sent, above 2^53, and never the bot's own id.
    assert_eq!(sent[0]["query"], json!({"chat_id": BIG_CHAT.to_string()}));
    assert_eq!(
        sent[0]["body"]["link"],
        json!({"type": "reply", "mid": "mid.a1"})
    );
    assert_eq!(sent[0]["body"]["text"], "Your message: hi");
    // A dialog whose chat id is missing: to the sender by user id, not recipient.user_id.
    assert_eq!(
        h.deliver(&dialog("mid.a2", None, "again")).await,
        StatusCode::OK
    );
    let sent = h.emu.sent();
    assert_eq!(sent[1]["query"], json!({"user_id": "146983203"}));
    // GET /me and the two messages: every call authenticated, none with the token in its URL.
    assert_eq!(h.emu.token_in_url(), 0);
    assert_eq!(h.emu.attempts(), h.emu.calls().len());
}

#[tokio::test]
async fn the_emulator_refuses_a_query_token_so_the_check_above_can_fail() {
    let h = harness().await;
    let base = {
        // The router's API is the emulator's; reach it directly.
        let emu = h.emu.clone();
        emu.serve_on_loopback().await.unwrap()
    };
    let http = reqwest::Client::new();
    let query = http
        .get(format!("{base}/me?access_token={BOT_TOKEN}"))
        .header("authorization", BOT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        query.json::<Value>().await.unwrap()["code"],
        "deprecated.token"
    );
    assert_eq!(h.emu.token_in_url(), 1);
    let bare = http.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let bearer = http
        .get(format!("{base}/me"))
        .header("authorization", format!("Bearer {BOT_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_missing_or_wrong_secret_is_refused_and_touches_nothing() {
    let h = harness().await;
    let body = dialog("mid.s1", Some(7), "hi");
    for secret in [
        None,
        Some(""),
        Some("max-webhook-secret_0123456789abcdeX"),
        Some("wrong"),
    ] {
        assert_eq!(
            h.deliver_as("203.0.113.7", secret, &body).await,
            StatusCode::UNAUTHORIZED,
            "{secret:?}"
        );
    }
    assert_eq!(h.store.writes(), 0, "a refused webhook wrote to the store");
    assert_eq!(h.emu.attempts(), 0, "a refused webhook called MAX");
    assert_eq!(h.deliver(&body).await, StatusCode::OK);
    assert_eq!(h.emu.sent().len(), 1);
}

#[tokio::test]
async fn configured_subnets_are_enforced_and_otherwise_any_source_is_accepted() {
    let fenced = harness_with(Some("5.101.42.200/31,31.177.104.200/31")).await;
    let body = dialog("mid.n1", Some(7), "hi");
    assert_eq!(
        fenced.deliver_as("203.0.113.7", Some(SECRET), &body).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(fenced.store.writes(), 0);
    assert_eq!(fenced.emu.attempts(), 0);
    assert_eq!(
        fenced.deliver_as("5.101.42.201", Some(SECRET), &body).await,
        StatusCode::OK
    );
    // A right source does not excuse a wrong secret.
    assert_eq!(
        fenced
            .deliver_as(
                "5.101.42.200",
                Some("nope-nope"),
                &dialog("mid.n2", Some(7), "x")
            )
            .await,
        StatusCode::UNAUTHORIZED
    );
    let open = harness().await;
    assert_eq!(
        open.deliver_as("198.51.100.1", Some(SECRET), &body).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_deliveries_send_one_reply() {
    let h = Arc::new(harness().await);
    let body = dialog("mid.dup", Some(42), "once");
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (h, body) = (Arc::clone(&h), body.clone());
            tokio::spawn(async move { h.deliver(&body).await })
        })
        .collect();
    for task in tasks {
        let status = task.await.unwrap();
        // A duplicate is acknowledged (200), or, while the winner still works, refused with
        // 409 so that MAX delivers it again later (and then meets the completed claim).
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status}"
        );
    }
    assert_eq!(h.deliver(&body).await, StatusCode::OK);
    assert_eq!(h.emu.sent().len(), 1, "{:?}", h.emu.sent());
}

#[tokio::test]
async fn a_429_or_503_is_retried_and_the_reply_goes_out_once() {
    for status in [
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        let h = harness().await;
        // Learn the bot's identity first, so that the failure meets the send.
        assert_eq!(
            h.deliver(&dialog("mid.w", Some(9), "warm")).await,
            StatusCode::OK
        );
        let before = h.emu.attempts();
        h.emu.fail_next(
            status,
            json!({"code": "too.many.requests", "message": "slow down"}),
        );
        assert_eq!(
            h.deliver(&dialog("mid.r", Some(9), "retry")).await,
            StatusCode::OK
        );
        let sent = h.emu.sent();
        assert_eq!(sent.len(), 2, "{status}: {sent:?}");
        assert_eq!(sent[1]["body"]["link"]["mid"], "mid.r");
        assert_eq!(
            h.emu.attempts() - before,
            2,
            "{status}: refused once, then sent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_chat_gets_at_most_two_messages_a_second_and_every_one_of_them() {
    let h = Arc::new(harness().await);
    assert_eq!(
        h.deliver(&dialog("mid.l0", Some(77), "warm")).await,
        StatusCode::OK
    );
    let tasks: Vec<_> = (1..=5)
        .map(|i| {
            let h = Arc::clone(&h);
            tokio::spawn(async move {
                h.deliver(&dialog(&format!("mid.l{i}"), Some(77), "go"))
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let times: Vec<_> = h
        .emu
        .delivered_at()
        .into_iter()
        .filter(|(chat, _)| chat == "77")
        .map(|(_, at)| at)
        .collect();
    assert_eq!(times.len(), 6, "every message went out");
    // Any three consecutive sends span at least (nearly) a second: never 3 in one second.
    for w in times.windows(3) {
        assert!(
            w[2].duration_since(w[0]) >= Duration::from_millis(900),
            "3 messages within {:?}",
            w[2].duration_since(w[0])
        );
    }
}

#[tokio::test]
async fn buttons_callbacks_starts_and_additions_are_answered_like_tamtam() {
    let h = harness().await;
    assert_eq!(
        h.deliver(&dialog("mid.b", Some(5), "/buttons")).await,
        StatusCode::OK
    );
    let keyboard = &h.emu.sent()[0]["body"]["attachments"][0];
    assert_eq!(keyboard["type"], "inline_keyboard");
    let payload = keyboard["payload"]["buttons"][0][0]["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    let callback = json!({
        "callback": {"timestamp": 1, "callback_id": "f9LH+od/D0cO=", "payload": payload,
                     "user": {"user_id": 146_983_203, "first_name": "Илья", "is_bot": false}},
        "message": {"recipient": {"chat_id": 5, "chat_type": "dialog", "user_id": 146_983_203},
                    "timestamp": 1, "body": {"mid": "mid.b", "seq": 1, "text": "Pick"},
                    "sender": {"user_id": BOT_ID, "first_name": "hookline", "is_bot": true}},
        "timestamp": 2, "update_type": "message_callback"
    });
    assert_eq!(h.deliver(&callback).await, StatusCode::OK);
    let answers: Vec<Value> = h
        .emu
        .sent()
        .into_iter()
        .filter(|c| c["path"] == "/answers")
        .collect();
    assert_eq!(answers.len(), 1);
    // Percent-encoded on the wire, the id itself at MAX.
    assert_eq!(answers[0]["query"]["callback_id"], "f9LH+od/D0cO=");
    let started = json!({"timestamp": 3, "chat_id": 320_955_459, "user_id": 40_921_122,
        "user": {"user_id": 40_921_122, "first_name": "Борис", "last_name": "Печорин", "is_bot": false},
        "payload": "ref-42", "user_locale": "ru", "update_type": "bot_started"});
    assert_eq!(h.deliver(&started).await, StatusCode::OK);
    let last = h.emu.sent().last().cloned().unwrap();
    assert_eq!(last["query"]["chat_id"], "320955459");
    assert!(
        last["body"]["text"].as_str().unwrap().contains("ref-42"),
        "{last}"
    );
    // bot_added without `user` (MAX dropped it in Nov 2026) still says hello.
    let added = json!({"timestamp": 4, "chat_id": -70_801_090_403_050_i64, "is_channel": false,
                       "update_type": "bot_added"});
    assert_eq!(h.deliver(&added).await, StatusCode::OK);
    assert_eq!(
        h.emu.sent().last().unwrap()["query"]["chat_id"],
        "-70801090403050"
    );
    for ignored in [
        json!({"timestamp": 5, "chat_id": 5, "user": {"user_id": 1, "first_name": "A", "is_bot": false}, "update_type": "bot_stopped"}),
        json!({"timestamp": 5, "chat_id": 5, "user": {"user_id": 1, "first_name": "A", "is_bot": false}, "muted_until": 9, "update_type": "dialog_muted"}),
        json!({"timestamp": 5, "chat_id": 5, "bot_id": 1, "user_id": 2, "is_channel": false, "is_admin": true, "update_type": "bot_admin_permissions_changed"}),
        json!({"timestamp": 5, "update_type": "message_delivered"}),
        json!({"timestamp": 5}),
        json!("not an update"),
    ] {
        let before = h.emu.sent().len();
        assert_eq!(h.deliver(&ignored).await, StatusCode::OK, "{ignored}");
        assert_eq!(h.emu.sent().len(), before, "{ignored}");
    }
    assert_eq!(h.emu.token_in_url(), 0);
}

#[tokio::test]
async fn setup_subscribes_with_the_secret_and_the_check_resubscribes_a_dropped_webhook() {
    let emu = TamTamEmulator::max(BOT_TOKEN, BOT_ID, "helper_bot");
    let api_url = emu.serve_on_loopback().await.unwrap();
    emu.add_subscription("https://old.example.com/max");
    let clock: SharedClock = Arc::new(SystemClock);
    let (store, _dir) = support::embedded(clock.clone());
    let deps = support::deps(store, clock);
    let client = hookline_tamtam::TamTamClient::max(&config(api_url, None), &deps);
    let url = hookline_max::max_webhook_url("https://hooks.example.com:443/max").unwrap();
    assert_eq!(url, "https://hooks.example.com/max");
    let secret = Secret::new(SECRET);
    let report = hookline_tamtam::setup::setup_webhook(
        &client,
        &url,
        Some(&secret),
        true,
        &[("help", "List the commands")],
    )
    .await
    .unwrap();
    assert!(
        report[0].starts_with("removed subscription https://old.example.com/max"),
        "{report:?}"
    );
    let subs = emu.subscription_details();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["url"], url);
    assert_eq!(subs[0]["secret"], SECRET);
    assert_eq!(
        subs[0].get("version"),
        None,
        "MAX has no subscription version"
    );
    assert_eq!(
        subs[0]["update_types"],
        json!([
            "message_created",
            "message_callback",
            "bot_started",
            "bot_added"
        ])
    );
    assert_eq!(
        emu.commands(),
        json!([{"name": "help", "description": "List the commands"}])
    );
    assert!(
        emu.calls()
            .iter()
            .any(|c| c["path"] == "/me/commands" && c["method"] == "PATCH")
    );
    // Still there: nothing to do. Dropped (8 h of failures): subscribed again, with the secret.
    assert!(
        !hookline_max::ensure_subscribed(&client, &url, Some(&secret))
            .await
            .unwrap()
    );
    emu.drop_subscriptions();
    assert!(
        hookline_max::ensure_subscribed(&client, &url, Some(&secret))
            .await
            .unwrap()
    );
    assert_eq!(emu.subscription_details()[0]["secret"], SECRET);
    assert_eq!(emu.token_in_url(), 0);
}

#[test]
fn setup_max_refuses_anything_but_https_on_443_before_calling_anyone() {
    for (url, says) in [
        ("http://hooks.example.com/max", "HTTPS only"),
        (
            "https://hooks.example.com:8443/max",
            "port 443 only, not 8443",
        ),
    ] {
        let out = std::process::Command::new(support::workspace_bin("hookline"))
            .args(["setup", "max", "--url", url])
            .env_clear()
            .env("MAX_TOKEN", "t")
            .env("MAX_WEBHOOK_SECRET", SECRET)
            // Nothing listens here: a call would fail differently.
            .env("MAX_API_URL", "http://127.0.0.1:9")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}");
        assert!(stderr.contains(says), "{url}: {stderr}");
    }
}

/// The scheduled check under the fake Lambda runtime is the DingTalk flush's shape; here its
/// binary runs once (not under Lambda) against the emulator, as cron would run it.
#[tokio::test]
async fn the_resubscribe_binary_subscribes_the_webhook_again_and_says_so() {
    let emu = TamTamEmulator::max(BOT_TOKEN, BOT_ID, "helper_bot");
    let api_url = emu.serve_on_loopback().await.unwrap();
    let out = tokio::process::Command::new(support::workspace_bin("hookline-max-resubscribe"))
        .env_clear()
        .env("MAX_TOKEN", BOT_TOKEN)
        .env("MAX_WEBHOOK_SECRET", SECRET)
        .env("MAX_API_URL", &api_url)
        .env("MAX_WEBHOOK_URL", "https://hooks.example.com/max")
        .env("RUST_LOG", "info")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("\"resubscribed\":true"), "{stdout}");
    assert!(stderr.contains("subscribed again"), "{stderr}");
    assert!(
        !stderr.contains(BOT_TOKEN) && !stderr.contains(SECRET),
        "a secret was logged"
    );
    assert_eq!(
        emu.subscriptions(),
        vec!["https://hooks.example.com/max".to_owned()]
    );
}

/// `MAX_CA_PEM`: a loopback HTTPS "MAX" whose certificate is signed by a test CA is reached only
/// when that CA is configured; without it, the failure names `MAX_CA_PEM`.
#[tokio::test]
async fn an_extra_root_from_max_ca_pem_is_trusted_and_only_then() {
    let (ca_pem, url) = crate::support::tls::https_api(json!({
        "user_id": BOT_ID, "first_name": "hookline", "username": "helper_bot", "is_bot": true
    }))
    .await;
    let clock: SharedClock = Arc::new(SystemClock);
    let (store, _dir) = support::embedded(clock.clone());
    let deps = support::deps(store, clock);
    let env = |pem: Option<&str>| {
        let mut env = std::collections::HashMap::from([
            ("MAX_TOKEN".to_owned(), BOT_TOKEN.to_owned()),
            ("MAX_WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
            ("MAX_API_URL".to_owned(), url.clone()),
        ]);
        if let Some(pem) = pem {
            env.insert("MAX_CA_PEM".to_owned(), pem.to_owned());
        }
        env
    };
    let without = MaxConfig::from_source(&env(None)).unwrap();
    let err = hookline_tamtam::TamTamClient::max(&without, &deps)
        .me()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("MAX_CA_PEM"), "{err}");
    // Inline, with \n for newlines as a one-line variable has it.
    let inline = ca_pem.replace('\n', "\\n");
    let with = MaxConfig::from_source(&env(Some(&inline))).unwrap();
    let me = hookline_tamtam::TamTamClient::max(&with, &deps)
        .me()
        .await
        .unwrap();
    assert_eq!(me.user_id, BOT_ID);
    // A file path works the same way.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &ca_pem).unwrap();
    let with_file = MaxConfig::from_source(&env(Some(path.to_str().unwrap()))).unwrap();
    assert!(
        hookline_tamtam::TamTamClient::max(&with_file, &deps)
            .me()
            .await
            .is_ok()
    );
    // And doctor says the same.
    let data = dir.path().join("doctor").display().to_string();
    let mut doctor_env = env(None);
    doctor_env.insert("HOOKLINE_DATA_DIR".to_owned(), data);
    let report = hookline_server::doctor::run(&doctor_env).await;
    let max: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.scope == "max")
        .map(ToString::to_string)
        .collect();
    assert!(
        max.iter()
            .any(|l| l.contains("FAIL") && l.contains("MAX_CA_PEM")),
        "{max:?}"
    );
}

#[tokio::test]
async fn doctor_fails_when_max_has_dropped_our_subscription_and_passes_once_it_is_back() {
    let emu = TamTamEmulator::max(BOT_TOKEN, BOT_ID, "helper_bot");
    let api_url = emu.serve_on_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ours = "https://hooks.example.com/max";
    let env = std::collections::HashMap::from([
        ("MAX_TOKEN".to_owned(), BOT_TOKEN.to_owned()),
        ("MAX_WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
        ("MAX_API_URL".to_owned(), api_url),
        ("MAX_WEBHOOK_URL".to_owned(), ours.to_owned()),
        (
            "HOOKLINE_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
    ]);
    let max_lines = |report: &hookline_server::doctor::Report| -> Vec<String> {
        report
            .findings
            .iter()
            .filter(|f| f.scope == "max")
            .map(ToString::to_string)
            .collect()
    };
    emu.add_subscription("https://someone-else.example.com/max");
    let report = hookline_server::doctor::run(&env).await;
    let lines = max_lines(&report);
    assert!(!report.healthy());
    assert!(lines[0].contains("GET /me ok"), "{lines:?}");
    assert!(
        lines[1].contains("FAIL") && lines[1].contains("is not subscribed"),
        "{lines:?}"
    );
    emu.add_subscription(ours);
    let report = hookline_server::doctor::run(&env).await;
    let lines = max_lines(&report);
    assert!(report.healthy(), "{lines:?}");
    assert!(
        lines[1].contains("subscribed: https://hooks.example.com/max"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(BOT_TOKEN) && !l.contains(SECRET))
    );
    assert!(emu.sent().is_empty(), "doctor posted something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_subscribes_max_webhook_url_again_when_it_is_gone() {
    let emu = TamTamEmulator::max(BOT_TOKEN, BOT_ID, "helper_bot");
    let api_url = emu.serve_on_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ours = "https://hooks.example.com/max";
    let (mut serve, _base) = crate::serve::start_serve(&[
        ("HOOKLINE_DATA_DIR", dir.path().display().to_string()),
        ("MAX_TOKEN", BOT_TOKEN.to_owned()),
        ("MAX_WEBHOOK_SECRET", SECRET.to_owned()),
        ("MAX_API_URL", api_url),
        ("MAX_WEBHOOK_URL", ours.to_owned()),
    ])
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while emu.subscriptions().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serve.kill().await.ok();
    assert_eq!(emu.subscriptions(), vec![ours.to_owned()]);
    assert_eq!(emu.subscription_details()[0]["secret"], SECRET);
}

/// MAX's per-chat limit through each store: six callers at once, each given its slot only when
/// no more than two were given in the last second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_per_chat_limit_holds_across_concurrent_callers_on_both_stores() {
    let clock: SharedClock = Arc::new(SystemClock);
    let (embedded, _dir) = support::embedded(clock.clone());
    let mut stores = vec![("embedded", embedded, None)];
    if let Some((dynamo, guard)) = crate::store_contract::dynamodb(clock.clone()).await {
        stores.push(("dynamodb", dynamo, guard));
    }
    for (name, store, _guard) in stores {
        let limits = hookline_tamtam::limits::RateLimits::new(store, clock.clone(), "fp");
        let start = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let limits = limits.clone();
                tokio::spawn(async move {
                    limits.acquire(Some(-70_801_090_403_050)).await.unwrap();
                    tokio::time::Instant::now()
                })
            })
            .collect();
        let mut at = Vec::new();
        for task in tasks {
            at.push(task.await.unwrap());
        }
        at.sort();
        for w in at.windows(3) {
            assert!(
                w[2] - w[0] >= Duration::from_millis(900),
                "{name}: 3 slots within {:?}",
                w[2] - w[0]
            );
        }
        assert!(
            at[5] - start < Duration::from_secs(5),
            "{name}: {:?}",
            at[5] - start
        );
    }
}

/// A writer the test reads back: what the adapter logged.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_source_address_is_logged_and_neither_the_token_nor_the_secret_is() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // This test's thread only (the current-thread runtime polls everything on it).
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = harness().await;
    assert_eq!(
        h.deliver(&dialog("mid.log", Some(11), "hi")).await,
        StatusCode::OK
    );
    assert_eq!(
        h.deliver_as(
            "198.51.100.23",
            Some("wrong-secret"),
            &dialog("mid.x", Some(11), "x")
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("MAX webhook source address") && log.contains("203.0.113.7"),
        "{log}"
    );
    assert!(
        log.contains("198.51.100.23"),
        "the refused source is logged too: {log}"
    );
    assert!(!log.contains(BOT_TOKEN), "the token was logged: {log}");
    assert!(!log.contains(SECRET), "the secret was logged: {log}");
    assert!(
        !log.contains("wrong-secret"),
        "a presented secret was logged: {log}"
    );
}
