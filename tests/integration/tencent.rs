//! Tencent Cloud Chat end to end: fixtures C1–C3 through the router, the Tencent REST emulator
//! as the fake API on loopback, a fixed clock (callback `Sign` windows, UserSig expiry).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hookline::clock::{ManualClock, SharedClock};
use hookline::pipeline::{Pipeline, webhook};
use hookline::secret::Secret;
use hookline::store::SharedStore;
use hookline_tencent::emulator::TencentEmulator;
use hookline_tencent::{TencentAdapter, TencentConfig, callback_sign};
use serde_json::{Value, json};

use crate::support::{self, CountingStore, DownStore, fixture, fixture_json};

const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const C1_QUERY: &str = "SdkAppid=1400000000&CallbackCommand=Bot.OnGroupMessage&contenttype=json&ClientIP=203.0.113.7&OptPlatform=iOS&Sign=63b7452c43a5ccb94a07b830e8480f3d7a6d0de52a844288e48a3a4295affb4d&RequestTime=1700000000";
const C2_QUERY: &str = "SdkAppid=1400000000&CallbackCommand=Bot.OnGroupMessage&contenttype=json&ClientIP=198.51.100.20&OptPlatform=Web";
const C3_QUERY: &str = "SdkAppid=1400000000&CallbackCommand=Bot.OnC2CMessage&contenttype=json&ClientIP=203.0.113.7&OptPlatform=Android&Sign=63b7452c43a5ccb94a07b830e8480f3d7a6d0de52a844288e48a3a4295affb4d&RequestTime=1700000000";
/// Five seconds after the fixtures' RequestTime.
const NOW_MS: i64 = 1_700_000_005_000;

struct Harness {
    emu: TencentEmulator,
    router: Router,
    pipeline: Arc<Pipeline<TencentAdapter>>,
    store: Arc<CountingStore>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn harness(token: Option<&str>) -> Harness {
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let emu = TencentEmulator::new(1_400_000_000, KEY, "administrator", clock.clone());
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    with_emulator(token, emu, api_url, clock)
}

fn config(api_url: String, token: Option<&str>) -> TencentConfig {
    TencentConfig {
        sdkappid: 1_400_000_000,
        secret_key: Secret::new(KEY),
        bot_id: "@RBT#001".into(),
        admin: "administrator".into(),
        api_url,
        callback_token: token.map(Secret::new),
    }
}

fn with_emulator(
    token: Option<&str>,
    emu: TencentEmulator,
    api_url: String,
    clock: Arc<ManualClock>,
) -> Harness {
    let shared_clock: SharedClock = clock.clone();
    let (inner, dir) = support::embedded(shared_clock.clone());
    let store = Arc::new(CountingStore::new(inner));
    let config = config(api_url, token);
    let shared_store: SharedStore = store.clone();
    let pipeline = Arc::new(hookline_tencent::pipeline(
        config,
        support::deps(shared_store, shared_clock),
    ));
    Harness {
        emu,
        router: webhook(pipeline.clone()),
        pipeline,
        store,
        clock,
        _dir: dir,
    }
}

impl Harness {
    async fn post(&self, query: &str, body: Vec<u8>) -> (StatusCode, String) {
        support::post(&self.router, query, body).await
    }

    fn generated(&self) -> usize {
        self.pipeline.adapter().client().usersigs_generated()
    }

    fn nothing_happened(&self) {
        assert_eq!(
            (self.emu.attempts(), self.store.writes(), self.generated()),
            (0, 0, 0)
        );
    }
}

fn ok_body(body: &str) {
    let parsed: Value = serde_json::from_str(body).expect("JSON answer");
    assert_eq!(
        parsed,
        json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0})
    );
}

/// The recorded call, with the REST query checked and the per-request `random` removed.
fn only_call(emu: &TencentEmulator, api: &str) -> Value {
    let sent = emu.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let call = sent[0].clone();
    assert_eq!(call["api"], api);
    let query = &call["query"];
    assert_eq!(query["sdkappid"], "1400000000");
    assert_eq!(query["identifier"], "administrator");
    assert_eq!(query["contenttype"], "json");
    assert!(
        query["random"]
            .as_str()
            .and_then(|r| r.parse::<u32>().ok())
            .is_some(),
        "{query}"
    );
    call["body"].clone()
}

#[tokio::test]
async fn c1_a_signed_group_mention_is_answered_in_the_group_at_the_asker() {
    let h = harness(Some("my_token")).await;
    let (status, body) = h
        .post(C1_QUERY, fixture("tencent/group_message_signed.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    ok_body(&body);
    assert_eq!(
        only_call(&h.emu, "send_group_msg"),
        json!({
            "GroupId": "@TGS#2J4SZEAEL", "Random": 2_199_675_711_u32, "From_Account": "@RBT#001",
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "@jared Your message: hello"}}],
            "GroupAtInfo": [{"GroupAtAllFlag": 0, "GroupAt_Account": "jared"}]
        })
    );
}

#[tokio::test]
async fn c2_a_topic_mention_of_two_bots_is_answered_in_the_topic() {
    let h = harness(None).await;
    let (status, body) = h
        .post(C2_QUERY, fixture("tencent/group_message_topic.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    ok_body(&body);
    assert_eq!(
        only_call(&h.emu, "send_group_msg"),
        json!({
            "GroupId": "@TGS#_@TGS#cQVLVHIM62CJ", "Random": 2_015_393_253_u32, "From_Account": "@RBT#001",
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "@lucy Your message: summarise this"}}],
            "GroupAtInfo": [{"GroupAtAllFlag": 0, "GroupAt_Account": "lucy"}],
            "TopicId": "@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_TestTopic"
        })
    );
}

#[tokio::test]
async fn a_one_to_one_reply_whose_answer_was_lost_is_retried_and_deduplicated_by_tencent() {
    let h = harness(Some("my_token")).await;
    h.emu.post_then_fail_next_send();
    let (status, body) = h
        .post(C3_QUERY, fixture("tencent/c2c_message_signed.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    ok_body(&body);
    assert_eq!(h.emu.attempts(), 2, "the ambiguous send is repeated");
    // Same sender, MsgSeq, MsgRandom and content: Tencent keeps one message.
    only_call(&h.emu, "sendmsg");
}

#[tokio::test]
async fn c3_a_one_to_one_message_is_answered_with_sendmsg() {
    let h = harness(Some("my_token")).await;
    let (status, body) = h
        .post(C3_QUERY, fixture("tencent/c2c_message_signed.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    ok_body(&body);
    assert_eq!(
        only_call(&h.emu, "sendmsg"),
        json!({
            "SyncOtherMachine": 2, "From_Account": "@RBT#001", "To_Account": "jared",
            "MsgSeq": 165_946_339, "MsgRandom": 3_379_156_166_u32,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "Your message: red packet"}}]
        })
    );
}

#[tokio::test]
async fn forged_stale_or_foreign_callbacks_are_401_and_touch_nothing() {
    let h = harness(Some("my_token")).await;
    let c1 = || fixture("tencent/group_message_signed.json");
    let sign = "63b7452c43a5ccb94a07b830e8480f3d7a6d0de52a844288e48a3a4295affb4d";
    let cases = [
        (
            "wrong SdkAppid",
            C1_QUERY.replace("SdkAppid=1400000000", "SdkAppid=1400000001"),
        ),
        ("no SdkAppid", C1_QUERY.replace("SdkAppid=1400000000&", "")),
        ("bad Sign", C1_QUERY.replace(sign, &sign.replace('a', "b"))),
        (
            "Sign of another token",
            C1_QUERY.replace(sign, &callback_sign("other", "1700000000")),
        ),
        ("no Sign", C1_QUERY.replace(&format!("&Sign={sign}"), "")),
        (
            "no RequestTime",
            C1_QUERY.replace("&RequestTime=1700000000", ""),
        ),
        (
            "command mismatch",
            C1_QUERY.replace(
                "CallbackCommand=Bot.OnGroupMessage",
                "CallbackCommand=Bot.OnC2CMessage",
            ),
        ),
    ];
    for (what, query) in cases {
        let (status, body) = h.post(&query, c1()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(body, "unauthorized", "{what}");
    }
    // A Sign that was valid, replayed 61 s later; and one from the future.
    h.clock.set(1_700_000_061_000);
    assert_eq!(
        h.post(C1_QUERY, c1()).await.0,
        StatusCode::UNAUTHORIZED,
        "stale"
    );
    h.clock.set(1_699_999_939_000);
    assert_eq!(
        h.post(C1_QUERY, c1()).await.0,
        StatusCode::UNAUTHORIZED,
        "future"
    );
    h.nothing_happened();
}

#[tokio::test]
async fn the_console_url_probe_is_answered_ok_without_side_effects() {
    let h = harness(Some("my_token")).await;
    let (status, body) = h.post("Sign=63b7452c43a5ccb94a07b830e8480f3d7a6d0de52a844288e48a3a4295affb4d&RequestTime=1700000000", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    ok_body(&body);
    let forged = "Sign=00b7452c43a5ccb94a07b830e8480f3d7a6d0de52a844288e48a3a4295affb4d&RequestTime=1700000000";
    assert_eq!(h.post(forged, Vec::new()).await.0, StatusCode::UNAUTHORIZED);
    h.nothing_happened();
}

#[tokio::test]
async fn other_commands_other_bots_robots_and_garbage_send_nothing() {
    let h = harness(None).await;
    let c2 = fixture_json("tencent/group_message_topic.json");
    let mut other_bot = c2.clone();
    other_bot["AtRobots_Account"] = json!(["@RBT#002"]);
    let mut robot_sender = c2.clone();
    robot_sender["From_Account"] = json!("@RBT#002");
    let mut other_command = c2.clone();
    other_command["CallbackCommand"] = json!("Group.CallbackAfterSendMsg");
    let ignored = [
        (C2_QUERY.to_owned(), other_bot),
        (C2_QUERY.to_owned(), robot_sender),
        (
            C2_QUERY.replace("Bot.OnGroupMessage", "Group.CallbackAfterSendMsg"),
            other_command,
        ),
    ];
    for (query, body) in ignored {
        let (status, answer) = h.post(&query, body.to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ok_body(&answer);
    }
    let (status, answer) = h.post(C2_QUERY, b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        h.post(
            C2_QUERY,
            br#"{"GroupId":"g","AtRobots_Account":["@RBT#001"]}"#.to_vec()
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(h.emu.attempts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_concurrent_deliveries_send_one_reply() {
    let h = Arc::new(harness(Some("my_token")).await);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            h.post(C1_QUERY, fixture("tencent/group_message_signed.json"))
                .await
                .0
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
    assert_eq!(h.emu.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_replies_use_one_generated_usersig() {
    let h = Arc::new(harness(None).await);
    let mut tasks = Vec::new();
    for seq in 0..100 {
        let h = Arc::clone(&h);
        let mut body = fixture_json("tencent/group_message_topic.json");
        body["MsgSeq"] = json!(10_000 + seq);
        tasks.push(tokio::spawn(async move {
            h.post(C2_QUERY, body.to_string().into_bytes()).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::OK);
    }
    assert_eq!(h.emu.sent().len(), 100);
    assert_eq!(h.generated(), 1);
    assert_eq!(h.emu.distinct_usersigs(), 1);
}

#[tokio::test]
async fn an_expired_usersig_answer_regenerates_it_and_retries_once() {
    let h = harness(Some("my_token")).await;
    h.emu.fail_next(70001, "UserSig expired");
    let (status, body) = h
        .post(C1_QUERY, fixture("tencent/group_message_signed.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    ok_body(&body);
    assert_eq!(
        (h.generated(), h.emu.attempts(), h.emu.sent().len()),
        (2, 2, 1)
    );
}

#[tokio::test]
async fn the_clients_debug_output_hides_the_usersig() {
    let h = harness(Some("my_token")).await;
    let (status, _) = h
        .post(C1_QUERY, fixture("tencent/group_message_signed.json"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let client = h.pipeline.adapter().client();
    let usersig = client.usersig();
    let shown = format!("{client:?}");
    assert!(!shown.contains(usersig.expose()), "{shown}");
    assert!(!shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn an_invalid_or_foreign_usersig_answer_regenerates_it_and_retries_once() {
    for code in [70003, 70009] {
        let h = harness(Some("my_token")).await;
        h.emu.fail_next(code, "UserSig refused");
        let (status, _) = h
            .post(C1_QUERY, fixture("tencent/group_message_signed.json"))
            .await;
        assert_eq!(status, StatusCode::OK, "{code}");
        assert_eq!(
            (h.generated(), h.emu.attempts(), h.emu.sent().len()),
            (2, 2, 1),
            "{code}"
        );
    }
}

#[tokio::test]
async fn a_rotated_secret_key_is_used_at_once_whatever_the_store_holds() {
    const NEW_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let shared_clock: SharedClock = clock.clone();
    let (store, _dir) = support::embedded(shared_clock.clone());
    // Before the rotation: a reply signed with the old key, on this store.
    let old = TencentEmulator::new(1_400_000_000, KEY, "administrator", clock.clone());
    let old_url = old.serve_on_loopback().await.expect("emulator");
    let router = hookline_tencent::router(
        config(old_url, None),
        support::deps(store.clone(), shared_clock.clone()),
    );
    let (status, _) = support::post(
        &router,
        C2_QUERY,
        fixture("tencent/group_message_topic.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // After it: a new process with the new key on the same store, and Tencent knows only the
    // new key. The first call must already carry a UserSig of the new key.
    let new = TencentEmulator::new(1_400_000_000, NEW_KEY, "administrator", clock.clone());
    let new_url = new.serve_on_loopback().await.expect("emulator");
    let mut rotated = config(new_url, None);
    rotated.secret_key = Secret::new(NEW_KEY);
    let router = hookline_tencent::router(rotated, support::deps(store, shared_clock));
    let mut next = fixture_json("tencent/group_message_topic.json");
    next["MsgSeq"] = json!(5013);
    let (status, _) = support::post(&router, C2_QUERY, next.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((new.attempts(), new.sent().len()), (1, 1));
    let usersig = new.sent()[0]["query"].get("usersig").cloned();
    assert_eq!(usersig, None, "the emulator never lists a UserSig");
}

#[tokio::test]
async fn a_cached_usersig_close_to_expiry_is_regenerated() {
    let h = harness(None).await;
    assert_eq!(
        h.post(C2_QUERY, fixture("tencent/group_message_topic.json"))
            .await
            .0,
        StatusCode::OK
    );
    // 7-day UserSig, regenerated once less than 2 days remain.
    h.clock.advance(Duration::from_secs(4 * 24 * 3600));
    let mut next = fixture_json("tencent/group_message_topic.json");
    next["MsgSeq"] = json!(5013);
    assert_eq!(
        h.post(C2_QUERY, next.to_string().into_bytes()).await.0,
        StatusCode::OK
    );
    assert_eq!(h.generated(), 1, "4 days in: still the first");
    h.clock.advance(Duration::from_secs(2 * 24 * 3600));
    next["MsgSeq"] = json!(5014);
    assert_eq!(
        h.post(C2_QUERY, next.to_string().into_bytes()).await.0,
        StatusCode::OK
    );
    assert_eq!(h.generated(), 2, "6 days in: regenerated");
    assert_eq!(h.emu.sent().len(), 3);
}

#[tokio::test]
async fn configuration_errors_are_logged_and_not_retried_and_busy_answers_are() {
    let h = harness(None).await;
    h.emu.fail_next(70020, "SDKAppID not found");
    assert_eq!(
        h.post(C2_QUERY, fixture("tencent/group_message_topic.json"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        h.post(C2_QUERY, fixture("tencent/group_message_topic.json"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        (h.emu.attempts(), h.emu.sent().len()),
        (1, 0),
        "settled, not retried"
    );

    let mut next = fixture_json("tencent/group_message_topic.json");
    next["MsgSeq"] = json!(7000);
    h.emu.fail_next(-1, "system busy");
    assert_eq!(
        h.post(C2_QUERY, next.to_string().into_bytes()).await.0,
        StatusCode::OK
    );
    assert_eq!((h.emu.attempts(), h.emu.sent().len()), (3, 1));
}

#[tokio::test]
async fn a_reply_retried_after_losing_our_own_record_is_deduplicated_by_tencent() {
    // Two deployments with separate stores (as if the dedup record were lost) answer the same
    // callback: the derived Random makes Tencent keep one message.
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let emu = TencentEmulator::new(1_400_000_000, KEY, "administrator", clock.clone());
    let url = emu.serve_on_loopback().await.expect("emulator");
    let first = with_emulator(Some("my_token"), emu.clone(), url.clone(), clock.clone());
    let second = with_emulator(Some("my_token"), emu.clone(), url, clock);
    assert_eq!(
        first
            .post(C1_QUERY, fixture("tencent/group_message_signed.json"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        second
            .post(C1_QUERY, fixture("tencent/group_message_signed.json"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!((emu.attempts(), emu.sent().len()), (2, 1));
}

#[tokio::test]
async fn an_unreachable_store_asks_for_a_retry_and_sends_nothing() {
    let clock: SharedClock = Arc::new(ManualClock::new(NOW_MS));
    let emu = TencentEmulator::new(1_400_000_000, KEY, "administrator", clock.clone());
    let api_url = emu.serve_on_loopback().await.expect("emulator");
    let config = config(api_url, None);
    let router = hookline_tencent::router(config, support::deps(Arc::new(DownStore), clock));
    let (status, _) = support::post(
        &router,
        C2_QUERY,
        fixture("tencent/group_message_topic.json"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(emu.attempts(), 0);
}
