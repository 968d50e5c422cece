//! `TamTamClient`: the Bot API with `access_token` and `v=` on every request, `{code, message}`
//! errors turned into clear ones, and the bot's own identity (`GET /me`) cached.
//!
//! Retries: the shared client retries 429 and 503 (honouring `Retry-After`) for every call, and
//! other 5xx and timeouts for the calls a repeat cannot duplicate (`GET`, `PATCH /me`,
//! subscriptions, `/answers`). `POST /messages` has no idempotency key on TamTam's side, so after
//! a timeout, a reset, a 500, 502 or 504 it is not repeated: a lost reply is logged, a doubled one
//! would be seen by everyone.

use std::time::Duration;

use axum::http::Method;

use hookline::credential::{Credential, CredentialCache};
use hookline::error::{HookError, PlatformError, PlatformErrorKind};
use hookline::http::{HttpClient, HttpResponse, Idempotence};
use hookline::pipeline::Deps;
use hookline::secret::Secret;
use hookline::store::Key;
use serde_json::Value;

use crate::config::TamTamConfig;
use crate::event::{BotInfo, ErrorBody};

const PLATFORM: &str = "tamtam";

/// The API version sent as `v=` and subscribed with.
pub const API_VERSION: &str = "0.3.0";

/// How long the bot's identity is cached.
pub const ME_TTL: Duration = Duration::from_secs(24 * 3600);

/// The TamTam API client of one bot.
#[derive(Debug)]
pub struct TamTamClient {
    http: HttpClient,
    api_url: String,
    token: Secret,
    clock: hookline::clock::SharedClock,
    me: CredentialCache<BotInfo>,
}

fn error(call: &'static str, kind: PlatformErrorKind, detail: impl Into<String>) -> PlatformError {
    PlatformError::new(PLATFORM, call, kind, detail)
}

fn interpret(
    call: &'static str,
    resp: &HttpResponse,
    idempotence: Idempotence,
) -> Result<Value, HookError> {
    let status = resp.status.as_u16();
    if resp.status.is_success() {
        let value: Value = if resp.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body).map_err(|e| {
                error(
                    call,
                    PlatformErrorKind::BadResponse,
                    format!("unreadable answer: {e}"),
                )
            })?
        };
        // Mutations answer SimpleQueryResult {"success": bool, "message"?}.
        if value["success"] == false {
            let message = value["message"].as_str().unwrap_or("no reason given");
            return Err(error(
                call,
                PlatformErrorKind::Rejected,
                format!("success=false: {message}"),
            )
            .into());
        }
        return Ok(value);
    }
    let body: ErrorBody = serde_json::from_slice(&resp.body).unwrap_or_default();
    let (kind, hint) = match status {
        401 => (PlatformErrorKind::Auth, "check TAMTAM_TOKEN"),
        403 if body.code == "verify.token" => (PlatformErrorKind::Auth, "check TAMTAM_TOKEN"),
        403 => (
            PlatformErrorKind::Permission,
            "the bot may not do this in that chat",
        ),
        404 => (
            PlatformErrorKind::Rejected,
            "not found (a removed chat or message?)",
        ),
        // 429/503 were not processed (and were retried). Any other 5xx may come after the
        // message was stored; a redelivery could post it twice.
        429 | 500..=599 => (
            PlatformError::kind_of_status(status, idempotence),
            "TamTam failed or throttled",
        ),
        _ => (PlatformErrorKind::Rejected, "the request was refused"),
    };
    Err(error(
        call,
        kind,
        format!("HTTP {status} {}: {} ({hint})", body.code, body.message),
    )
    .into())
}

impl TamTamClient {
    /// A client for `config`, caching the bot's identity in `deps.store`.
    pub fn new(config: &TamTamConfig, deps: &Deps) -> Self {
        let key = Key::new(format!("tamtam#{}#cred", config.token.fingerprint()), "me");
        Self {
            http: deps.http.clone(),
            api_url: config.api_url.clone(),
            token: config.token.clone(),
            clock: deps.clock.clone(),
            me: CredentialCache::new(deps.store.clone(), key, deps.clock.clone(), Duration::ZERO),
        }
    }

    fn url(&self, path: &str, params: &[(&str, &str)]) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("access_token", self.token.expose())
            .append_pair("v", API_VERSION);
        for (k, v) in params {
            query.append_pair(k, v);
        }
        format!("{}{path}?{}", self.api_url, query.finish())
    }

    async fn call(
        &self,
        method: Method,
        call: &'static str,
        path: &str,
        params: &[(&str, &str)],
        body: Option<&Value>,
        idempotence: Idempotence,
    ) -> Result<Value, HookError> {
        let mut request = self.http.request(method, &self.url(path, params));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let resp = self
            .http
            .execute(request, idempotence)
            .await
            .map_err(|e| PlatformError::no_answer(PLATFORM, call, &e, idempotence))?;
        interpret(call, &resp, idempotence)
    }

    /// The bot's own identity, cached for a day.
    pub async fn me(&self) -> Result<BotInfo, HookError> {
        self.me
            .get_or_fetch(|| async {
                let value = self
                    .call(Method::GET, "me", "/me", &[], None, Idempotence::Safe)
                    .await?;
                let me: BotInfo = serde_json::from_value(value).map_err(|e| {
                    error(
                        "me",
                        PlatformErrorKind::BadResponse,
                        format!("unreadable BotInfo: {e}"),
                    )
                })?;
                let expires_at_ms = self.clock.now_ms() + hookline::clock::millis(ME_TTL);
                Ok::<_, HookError>(Credential {
                    value: me,
                    expires_at_ms,
                })
            })
            .await
    }

    /// `POST /messages?chat_id=…` with a `NewMessageBody`.
    pub async fn send_message(&self, chat_id: i64, body: &Value) -> Result<(), HookError> {
        let chat = chat_id.to_string();
        self.call(
            Method::POST,
            "messages",
            "/messages",
            &[("chat_id", &chat)],
            Some(body),
            Idempotence::Unsafe,
        )
        .await
        .map(drop)
    }

    /// `POST /chats/{chat_id}/actions` `typing_on`: "the bot is typing…" while a deferred event
    /// is worked on.
    pub async fn typing(&self, chat_id: i64) -> Result<(), HookError> {
        self.call(
            Method::POST,
            "actions",
            &format!("/chats/{chat_id}/actions"),
            &[],
            Some(&serde_json::json!({"action": "typing_on"})),
            Idempotence::Safe,
        )
        .await
        .map(drop)
    }

    /// `POST /answers?callback_id=…` with a `CallbackAnswer`.
    pub async fn answer(&self, callback_id: &str, body: &Value) -> Result<(), HookError> {
        self.call(
            Method::POST,
            "answers",
            "/answers",
            &[("callback_id", callback_id)],
            Some(body),
            Idempotence::Safe,
        )
        .await
        .map(drop)
    }

    /// `GET /subscriptions`: the subscribed URLs.
    pub async fn subscriptions(&self) -> Result<Vec<String>, HookError> {
        let value = self
            .call(
                Method::GET,
                "subscriptions",
                "/subscriptions",
                &[],
                None,
                Idempotence::Safe,
            )
            .await?;
        Ok(value["subscriptions"]
            .as_array()
            .map(|subs| {
                subs.iter()
                    .filter_map(|s| s["url"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `POST /subscriptions`.
    pub async fn subscribe(&self, url: &str, update_types: &[&str]) -> Result<(), HookError> {
        let body =
            serde_json::json!({"url": url, "update_types": update_types, "version": API_VERSION});
        self.call(
            Method::POST,
            "subscribe",
            "/subscriptions",
            &[],
            Some(&body),
            Idempotence::Safe,
        )
        .await
        .map(drop)
    }

    /// `DELETE /subscriptions?url=…`.
    pub async fn unsubscribe(&self, url: &str) -> Result<(), HookError> {
        self.call(
            Method::DELETE,
            "unsubscribe",
            "/subscriptions",
            &[("url", url)],
            None,
            Idempotence::Safe,
        )
        .await
        .map(drop)
    }

    /// `PATCH /me` with the bot's commands.
    pub async fn set_commands(&self, commands: &[(&str, &str)]) -> Result<(), HookError> {
        let commands: Vec<Value> = commands
            .iter()
            .map(
                |(name, description)| serde_json::json!({"name": name, "description": description}),
            )
            .collect();
        let body = serde_json::json!({ "commands": commands });
        self.call(
            Method::PATCH,
            "set_commands",
            "/me",
            &[],
            Some(&body),
            Idempotence::Safe,
        )
        .await
        .map(drop)
    }
}
