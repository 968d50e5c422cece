//! DingTalk end to end: signed fixtures D1–D3 through the router, replies observed on the
//! DingTalk emulator (session webhook and custom robot) on loopback, a manual clock for the
//! signature window, the sliding-window budget and the 10-minute throttle.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hookline::clock::{ManualClock, SharedClock};
use hookline::secret::Secret;
use hookline::store::SharedStore;
use hookline_dingtalk::emulator::DingTalkEmulator;
use hookline_dingtalk::robot::{Delivery, Notification, RobotSender};
use hookline_dingtalk::{CustomRobot, DingTalkConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{self, CountingStore, DownStore, fixture_json};

const APP_SECRET: &str = "Jq3kX0b9yQ2mV7rT1sW5uZ8aC4dE6fG0hI2jK4lM6nO8pQ0rS2tU4vW6xY8zA0bC";
const SIGN: &str = "mXnc+zPq3SFF2GCriInSyAkE28bPvDWdELguAUkiCS0=";
const TS: &str = "1700000000000";
const ROBOT_TOKEN: &str = "robot-access-token";
const ROBOT_SECRET: &str = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
const NOTIFY_TOKEN: &str = "notify-token-0123456789";
const GROUP_CONVERSATION: &str = "cidoSZ6Bt6HNMT2pDwa0Vr4Xw==";

struct Harness {
    emu: DingTalkEmulator,
    emu_url: String,
    router: Router,
    store: Arc<CountingStore>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn config(emu_url: &str, custom_robot: bool) -> DingTalkConfig {
    let host = emu_url.trim_start_matches("http://").to_owned();
    DingTalkConfig {
        app_secret: Secret::new(APP_SECRET),
        robot_code: "dingue4kfzdxbyn0pjqd".into(),
        custom_robot: custom_robot.then(|| CustomRobot {
            access_token: Secret::new(ROBOT_TOKEN),
            secret: Secret::new(ROBOT_SECRET),
        }),
        notify_token: custom_robot.then(|| Secret::new(NOTIFY_TOKEN)),
        api_url: emu_url.to_owned(),
        session_hosts: vec!["oapi.dingtalk.com".into(), "oapi.dingtalk.io".into(), host],
        allow_unsigned: false,
        // The group of the fixtures (text_group_mention.json).
        webhook_conversation: custom_robot.then(|| GROUP_CONVERSATION.to_owned()),
    }
}

async fn harness(custom_robot: bool) -> Harness {
    let clock = Arc::new(ManualClock::new(1_700_000_001_000));
    let shared_clock: SharedClock = clock.clone();
    let emu = DingTalkEmulator::new(ROBOT_TOKEN, ROBOT_SECRET, shared_clock.clone());
    let emu_url = emu.serve_on_loopback().await.expect("emulator");
    let (inner, dir) = support::embedded(shared_clock.clone());
    let store = Arc::new(CountingStore::new(inner));
    let shared: SharedStore = store.clone();
    let router = hookline_dingtalk::router(
        config(&emu_url, custom_robot),
        support::deps(shared, shared_clock),
    );
    Harness {
        emu,
        emu_url,
        router,
        store,
        clock,
        _dir: dir,
    }
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

impl Harness {
    /// A fixture whose sessionWebhook points at the emulator (the signature does not cover it).
    fn fixture(&self, name: &str) -> Value {
        let mut body = fixture_json(&format!("dingtalk/{name}.json"));
        let webhook = body["sessionWebhook"]
            .as_str()
            .unwrap_or_default()
            .replace("https://oapi.dingtalk.com", &self.emu_url);
        body["sessionWebhook"] = json!(webhook);
        body
    }

    async fn callback(&self, headers: &[(&str, &str)], body: &Value) -> (StatusCode, String) {
        let mut request =
            Request::post("/").header("content-type", "application/json; charset=utf-8");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(
            &self.router,
            request.body(Body::from(body.to_string())).expect("request"),
        )
        .await
    }

    async fn signed(&self, body: &Value) -> StatusCode {
        self.callback(&[("timestamp", TS), ("sign", SIGN)], body)
            .await
            .0
    }

    async fn notify(&self, token: Option<&str>, body: &str) -> (StatusCode, String) {
        let mut request = Request::post("/notify").header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        send(
            &self.router,
            request.body(Body::from(body.to_owned())).expect("request"),
        )
        .await
    }

    fn nothing_happened(&self) {
        assert_eq!((self.emu.attempts(), self.store.writes()), (0, 0));
    }
}

#[tokio::test]
async fn d1_a_group_mention_is_answered_through_the_session_webhook_at_the_sender() {
    let h = harness(false).await;
    let mut body = h.fixture("text_group_mention");
    body["sessionWebhookExpiredTime"] = json!(1_700_000_000_500_i64);
    assert_eq!(
        h.signed(&h.fixture("text_group_mention")).await,
        StatusCode::OK
    );
    let sent = h.emu.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0]["via"].as_str(), sent[0]["session"].as_str()),
        (Some("session"), Some("4e8b7c0f1a2b3c4d5e6f708192a3b4c5"))
    );
    assert_eq!(
        sent[0]["body"],
        json!({"msgtype": "text", "text": {"content": "Your message: deploy status? @manager4021"}, "at": {"atUserIds": ["manager4021"]}})
    );
}

#[tokio::test]
async fn d2_a_direct_message_is_answered_without_mentions() {
    let h = harness(false).await;
    let mut body = h.fixture("text_group_mention");
    body["sessionWebhookExpiredTime"] = json!(1_700_000_000_500_i64);
    assert_eq!(h.signed(&h.fixture("text_direct")).await, StatusCode::OK);
    let sent = h.emu.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["session"], "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    assert_eq!(
        sent[0]["body"],
        json!({"msgtype": "text", "text": {"content": "Your message: help"}})
    );
}

#[tokio::test]
async fn d3_a_picture_gets_told_that_only_text_is_understood() {
    let h = harness(false).await;
    let mut body = h.fixture("text_group_mention");
    body["sessionWebhookExpiredTime"] = json!(1_700_000_000_500_i64);
    assert_eq!(
        h.signed(&h.fixture("picture_group_mention")).await,
        StatusCode::OK
    );
    let sent = h.emu.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["body"]["text"]["content"],
        "Sorry, I only understand text messages (this was a picture). @manager4021"
    );
}

#[tokio::test]
async fn forged_stale_or_misdirected_callbacks_are_rejected_and_touch_nothing() {
    let h = harness(true).await;
    let d1 = h.fixture("text_group_mention");
    for (what, headers) in [
        ("no headers", vec![]),
        ("no sign", vec![("timestamp", TS)]),
        ("no timestamp", vec![("sign", SIGN)]),
        (
            "bad sign",
            vec![
                ("timestamp", TS),
                ("sign", "mXnc+zPq3SFF2GCriInSyAkE28bPvDWdELguAUkiCS1="),
            ],
        ),
        (
            "sign of another timestamp",
            vec![("timestamp", "1700000000001"), ("sign", SIGN)],
        ),
    ] {
        assert_eq!(
            h.callback(&headers, &d1).await.0,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    let mut foreign_robot = d1.clone();
    foreign_robot["robotCode"] = json!("dingsomeoneelse");
    assert_eq!(h.signed(&foreign_robot).await, StatusCode::UNAUTHORIZED);
    for webhook in [
        "https://oapi.dingtalk.com.evil.net/robot/sendBySession?session=x",
        "http://oapi.dingtalk.com/robot/sendBySession?session=x",
        "https://evil.net/robot/sendBySession?session=x",
    ] {
        let mut body = d1.clone();
        body["sessionWebhook"] = json!(webhook);
        let (status, text) = h
            .callback(&[("timestamp", TS), ("sign", SIGN)], &body)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{webhook}");
        assert!(text.contains("sessionWebhook"), "{text}");
    }
    // The same signed request an hour and a bit later, and from the future.
    h.clock.set(1_700_003_600_001);
    assert_eq!(h.signed(&d1).await, StatusCode::UNAUTHORIZED, "stale");
    h.clock.set(1_699_996_399_999);
    assert_eq!(h.signed(&d1).await, StatusCode::UNAUTHORIZED, "future");
    h.nothing_happened();
}

#[tokio::test]
async fn group_messages_that_do_not_at_the_robot_are_ignored() {
    let h = harness(false).await;
    let mut body = h.fixture("text_group_mention");
    body["isInAtList"] = json!(false);
    assert_eq!(h.signed(&body).await, StatusCode::OK);
    assert_eq!(h.emu.attempts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_deliveries_send_one_reply() {
    let h = Arc::new(harness(false).await);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            h.signed(&h.fixture("text_group_mention")).await
        }));
    }
    for t in tasks {
        let status = t.await.expect("task");
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status}"
        );
    }
    assert_eq!(h.emu.sent().len(), 1);
}

#[tokio::test]
async fn an_expired_session_falls_back_to_the_custom_robot_or_is_logged() {
    let h = harness(true).await;
    let mut body = h.fixture("text_group_mention");
    body["sessionWebhookExpiredTime"] = json!(1_700_000_000_500_i64);
    assert_eq!(h.signed(&body).await, StatusCode::OK);
    let sent = h.emu.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["via"], "robot");
    assert_eq!(
        sent[0]["body"]["text"]["content"],
        "Your message: deploy status? @manager4021"
    );

    let h = harness(false).await;
    let mut body = h.fixture("text_group_mention");
    body["sessionWebhookExpiredTime"] = json!(1_700_000_000_500_i64);
    assert_eq!(
        h.signed(&body).await,
        StatusCode::OK,
        "nothing to retry: acknowledged and logged"
    );
    assert_eq!(h.emu.attempts(), 0);
}

#[tokio::test]
async fn an_expired_session_never_falls_back_into_someone_elses_room() {
    let h = harness(true).await;
    // A DM, and a message from another group: the custom robot's group is neither.
    let mut dm = h.fixture("text_direct");
    dm["sessionWebhookExpiredTime"] = json!(1_700_000_000_500_i64);
    let mut other_group = h.fixture("text_group_mention");
    other_group["conversationId"] = json!("cidAnotherGroup==");
    other_group["msgId"] = json!("msgOtherGroup==");
    other_group["sessionWebhookExpiredTime"] = json!(1_700_000_000_500_i64);
    for body in [dm, other_group] {
        assert_eq!(h.signed(&body).await, StatusCode::OK, "logged and dropped");
    }
    assert_eq!(h.emu.attempts(), 0, "nothing posted anywhere");
}

#[tokio::test]
async fn notify_needs_the_bearer_token_and_explains_bad_json() {
    let h = harness(true).await;
    for token in [None, Some("wrong"), Some("notify-token-012345678")] {
        assert_eq!(
            h.notify(token, r#"{"text":"x"}"#).await.0,
            StatusCode::UNAUTHORIZED,
            "{token:?}"
        );
    }
    let cases = [
        ("{not json", "key must be a string"),
        (r#"{"title":"no text"}"#, "missing field `text`"),
        (r#"{"txt":"typo"}"#, "unknown field `txt`"),
        (r#"{"text":"x","markdown":"yes"}"#, "invalid type"),
        (r#"{"text":"   "}"#, "text must not be empty"),
    ];
    for (body, expected) in cases {
        let (status, text) = h.notify(Some(NOTIFY_TOKEN), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(text.contains(expected), "{body}: {text}");
    }
    assert_eq!(h.emu.attempts(), 0);
    let (status, text) = h
        .notify(
            Some(NOTIFY_TOKEN),
            &json!({"text": "### Build #42\n- status: **green**", "markdown": true, "at": {"userIds": ["manager4021"]}}).to_string(),
        )
        .await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, r#"{"sent":true}"#)
    );
    assert_eq!(
        h.emu.sent()[0]["body"],
        json!({"msgtype": "markdown", "markdown": {"title": "Build #42", "text": "### Build #42\n- status: **green** @manager4021"},
               "at": {"atUserIds": ["manager4021"]}})
    );
}

/// No more than 20 of the recorded robot sends fall inside any 60-second window.
fn assert_sliding_window(sent: &[Value]) {
    let times: Vec<i64> = sent
        .iter()
        .filter(|m| m["via"] == "robot")
        .filter_map(|m| m["at_ms"].as_i64())
        .collect();
    for (i, start) in times.iter().enumerate() {
        let inside = times[i..].iter().filter(|t| **t - start < 60_000).count();
        assert!(inside <= 20, "{inside} sends within 60 s from {start}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_thirty_sends_twenty_and_delivers_the_rest_in_one_digest() {
    let h = Arc::new(harness(true).await);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            h.notify(
                Some(NOTIFY_TOKEN),
                &format!(r#"{{"text":"alert number {i:02}"}}"#),
            )
            .await
        }));
    }
    let mut outcomes: HashMap<StatusCode, usize> = HashMap::new();
    for t in tasks {
        let (status, body) = t.await.expect("task");
        match status {
            StatusCode::OK => assert_eq!(body, r#"{"sent":true}"#),
            StatusCode::ACCEPTED => assert_eq!(body, r#"{"queued":true}"#),
            other => panic!("unexpected {other}: {body}"),
        }
        *outcomes.entry(status).or_default() += 1;
    }
    assert_eq!(outcomes.get(&StatusCode::OK), Some(&20));
    assert_eq!(outcomes.get(&StatusCode::ACCEPTED), Some(&10));

    let sender = RobotSender::new(
        CustomRobot {
            access_token: Secret::new(ROBOT_TOKEN),
            secret: Secret::new(ROBOT_SECRET),
        },
        &h.emu_url,
        support::deps(h.store.clone(), h.clock.clone()).http,
        h.store.clone(),
        h.clock.clone(),
    );
    // Inside the minute there is no budget: the digest waits.
    h.clock.advance(Duration::from_secs(30));
    assert_eq!(sender.flush().await.expect("flush").digests, 0);
    h.clock.advance(Duration::from_secs(31));
    let report = sender.flush().await.expect("flush");
    assert_eq!(
        (report.digests, report.delivered, report.pending),
        (1, 10, 0)
    );

    let sent = h.emu.sent();
    assert_eq!(sent.len(), 21);
    assert_sliding_window(&sent);
    let digest = sent
        .iter()
        .find(|m| m["body"]["msgtype"] == "markdown")
        .expect("one digest");
    assert_eq!(digest["body"]["markdown"]["title"], "10 queued messages");
    let everything: String = sent.iter().map(|m| m["body"].to_string()).collect();
    for i in 0..30 {
        assert_eq!(
            everything.matches(&format!("alert number {i:02}")).count(),
            1,
            "text {i} delivered exactly once"
        );
    }
    assert_eq!(
        sender.flush().await.expect("flush"),
        Default::default(),
        "nothing left"
    );
}

#[tokio::test]
async fn a_throttled_robot_sends_nothing_for_ten_minutes_and_loses_nothing() {
    let h = harness(true).await;
    h.emu
        .fail_next(130_101, "send too fast, exceed 20 times per minute");
    assert_eq!(
        h.notify(Some(NOTIFY_TOKEN), r#"{"text":"first"}"#).await.0,
        StatusCode::ACCEPTED
    );
    let attempts = h.emu.attempts();
    h.clock.advance(Duration::from_secs(120));
    assert_eq!(
        h.notify(Some(NOTIFY_TOKEN), r#"{"text":"second"}"#).await.0,
        StatusCode::ACCEPTED
    );
    h.clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(
        h.notify(Some(NOTIFY_TOKEN), r#"{"text":"third"}"#).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(h.emu.attempts(), attempts, "no send while throttled");

    h.clock.set(1_700_000_001_000 + 600_000 + 1_000);
    let (status, _) = h.notify(Some(NOTIFY_TOKEN), r#"{"text":"fourth"}"#).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "queued behind the waiting ones, then flushed"
    );
    let sent = h.emu.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let text = sent[0]["body"]["markdown"]["text"]
        .as_str()
        .unwrap_or_default();
    for word in ["first", "second", "third", "fourth"] {
        assert_eq!(text.matches(word).count(), 1, "{word} in {text}");
    }
}

#[tokio::test]
async fn an_unreachable_store_asks_for_a_retry() {
    let clock: SharedClock = Arc::new(ManualClock::new(1_700_000_001_000));
    let emu = DingTalkEmulator::new(ROBOT_TOKEN, ROBOT_SECRET, clock.clone());
    let emu_url = emu.serve_on_loopback().await.expect("emulator");
    let router = hookline_dingtalk::router(
        config(&emu_url, true),
        support::deps(Arc::new(DownStore), clock),
    );
    let request = Request::post("/notify")
        .header("authorization", format!("Bearer {NOTIFY_TOKEN}"))
        .body(Body::from(r#"{"text":"x"}"#))
        .expect("request");
    assert_eq!(
        send(&router, request).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let mut body = fixture_json("dingtalk/text_group_mention.json");
    body["sessionWebhook"] = json!(format!("{emu_url}/robot/sendBySession?session=s"));
    let request = Request::post("/")
        .header("timestamp", TS)
        .header("sign", SIGN)
        .body(Body::from(body.to_string()))
        .expect("request");
    assert_eq!(
        send(&router, request).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(emu.attempts(), 0);
}

#[tokio::test]
async fn the_flush_binary_delivers_the_queue_as_a_digest() {
    let clock: SharedClock = Arc::new(hookline::clock::SystemClock);
    let emu = DingTalkEmulator::new(ROBOT_TOKEN, ROBOT_SECRET, clock.clone());
    let emu_url = emu.serve_on_loopback().await.expect("emulator");
    let data = tempfile::tempdir().expect("tempdir");
    {
        // Queue two messages the way an over-budget Lambda would: no slot left.
        let store: SharedStore = Arc::new(
            hookline::store::EmbeddedStore::open(&data.path().join("state.redb"), clock.clone())
                .expect("store"),
        );
        let sender = RobotSender::new(
            CustomRobot {
                access_token: Secret::new(ROBOT_TOKEN),
                secret: Secret::new(ROBOT_SECRET),
            },
            &emu_url,
            hookline::http::HttpClient::new().expect("client"),
            store.clone(),
            clock.clone(),
        );
        for _ in 0..20 {
            assert!(sender.take_slot().await.expect("slot"));
        }
        for text in ["queued one", "queued two"] {
            let n = Notification {
                text: text.into(),
                title: None,
                markdown: false,
                at: None,
            };
            assert_eq!(
                sender.send(&n).await.expect("send"),
                hookline_dingtalk::robot::Delivery::Queued
            );
        }
        // Free the window as if a minute had passed.
        for (sk, _) in store
            .query_prefix(
                &format!("dingtalk#{}#budget", Secret::new(ROBOT_TOKEN).fingerprint()),
                "",
            )
            .await
            .expect("q")
        {
            store
                .delete(&hookline::store::Key::new(
                    format!("dingtalk#{}#budget", Secret::new(ROBOT_TOKEN).fingerprint()),
                    sk,
                ))
                .await
                .expect("delete");
        }
    }
    let out = tokio::process::Command::new(support::workspace_bin("hookline-dingtalk-flush"))
        .env("DINGTALK_APP_SECRET", APP_SECRET)
        .env("DINGTALK_ROBOT_CODE", "dingue4kfzdxbyn0pjqd")
        .env("DINGTALK_WEBHOOK_TOKEN", ROBOT_TOKEN)
        .env("DINGTALK_WEBHOOK_SECRET", ROBOT_SECRET)
        .env("DINGTALK_API_URL", &emu_url)
        .env("HOOKLINE_DATA_DIR", data.path())
        .env_remove("HOOKLINE_TABLE")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .await
        .expect("run the flush binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).expect("JSON report"),
        json!({"digests": 1, "delivered": 2, "dead": 0, "pending": 0})
    );
    let sent = emu.sent();
    assert_eq!(sent.len(), 1);
    let text = sent[0]["body"]["markdown"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("queued one") && text.contains("queued two"),
        "{text}"
    );
}

/// The budget's guarantee across Lambdas rests on the store's conditional writes: with DynamoDB
/// (moto), 30 racing senders sharing one table get exactly 20 slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_senders_on_dynamodb_get_exactly_twenty_slots() {
    let Some(endpoint) = support::dynamodb_endpoint() else {
        return;
    };
    let clock: SharedClock = Arc::new(ManualClock::at_system_now());
    let client = aws_sdk_dynamodb::Client::from_conf(
        crate::store_contract::dynamo_config(&endpoint).build(),
    );
    let store = hookline::store::DynamoStore::new(
        client,
        format!("hookline-budget-{:016x}", support::rand_id()),
        clock.clone(),
    );
    store.create_table_if_missing().await.expect("table");
    let store: SharedStore = Arc::new(store);
    let mut tasks = Vec::new();
    for _ in 0..30 {
        // One sender per "Lambda", sharing nothing but the table.
        let sender = RobotSender::new(
            CustomRobot {
                access_token: Secret::new(ROBOT_TOKEN),
                secret: Secret::new(ROBOT_SECRET),
            },
            "http://127.0.0.1:9",
            hookline::http::HttpClient::new().expect("client"),
            store.clone(),
            clock.clone(),
        );
        tasks.push(tokio::spawn(async move {
            sender.take_slot().await.expect("store")
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.expect("task"));
    }
    assert_eq!(granted, 20);
}

#[tokio::test]
async fn the_flush_endpoint_runs_only_for_requests_signed_with_the_robots_secret() {
    let h = harness(true).await;
    let flush = |headers: Vec<(&'static str, String)>| {
        let mut request = Request::post("/flush");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        send(&h.router, request.body(Body::empty()).expect("request"))
    };
    assert_eq!(flush(vec![]).await.0, StatusCode::UNAUTHORIZED);
    let robot = CustomRobot {
        access_token: Secret::new(ROBOT_TOKEN),
        secret: Secret::new("SECnot-the-robots-secret"),
    };
    let now = hookline::clock::Clock::now_ms(h.clock.as_ref());
    let forged = hookline_dingtalk::robot::flush_request_headers(&robot, now);
    assert_eq!(flush(forged.to_vec()).await.0, StatusCode::UNAUTHORIZED);
    let robot = CustomRobot {
        access_token: Secret::new(ROBOT_TOKEN),
        secret: Secret::new(ROBOT_SECRET),
    };
    let signed = hookline_dingtalk::robot::flush_request_headers(&robot, now);
    let (status, body) = flush(signed.to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).expect("report");
    assert_eq!(report["digests"], 0);
}

/// Sends twenty notifications, the whole budget of the minute.
async fn spend_the_budget(h: &Harness) {
    for i in 0..20 {
        let (status, _) = h
            .notify(Some(NOTIFY_TOKEN), &format!(r#"{{"text":"filler {i}"}}"#))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

fn sender_of(h: &Harness, store: SharedStore) -> RobotSender {
    RobotSender::new(
        CustomRobot {
            access_token: Secret::new(ROBOT_TOKEN),
            secret: Secret::new(ROBOT_SECRET),
        },
        &h.emu_url,
        support::deps(store.clone(), h.clock.clone()).http,
        store,
        h.clock.clone(),
    )
}

#[tokio::test]
async fn notify_refuses_a_text_over_the_limit_and_names_it() {
    let h = harness(true).await;
    let text = "x".repeat(hookline_dingtalk::robot::MAX_ENTRY_BYTES + 1);
    let (status, body) = h
        .notify(Some(NOTIFY_TOKEN), &json!({ "text": text }).to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("at most 16000"), "{body}");
    h.nothing_happened();
}

#[tokio::test]
async fn one_oversized_entry_no_longer_wedges_the_queue() {
    let h = harness(true).await;
    spend_the_budget(&h).await;
    // A 25,000-character entry (queued by an older version, or a long bot reply), then another.
    let sender = sender_of(&h, h.store.clone());
    let huge = Notification {
        text: "y".repeat(25_000),
        title: None,
        markdown: false,
        at: None,
    };
    assert_eq!(sender.send(&huge).await.unwrap(), Delivery::Queued);
    let (status, _) = h.notify(Some(NOTIFY_TOKEN), r#"{"text":"after it"}"#).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    h.clock.advance(Duration::from_secs(61));
    let report = sender.flush().await.expect("flush");
    assert_eq!(
        (report.delivered, report.dead, report.pending),
        (2, 0, 0),
        "{report:?}"
    );
    let digest = h.emu.sent().last().cloned().unwrap();
    let text = digest["body"]["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("y…") && text.contains("after it"),
        "cut with a marker"
    );
}

#[tokio::test]
async fn a_digest_refused_for_good_is_set_aside_and_the_queue_goes_on() {
    let h = harness(true).await;
    spend_the_budget(&h).await;
    for text in ["first", "second"] {
        let body = json!({ "text": text }).to_string();
        assert_eq!(
            h.notify(Some(NOTIFY_TOKEN), &body).await.0,
            StatusCode::ACCEPTED
        );
    }
    h.clock.advance(Duration::from_secs(61));
    h.emu
        .fail_next(460_101, "message too long, exceed 20000 bytes");
    let sender = sender_of(&h, h.store.clone());
    let report = sender.flush().await.expect("a refused digest is no error");
    assert_eq!((report.digests, report.dead, report.pending), (0, 2, 0));
    let dead = sender.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(dead[0].reason.contains("460101"), "{dead:?}");
    assert_eq!(dead[0].notification.text, "first");
    // Nothing waits behind them any more.
    let (status, body) = h.notify(Some(NOTIFY_TOKEN), r#"{"text":"later"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn once_queued_a_notify_never_reports_the_flushs_failure() {
    let h = harness(true).await;
    spend_the_budget(&h).await;
    assert_eq!(
        h.notify(Some(NOTIFY_TOKEN), r#"{"text":"one"}"#).await.0,
        StatusCode::ACCEPTED
    );
    h.clock.advance(Duration::from_secs(61));
    // The flush this notify runs meets a refusal; the notification itself is safely queued.
    h.emu.fail_next(310_000, "sign not match");
    let (status, body) = h.notify(Some(NOTIFY_TOKEN), r#"{"text":"two"}"#).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::ACCEPTED, r#"{"queued":true}"#)
    );
}

#[tokio::test]
async fn the_same_idempotency_key_is_sent_once() {
    let h = harness(true).await;
    let notify = |key: &'static str| {
        let request = Request::post("/notify")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {NOTIFY_TOKEN}"))
            .header("idempotency-key", key)
            .body(Body::from(r#"{"text":"deploy done"}"#))
            .expect("request");
        send(&h.router, request)
    };
    assert_eq!(
        notify("deploy-42").await,
        (StatusCode::OK, r#"{"sent":true}"#.into())
    );
    assert_eq!(
        notify("deploy-42").await,
        (StatusCode::OK, r#"{"sent":true}"#.into())
    );
    assert_eq!(h.emu.sent().len(), 1);
    assert_eq!(notify("deploy-43").await.0, StatusCode::OK);
    assert_eq!(h.emu.sent().len(), 2);
    let bad = Request::post("/notify")
        .header("authorization", format!("Bearer {NOTIFY_TOKEN}"))
        .header("idempotency-key", "has space")
        .body(Body::from(r#"{"text":"x"}"#))
        .expect("request");
    assert_eq!(send(&h.router, bad).await.0, StatusCode::BAD_REQUEST);
}

/// A store that records the order of operations and, when armed, hands the flush lock to
/// someone else the moment the budget is looked at (a lock that expired mid-flush and was
/// taken by another flusher).
#[derive(Debug)]
struct Takeover {
    inner: SharedStore,
    ops: std::sync::Mutex<Vec<String>>,
    lock: std::sync::Mutex<Option<hookline::store::Key>>,
}

#[hookline::async_trait]
impl hookline::store::StateStore for Takeover {
    async fn get(
        &self,
        key: &hookline::store::Key,
    ) -> Result<Option<hookline::store::Item>, hookline::store::StoreError> {
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: &hookline::store::Key,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<(), hookline::store::StoreError> {
        self.inner.put(key, value, expires_at).await
    }
    async fn put_if_absent(
        &self,
        key: &hookline::store::Key,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, hookline::store::StoreError> {
        if key.sk == "lock" {
            self.ops.lock().unwrap().push("lock".into());
            *self.lock.lock().unwrap() = Some(key.clone());
        }
        self.inner.put_if_absent(key, value, expires_at).await
    }
    async fn compare_and_set(
        &self,
        key: &hookline::store::Key,
        expected: Option<&str>,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, hookline::store::StoreError> {
        self.inner
            .compare_and_set(key, expected, value, expires_at)
            .await
    }
    async fn delete(&self, key: &hookline::store::Key) -> Result<(), hookline::store::StoreError> {
        self.inner.delete(key).await
    }
    async fn delete_if(
        &self,
        key: &hookline::store::Key,
        value: &str,
    ) -> Result<bool, hookline::store::StoreError> {
        self.inner.delete_if(key, value).await
    }
    async fn query_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<(String, hookline::store::Item)>, hookline::store::StoreError> {
        if pk.ends_with("#pending") {
            self.ops.lock().unwrap().push("read pending".into());
        }
        let lock = self.lock.lock().unwrap().clone();
        if let (true, Some(lock)) = (pk.ends_with("#budget"), lock) {
            self.inner
                .put(&lock, "someone-else", Some(i64::MAX / 2))
                .await?;
        }
        self.inner.query_prefix(pk, sk_prefix).await
    }
}

#[tokio::test]
async fn a_flush_reads_the_queue_only_under_its_lock_and_releases_only_its_own() {
    let h = harness(true).await;
    spend_the_budget(&h).await;
    assert_eq!(
        h.notify(Some(NOTIFY_TOKEN), r#"{"text":"queued"}"#).await.0,
        StatusCode::ACCEPTED
    );
    h.clock.advance(Duration::from_secs(61));
    let spy = Arc::new(Takeover {
        inner: h.store.clone(),
        ops: std::sync::Mutex::new(Vec::new()),
        lock: std::sync::Mutex::new(None),
    });
    let sender = sender_of(&h, spy.clone());
    sender.flush().await.expect("flush");
    let ops = spy.ops.lock().unwrap().clone();
    assert_eq!(ops.first().map(String::as_str), Some("lock"), "{ops:?}");
    let lock = spy
        .lock
        .lock()
        .unwrap()
        .clone()
        .expect("the flush took the lock");
    let holder = hookline::store::StateStore::get(h.store.as_ref(), &lock)
        .await
        .unwrap()
        .map(|i| i.value);
    assert_eq!(
        holder.as_deref(),
        Some("someone-else"),
        "the new owner's lock stays"
    );
}
