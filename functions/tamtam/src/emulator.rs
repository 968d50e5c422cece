//! A TamTam Bot API emulator: `GET/PATCH /me`, `POST /messages`, `POST /answers` and
//! `GET/POST/DELETE /subscriptions`, checking `access_token` like the real API (403
//! `verify.token`) and answering with its shapes. Every call is recorded and listed at
//! `GET /sent`.
//!
//! [`TamTamEmulator::max`] emulates MAX instead (PLATFORMS.md §4b): the token in the
//! `Authorization` header (401 `verify.token` without it, 403 `deprecated.token` for a query
//! token), `PATCH /me/commands`, the subscription's `secret`, MAX's users (`first_name`), and
//! the time of every message and answer, to check MAX's per-chat limit against.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use hookline::emulator::{Book, Ledger};
use serde_json::{Value, json};

use crate::Dialect;

/// The emulator's default bot token.
pub const EMULATOR_TOKEN: &str = "hookline-emulator-tamtam-token";
/// The emulator bot's user id.
pub const EMULATOR_BOT_ID: i64 = 591_000_001;
/// The emulator bot's username.
pub const EMULATOR_BOT_USERNAME: &str = "hookline_bot";

/// The emulated bot's own state.
#[derive(Debug, Default)]
struct BotState {
    subscriptions: Vec<Value>,
    commands: Value,
    /// When each message or answer went out, and to which chat (or user, or callback).
    delivered_at: Vec<(String, Instant)>,
    /// Requests whose URL carried the token (MAX).
    token_in_url: usize,
}

struct Inner {
    dialect: Dialect,
    token: String,
    bot_id: i64,
    username: String,
    ledger: Ledger<(StatusCode, Value), BotState>,
}

/// The emulator. Clones share state.
#[derive(Clone)]
pub struct TamTamEmulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TamTamEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TamTamEmulator")
            .field("bot_id", &self.inner.bot_id)
            .finish_non_exhaustive()
    }
}

impl Default for TamTamEmulator {
    fn default() -> Self {
        Self::new(EMULATOR_TOKEN, EMULATOR_BOT_ID, EMULATOR_BOT_USERNAME)
    }
}

impl TamTamEmulator {
    /// An emulator of the bot `bot_id`/`username` reached with `token`.
    pub fn new(token: &str, bot_id: i64, username: &str) -> Self {
        Self::of(Dialect::TamTam, token, bot_id, username)
    }

    /// A MAX emulator of the bot `bot_id`/`username` reached with `token`.
    pub fn max(token: &str, bot_id: i64, username: &str) -> Self {
        Self::of(Dialect::Max, token, bot_id, username)
    }

    fn of(dialect: Dialect, token: &str, bot_id: i64, username: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                dialect,
                token: token.into(),
                bot_id,
                username: username.into(),
                ledger: Ledger::new(BotState {
                    commands: Value::Null,
                    ..BotState::default()
                }),
            }),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Book<(StatusCode, Value), BotState>> {
        self.inner.ledger.book()
    }

    /// The routes, relative to the emulated API's base URL.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/me", any(|s, m, h, q, b| handle(s, m, h, q, b, "/me")))
            .route(
                "/me/commands",
                any(|s, m, h, q, b| handle(s, m, h, q, b, "/me/commands")),
            )
            .route(
                "/messages",
                any(|s, m, h, q, b| handle(s, m, h, q, b, "/messages")),
            )
            .route(
                "/answers",
                any(|s, m, h, q, b| handle(s, m, h, q, b, "/answers")),
            )
            .route(
                "/chats/{chat_id}/actions",
                any(
                    |s,
                     m,
                     h,
                     Path(chat_id): Path<String>,
                     Query(mut q): Query<HashMap<String, String>>,
                     b| {
                        q.insert("chat_id".into(), chat_id);
                        handle(s, m, h, Query(q), b, "/chats/actions")
                    },
                ),
            )
            .route(
                "/subscriptions",
                any(|s, m, h, q, b| handle(s, m, h, q, b, "/subscriptions")),
            )
            .route(
                "/sent",
                get(|State(emu): State<Self>| async move { Json(emu.sent()) }),
            )
            .with_state(self.clone())
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                no_token_in_urls,
            ))
    }

    /// Serves the emulator on a free loopback port; returns its base URL (the `TAMTAM_API_URL`
    /// or `MAX_API_URL`).
    pub async fn serve_on_loopback(&self) -> std::io::Result<String> {
        hookline::runtime::serve_on_loopback(self.router()).await
    }

    /// Every accepted `POST /messages` and `POST /answers`: `{"path", "query", "body"}`
    /// (`query` without the access token).
    pub fn sent(&self) -> Vec<Value> {
        self.ledger()
            .calls
            .iter()
            .filter(|c| {
                c["method"] == "POST"
                    && c["path"] != "/subscriptions"
                    && c["path"] != "/chats/actions"
            })
            .cloned()
            .collect()
    }

    /// Every accepted call, in order.
    pub fn calls(&self) -> Vec<Value> {
        self.ledger().calls.to_vec()
    }

    /// API calls so far, refused ones included.
    pub fn attempts(&self) -> usize {
        self.inner.ledger.attempts()
    }

    /// When each message and callback answer went out, with its chat (`chat_id`, `user_id` or
    /// `callback_id` as sent), in order.
    pub fn delivered_at(&self) -> Vec<(String, Instant)> {
        self.ledger().state.delivered_at.clone()
    }

    /// Requests whose URL carried the bot's token (MAX refuses them; the client must never
    /// make one).
    pub fn token_in_url(&self) -> usize {
        self.ledger().state.token_in_url
    }

    /// The subscriptions as MAX or TamTam list them (`url`, `update_types`, and here the
    /// `secret` they were made with, which the real API never echoes).
    pub fn subscription_details(&self) -> Vec<Value> {
        self.ledger().state.subscriptions.clone()
    }

    /// Removes every subscription, as MAX does after 8 hours of failed deliveries.
    pub fn drop_subscriptions(&self) {
        self.ledger().state.subscriptions.clear();
    }

    /// The subscribed URLs.
    pub fn subscriptions(&self) -> Vec<String> {
        self.ledger()
            .state
            .subscriptions
            .iter()
            .filter_map(|s| s["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// Adds a subscription, as if made earlier.
    pub fn add_subscription(&self, url: &str) {
        self.ledger()
            .state
            .subscriptions
            .push(json!({"url": url, "time": 0, "update_types": null, "version": "0.3.0"}));
    }

    /// The commands set with `PATCH /me` (MAX: `PATCH /me/commands`).
    pub fn commands(&self) -> Value {
        self.ledger().state.commands.clone()
    }

    /// Makes the next API call go through and then answer `status`, as a gateway that lost the
    /// answer would.
    pub fn post_then_fail_next(&self, status: StatusCode) {
        self.inner.ledger.post_then_fail_next(status);
    }

    /// Makes the next API call fail with this status and body.
    pub fn fail_next(&self, status: StatusCode, body: Value) {
        self.inner.ledger.fail_next((status, body));
    }
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// MAX: a request whose URL carries the token anywhere is refused, as MAX refuses
/// `?access_token=`; counted in [`TamTamEmulator::token_in_url`].
async fn no_token_in_urls(
    State(emu): State<TamTamEmulator>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if emu.inner.dialect == Dialect::Max {
        let uri = request.uri().to_string();
        let decoded: String = url::form_urlencoded::parse(uri.as_bytes())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if uri.contains(&emu.inner.token) || decoded.contains(&emu.inner.token) {
            emu.ledger().state.token_in_url += 1;
            return refuse(
                StatusCode::FORBIDDEN,
                "deprecated.token",
                "Query parameter access_token is deprecated, use Authorization header",
            );
        }
    }
    next.run(request).await
}

/// The credential check of each dialect (PLATFORMS.md §4.1, §4b.1): the refusal, if any.
fn authenticate(
    emu: &TamTamEmulator,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Option<Response> {
    let token = &emu.inner.token;
    match emu.inner.dialect {
        Dialect::TamTam if query.get("access_token") == Some(token) => None,
        Dialect::TamTam => Some(refuse(
            StatusCode::FORBIDDEN,
            "verify.token",
            "Invalid access_token",
        )),
        Dialect::Max if query.contains_key("access_token") => Some(refuse(
            StatusCode::FORBIDDEN,
            "deprecated.token",
            "Query parameter access_token is deprecated, use Authorization header",
        )),
        Dialect::Max
            if headers
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == token.as_bytes()) =>
        {
            None
        }
        Dialect::Max => Some(refuse(
            StatusCode::UNAUTHORIZED,
            "verify.token",
            "Invalid access_token",
        )),
    }
}

async fn handle(
    State(emu): State<TamTamEmulator>,
    method: Method,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
    path: &'static str,
) -> Response {
    let mut ledger = emu.ledger();
    ledger.attempts += 1;
    if let Some(refused) = authenticate(&emu, &headers, &query) {
        return refused;
    }
    if let Some((status, body)) = ledger.next_failure() {
        return (status, Json(body)).into_response();
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return refuse(StatusCode::BAD_REQUEST, "proto.payload", "Invalid JSON"),
        }
    };
    let max = emu.inner.dialect == Dialect::Max;
    let mut me = json!({"user_id": emu.inner.bot_id, "name": "hookline", "username": emu.inner.username, "is_bot": true,
                    "last_activity_time": 0, "commands": ledger.state.commands});
    if max {
        me["first_name"] = json!("hookline");
    }
    let visible: HashMap<&String, &String> = query
        .iter()
        .filter(|(k, _)| k.as_str() != "access_token")
        .collect();
    let record = json!({"method": method.as_str(), "path": path, "query": visible, "body": body});
    let answer = match (path, method.as_str()) {
        ("/me", "GET") => me,
        ("/me", "PATCH") if !max => {
            if body.get("commands").is_some() {
                ledger.state.commands = body["commands"].clone();
            }
            me
        }
        ("/me/commands", "PATCH") if max => {
            if !body["commands"].is_array() {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "proto.payload",
                    "commands is required",
                );
            }
            ledger.state.commands = body["commands"].clone();
            json!({"commands": ledger.state.commands})
        }
        ("/messages", "POST") => {
            let Some(chat_id) = query
                .get("chat_id")
                .or(query.get("user_id"))
                .and_then(|c| c.parse::<i64>().ok())
            else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "proto.payload",
                    "chat_id or user_id is required",
                );
            };
            if body["text"]
                .as_str()
                .is_some_and(|t| t.chars().count() > 4000)
            {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "proto.payload",
                    "text: size must be between 0 and 4000",
                );
            }
            tracing::info!(
                chat_id,
                text = body["text"].as_str().unwrap_or_default(),
                "{} emulator: the bot sent a message",
                emu.inner.dialect.name()
            );
            ledger
                .state
                .delivered_at
                .push((chat_id.to_string(), Instant::now()));
            json!({"message": {"recipient": {"chat_id": chat_id, "chat_type": "chat"},
                               "body": {"mid": format!("mid.{:032x}", ledger.calls.total() + 1), "seq": 1, "text": body["text"]}}})
        }
        ("/chats/actions", "POST") => {
            const ACTIONS: [&str; 6] = [
                "typing_on",
                "sending_photo",
                "sending_video",
                "sending_audio",
                "sending_file",
                "mark_seen",
            ];
            if !body["action"]
                .as_str()
                .is_some_and(|a| ACTIONS.contains(&a))
            {
                return refuse(StatusCode::BAD_REQUEST, "proto.payload", "unknown action");
            }
            json!({"success": true})
        }
        ("/answers", "POST") => {
            let Some(callback_id) = query.get("callback_id").filter(|c| !c.is_empty()) else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "proto.payload",
                    "callback_id is required",
                );
            };
            ledger
                .state
                .delivered_at
                .push((callback_id.clone(), Instant::now()));
            json!({"success": true})
        }
        ("/subscriptions", "GET") => {
            // The real API echoes neither the secret nor (MAX) a version.
            let listed: Vec<Value> = ledger
                .state
                .subscriptions
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    if let Some(s) = s.as_object_mut() {
                        s.remove("secret");
                    }
                    s
                })
                .collect();
            json!({ "subscriptions": listed })
        }
        ("/subscriptions", "POST") => {
            let Some(url) = body["url"].as_str() else {
                return refuse(StatusCode::BAD_REQUEST, "proto.payload", "url is required");
            };
            if max && !url.starts_with("https://") {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "proto.payload",
                    "url must start with https://",
                );
            }
            if max
                && body["secret"]
                    .as_str()
                    .is_some_and(|s| !crate::valid_webhook_secret(s))
            {
                return refuse(StatusCode::BAD_REQUEST, "proto.payload", "invalid secret");
            }
            let url = url.to_owned();
            let subscription = if max {
                json!({"url": url, "time": 0, "update_types": body["update_types"], "secret": body["secret"]})
            } else {
                json!({"url": url, "time": 0, "update_types": body["update_types"], "version": body["version"]})
            };
            ledger
                .state
                .subscriptions
                .retain(|s| s["url"] != url.as_str());
            ledger.state.subscriptions.push(subscription);
            json!({"success": true})
        }
        ("/subscriptions", "DELETE") => {
            let url = query.get("url").cloned().unwrap_or_default();
            ledger
                .state
                .subscriptions
                .retain(|s| s["url"] != url.as_str());
            json!({"success": true})
        }
        _ => {
            return refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method.not.allowed",
                "Method not allowed",
            );
        }
    };
    if let Some(status) = ledger.record(record) {
        return refuse(status, "internal.error", "upstream answer lost");
    }
    Json(answer).into_response()
}
