//! `TamTamClient`: the Bot API with `access_token` and `v=` on every request, `{code, message}`
//! errors turned into clear ones, and the bot's own identity (`GET /me`) cached.
//!
//! The MAX dialect ([`TamTamClient::max`], PLATFORMS.md §4b.1, §4b.5): the token goes in an
//! `Authorization` header and **never** in a URL, no `v=`, the subscription carries the secret
//! instead of a version, commands go to `PATCH /me/commands`, MAX's per-bot and per-chat limits
//! are kept through the store ([`crate::limits`]), and the trust store can take `MAX_CA_PEM`'s
//! roots (a certificate error names that variable).
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

use crate::Dialect;
use crate::config::TamTamConfig;
use crate::event::{BotInfo, ErrorBody};
use crate::limits::RateLimits;
use crate::max_config::MaxConfig;

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
    dialect: Dialect,
    limits: Option<RateLimits>,
}

fn error(
    dialect: Dialect,
    call: &'static str,
    kind: PlatformErrorKind,
    detail: impl Into<String>,
) -> PlatformError {
    PlatformError::new(dialect.name(), call, kind, detail)
}

/// What a TLS verification failure says, whichever layer words it.
fn is_certificate_error(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("certificate") || reason.contains("unknownissuer")
}

fn interpret(
    dialect: Dialect,
    call: &'static str,
    resp: &HttpResponse,
    idempotence: Idempotence,
) -> Result<Value, HookError> {
    let error = |call, kind, detail: String| error(dialect, call, kind, detail);
    let check_token = match dialect {
        Dialect::TamTam => "check TAMTAM_TOKEN",
        Dialect::Max => "check MAX_TOKEN",
    };
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
        401 => (PlatformErrorKind::Auth, check_token),
        403 if body.code == "verify.token" => (PlatformErrorKind::Auth, check_token),
        // MAX refuses a token in the query string (§4b.1); we never send one.
        403 if body.code == "deprecated.token" => (
            PlatformErrorKind::Auth,
            "the token must go in the Authorization header",
        ),
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
            "the platform failed or throttled",
        ),
        // MAX: an attachment still being processed; nothing was sent, later works.
        _ if body.code == "attachment.not.ready" => (
            PlatformErrorKind::Unavailable,
            "an attachment is still being processed",
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
        Self::with(
            Dialect::TamTam,
            deps.http.clone(),
            &config.api_url,
            &config.token,
            deps,
        )
    }

    /// A MAX client for `config`: its own connection pool when `MAX_CA_PEM` adds roots. (The
    /// PEM was checked when the configuration was read; should the TLS stack still refuse it,
    /// the default roots are used and the error logged: calls will then name `MAX_CA_PEM`.)
    pub fn max(config: &MaxConfig, deps: &Deps) -> Self {
        let http = match &config.ca_pem {
            Some(pem) => deps.http.with_extra_roots(pem).unwrap_or_else(|e| {
                tracing::error!(error = %e.reason, "MAX_CA_PEM cannot be used; default roots only");
                deps.http.clone()
            }),
            None => deps.http.clone(),
        };
        let mut client = Self::with(Dialect::Max, http, &config.api_url, &config.token, deps);
        client.limits = Some(RateLimits::new(
            deps.store.clone(),
            deps.clock.clone(),
            &config.token.fingerprint(),
        ));
        client
    }

    fn with(
        dialect: Dialect,
        http: HttpClient,
        api_url: &str,
        token: &Secret,
        deps: &Deps,
    ) -> Self {
        let key = Key::new(
            format!("{}#{}#cred", dialect.name(), token.fingerprint()),
            "me",
        );
        Self {
            http,
            api_url: api_url.to_owned(),
            token: token.clone(),
            clock: deps.clock.clone(),
            me: CredentialCache::new(deps.store.clone(), key, deps.clock.clone(), Duration::ZERO),
            dialect,
            limits: None,
        }
    }

    /// The dialect this client speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn url(&self, path: &str, params: &[(&str, &str)]) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if self.dialect == Dialect::TamTam {
            query
                .append_pair("access_token", self.token.expose())
                .append_pair("v", API_VERSION);
        }
        for (k, v) in params {
            query.append_pair(k, v);
        }
        let query = query.finish();
        if query.is_empty() {
            format!("{}{path}", self.api_url)
        } else {
            format!("{}{path}?{query}", self.api_url)
        }
    }

    /// Waits for MAX's limits (none on TamTam): the bot's, and `chat`'s for a message or answer.
    async fn pace(&self, chat: Option<i64>) -> Result<(), HookError> {
        match &self.limits {
            Some(limits) => limits.acquire(chat).await,
            None => Ok(()),
        }
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
        if self.dialect == Dialect::Max {
            // The raw token, no scheme (§4b.1). reqwest keeps a sensitive header out of Debug.
            let mut value =
                axum::http::HeaderValue::from_str(self.token.expose()).map_err(|_| {
                    error(
                        self.dialect,
                        call,
                        PlatformErrorKind::Auth,
                        "MAX_TOKEN is not a valid header value",
                    )
                })?;
            value.set_sensitive(true);
            request = request.header(axum::http::header::AUTHORIZATION, value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let resp = self.http.execute(request, idempotence).await.map_err(|e| {
            let mut err = PlatformError::no_answer(self.dialect.name(), call, &e, idempotence);
            if self.dialect == Dialect::Max && is_certificate_error(&e.reason) {
                // MAX's certificate chains to the Russian Trusted Root CA (Минцифры), which
                // public trust stores lack (§4b.1).
                err.kind = PlatformErrorKind::Auth;
                err.detail.push_str(
                    " (TLS: the API's certificate is not trusted; set MAX_CA_PEM to the \
                         Russian Trusted Root CA certificate from https://www.gosuslugi.ru/crt)",
                );
            }
            err
        })?;
        interpret(self.dialect, call, &resp, idempotence)
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
                        self.dialect,
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
        self.post_message("chat_id", chat_id, body).await
    }

    /// `POST /messages?user_id=…`: to a user by id (a dialog whose chat id is unknown).
    pub async fn send_to_user(&self, user_id: i64, body: &Value) -> Result<(), HookError> {
        self.post_message("user_id", user_id, body).await
    }

    async fn post_message(&self, param: &str, id: i64, body: &Value) -> Result<(), HookError> {
        self.pace(Some(id)).await?;
        let id_text = id.to_string();
        self.call(
            Method::POST,
            "messages",
            "/messages",
            &[(param, &id_text)],
            Some(body),
            Idempotence::Unsafe,
        )
        .await
        .map(drop)
    }

    /// `POST /chats/{chat_id}/actions` `typing_on`: "the bot is typing…" while a deferred event
    /// is worked on.
    pub async fn typing(&self, chat_id: i64) -> Result<(), HookError> {
        self.pace(None).await?;
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

    /// `POST /answers?callback_id=…` with a `CallbackAnswer`; `chat` (the keyboard's chat) for
    /// MAX's per-chat limit.
    pub async fn answer(
        &self,
        callback_id: &str,
        chat: Option<i64>,
        body: &Value,
    ) -> Result<(), HookError> {
        self.pace(chat).await?;
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

    /// `POST /subscriptions`: TamTam with the API version; MAX with the secret (and no
    /// version, which MAX's schema no longer has).
    pub async fn subscribe(
        &self,
        url: &str,
        update_types: &[&str],
        secret: Option<&Secret>,
    ) -> Result<(), HookError> {
        let mut body = serde_json::json!({"url": url, "update_types": update_types});
        match self.dialect {
            Dialect::TamTam => body["version"] = API_VERSION.into(),
            Dialect::Max => {
                if let Some(secret) = secret {
                    body["secret"] = secret.expose().into();
                }
            }
        }
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

    /// The bot's commands: `PATCH /me` on TamTam, `PATCH /me/commands` on MAX.
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
            match self.dialect {
                Dialect::TamTam => "/me",
                Dialect::Max => "/me/commands",
            },
            &[],
            Some(&body),
            Idempotence::Safe,
        )
        .await
        .map(drop)
    }
}
