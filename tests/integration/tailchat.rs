//! Tailchat end to end: fixtures through the router, the Tailchat emulator as the fake API on
//! loopback, the embedded store underneath (wrapped to count writes).

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use hookline::clock::{Clock, SharedClock, SystemClock};
use hookline::credential::Credential;
use hookline::secret::Secret;
use hookline::store::{SharedStore, StateStore};
use hookline_tailchat::emulator::TailchatEmulator;
use hookline_tailchat::{BotSession, TailchatConfig, session_key};
use serde_json::{Value, json};

use crate::support::{self, CountingStore, DownStore, fixture, fixture_json, post};

const BOT: &str = "6552f3a0c3b1e2a9d4f01234";
const APP_ID: &str = "tc_6448e822834c12425646f470";
const APP_SECRET: &str = "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5";
const TOKEN: &str = "test-callback-token-0123456789";
const GROUP: &str = "644f7c9d2a1b3c4d5e6f7081";

struct Harness {
    emu: TailchatEmulator,
    router: Router,
    store: Arc<CountingStore>,
    _dir: tempfile::TempDir,
}

fn config(api_url: String, app_secret: &str) -> TailchatConfig {
    TailchatConfig {
        api_url,
        app_id: APP_ID.into(),
        app_secret: Secret::new(app_secret),
        callback_token: Secret::new(TOKEN),
    }
}

async fn harness() -> Harness {
    harness_with(APP_SECRET).await
}

async fn harness_with(app_secret: &str) -> Harness {
    let clock: SharedClock = Arc::new(SystemClock);
    let (inner, dir) = support::embedded(clock.clone());
    let store = Arc::new(CountingStore::new(inner));
    let emu = TailchatEmulator::new(APP_ID, APP_SECRET, BOT);
    let base = emu.serve_on_loopback().await.expect("emulator");
    let shared: SharedStore = store.clone();
    let router = hookline_tailchat::router(config(base, app_secret), support::deps(shared, clock));
    Harness {
        emu,
        router,
        store,
        _dir: dir,
    }
}

impl Harness {
    async fn deliver(&self, body: Vec<u8>) -> (StatusCode, String) {
        post(&self.router, &format!("token={TOKEN}"), body).await
    }
}

fn t1_with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut t1 = fixture_json("tailchat/message_group.json");
    edit(&mut t1);
    t1.to_string().into_bytes()
}

#[tokio::test]
async fn a_group_mention_gets_exactly_the_sdk_shaped_reply() {
    let h = harness().await;
    let (status, _) = h.deliver(fixture("tailchat/message_group.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.emu.sent(),
        vec![fixture_json("tailchat/reply_message_group.json")]
    );
    assert_eq!(h.emu.logins(), 1);
}

#[tokio::test]
async fn a_dm_mention_is_answered_without_a_group() {
    let h = harness().await;
    let (status, _) = h.deliver(fixture("tailchat/message_dm.json")).await;
    assert_eq!(status, StatusCode::OK);
    let expected = json!({
        "converseId": "6550000ac3b1e2a9d4f00111",
        "content": "[at=6448e822834c12425646f473][/at] Your message: ping",
        "meta": {"mentions": ["6448e822834c12425646f473"],
                 "reply": {"_id": "6553a20ec3b1e2a9d4f0aa06", "author": "6448e822834c12425646f473",
                           "content": "[at=6552f3a0c3b1e2a9d4f01234]EchoBot[/at] ping"}}
    });
    assert_eq!(h.emu.sent(), vec![expected]);
}

#[tokio::test]
async fn a_broadcast_is_acknowledged_and_ignored_without_any_call() {
    let h = harness().await;
    let (status, _) = h.deliver(fixture("tailchat/markdown_broadcast.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (h.emu.logins(), h.emu.send_attempts(), h.store.writes()),
        (0, 0, 0)
    );
    let plugin = br#"{"_id":"x","userId":"6552f3a0c3b1e2a9d4f01234","type":"plugin:com.msgbyte.topic.comment","payload":{}}"#;
    assert_eq!(h.deliver(plugin.to_vec()).await.0, StatusCode::OK);
    assert_eq!((h.emu.logins(), h.emu.send_attempts()), (0, 0));
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_404_and_touches_nothing() {
    let h = harness().await;
    let forged = [
        String::new(),
        "token=".into(),
        "token=test-callback-token-012345678".into(),
        "token=TEST-CALLBACK-TOKEN-0123456789".into(),
        format!("tok={TOKEN}"),
        format!("token={TOKEN}x"),
    ];
    for query in forged {
        let (status, body) = post(&h.router, &query, fixture("tailchat/message_group.json")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "query {query:?}");
        assert_eq!(body, "not found");
    }
    assert_eq!(
        (h.emu.logins(), h.emu.send_attempts(), h.store.writes()),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn items_for_another_user_or_from_the_bot_itself_are_ignored() {
    let h = harness().await;
    let other = t1_with(|v| v["userId"] = json!("6448e822834c12425646f999"));
    assert_eq!(h.deliver(other).await.0, StatusCode::OK);
    let own = t1_with(|v| v["payload"]["messageAuthor"] = json!(BOT));
    assert_eq!(h.deliver(own).await.0, StatusCode::OK);
    assert_eq!(h.emu.send_attempts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_deliveries_of_one_callback_send_one_message() {
    let h = harness().await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let router = h.router.clone();
        let body = fixture("tailchat/message_group.json");
        tasks.push(tokio::spawn(async move {
            post(&router, &format!("token={TOKEN}"), body).await.0
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
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.emu.send_attempts(),
        1,
        "a completed duplicate sends nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_callbacks_log_in_once() {
    let h = harness().await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let router = h.router.clone();
        let body = t1_with(|v| v["payload"]["messageId"] = json!(format!("{i:024x}")));
        tasks.push(tokio::spawn(async move {
            post(&router, &format!("token={TOKEN}"), body).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::OK);
    }
    assert_eq!(h.emu.logins(), 1);
    assert_eq!(h.emu.sent().len(), 100);
}

#[tokio::test]
async fn a_revoked_jwt_costs_one_relogin_and_the_message_is_still_answered() {
    let h = harness().await;
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    h.emu.revoke_tokens();
    assert_eq!(
        h.deliver(fixture("tailchat/message_dm.json")).await.0,
        StatusCode::OK
    );
    assert_eq!(h.emu.logins(), 2);
    assert_eq!(h.emu.sent().len(), 2);
    assert_eq!(h.emu.send_attempts(), 3, "one refused attempt, one retry");
}

async fn seed_session(h: &Harness, exp_s: i64) {
    let session = BotSession {
        jwt: h.emu.issue_jwt(exp_s),
        user_id: BOT.into(),
    };
    let cached = Credential {
        value: session,
        expires_at_ms: exp_s * 1000,
    };
    // No store TTL: only the cache's own freshness rule may reject it.
    h.store
        .put(
            &session_key(APP_ID),
            &serde_json::to_string(&cached).expect("json"),
            None,
        )
        .await
        .expect("seed");
}

#[tokio::test]
async fn a_fresh_cached_jwt_in_the_store_is_reused_without_login() {
    let h = harness().await;
    seed_session(&h, SystemClock.now_s() + 10 * 24 * 3600).await;
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    assert_eq!((h.emu.logins(), h.emu.send_attempts()), (0, 1));
}

#[tokio::test]
async fn an_expired_cached_jwt_in_the_store_leads_to_a_login_before_sending() {
    let h = harness().await;
    seed_session(&h, SystemClock.now_s() - 3600).await;
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        (h.emu.logins(), h.emu.send_attempts()),
        (1, 1),
        "no attempt with the stale JWT"
    );
}

#[tokio::test]
async fn a_jwt_with_less_than_a_day_left_is_refreshed() {
    let h = harness().await;
    seed_session(&h, SystemClock.now_s() + 12 * 3600).await;
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    assert_eq!((h.emu.logins(), h.emu.send_attempts()), (1, 1));
}

#[tokio::test]
async fn a_bot_outside_the_group_is_logged_and_not_retried() {
    let h = harness().await;
    h.emu.deny_group(GROUP);
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    assert!(h.emu.sent().is_empty());
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.emu.send_attempts(),
        1,
        "the event is settled; a redelivery does not retry"
    );
}

#[tokio::test]
async fn a_503_is_retried_in_process_and_the_reply_delivered_once() {
    let h = harness().await;
    h.emu.fail_next_send(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"name": "Error", "message": "try later", "code": 503}),
    );
    let (status, _) = h.deliver(fixture("tailchat/message_group.json")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "Tailchat never redelivers: retry here"
    );
    assert_eq!(h.emu.sent().len(), 1);
    assert_eq!(h.emu.send_attempts(), 2);
}

#[tokio::test]
async fn an_answer_lost_after_the_message_was_posted_never_leads_to_a_second_post() {
    for status in [500, 502, 504] {
        let h = harness().await;
        h.emu
            .post_then_fail_next_send(StatusCode::from_u16(status).unwrap());
        let body = fixture("tailchat/message_group.json");
        assert_eq!(h.deliver(body.clone()).await.0, StatusCode::OK, "{status}");
        // The event stays handled: a redelivery is a completed duplicate, not a second reply.
        assert_eq!(h.deliver(body).await.0, StatusCode::OK, "{status}");
        assert_eq!(h.emu.send_attempts(), 1, "{status}: not repeated");
        assert_eq!(h.emu.sent().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn a_sent_reply_is_acknowledged_even_when_marking_the_event_complete_fails() {
    let clock: SharedClock = Arc::new(SystemClock);
    let (inner, _dir) = support::embedded(clock.clone());
    let emu = TailchatEmulator::new(APP_ID, APP_SECRET, BOT);
    let base = emu.serve_on_loopback().await.expect("emulator");
    let store: SharedStore = Arc::new(support::NoCompleteStore(inner));
    let router = hookline_tailchat::router(config(base, APP_SECRET), support::deps(store, clock));
    let body = fixture("tailchat/message_group.json");
    let (status, _) = post(&router, &format!("token={TOKEN}"), body.clone()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the reply is out: success, not a retry"
    );
    // The claim still holds the event: a redelivery meanwhile is not a second reply.
    let (status, _) = post(&router, &format!("token={TOKEN}"), body).await;
    assert_ne!(status, StatusCode::OK);
    assert_eq!(emu.sent().len(), 1);
}

#[tokio::test]
async fn an_unavailable_api_releases_the_event_for_a_redelivery() {
    let h = harness().await;
    for _ in 0..3 {
        h.emu.fail_next_send(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"name": "Error", "message": "down", "code": 503}),
        );
    }
    let (status, _) = h.deliver(fixture("tailchat/message_group.json")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(h.emu.send_attempts(), 3, "retried in-process first");
    assert!(h.emu.sent().is_empty());
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    assert_eq!(h.emu.sent().len(), 1);
}

#[tokio::test]
async fn a_server_error_on_send_is_not_repeated_to_avoid_a_double_post() {
    let h = harness().await;
    h.emu.fail_next_send(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"name": "Error", "message": "muted", "code": 500}),
    );
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    assert_eq!(h.emu.send_attempts(), 1);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_rejected_and_nothing_is_sent() {
    let h = harness().await;
    let cases: [(&[u8], StatusCode); 4] = [
        (b"not json", StatusCode::BAD_REQUEST),
        (b"[1,2]", StatusCode::BAD_REQUEST),
        (br#"{"type":"message"}"#, StatusCode::BAD_REQUEST),
        (
            br#"{"userId":"x","type":"message","payload":{"converseId":"c"}}"#,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, expected) in cases {
        let (status, text) = h.deliver(body.to_vec()).await;
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(body));
        assert!(text.starts_with("malformed payload"), "{text}");
    }
    // Not a message (no type, another type): acknowledged before any other field is required.
    for body in [
        &br#"{}"#[..],
        br#"{"userId":"x","type":42}"#,
        br#"{"type":"dm.start"}"#,
    ] {
        let (status, _) = h.deliver(body.to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(body));
    }
    let huge = t1_with(|v| v["payload"]["messageSnippet"] = json!("x".repeat(1_100_000)));
    assert_eq!(h.deliver(huge).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!((h.emu.send_attempts(), h.store.writes()), (0, 0));
}

#[tokio::test]
async fn an_unreachable_store_asks_for_a_retry_and_sends_nothing() {
    let clock: SharedClock = Arc::new(SystemClock);
    let emu = TailchatEmulator::new(APP_ID, APP_SECRET, BOT);
    let base = emu.serve_on_loopback().await.expect("emulator");
    let router = hookline_tailchat::router(
        config(base, APP_SECRET),
        support::deps(Arc::new(DownStore), clock),
    );
    let (status, _) = post(
        &router,
        &format!("token={TOKEN}"),
        fixture("tailchat/message_group.json"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(emu.send_attempts(), 0);
}

#[tokio::test]
async fn a_wrong_app_secret_fails_the_login_clearly_and_sends_nothing() {
    let h = harness_with("not-the-secret").await;
    let (status, _) = h.deliver(fixture("tailchat/message_group.json")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!((h.emu.logins(), h.emu.send_attempts()), (0, 0));
}

/// A bot that answers everything twice.
struct TwoReplies;

#[hookline::async_trait]
impl hookline::bot::Bot for TwoReplies {
    async fn handle(&self, _: hookline::bot::Ctx) -> hookline::bot::BotResult {
        Ok(vec![
            hookline::model::Reply::text("first"),
            hookline::model::Reply::text("second"),
        ])
    }
}

#[tokio::test]
async fn once_part_of_an_answer_is_out_the_event_is_never_redelivered_for_the_rest() {
    let clock: SharedClock = Arc::new(SystemClock);
    let (store, _dir) = support::embedded(clock.clone());
    let emu = TailchatEmulator::new(APP_ID, APP_SECRET, BOT);
    let base = emu.serve_on_loopback().await.expect("emulator");
    let mut deps = support::deps(store, clock);
    deps.bot = Arc::new(TwoReplies);
    let router = hookline_tailchat::router(config(base, APP_SECRET), deps);
    // The first reply goes out; the second meets an API that stays unavailable.
    emu.pass_next_send();
    for _ in 0..3 {
        emu.fail_next_send(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"name": "Error", "message": "down", "code": 503}),
        );
    }
    let body = fixture("tailchat/message_group.json");
    let (status, _) = post(&router, &format!("token={TOKEN}"), body.clone()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a redelivery would repeat \"first\""
    );
    let (status, _) = post(&router, &format!("token={TOKEN}"), body).await;
    assert_eq!(status, StatusCode::OK);
    let sent: Vec<Value> = emu.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0]["content"].as_str().unwrap().ends_with("first"));
}

#[tokio::test]
async fn outbound_calls_end_before_the_invocation_deadline() {
    // An API that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let clock: SharedClock = Arc::new(SystemClock);
    let (store, _dir) = support::embedded(clock.clone());
    let router = hookline_tailchat::router(
        config(api_url, APP_SECRET),
        support::deps(store, clock.clone()),
    );
    // Three seconds left in the invocation: calls stop DEADLINE_RESERVE (2 s) before it, where
    // the client alone would wait 5 s per attempt, three attempts.
    let deadline = clock.now_ms() + 3_000;
    let mut request = axum::http::Request::post(format!("/?token={TOKEN}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(fixture(
            "tailchat/message_group.json",
        )))
        .unwrap();
    request
        .extensions_mut()
        .insert(hookline::runtime::Deadline(deadline));
    let started = std::time::Instant::now();
    let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
    let took = started.elapsed();
    assert_eq!(
        response.status(),
        StatusCode::BAD_GATEWAY,
        "released for a redelivery"
    );
    assert!(took < std::time::Duration::from_millis(2_900), "{took:?}");
}

#[tokio::test]
async fn an_answered_message_costs_two_store_writes_the_claim_and_its_completion() {
    let h = harness().await;
    assert_eq!(
        h.deliver(fixture("tailchat/message_group.json")).await.0,
        StatusCode::OK
    );
    let after_first = h.store.writes();
    let mut second = fixture_json("tailchat/message_group.json");
    second["payload"]["messageId"] = "6553a1f0c3b1e2a9d4f0ffff".into();
    let (status, _) = h.deliver(serde_json::to_vec(&second).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // The bot API (context, state scopes, panic guard) adds no store operation: the echo
    // bot's answer is one claim and one completion, as before it.
    assert_eq!(h.store.writes() - after_first, 2);
    assert_eq!(h.emu.sent().len(), 2);
}
