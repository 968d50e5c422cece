//! `TencentClient`: REST calls as the app admin, with a cached UserSig.
//!
//! The UserSig is generated locally (an HMAC-SHA256 and a deflate, a few microseconds: see
//! `cargo bench -p hookline-tencent --bench usersig`), so it is kept in memory only: reading it
//! from the store would cost more than making it (a DynamoDB round trip), and a stored one would
//! outlive a `TENCENT_SECRET_KEY` rotation. It is valid for 7 days, regenerated once less than 2
//! days remain, and dropped whenever Tencent refuses it (70001 expired, 70003 invalid, 70009
//! signed with another key) before the one retry. Every answer is checked for
//! `ActionStatus`/`ErrorCode` (HTTP is 200 even on failure). Sends are idempotent on Tencent's
//! side (the same `Random` within 5 minutes is the same message), so 5xx, timeouts and
//! `ErrorCode -1` are retried.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hookline::clock::SharedClock;
use hookline::credential::Credential;
use hookline::error::{HookError, PlatformError, PlatformErrorKind};
use hookline::http::{HttpClient, Idempotence};
use hookline::pipeline::Deps;
use hookline::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::TencentConfig;
use crate::event::RestResult;
use crate::usersig::gen_usersig;

const PLATFORM: &str = "tencent";

/// Lifetime of a generated UserSig.
pub const USERSIG_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Regenerate once less than this remains.
pub const USERSIG_REFRESH_BEFORE: Duration = Duration::from_secs(2 * 24 * 3600);

/// `ErrorCode`s that mean "this UserSig is refused": expired, invalid, or signed with another
/// key. The cached one is dropped and a fresh one tried once.
pub const USERSIG_REFUSED: [i64; 3] = [70001, 70003, 70009];

/// The REST client of one app.
#[derive(Debug)]
pub struct TencentClient {
    http: HttpClient,
    api_url: String,
    sdkappid: u64,
    admin: String,
    secret_key: Secret,
    clock: SharedClock,
    usersig: std::sync::Mutex<Option<Credential<Secret>>>,
    generated: AtomicUsize,
}

fn error(call: &'static str, kind: PlatformErrorKind, detail: impl Into<String>) -> PlatformError {
    PlatformError::new(PLATFORM, call, kind, detail)
}

/// What an `ErrorCode` means for us.
fn explain(code: i64) -> (PlatformErrorKind, &'static str) {
    use PlatformErrorKind::{Auth, Permission, Rejected, Unavailable};
    match code {
        70001 => (
            Auth,
            "the UserSig expired even after regeneration: check the server's clock",
        ),
        70002 | 70003 => (Auth, "the UserSig is invalid: check TENCENT_SECRET_KEY"),
        70009 => (
            Auth,
            "the UserSig was signed with another app's key: TENCENT_SECRET_KEY must belong to TENCENT_SDKAPPID",
        ),
        70013 => (
            Auth,
            "the identifier differs from the UserSig's: check TENCENT_ADMIN",
        ),
        70014 => (
            Auth,
            "the SDKAppID does not match the UserSig's: check TENCENT_SDKAPPID",
        ),
        70016 => (Auth, "no key is configured for this app in the console"),
        70020 => (
            Auth,
            "SDKAppID not found in this data centre: check TENCENT_SDKAPPID and TENCENT_API_URL (e.g. https://adminapisgp.im.qcloud.com for Singapore)",
        ),
        10007 | 10004 => (
            Permission,
            "no permission: is the chatbot a member of the group?",
        ),
        10010 | 10015 => (
            Rejected,
            "the group does not exist (dissolved, or a wrong GroupId)",
        ),
        80001 => (Rejected, "the reply contains words Tencent filters"),
        80002 => (Rejected, "the reply is too long"),
        -1 | 70500 | 90994 => (Unavailable, "Tencent is busy"),
        _ => (Rejected, "see Tencent's error code table"),
    }
}

impl TencentClient {
    /// A client for `config`, caching its UserSig in `deps.store`.
    pub fn new(config: &TencentConfig, deps: &Deps) -> Self {
        Self {
            http: deps.http.clone(),
            api_url: config.api_url.clone(),
            sdkappid: config.sdkappid,
            admin: config.admin.clone(),
            secret_key: config.secret_key.clone(),
            clock: deps.clock.clone(),
            usersig: std::sync::Mutex::new(None),
            generated: AtomicUsize::new(0),
        }
    }

    /// How many UserSigs this client has generated (observability; tests assert on it).
    pub fn usersigs_generated(&self) -> usize {
        self.generated.load(Ordering::SeqCst)
    }

    /// The admin's UserSig, generated when there is none or it is close to expiry.
    pub fn usersig(&self) -> Secret {
        let mut cached = self.usersig.lock().unwrap_or_else(|p| p.into_inner());
        let now_ms = self.clock.now_ms();
        let refresh = hookline::clock::millis(USERSIG_REFRESH_BEFORE);
        if let Some(c) = cached
            .as_ref()
            .filter(|c| c.expires_at_ms - now_ms > refresh)
        {
            return c.value.clone();
        }
        self.generated.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.now_s();
        let ttl = i64::try_from(USERSIG_TTL.as_secs()).unwrap_or(i64::MAX);
        tracing::info!(sdkappid = self.sdkappid, admin = %self.admin, "generated a UserSig");
        let fresh = Credential {
            value: Secret::new(gen_usersig(
                self.sdkappid,
                self.secret_key.expose(),
                &self.admin,
                ttl,
                now,
            )),
            expires_at_ms: (now + ttl).saturating_mul(1000),
        };
        *cached = Some(fresh.clone());
        fresh.value
    }

    /// Forgets `stale`, a UserSig Tencent refused, unless a newer one replaced it.
    fn invalidate_usersig(&self, stale: &Secret) {
        let mut cached = self.usersig.lock().unwrap_or_else(|p| p.into_inner());
        if cached
            .as_ref()
            .is_some_and(|c| c.value.expose() == stale.expose())
        {
            *cached = None;
        }
    }

    fn url(&self, path: &str, usersig: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sdkappid", &self.sdkappid.to_string())
            .append_pair("identifier", &self.admin)
            .append_pair("usersig", usersig)
            .append_pair("random", &rand::random::<u32>().to_string())
            .append_pair("contenttype", "json")
            .finish();
        format!("{}/v4/{path}?{query}", self.api_url)
    }

    /// Creates (or updates: the call is idempotent) the chatbot account `bot_id` named `nick`.
    pub async fn create_robot(&self, bot_id: &str, nick: &str) -> Result<(), HookError> {
        let body = serde_json::json!({"UserID": bot_id, "Nick": nick});
        self.call("openim_robot_http_svc/create_robot", "create_robot", &body)
            .await
    }

    /// Adds `account` to group `group_id`.
    pub async fn add_group_member(&self, group_id: &str, account: &str) -> Result<(), HookError> {
        let body = serde_json::json!({"GroupId": group_id, "MemberList": [{"Member_Account": account}], "Silence": 1});
        self.call(
            "group_open_http_svc/add_group_member",
            "add_group_member",
            &body,
        )
        .await
    }

    /// Whether each account exists (`im_open_login_svc/account_check`): `(UserID, status)` with
    /// status `Imported` or `NotImported`. Sends nothing; a wrong key or SDKAppID fails here
    /// like any call, which makes it the configuration check of `hookline doctor`.
    pub async fn account_check(&self, ids: &[&str]) -> Result<Vec<(String, String)>, HookError> {
        let items: Vec<Value> = ids.iter().map(|id| json!({"UserID": id})).collect();
        let answer = self
            .call_value(
                "im_open_login_svc/account_check",
                "account_check",
                &json!({"CheckItem": items}),
            )
            .await?;
        Ok(answer["ResultItem"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let status = match r["ResultCode"].as_i64() {
                    Some(0) | None => r["AccountStatus"].as_str().unwrap_or_default().to_owned(),
                    Some(code) => format!("error {code}"),
                };
                (r["UserID"].as_str().unwrap_or_default().to_owned(), status)
            })
            .collect())
    }

    /// Calls `v4/<path>` and checks the answer (see [`Self::call_value`]).
    pub(crate) async fn call<T: Serialize + Sync>(
        &self,
        path: &str,
        call: &'static str,
        body: &T,
    ) -> Result<(), HookError> {
        self.call_value(path, call, body).await.map(drop)
    }

    /// Calls `v4/<path>`, checks the answer and returns it. A 70001 (expired UserSig)
    /// regenerates the UserSig and retries once; `ErrorCode -1` (busy) is retried twice with
    /// backoff.
    async fn call_value<T: Serialize + Sync>(
        &self,
        path: &str,
        call: &'static str,
        body: &T,
    ) -> Result<Value, HookError> {
        let mut regenerated = false;
        let mut busy = 0u32;
        loop {
            let usersig = self.usersig();
            let resp = self
                .http
                .post_json(
                    &self.url(path, usersig.expose()),
                    Default::default(),
                    body,
                    Idempotence::Safe,
                )
                .await
                .map_err(|e| error(call, PlatformErrorKind::Unavailable, e.to_string()))?;
            let status = resp.status.as_u16();
            if status == 429 {
                return Err(error(call, PlatformErrorKind::RateLimited, "HTTP 429").into());
            }
            if resp.status.is_server_error() {
                return Err(error(
                    call,
                    PlatformErrorKind::Unavailable,
                    format!("HTTP {status}"),
                )
                .into());
            }
            let unreadable = |e: serde_json::Error| {
                error(
                    call,
                    PlatformErrorKind::BadResponse,
                    format!("HTTP {status}, unreadable answer: {e}"),
                )
            };
            let answer: Value = serde_json::from_slice(&resp.body).map_err(unreadable)?;
            let result = RestResult::deserialize(&answer).map_err(unreadable)?;
            if result.error_code == 0 && result.action_status == "OK" {
                return Ok(answer);
            }
            let code = result.error_code;
            if USERSIG_REFUSED.contains(&code) && !regenerated {
                tracing::warn!(code, "Tencent refused the UserSig; regenerating it");
                self.invalidate_usersig(&usersig);
                regenerated = true;
                continue;
            }
            let (kind, hint) = explain(code);
            if kind == PlatformErrorKind::Unavailable && busy < 2 {
                busy += 1;
                tokio::time::sleep(Duration::from_millis(200 * u64::from(busy))).await;
                continue;
            }
            return Err(error(
                call,
                kind,
                format!("ErrorCode {code} ({}): {hint}", result.error_info),
            )
            .into());
        }
    }
}
