//! A Tailchat API emulator: `POST /api/openapi/bot/login` and `POST /api/chat/message/sendMessage`
//! behaving the way the real server does wherever a bot can tell (PLATFORMS.md §1.3, §1.4,
//! §1.6): the MD5 login token is checked, JWTs expire and can be revoked, moleculer-style error
//! bodies come back with the real status codes. Every accepted message is recorded and listed at
//! `GET /sent`.
//!
//! `hookline serve` mounts it under `/_emulator/tailchat` when `TAILCHAT_URL` is unset; the
//! integration tests use it as the fake Tailchat on loopback, with failure knobs.

use std::collections::HashSet;
use std::sync::{Arc, MutexGuard};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use hookline::clock::{Clock, SystemClock};
use hookline::emulator::{Book, Ledger};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::client::{jwt_expiry_ms, login_token};

/// The emulator's default open app id (`tc_` + hex of "emulator").
pub const EMULATOR_APP_ID: &str = "tc_656d756c61746f7200000000";
/// The emulator's default app secret.
pub const EMULATOR_APP_SECRET: &str = "hookline-emulator-app-secret-000";
/// The emulator's default bot user id.
pub const EMULATOR_BOT_USER_ID: &str = "656d756c61746f7200000001";

/// Tailchat's own state beside the shared ledger (whose calls are the sent messages and whose
/// attempts are `sendMessage` calls).
#[derive(Debug, Default)]
struct AppState {
    logins: usize,
    tokens: HashSet<String>,
    denied_groups: HashSet<String>,
    issued: u64,
}

struct Inner {
    app_id: String,
    app_secret: String,
    bot_user_id: String,
    ledger: Ledger<(StatusCode, Value), AppState>,
}

/// The emulator. Clones share state.
#[derive(Clone)]
pub struct TailchatEmulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TailchatEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailchatEmulator")
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

fn moleculer_error(status: StatusCode, name: &str, message: &str, kind: Option<&str>) -> Response {
    let mut body = json!({"name": name, "message": message, "code": status.as_u16()});
    if let Some(kind) = kind {
        body["type"] = json!(kind);
        body["data"] = json!({"error": message});
    }
    (status, Json(body)).into_response()
}

impl Default for TailchatEmulator {
    fn default() -> Self {
        Self::new(EMULATOR_APP_ID, EMULATOR_APP_SECRET, EMULATOR_BOT_USER_ID)
    }
}

impl TailchatEmulator {
    /// An emulator with one open app whose bot user is `bot_user_id`.
    pub fn new(app_id: &str, app_secret: &str, bot_user_id: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                app_id: app_id.to_owned(),
                app_secret: app_secret.to_owned(),
                bot_user_id: bot_user_id.to_owned(),
                ledger: Ledger::new(AppState::default()),
            }),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Book<(StatusCode, Value), AppState>> {
        self.inner.ledger.book()
    }

    /// The routes, relative to the emulated server's base URL.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/openapi/bot/login", post(login))
            .route("/api/chat/message/sendMessage", post(send_message))
            .route(
                "/sent",
                get(|State(emu): State<Self>| async move { Json(emu.sent()) }),
            )
            .with_state(self.clone())
    }

    /// Serves the emulator on a free loopback port; returns its base URL (the `TAILCHAT_URL`).
    pub async fn serve_on_loopback(&self) -> std::io::Result<String> {
        hookline::runtime::serve_on_loopback(self.router()).await
    }

    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        self.ledger().state.logins
    }

    /// `sendMessage` calls so far, refused ones included.
    pub fn send_attempts(&self) -> usize {
        self.inner.ledger.attempts()
    }

    /// Accepted `sendMessage` calls so far, including those [`Self::sent`] no longer lists.
    pub fn sent_total(&self) -> usize {
        self.inner.ledger.total()
    }

    /// The bodies of every accepted `sendMessage`, in order.
    pub fn sent(&self) -> Vec<Value> {
        self.inner.ledger.calls()
    }

    /// Invalidates every JWT issued so far (as a server secret rotation would).
    pub fn revoke_tokens(&self) {
        self.ledger().state.tokens.clear();
    }

    /// Makes the next `sendMessage` post the message and then answer `status`, as a gateway
    /// that lost the answer would.
    pub fn post_then_fail_next_send(&self, status: StatusCode) {
        self.inner.ledger.post_then_fail_next(status);
    }

    /// Makes the next `sendMessage` fail with this status and body.
    pub fn fail_next_send(&self, status: StatusCode, body: Value) {
        self.inner.ledger.fail_next((status, body));
    }

    /// Lets the next `sendMessage` through (to make a later one fail with
    /// [`Self::fail_next_send`]).
    pub fn pass_next_send(&self) {
        self.inner.ledger.pass_next();
    }

    /// Makes the bot a non-member of `group_id` (403 `NoPermissionError`).
    pub fn deny_group(&self, group_id: &str) {
        self.ledger()
            .state
            .denied_groups
            .insert(group_id.to_owned());
    }

    /// Issues a JWT for the bot expiring at `exp_s` and accepts it, as if from an earlier login.
    pub fn issue_jwt(&self, exp_s: i64) -> String {
        let mut ledger = self.ledger();
        ledger.state.issued += 1;
        let now_s = SystemClock.now_s();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = json!({
            "_id": self.inner.bot_user_id, "nickname": "hookline", "avatar": null,
            "email": format!("open_{}@openapi.msgbyte.com", self.inner.app_id),
            "iat": now_s, "exp": exp_s, "jti": ledger.state.issued,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        // jsonwebtoken's HS256 with Tailchat's default server secret.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"tailchat")
            .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(format!("{header}.{claims}").as_bytes());
        let jwt = format!(
            "{header}.{claims}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        // Expired tokens are refused anyway; forgetting them keeps the ledger bounded.
        let now = SystemClock.now_ms();
        ledger
            .state
            .tokens
            .retain(|t| jwt_expiry_ms(t).is_some_and(|exp| exp > now));
        ledger.state.tokens.insert(jwt.clone());
        jwt
    }
}

async fn login(State(emu): State<TailchatEmulator>, body: axum::body::Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(app_id), Some(token)) = (body["appId"].as_str(), body["token"].as_str()) else {
        return moleculer_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValidationError",
            "Parameters validation error!",
            Some("VALIDATION_ERROR"),
        );
    };
    if app_id != emu.inner.app_id {
        return moleculer_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            &format!("Not found open app:{app_id}"),
            None,
        );
    }
    if token != login_token(&emu.inner.app_id, &emu.inner.app_secret) {
        return moleculer_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "Auth failed.",
            None,
        );
    }
    let jwt = emu.issue_jwt(SystemClock.now_s() + 30 * 24 * 3600);
    emu.ledger().state.logins += 1;
    Json(json!({"code": 200, "data": {
        "jwt": jwt, "userId": emu.inner.bot_user_id,
        "email": format!("open_{}@openapi.msgbyte.com", emu.inner.app_id),
        "nickname": "hookline", "avatar": ""
    }}))
    .into_response()
}

async fn send_message(
    State(emu): State<TailchatEmulator>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut ledger = emu.ledger();
    ledger.attempts += 1;
    let Some(token) = headers.get("x-token").and_then(|v| v.to_str().ok()) else {
        return moleculer_error(
            StatusCode::UNAUTHORIZED,
            "UnAuthorizedError",
            "Unauthorized",
            Some("NO_TOKEN"),
        );
    };
    let expired = jwt_expiry_ms(token).is_none_or(|exp| exp <= SystemClock.now_ms());
    if !ledger.state.tokens.contains(token) || expired {
        return moleculer_error(
            StatusCode::UNAUTHORIZED,
            "UnAuthorizedError",
            "Unauthorized",
            Some("INVALID_TOKEN"),
        );
    }
    if let Some((status, body)) = ledger.next_failure() {
        return (status, Json(body)).into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(converse_id), Some(content)) =
        (body["converseId"].as_str(), body["content"].as_str())
    else {
        return moleculer_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ValidationError",
            "Parameters validation error!",
            Some("VALIDATION_ERROR"),
        );
    };
    if let Some(group) = body["groupId"]
        .as_str()
        .filter(|g| ledger.state.denied_groups.contains(*g))
    {
        tracing::warn!(group, "emulator: the bot is not a member of this group");
        return moleculer_error(
            StatusCode::FORBIDDEN,
            "NoPermissionError",
            "没有当前会话权限",
            None,
        );
    }
    tracing::info!(
        converse_id,
        content,
        "tailchat emulator: the bot sent a message"
    );
    if let Some(status) = ledger.record(body.clone()) {
        return moleculer_error(status, "Error", "upstream answer lost", None);
    }
    let id = format!("{:024x}", ledger.calls.total());
    Json(json!({"code": 200, "data": {
        "_id": id, "content": content, "author": emu.inner.bot_user_id,
        "groupId": body.get("groupId"), "converseId": converse_id, "reactions": [],
        "hasRecall": false, "meta": body.get("meta"), "__v": 0
    }}))
    .into_response()
}
