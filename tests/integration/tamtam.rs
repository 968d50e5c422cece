//! TamTam end to end: fixtures through the router from a TamTam source address, the TamTam
//! emulator as the fake API on loopback; `X-Forwarded-For` over real TCP.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use hookline::clock::{SharedClock, SystemClock};
use hookline::secret::Secret;
use hookline::store::SharedStore;
use hookline_tamtam::emulator::TamTamEmulator;
use hookline_tamtam::{TamTamConfig, default_subnets};
use serde_json::{Value, json};

use crate::support::{self, CountingStore, DownStore, fixture, fixture_json, post_from};

const BOT_TOKEN: &str = "tamtam-test-bot-token";
const CALLBACK_TOKEN: &str = "tamtam-callback-token-0123456789";
const TAMTAM_IP: &str = "185.16.150.86";
const M1: &str = "tamtam/message_created_group_mention.json";
const M2: &str = "tamtam/message_callback_dialog.json";

struct Harness {
    emu: TamTamEmulator,
    router: Router,
    store: Arc<CountingStore>,
    _dir: tempfile::TempDir,
}

fn config(api_url: String) -> TamTamConfig {
    TamTamConfig {
        token: Secret::new(BOT_TOKEN),
        callback_token: Secret::new(CALLBACK_TOKEN),
        api_url,
        allowed_subnets: default_subnets(),
    }
}

async fn harness() -> Harness {
    let clock: SharedClock = Arc::new(SystemClock);
    let (inner, dir) = support::embedded(clock.clone());
    let store = Arc::new(CountingStore::new(inner));
    let emu = TamTamEmulator::new(BOT_TOKEN, 591_000_001, "helper_bot");
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let shared: SharedStore = store.clone();
    let router = hookline_tamtam::router(config(api_url), support::deps(shared, clock));
    Harness {
        emu,
        router,
        store,
        _dir: dir,
    }
}

impl Harness {
    async fn deliver(&self, body: Vec<u8>) -> StatusCode {
        post_from(
            &self.router,
            Some(TAMTAM_IP),
            &format!("token={CALLBACK_TOKEN}"),
            body,
        )
        .await
        .0
    }

    /// The only POST the bot made (to /messages or /answers).
    fn only_post(&self, path: &str) -> (Value, Value) {
        let sent = self.emu.sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0]["path"], path, "{sent:?}");
        assert_eq!(sent[0]["query"]["v"], "0.3.0");
        (sent[0]["query"].clone(), sent[0]["body"].clone())
    }
}

#[tokio::test]
async fn m1_a_group_mention_gets_a_reply_linked_to_it() {
    let h = harness().await;
    assert_eq!(h.deliver(fixture(M1)).await, StatusCode::OK);
    let (query, body) = h.only_post("/messages");
    assert_eq!(query["chat_id"], "-70123456789012");
    assert_eq!(
        body,
        json!({"text": "Your message: what is the weather?", "attachments": null,
               "link": {"type": "reply", "mid": "mid.ffffc0391c4485ec0189ad2161fe3a6c"}, "notify": true})
    );
}

#[tokio::test]
async fn m2_a_button_press_is_answered_through_answers() {
    let h = harness().await;
    assert_eq!(h.deliver(fixture(M2)).await, StatusCode::OK);
    let (query, body) = h.only_post("/answers");
    assert_eq!(
        query["callback_id"],
        "f9LHodD0cOKaIG2ar1OZ5XQsHjaW7p0Qz5ZqOXY6h8ifjmjSkqUuy+ZWwRLXp58w"
    );
    assert_eq!(
        body,
        json!({"message": null, "notification": "You chose: vote:yes"})
    );
}

#[tokio::test]
async fn m3_bot_started_greets_with_the_deep_link_payload() {
    let h = harness().await;
    assert_eq!(
        h.deliver(fixture("tamtam/bot_started_deep_link.json"))
            .await,
        StatusCode::OK
    );
    let (query, body) = h.only_post("/messages");
    assert_eq!(query["chat_id"], "1234567890");
    assert_eq!(body["link"], Value::Null);
    let text = body["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("Hello!") && text.contains("any data meaningful to bot"),
        "{text}"
    );
}

#[tokio::test]
async fn m4_bot_added_says_hello_in_the_chat() {
    let h = harness().await;
    assert_eq!(
        h.deliver(fixture("tamtam/bot_added_group.json")).await,
        StatusCode::OK
    );
    let (query, body) = h.only_post("/messages");
    assert_eq!(query["chat_id"], "-70123456789012");
    assert_eq!(
        body["text"],
        "Hello, everyone! Mention me with /help to see what I can do."
    );
}

#[tokio::test]
async fn buttons_are_an_inline_keyboard_and_null_attachments_are_fine() {
    let h = harness().await;
    assert_eq!(
        h.deliver(fixture(
            "tamtam/message_created_dialog_null_attachments.json"
        ))
        .await,
        StatusCode::OK
    );
    let (query, body) = h.only_post("/messages");
    assert_eq!(query["chat_id"], "320955459");
    assert_eq!(
        body,
        json!({"text": "Pick one:",
               "attachments": [{"type": "inline_keyboard", "payload": {"buttons": [[
                   {"type": "callback", "text": "Yes", "payload": "choice:yes"},
                   {"type": "callback", "text": "No", "payload": "choice:no"}]]}}],
               "link": {"type": "reply", "mid": "mid.0000000013216443019df386ae68000f"}, "notify": true})
    );
}

#[tokio::test]
async fn every_other_update_type_and_garbage_is_acknowledged_and_left_alone() {
    let h = harness().await;
    let others = [
        "message_edited_group",
        "message_removed_group",
        "bot_removed_group",
        "user_added_by_link",
        "user_removed_by_admin",
        "chat_title_changed_group",
        "message_construction_request_message",
        "message_constructed_session",
        "message_chat_created_discussion",
        "unknown_dialog_muted",
    ];
    for name in others {
        assert_eq!(
            h.deliver(fixture(&format!("tamtam/{name}.json"))).await,
            StatusCode::OK,
            "{name}"
        );
    }
    let garbage: [&[u8]; 5] = [
        b"{",
        b"[]",
        b"null",
        br#"{"update_type":"message_created"}"#,
        br#"{"update_type":"bot_started","chat_id":"x"}"#,
    ];
    for body in garbage {
        assert_eq!(
            h.deliver(body.to_vec()).await,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(h.emu.sent().is_empty());
    assert_eq!(h.store.writes(), 0, "ignored updates store nothing");
}

#[tokio::test]
async fn bots_the_bot_itself_and_unaddressed_group_chatter_are_ignored() {
    let h = harness().await;
    let mut own = fixture_json(M1);
    own["message"]["sender"]["user_id"] = json!(591_000_001);
    let mut bot = fixture_json(M1);
    bot["message"]["sender"]["is_bot"] = json!(true);
    let mut chatter = fixture_json(M1);
    chatter["message"]["body"]["text"] = json!("nice weather");
    chatter["message"]["body"]["markup"] = json!(null);
    for body in [own, bot, chatter] {
        assert_eq!(
            h.deliver(body.to_string().into_bytes()).await,
            StatusCode::OK
        );
    }
    assert!(h.emu.sent().is_empty());
}

#[tokio::test]
async fn foreign_sources_and_wrong_tokens_are_rejected_and_touch_nothing() {
    let h = harness().await;
    let query = format!("token={CALLBACK_TOKEN}");
    for ip in ["203.0.113.9", "185.16.150.4", "127.0.0.1", "::1"] {
        let (status, body) = post_from(&h.router, Some(ip), &query, fixture(M1)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{ip}"
        );
    }
    assert_eq!(
        post_from(&h.router, None, &query, fixture(M1)).await.0,
        StatusCode::FORBIDDEN
    );
    for query in ["token=wrong", "", "token="] {
        assert_eq!(
            post_from(&h.router, Some(TAMTAM_IP), query, fixture(M1))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!((h.emu.attempts(), h.store.writes()), (0, 0));
}

async fn over_tcp(trusted: &[&str]) -> (TamTamEmulator, StatusCode) {
    let clock: SharedClock = Arc::new(SystemClock);
    let (store, _dir) = support::embedded(clock.clone());
    let emu = TamTamEmulator::new(BOT_TOKEN, 591_000_001, "helper_bot");
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let router = hookline_tamtam::router(config(api_url), support::deps(store, clock));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let proxies = hookline::runtime::TrustedProxies(
        trusted.iter().map(|c| c.parse().expect("cidr")).collect(),
    );
    tokio::spawn(hookline::runtime::serve_listener(listener, router, proxies));
    let status = reqwest::Client::new()
        .post(format!("http://{addr}/?token={CALLBACK_TOKEN}"))
        .header("x-forwarded-for", TAMTAM_IP)
        .header("content-type", "application/json")
        .body(fixture(M1))
        .send()
        .await
        .expect("request")
        .status();
    (emu, StatusCode::from_u16(status.as_u16()).expect("status"))
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_unless_the_proxy_is_trusted() {
    // The TCP peer is 127.0.0.1; the header claims a TamTam address.
    let (emu, status) = over_tcp(&[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(emu.attempts(), 0);
    // Trusting proxies, but not this peer: the header is anyone's word.
    let (emu, status) = over_tcp(&["10.0.0.0/8"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(emu.attempts(), 0);
    let (emu, status) = over_tcp(&["127.0.0.0/8"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(emu.sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_deliveries_send_one_reply_and_one_answer() {
    let h = Arc::new(harness().await);
    for (fixture_name, path) in [(M1, "/messages"), (M2, "/answers")] {
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let h = Arc::clone(&h);
            tasks.push(tokio::spawn(async move {
                h.deliver(fixture(fixture_name)).await
            }));
        }
        for t in tasks {
            let status = t.await.expect("task");
            assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "{status}"
            );
        }
        let count = h.emu.sent().iter().filter(|c| c["path"] == path).count();
        assert_eq!(count, 1, "{path}");
    }
}

#[tokio::test]
async fn only_transient_failures_get_a_non_200() {
    let h = harness().await;
    // TamTam down: 503 → retried in-process; still down → a redelivery can succeed, so ask.
    for _ in 0..3 {
        h.emu.fail_next(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"code": "service.unavailable", "message": "try later"}),
        );
    }
    assert_eq!(
        h.deliver(fixture("tamtam/bot_added_group.json")).await,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        h.deliver(fixture("tamtam/bot_added_group.json")).await,
        StatusCode::OK
    );
    assert_eq!(h.emu.sent().len(), 1);

    // A refusal (bot removed from the chat) and a 500 that may have posted: 200, never resent.
    h.emu.fail_next(
        StatusCode::FORBIDDEN,
        json!({"code": "chat.denied", "message": "bot is not a member"}),
    );
    assert_eq!(
        h.deliver(fixture("tamtam/bot_started_deep_link.json"))
            .await,
        StatusCode::OK
    );
    assert_eq!(
        h.deliver(fixture("tamtam/bot_started_deep_link.json"))
            .await,
        StatusCode::OK
    );
    let mut added_again = fixture_json("tamtam/bot_added_group.json");
    added_again["timestamp"] = json!(1_700_000_099_000_i64);
    h.emu.fail_next(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"code": "internal", "message": "oops"}),
    );
    assert_eq!(
        h.deliver(added_again.to_string().into_bytes()).await,
        StatusCode::OK
    );
    assert_eq!(
        h.deliver(added_again.to_string().into_bytes()).await,
        StatusCode::OK
    );
    assert_eq!(h.emu.sent().len(), 1, "nothing was resent");
}

#[tokio::test]
async fn an_unreachable_store_is_the_one_reason_to_ask_for_a_redelivery() {
    let clock: SharedClock = Arc::new(SystemClock);
    let emu = TamTamEmulator::new(BOT_TOKEN, 591_000_001, "helper_bot");
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let router =
        hookline_tamtam::router(config(api_url), support::deps(Arc::new(DownStore), clock));
    let query = format!("token={CALLBACK_TOKEN}");
    for name in [M1, "tamtam/bot_started_deep_link.json"] {
        assert_eq!(
            post_from(&router, Some(TAMTAM_IP), &query, fixture(name))
                .await
                .0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert!(emu.sent().is_empty());
}

#[tokio::test]
async fn a_503_is_retried_in_process_instead_of_waiting_for_a_redelivery() {
    let h = harness().await;
    h.emu.fail_next(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"code": "service.unavailable", "message": "try later"}),
    );
    assert_eq!(
        h.deliver(fixture("tamtam/bot_added_group.json")).await,
        StatusCode::OK
    );
    assert_eq!(h.emu.sent().len(), 1);
}

#[tokio::test]
async fn a_message_whose_answer_was_lost_is_not_posted_again() {
    for status in [500, 502, 504] {
        let h = harness().await;
        h.emu
            .post_then_fail_next(StatusCode::from_u16(status).unwrap());
        let body = fixture("tamtam/bot_added_group.json");
        assert_eq!(h.deliver(body.clone()).await, StatusCode::OK, "{status}");
        assert_eq!(h.deliver(body).await, StatusCode::OK, "{status}");
        assert_eq!(h.emu.sent().len(), 1, "{status}: posted once, never again");
    }
}
