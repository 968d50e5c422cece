//! A DingTalk emulator: the custom robot's `POST /robot/send` and the session webhook
//! `POST /robot/sendBySession`. Like the real service it checks `access_token`, `timestamp`
//! (one hour) and `sign` of every robot send (310000 otherwise), and enforces 20 sends per
//! sliding minute with a 10-minute ban (130101): so a test against it proves the real robot
//! would not be banned. Every accepted message is recorded (with the emulator clock's time) and
//! listed at `GET /sent`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, MutexGuard};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use hookline::clock::SharedClock;
use hookline::emulator::{Book, Ledger};
use serde_json::{Value, json};

use crate::sign::sign;

/// The emulator's custom robot token.
pub const EMULATOR_ROBOT_TOKEN: &str = "hookline-emulator-robot";
/// The emulator's custom robot secret.
pub const EMULATOR_ROBOT_SECRET: &str =
    "SEChookline0emulator0secret0000000000000000000000000000000000000";
/// The emulator's enterprise app secret (signs simulated callbacks).
pub const EMULATOR_APP_SECRET: &str =
    "hookline-emulator-dingtalk-app-secret-0000000000000000000000000";
/// The emulator's robot code.
pub const EMULATOR_ROBOT_CODE: &str = "dinghooklineemulator";

/// DingTalk's own state beside the shared ledger (whose calls are the sent messages, whose
/// refusals are `errcode`s): the custom robot's rate limit.
#[derive(Debug, Default)]
struct RobotState {
    robot_sends: VecDeque<i64>,
    banned_until: i64,
}

struct Inner {
    token: String,
    secret: String,
    clock: SharedClock,
    ledger: Ledger<(i64, String), RobotState>,
}

/// The emulator. Clones share state.
#[derive(Clone)]
pub struct DingTalkEmulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DingTalkEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalkEmulator").finish_non_exhaustive()
    }
}

fn errcode(code: i64, msg: &str) -> Json<Value> {
    Json(json!({"errcode": code, "errmsg": msg}))
}

impl DingTalkEmulator {
    /// An emulator of one custom robot (`token`, `secret`) on `clock`.
    pub fn new(token: &str, secret: &str, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                token: token.into(),
                secret: secret.into(),
                clock,
                ledger: Ledger::new(RobotState::default()),
            }),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Book<(i64, String), RobotState>> {
        self.inner.ledger.book()
    }

    /// The routes, relative to the emulated `oapi.dingtalk.com`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/robot/send", post(robot_send))
            .route("/robot/sendBySession", post(session_send))
            .route(
                "/sent",
                get(|State(emu): State<Self>| async move { Json(emu.sent()) }),
            )
            .with_state(self.clone())
    }

    /// Serves the emulator on a free loopback port; returns its base URL.
    pub async fn serve_on_loopback(&self) -> std::io::Result<String> {
        hookline::runtime::serve_on_loopback(self.router()).await
    }

    /// Every accepted message: `{"via": "robot"|"session", "session"?, "at_ms", "body"}`.
    pub fn sent(&self) -> Vec<Value> {
        self.inner.ledger.calls()
    }

    /// Calls so far, refused ones included.
    pub fn attempts(&self) -> usize {
        self.inner.ledger.attempts()
    }

    /// Makes the next call fail with this errcode.
    pub fn fail_next(&self, code: i64, msg: &str) {
        self.inner.ledger.fail_next((code, msg.into()));
    }
}

async fn robot_send(
    State(emu): State<DingTalkEmulator>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let now = emu.inner.clock.now_ms();
    let mut ledger = emu.ledger();
    ledger.attempts += 1;
    if query.get("access_token") != Some(&emu.inner.token) {
        return errcode(300_001, "token is not exist");
    }
    let (Some(ts), Some(presented)) = (query.get("timestamp"), query.get("sign")) else {
        return errcode(310_000, "sign not match");
    };
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| now.abs_diff(t) <= 3_600_000);
    if !fresh || *presented != sign(&emu.inner.secret, ts) {
        return errcode(310_000, "sign not match");
    }
    if let Some((code, msg)) = ledger.next_failure() {
        return errcode(code, &msg);
    }
    const MSGTYPES: [&str; 5] = ["text", "markdown", "link", "actionCard", "feedCard"];
    if !body["msgtype"]
        .as_str()
        .is_some_and(|t| MSGTYPES.contains(&t))
    {
        // [INF] what DingTalk answers a body it cannot use, after the token and sign checks.
        return errcode(40_035, "缺少参数 json");
    }
    // The text is documented by third parties ("message too long, exceed 20000 bytes"); the code
    // is not known, so the emulator's is made up (PLATFORMS.md §3.1).
    if body.to_string().len() > 20_000 {
        return errcode(460_101, "message too long, exceed 20000 bytes");
    }
    if now < ledger.state.banned_until {
        return errcode(130_101, "send too fast, exceed 20 times per minute");
    }
    while ledger
        .state
        .robot_sends
        .front()
        .is_some_and(|t| now - t >= 60_000)
    {
        ledger.state.robot_sends.pop_front();
    }
    if ledger.state.robot_sends.len() >= 20 {
        ledger.state.banned_until = now + 600_000;
        tracing::warn!(
            "dingtalk emulator: more than 20 sends in a minute, robot banned for 10 minutes"
        );
        return errcode(130_101, "send too fast, exceed 20 times per minute");
    }
    ledger.state.robot_sends.push_back(now);
    tracing::info!(
        msgtype = body["msgtype"].as_str().unwrap_or_default(),
        "dingtalk emulator: the custom robot sent a message"
    );
    ledger
        .calls
        .push(json!({"via": "robot", "at_ms": now, "body": body}));
    errcode(0, "ok")
}

async fn session_send(
    State(emu): State<DingTalkEmulator>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let now = emu.inner.clock.now_ms();
    let mut ledger = emu.ledger();
    ledger.attempts += 1;
    let Some(session) = query.get("session").filter(|s| !s.is_empty()) else {
        return errcode(300_001, "session 不存在");
    };
    if let Some((code, msg)) = ledger.next_failure() {
        return errcode(code, &msg);
    }
    tracing::info!(
        msgtype = body["msgtype"].as_str().unwrap_or_default(),
        "dingtalk emulator: a reply through the session webhook"
    );
    ledger
        .calls
        .push(json!({"via": "session", "session": session, "at_ms": now, "body": body}));
    errcode(0, "ok")
}
