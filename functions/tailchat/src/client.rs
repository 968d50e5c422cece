//! `TailchatClient`: bot login and `sendMessage`, with the JWT cached in memory and in the store.
//!
//! The official SDK logs in once per process and breaks after the JWT's 30 days (PLATFORMS.md
//! §1.5). Here the JWT's own `exp` decides: it is refreshed lazily once less than a day remains,
//! and a 401 `INVALID_TOKEN` (server secret rotated, user banned) triggers one re-login and one
//! retry of the call.

use std::time::Duration;

use base64::Engine;
use hookline::clock::SharedClock;
use hookline::credential::{Credential, CredentialCache};
use hookline::error::{HookError, PlatformError, PlatformErrorKind};
use hookline::http::{HttpClient, HttpResponse, Idempotence};
use hookline::pipeline::Deps;
use hookline::secret::Secret;
use hookline::store::Key;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::config::TailchatConfig;
use crate::event::{Envelope, ErrorBody, LoginData, LoginRequest, SendMessage};

const PLATFORM: &str = "tailchat";

/// Refresh the JWT once less than this remains.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(24 * 3600);

/// A logged-in bot: the JWT for `X-Token`, and the bot's own user id. `Debug` hides the JWT.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotSession {
    /// The JWT.
    pub jwt: String,
    /// The bot user's id (`data.userId` of the login answer).
    pub user_id: String,
}

impl std::fmt::Debug for BotSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotSession")
            .field("jwt", &"***")
            .field("user_id", &self.user_id)
            .finish()
    }
}

/// The login token: lowercase hex MD5 of `appId ‖ appSecret` (PLATFORMS.md §1.3, §6.5).
pub fn login_token(app_id: &str, app_secret: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(app_id.as_bytes());
    md5.update(app_secret.as_bytes());
    hex::encode(md5.finalize())
}

/// The `exp` claim of a JWT in Unix ms. The signature cannot be checked (the server's secret),
/// and need not be: the server will reject a bad token and we log in again.
pub fn jwt_expiry_ms(jwt: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Claims {
        exp: i64,
    }
    let claims = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    claims.exp.checked_mul(1000)
}

/// Where the session of app `app_id` is cached in the store.
pub fn session_key(app_id: &str) -> Key {
    Key::new(format!("tailchat#{app_id}#cred"), "jwt")
}

/// The Tailchat API client of one bot.
#[derive(Debug)]
pub struct TailchatClient {
    http: HttpClient,
    api_url: String,
    app_id: String,
    app_secret: Secret,
    clock: SharedClock,
    session: CredentialCache<BotSession>,
}

fn error(call: &'static str, kind: PlatformErrorKind, detail: impl Into<String>) -> PlatformError {
    PlatformError::new(PLATFORM, call, kind, detail)
}

fn error_body(resp: &HttpResponse) -> ErrorBody {
    serde_json::from_slice(&resp.body).unwrap_or_else(|_| ErrorBody {
        message: String::from_utf8_lossy(&resp.body)
            .chars()
            .take(200)
            .collect(),
        ..ErrorBody::default()
    })
}

impl TailchatClient {
    /// A client for `config`, caching its session in `deps.store`.
    pub fn new(config: &TailchatConfig, deps: &Deps) -> Self {
        let key = session_key(&config.app_id);
        Self {
            http: deps.http.clone(),
            api_url: config.api_url.clone(),
            app_id: config.app_id.clone(),
            app_secret: config.app_secret.clone(),
            clock: deps.clock.clone(),
            session: CredentialCache::new(
                deps.store.clone(),
                key,
                deps.clock.clone(),
                REFRESH_BEFORE,
            ),
        }
    }

    /// The current session, logging in when there is none or it is about to expire.
    pub async fn session(&self) -> Result<BotSession, HookError> {
        self.session.get_or_fetch(|| self.login()).await
    }

    /// Logs in now, whatever is cached (`hookline doctor`'s credential check).
    pub async fn fresh_login(&self) -> Result<BotSession, HookError> {
        self.login().await.map(|c| c.value)
    }

    async fn login(&self) -> Result<Credential<BotSession>, HookError> {
        const CALL: &str = "login";
        let url = format!("{}/api/openapi/bot/login", self.api_url);
        let token = login_token(&self.app_id, self.app_secret.expose());
        let body = LoginRequest {
            app_id: &self.app_id,
            token: &token,
        };
        let resp = self
            .http
            .post_json(&url, Default::default(), &body, Idempotence::Safe)
            .await
            .map_err(|e| error(CALL, PlatformErrorKind::Unavailable, e.to_string()))?;
        if !resp.status.is_success() {
            let body = error_body(&resp);
            let (kind, hint) = match body.message.as_str() {
                "Auth failed." => (PlatformErrorKind::Auth, "check TAILCHAT_APP_SECRET"),
                m if m.starts_with("Not found open app") => {
                    (PlatformErrorKind::Auth, "check TAILCHAT_APP_ID")
                }
                m if m.contains("capability:bot") => (
                    PlatformErrorKind::Auth,
                    "enable the bot capability of the open app",
                ),
                _ if resp.status.is_server_error() => {
                    (PlatformErrorKind::Unavailable, "Tailchat failed")
                }
                _ => (
                    PlatformErrorKind::Rejected,
                    "check TAILCHAT_URL and TAILCHAT_APP_ID",
                ),
            };
            return Err(error(
                CALL,
                kind,
                format!("HTTP {}: {} ({hint})", resp.status.as_u16(), body.message),
            )
            .into());
        }
        let login: Envelope<LoginData> = serde_json::from_slice(&resp.body).map_err(|e| {
            error(
                CALL,
                PlatformErrorKind::BadResponse,
                format!("unreadable login answer: {e}"),
            )
        })?;
        let expires_at_ms = jwt_expiry_ms(&login.data.jwt).unwrap_or_else(|| {
            tracing::warn!("Tailchat's JWT has no readable exp; treating it as valid for one hour");
            self.clock.now_ms() + 3_600_000
        });
        tracing::info!(app_id = %self.app_id, bot_user_id = %login.data.user_id, "logged in to Tailchat");
        Ok(Credential {
            value: BotSession {
                jwt: login.data.jwt,
                user_id: login.data.user_id,
            },
            expires_at_ms,
        })
    }

    /// Posts a message. A refused JWT leads to one re-login and one retry.
    pub(crate) async fn send_message(&self, message: &SendMessage<'_>) -> Result<(), HookError> {
        const CALL: &str = "sendMessage";
        let url = format!("{}/api/chat/message/sendMessage", self.api_url);
        for attempt in 0..2 {
            let session = self.session().await?;
            let mut headers = axum::http::HeaderMap::new();
            let token = session.jwt.parse().map_err(|_| {
                error(
                    CALL,
                    PlatformErrorKind::BadResponse,
                    "the JWT is not a valid header value",
                )
            })?;
            headers.insert("x-token", token);
            // No dedup on Tailchat's side: a repeat after a timeout could post twice.
            let resp = self
                .http
                .post_json(&url, headers, message, Idempotence::Unsafe)
                .await
                .map_err(|e| PlatformError::no_answer(PLATFORM, CALL, &e, Idempotence::Unsafe))?;
            let status = resp.status.as_u16();
            if resp.status.is_success() {
                return Ok(());
            }
            let body = error_body(&resp);
            let kind = body.kind.as_deref().unwrap_or_default();
            if status == 401 && attempt == 0 && matches!(kind, "INVALID_TOKEN" | "NO_TOKEN") {
                tracing::warn!(
                    reason = kind,
                    "Tailchat refused the cached JWT; logging in again"
                );
                self.session.invalidate(&session).await?;
                continue;
            }
            let (kind, detail) = match status {
                401 => (
                    PlatformErrorKind::Auth,
                    format!(
                        "the bot's JWT was refused again after a fresh login: {}",
                        body.message
                    ),
                ),
                403 => (
                    PlatformErrorKind::Permission,
                    format!(
                        "HTTP 403 {}: {}; the bot is not a member of group {}: add it through the group's integration panel",
                        body.name,
                        body.message,
                        message.group_id.unwrap_or("(direct message)")
                    ),
                ),
                // 429/503: not processed, retried by the client and still failing. 500 (also how
                // Tailchat reports a muted bot), 502, 504: the message may be posted; Tailchat has
                // no dedup, so the outcome is unknown and the event is never redelivered.
                429 | 500..=599 => (
                    PlatformError::kind_of_status(status, Idempotence::Unsafe),
                    format!("HTTP {status} {}: {}", body.name, body.message),
                ),
                _ => (
                    PlatformErrorKind::Rejected,
                    format!("HTTP {status} {}: {}", body.name, body.message),
                ),
            };
            return Err(error(CALL, kind, detail).into());
        }
        Err(error(CALL, PlatformErrorKind::Auth, "the JWT was refused twice").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_tokens_match_the_reference_vectors() {
        // PLATFORMS.md §6.5
        assert_eq!(
            login_token(
                "tc_6448e822834c12425646f470",
                "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5"
            ),
            "4fbede1540bbc93e00dcf66d9c4ba209"
        );
        assert_eq!(
            login_token(
                "tc_000000000000000000000001",
                "abcdefghijklmnopqrstuvwxyz012345"
            ),
            "e1d7f84548372c9c5f06e8a306089405"
        );
    }

    #[test]
    fn debug_output_hides_the_jwt() {
        let session = BotSession {
            jwt: "eyJhbGciOiJIUzI1NiJ9.SECRETCLAIMS.sig".into(),
            user_id: "6552f3a0c3b1e2a9d4f01234".into(),
        };
        let shown = format!("{session:?} {:?}", Some(&session));
        assert!(!shown.contains("SECRETCLAIMS"), "{shown}");
        assert!(shown.contains("6552f3a0c3b1e2a9d4f01234"));
    }

    #[test]
    fn reads_the_expiry_of_a_jwt_and_refuses_garbage() {
        // {"alg":"HS256","typ":"JWT"} . {"_id":"x","exp":1700000000}
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJfaWQiOiJ4IiwiZXhwIjoxNzAwMDAwMDAwfQ.sig";
        assert_eq!(jwt_expiry_ms(jwt), Some(1_700_000_000_000));
        assert_eq!(jwt_expiry_ms("not-a-jwt"), None);
        assert_eq!(jwt_expiry_ms("a.!!!.c"), None);
        assert_eq!(jwt_expiry_ms("a.eyJ9.c"), None);
    }
}
