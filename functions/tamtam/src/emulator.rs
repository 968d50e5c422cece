//! A TamTam Bot API emulator: `GET/PATCH /me`, `POST /messages`, `POST /answers` and
//! `GET/POST/DELETE /subscriptions`, checking `access_token` like the real API (403
//! `verify.token`) and answering with its shapes. Every call is recorded and listed at
//! `GET /sent`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use hookline::ring::Ring;
use serde_json::{Value, json};

/// The emulator's default bot token.
pub const EMULATOR_TOKEN: &str = "hookline-emulator-tamtam-token";
/// The emulator bot's user id.
pub const EMULATOR_BOT_ID: i64 = 591_000_001;
/// The emulator bot's username.
pub const EMULATOR_BOT_USERNAME: &str = "hookline_bot";

#[derive(Default)]
struct Ledger {
    calls: Ring<Value>,
    attempts: usize,
    subscriptions: Vec<Value>,
    commands: Value,
    failures: VecDeque<(StatusCode, Value)>,
    /// Calls to carry out and then answer with this status (an ambiguous failure).
    post_then_fail: VecDeque<StatusCode>,
}

struct Inner {
    token: String,
    bot_id: i64,
    username: String,
    ledger: Mutex<Ledger>,
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
        Self {
            inner: Arc::new(Inner {
                token: token.into(),
                bot_id,
                username: username.into(),
                ledger: Mutex::new(Ledger {
                    commands: Value::Null,
                    ..Ledger::default()
                }),
            }),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.inner.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The routes, relative to the emulated API's base URL.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/me", any(|s, m, q, b| handle(s, m, q, b, "/me")))
            .route(
                "/messages",
                any(|s, m, q, b| handle(s, m, q, b, "/messages")),
            )
            .route("/answers", any(|s, m, q, b| handle(s, m, q, b, "/answers")))
            .route(
                "/chats/{chat_id}/actions",
                any(
                    |s,
                     m,
                     Path(chat_id): Path<String>,
                     Query(mut q): Query<HashMap<String, String>>,
                     b| {
                        q.insert("chat_id".into(), chat_id);
                        handle(s, m, Query(q), b, "/chats/actions")
                    },
                ),
            )
            .route(
                "/subscriptions",
                any(|s, m, q, b| handle(s, m, q, b, "/subscriptions")),
            )
            .route(
                "/sent",
                get(|State(emu): State<Self>| async move { Json(emu.sent()) }),
            )
            .with_state(self.clone())
    }

    /// Serves the emulator on a free loopback port; returns its base URL (the `TAMTAM_API_URL`).
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
        self.ledger().attempts
    }

    /// The subscribed URLs.
    pub fn subscriptions(&self) -> Vec<String> {
        self.ledger()
            .subscriptions
            .iter()
            .filter_map(|s| s["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// Adds a subscription, as if made earlier.
    pub fn add_subscription(&self, url: &str) {
        self.ledger()
            .subscriptions
            .push(json!({"url": url, "time": 0, "update_types": null, "version": "0.3.0"}));
    }

    /// The commands set with `PATCH /me`.
    pub fn commands(&self) -> Value {
        self.ledger().commands.clone()
    }

    /// Makes the next API call go through and then answer `status`, as a gateway that lost the
    /// answer would.
    pub fn post_then_fail_next(&self, status: StatusCode) {
        self.ledger().post_then_fail.push_back(status);
    }

    /// Makes the next API call fail with this status and body.
    pub fn fail_next(&self, status: StatusCode, body: Value) {
        self.ledger().failures.push_back((status, body));
    }
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

async fn handle(
    State(emu): State<TamTamEmulator>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
    path: &'static str,
) -> Response {
    let mut ledger = emu.ledger();
    ledger.attempts += 1;
    if query.get("access_token") != Some(&emu.inner.token) {
        return refuse(
            StatusCode::FORBIDDEN,
            "verify.token",
            "Invalid access_token",
        );
    }
    if let Some((status, body)) = ledger.failures.pop_front() {
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
    let me = json!({"user_id": emu.inner.bot_id, "name": "hookline", "username": emu.inner.username, "is_bot": true,
                    "last_activity_time": 0, "commands": ledger.commands});
    let visible: HashMap<&String, &String> = query
        .iter()
        .filter(|(k, _)| k.as_str() != "access_token")
        .collect();
    let record = json!({"method": method.as_str(), "path": path, "query": visible, "body": body});
    let answer = match (path, method.as_str()) {
        ("/me", "GET") => me,
        ("/me", "PATCH") => {
            if body.get("commands").is_some() {
                ledger.commands = body["commands"].clone();
            }
            me
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
                "tamtam emulator: the bot sent a message"
            );
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
            if query.get("callback_id").is_none_or(String::is_empty) {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "proto.payload",
                    "callback_id is required",
                );
            }
            json!({"success": true})
        }
        ("/subscriptions", "GET") => json!({"subscriptions": ledger.subscriptions}),
        ("/subscriptions", "POST") => {
            let Some(url) = body["url"].as_str() else {
                return refuse(StatusCode::BAD_REQUEST, "proto.payload", "url is required");
            };
            let url = url.to_owned();
            ledger.subscriptions.retain(|s| s["url"] != url.as_str());
            ledger.subscriptions.push(json!({"url": url, "time": 0, "update_types": body["update_types"], "version": body["version"]}));
            json!({"success": true})
        }
        ("/subscriptions", "DELETE") => {
            let url = query.get("url").cloned().unwrap_or_default();
            ledger.subscriptions.retain(|s| s["url"] != url.as_str());
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
    ledger.calls.push(record);
    if let Some(status) = ledger.post_then_fail.pop_front() {
        return refuse(status, "internal.error", "upstream answer lost");
    }
    Json(answer).into_response()
}
