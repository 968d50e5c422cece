//! A Tencent Cloud Chat REST emulator: `send_group_msg`, `openim/sendmsg`, `create_robot` and
//! `add_group_member`, checking the query
//! (`sdkappid`, `identifier`, `usersig` verified like the server, `random`) and answering with
//! the real `ActionStatus`/`ErrorCode` envelope at HTTP 200. Like Tencent, it treats a group
//! message with the same `Random` to the same group within 5 minutes as the same message, and a
//! one-to-one message with the same sender, `MsgSeq`, `MsgRandom` and content within 120 s as
//! the same message (an absent `MsgSeq` is a random one, so never a duplicate). Every accepted
//! message is recorded and listed at `GET /sent`.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hookline::clock::SharedClock;
use hookline::emulator::{Book, Ledger};
use serde_json::{Value, json};

use crate::usersig::{UserSigError, verify_usersig};

/// The emulator's default SDKAppID.
pub const EMULATOR_SDKAPPID: u64 = 1_400_000_000;
/// The emulator's default key (the sample key of the official repositories).
pub const EMULATOR_SECRET_KEY: &str =
    "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
/// The emulator's default chatbot.
pub const EMULATOR_BOT_ID: &str = "@RBT#001";

/// Tencent's own state beside the shared ledger (whose calls are the sent messages, whose
/// refusals are `ErrorCode`s).
#[derive(Debug, Default)]
struct ImState {
    usersigs: Vec<String>,
    seen_randoms: HashMap<(String, u64), i64>,
    seen_c2c: HashMap<String, i64>,
    /// Chatbot accounts made with `create_robot`.
    robots: Vec<String>,
}

struct Inner {
    sdkappid: u64,
    key: String,
    admin: String,
    clock: SharedClock,
    ledger: Ledger<(i64, String), ImState>,
}

/// The emulator. Clones share state.
#[derive(Clone)]
pub struct TencentEmulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TencentEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TencentEmulator")
            .field("sdkappid", &self.inner.sdkappid)
            .finish_non_exhaustive()
    }
}

fn fail(code: i64, info: &str) -> Response {
    Json(json!({"ActionStatus": "FAIL", "ErrorInfo": info, "ErrorCode": code})).into_response()
}

impl TencentEmulator {
    /// An emulator of one app whose admin is `admin`, on `clock` (UserSig expiry).
    pub fn new(sdkappid: u64, key: &str, admin: &str, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                sdkappid,
                key: key.into(),
                admin: admin.into(),
                clock,
                ledger: Ledger::new(ImState::default()),
            }),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Book<(i64, String), ImState>> {
        self.inner.ledger.book()
    }

    /// The routes, relative to the emulated REST domain.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/v4/group_open_http_svc/send_group_msg",
                post(|s, q, b| handle(s, q, b, "send_group_msg")),
            )
            .route(
                "/v4/openim/sendmsg",
                post(|s, q, b| handle(s, q, b, "sendmsg")),
            )
            .route(
                "/v4/openim_robot_http_svc/create_robot",
                post(|s, q, b| handle(s, q, b, "create_robot")),
            )
            .route(
                "/v4/im_open_login_svc/account_check",
                post(|s, q, b| handle(s, q, b, "account_check")),
            )
            .route(
                "/v4/group_open_http_svc/add_group_member",
                post(|s, q, b| handle(s, q, b, "add_group_member")),
            )
            .route(
                "/sent",
                get(|State(emu): State<Self>| async move { Json(emu.sent()) }),
            )
            .with_state(self.clone())
    }

    /// Serves the emulator on a free loopback port; returns its base URL (the `TENCENT_API_URL`).
    pub async fn serve_on_loopback(&self) -> std::io::Result<String> {
        hookline::runtime::serve_on_loopback(self.router()).await
    }

    /// Every accepted message: `{"api", "query", "body"}` (`query` without the UserSig).
    pub fn sent(&self) -> Vec<Value> {
        self.inner.ledger.calls()
    }

    /// Calls so far, refused ones included.
    pub fn attempts(&self) -> usize {
        self.inner.ledger.attempts()
    }

    /// The distinct UserSigs presented so far.
    pub fn distinct_usersigs(&self) -> usize {
        self.ledger().state.usersigs.len()
    }

    /// Makes the next call fail with this `ErrorCode`.
    pub fn fail_next(&self, code: i64, info: &str) {
        self.inner.ledger.fail_next((code, info.into()));
    }

    /// Makes the next send go out and then answer HTTP 502, as a gateway that lost the answer
    /// would: the message is posted, the caller cannot know it.
    pub fn post_then_fail_next_send(&self) {
        self.inner
            .ledger
            .post_then_fail_next(StatusCode::BAD_GATEWAY);
    }
}

async fn handle(
    State(emu): State<TencentEmulator>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
    api: &'static str,
) -> Response {
    let now = emu.inner.clock.now_s();
    let mut ledger = emu.ledger();
    ledger.attempts += 1;
    if query.get("sdkappid").and_then(|s| s.parse::<u64>().ok()) != Some(emu.inner.sdkappid) {
        return fail(70020, "SDKAppID not found");
    }
    let identifier = query.get("identifier").cloned().unwrap_or_default();
    if identifier != emu.inner.admin {
        return fail(70013, "identifier is not an app admin");
    }
    let usersig = query.get("usersig").cloned().unwrap_or_default();
    if usersig.is_empty() {
        return fail(70002, "UserSig is empty");
    }
    match verify_usersig(
        &usersig,
        emu.inner.sdkappid,
        &emu.inner.key,
        &identifier,
        now,
    ) {
        Ok(_) => {}
        Err(UserSigError::Expired) => return fail(70001, "UserSig expired"),
        Err(UserSigError::WrongApp(_)) => return fail(70014, "SDKAppID mismatch"),
        Err(UserSigError::WrongIdentifier(_)) => return fail(70013, "identifier mismatch"),
        Err(UserSigError::BadSignature) => return fail(70009, "UserSig signed with another key"),
        Err(UserSigError::Malformed(_)) => return fail(70003, "UserSig invalid"),
    }
    if !ledger.state.usersigs.contains(&usersig) {
        ledger.state.usersigs.push(usersig);
    }
    if query
        .get("random")
        .and_then(|r| r.parse::<u32>().ok())
        .is_none()
        || query.get("contenttype").map(String::as_str) != Some("json")
    {
        return fail(90001, "random and contenttype=json are required");
    }
    if let Some((code, info)) = ledger.next_failure() {
        return fail(code, &info);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return fail(90001, "JSON parse error");
    };
    let query: HashMap<String, String> =
        query.into_iter().filter(|(k, _)| k != "usersig").collect();
    match api {
        "account_check" => {
            // The admin exists; a chatbot once `create_robot` made it. Nothing is sent.
            let Some(items) = body["CheckItem"].as_array() else {
                return fail(10004, "CheckItem is required");
            };
            let results: Vec<Value> = items
                .iter()
                .map(|i| {
                    let id = i["UserID"].as_str().unwrap_or_default();
                    let known = id == emu.inner.admin || ledger.state.robots.iter().any(|r| r == id);
                    let status = if known { "Imported" } else { "NotImported" };
                    json!({"UserID": id, "ResultCode": 0, "ResultInfo": "", "AccountStatus": status})
                })
                .collect();
            return Json(
                json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, "ResultItem": results}),
            )
            .into_response();
        }
        "create_robot"
            if body["UserID"]
                .as_str()
                .is_some_and(|id| id.starts_with("@RBT#")) =>
        {
            let id = body["UserID"].as_str().unwrap_or_default().to_owned();
            if !ledger.state.robots.contains(&id) {
                ledger.state.robots.push(id);
            }
            ledger
                .calls
                .push(json!({"api": api, "query": query, "body": body}));
            return Json(json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0}))
                .into_response();
        }
        "add_group_member" if body["GroupId"].is_string() && body["MemberList"].is_array() => {
            ledger
                .calls
                .push(json!({"api": api, "query": query, "body": body}));
            return Json(
                json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0,
                "MemberList": [{"Member_Account": body["MemberList"][0]["Member_Account"], "Result": 1}]}),
            )
            .into_response();
        }
        "create_robot" | "add_group_member" => return fail(10004, "invalid parameters"),
        _ => {}
    }
    let (target, random) = match api {
        "send_group_msg" => (body["GroupId"].as_str(), body["Random"].as_u64()),
        _ => (body["To_Account"].as_str(), body["MsgRandom"].as_u64()),
    };
    let (Some(target), Some(random)) = (target, random.filter(|r| u32::try_from(*r).is_ok()))
    else {
        return fail(
            10004,
            "invalid parameters: target and a 32-bit random are required",
        );
    };
    if body["MsgBody"].as_array().is_none_or(|b| b.is_empty()) {
        return fail(10004, "MsgBody is empty");
    }
    let duplicate = if api == "send_group_msg" {
        // Same Random, same group, within 5 minutes: the same message.
        let key = (target.to_owned(), random);
        let duplicate = ledger
            .state
            .seen_randoms
            .get(&key)
            .is_some_and(|t| now - t < 300);
        ledger.state.seen_randoms.retain(|_, t| now - *t < 300);
        if !duplicate {
            ledger.state.seen_randoms.insert(key, now);
        }
        duplicate
    } else {
        // Sender, MsgSeq, MsgRandom and content, within 120 s; no MsgSeq: a random one.
        let seq = body["MsgSeq"]
            .as_u64()
            .unwrap_or_else(|| u64::from(rand::random::<u32>()));
        let key = format!(
            "{}\n{seq}\n{random}\n{}",
            body["From_Account"].as_str().unwrap_or(&emu.inner.admin),
            body["MsgBody"]
        );
        let duplicate = ledger
            .state
            .seen_c2c
            .get(&key)
            .is_some_and(|t| now - t < 120);
        ledger.state.seen_c2c.retain(|_, t| now - *t < 120);
        if !duplicate {
            ledger.state.seen_c2c.insert(key, now);
        }
        duplicate
    };
    if !duplicate {
        let query: HashMap<&String, &String> =
            query.iter().filter(|(k, _)| *k != "usersig").collect();
        tracing::info!(api, target, "tencent emulator: the bot sent a message");
        ledger
            .calls
            .push(json!({"api": api, "query": query, "body": body}));
    }
    // Any call carried out so far (not only a send) can lose its answer.
    if let Some(status) = ledger.post_then_fail.pop_front() {
        return (status, "upstream answer lost").into_response();
    }
    let seq = ledger.calls.total();
    Json(
        json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0, "MsgTime": now, "MsgSeq": seq}),
    )
    .into_response()
}
