//! # hookline-tamtam
//!
//! The TamTam bot webhook: [`router`] serves `POST /` (mounted at `/tamtam` by `hookline serve`,
//! the Function URL root under Lambda) for the bot's subscription URL
//! (`…?token=<TAMTAM_CALLBACK_TOKEN>`).
//!
//! TamTam signs nothing: a webhook must come from `TAMTAM_ALLOWED_SUBNETS` (403 otherwise) and
//! carry the `?token=` (404 otherwise). TamTam retries every non-200 every 30–60 s for 8 hours,
//! so everything accepted or deliberately ignored, malformed payloads included, is answered 200;
//! only a failure a redelivery can heal (the store down, TamTam down) gets a non-200. Dedup keys:
//! `mid`, `callback_id`, a composite key otherwise, kept 24 h.
//!
//! Environment: `TAMTAM_TOKEN`, `TAMTAM_CALLBACK_TOKEN`, optional `TAMTAM_API_URL`,
//! `TAMTAM_ALLOWED_SUBNETS`, plus the shared `HOOKLINE_*` (`HOOKLINE_TRUST_PROXY`).
//!
//! ## MAX: the same protocol, another dialect
//!
//! TamTam was closed by VK on 27 Feb 2026; MAX runs a fork of its Bot API (PLATFORMS.md §4b).
//! The wire types, the decisions (who is answered, dedup keys, callbacks, greetings) and the
//! replies are shared; a [`Dialect`] carries what differs: the credential (`Authorization`
//! header instead of `?access_token=`), no API version, the webhook's authentication
//! (`X-Max-Bot-Api-Secret` instead of `?token=`, subnets optional), the trust store
//! (`MAX_CA_PEM`), MAX's send limits, and `PATCH /me/commands`. [`max_router`] serves it
//! (`/max` under `hookline serve`; `hookline-max` on Lambda) from a [`MaxConfig`]: `MAX_TOKEN`,
//! `MAX_WEBHOOK_SECRET`, optional `MAX_API_URL`, `MAX_ALLOWED_SUBNETS`, `MAX_CA_PEM`.

use std::sync::Arc;

use axum::Router;
use hookline::error::HookError;
use hookline::model::{Body, ChatKind, Decoded, Inbound, Platform, Reply};
use hookline::pipeline::{Adapter, Deps, Pipeline, RawRequest, webhook};
use serde_json::{Value, json};

mod client;
mod config;
mod decode;
pub mod emulator;
pub mod event;
pub mod limits;
mod max_config;
pub mod setup;
mod verify;

pub use client::{API_VERSION, TamTamClient};
pub use config::{
    DEFAULT_API_URL, DEFAULT_SUBNETS, MIN_TOKEN_LEN, TamTamConfig, VARS, default_subnets,
    parse_subnets,
};
pub use decode::TamTamContext;
pub use max_config::{
    DEFAULT_MAX_API_URL, MAX_PUBLISHED_SUBNETS, MAX_VARS, MaxConfig, valid_webhook_secret,
};
pub use verify::SECRET_HEADER;

/// Which of the two protocols of this crate an adapter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Dialect {
    /// TamTam's Bot API (`botapi.tamtam.chat`).
    TamTam,
    /// MAX's (`platform-api2.max.ru`).
    Max,
}

impl Dialect {
    /// The platform.
    pub fn platform(self) -> Platform {
        match self {
            Self::TamTam => Platform::TamTam,
            Self::Max => Platform::Max,
        }
    }

    /// The lowercase name (routes, store keys, logs, error messages).
    pub fn name(self) -> &'static str {
        self.platform().as_str()
    }
}

/// How an adapter authenticates webhooks.
#[derive(Debug)]
enum Guard {
    TamTam(TamTamConfig),
    Max(MaxConfig),
}

use crate::event::Update;

/// The longest message text TamTam accepts, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// A `NewMessageBody` for `reply`, linked as a reply to `reply_to` when given, with `mention`
/// (`@username` or a name) in front when given. Choices become an inline keyboard of callback
/// buttons; markdown is sent with `format: "markdown"`.
pub fn new_message(reply: &Reply, reply_to: Option<&str>, mention: Option<&str>) -> Value {
    let (text, attachments, format) = match &reply.body {
        Body::Choices { text, choices } => {
            let row: Vec<Value> = choices
                .iter()
                .map(|c| json!({"type": "callback", "text": c.label, "payload": c.payload}))
                .collect();
            (
                text.clone(),
                json!([{"type": "inline_keyboard", "payload": {"buttons": [row]}}]),
                None,
            )
        }
        Body::Markdown(markdown) => (markdown.clone(), Value::Null, Some("markdown")),
        _ => (reply.to_plain_text(), Value::Null, None),
    };
    let text = match mention {
        Some(who) => format!("{who} {text}"),
        None => text,
    };
    let text: String = if text.chars().count() > MAX_TEXT_CHARS {
        text.chars().take(MAX_TEXT_CHARS - 1).chain(['…']).collect()
    } else {
        text
    };
    let mut body = json!({
        "text": text,
        "attachments": attachments,
        "link": reply_to.map(|mid| json!({"type": "reply", "mid": mid})),
        "notify": true,
    });
    if let Some(format) = format {
        body["format"] = json!(format);
    }
    body
}

/// The TamTam (or MAX) adapter.
#[derive(Debug)]
pub struct TamTamAdapter {
    guard: Guard,
    client: TamTamClient,
    bot_key: String,
}

impl TamTamAdapter {
    /// An adapter for `config`.
    pub fn new(config: TamTamConfig, deps: &Deps) -> Self {
        let client = TamTamClient::new(&config, deps);
        let bot_key = config.token.fingerprint();
        Self {
            guard: Guard::TamTam(config),
            client,
            bot_key,
        }
    }

    /// A MAX adapter for `config`.
    pub fn max(config: MaxConfig, deps: &Deps) -> Self {
        let client = TamTamClient::max(&config, deps);
        let bot_key = config.token.fingerprint();
        Self {
            guard: Guard::Max(config),
            client,
            bot_key,
        }
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.client.dialect()
    }

    /// The API client.
    pub fn client(&self) -> &TamTamClient {
        &self.client
    }
}

impl Adapter for TamTamAdapter {
    type Context = TamTamContext;

    fn platform(&self) -> Platform {
        self.dialect().platform()
    }

    fn bot_key(&self) -> &str {
        &self.bot_key
    }

    fn verify(&self, request: &RawRequest) -> Result<(), HookError> {
        match &self.guard {
            Guard::TamTam(config) => verify::verify_update(config, request),
            Guard::Max(config) => verify::verify_max(config, request),
        }
    }

    async fn decode(
        &self,
        request: &RawRequest,
    ) -> Result<Decoded<Inbound<TamTamContext>>, HookError> {
        let update: Update = match serde_json::from_slice(&request.body) {
            Ok(update) => update,
            Err(e) => {
                // Permanent: the same bytes will never parse, and a non-200 would only buy
                // 8 hours of identical redeliveries.
                tracing::error!(error = %e, platform = self.dialect().name(), "malformed update, acknowledged and dropped");
                return Ok(Decoded::Ignored("malformed update".into()));
            }
        };
        let me = if decode::needs_me(&update) {
            match self.client.me().await {
                Ok(me) => Some(me),
                Err(HookError::Platform(e)) if !e.is_retryable() => {
                    tracing::error!(error = %e, "cannot learn the bot's identity; update dropped");
                    return Ok(Decoded::Ignored("bot identity unavailable".into()));
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        Ok(decode::decode_update(self.dialect(), update, me.as_ref()))
    }

    /// "Typing…" in the chat of a deferred message (not for a button press: its answer is a
    /// notification or an edit, not a new message).
    async fn typing(&self, inbound: &Inbound<TamTamContext>) -> Result<(), HookError> {
        match (inbound.context.chat_id, &inbound.context.callback_id) {
            (Some(chat_id), None) => self.client.typing(chat_id).await,
            _ => Ok(()),
        }
    }

    async fn send(
        &self,
        inbound: &Inbound<TamTamContext>,
        replies: &[Reply],
        delivered: &mut usize,
    ) -> Result<(), HookError> {
        let ctx = &inbound.context;
        let mut answered = false;
        for reply in replies {
            if let (Body::Notification(text), Some(callback_id)) = (&reply.body, &ctx.callback_id) {
                if !answered {
                    self.client
                        .answer(
                            callback_id,
                            ctx.chat_id,
                            &json!({"message": null, "notification": text}),
                        )
                        .await?;
                    answered = true;
                    *delivered += 1;
                }
                continue;
            }
            if ctx.chat_id.is_none() && ctx.user_id.is_none() {
                tracing::warn!(event = %inbound.incoming.event_id, "no chat to reply in");
                continue;
            }
            let mention = (reply.mention_sender && inbound.incoming.chat_kind == ChatKind::Group)
                .then(|| match &ctx.sender_username {
                    Some(username) => format!("@{username}"),
                    None => format!("{},", inbound.incoming.sender_name.as_deref().unwrap_or("")),
                });
            let message = new_message(reply, ctx.reply_to.as_deref(), mention.as_deref());
            match (ctx.chat_id, ctx.user_id) {
                (Some(chat_id), _) => self.client.send_message(chat_id, &message).await?,
                (None, Some(user_id)) => self.client.send_to_user(user_id, &message).await?,
                (None, None) => continue,
            }
            *delivered += 1;
        }
        // An unanswered button press leaves the user's client spinning.
        if let (Some(callback_id), false) = (&ctx.callback_id, answered) {
            self.client
                .answer(
                    callback_id,
                    ctx.chat_id,
                    &json!({"message": null, "notification": "✓"}),
                )
                .await?;
        }
        Ok(())
    }
}

/// The webhook router for one TamTam bot.
pub fn router(config: TamTamConfig, deps: Deps) -> Router {
    webhook(Arc::new(pipeline(config, deps)))
}

/// The pipeline behind [`router`].
pub fn pipeline(config: TamTamConfig, deps: Deps) -> Pipeline<TamTamAdapter> {
    let adapter = TamTamAdapter::new(config, &deps);
    Pipeline::new(adapter, deps)
}

/// The `hookline-tamtam` function for `bot`: under Lambda it serves the Function URL, elsewhere
/// `HOOKLINE_BIND`. A crate of its own bot calls this from its `main`.
pub async fn run(bot: hookline::bot::SharedBot) -> Result<(), hookline::runtime::BoxError> {
    hookline::runtime::run_function("tamtam", bot, TamTamConfig::from_env, router).await
}

/// The webhook router for one MAX bot.
pub fn max_router(config: MaxConfig, deps: Deps) -> Router {
    webhook(Arc::new(max_pipeline(config, deps)))
}

/// The pipeline behind [`max_router`].
pub fn max_pipeline(config: MaxConfig, deps: Deps) -> Pipeline<TamTamAdapter> {
    let adapter = TamTamAdapter::max(config, &deps);
    Pipeline::new(adapter, deps)
}

/// The `hookline-max` function for `bot`: under Lambda it serves the Function URL, elsewhere
/// `HOOKLINE_BIND`.
pub async fn run_max(bot: hookline::bot::SharedBot) -> Result<(), hookline::runtime::BoxError> {
    hookline::runtime::run_function("max", bot, MaxConfig::from_env, max_router).await
}

/// The scheduled check (`max-resubscribe`): MAX drops a webhook subscription silently after
/// 8 hours of failed deliveries; each run subscribes `MAX_WEBHOOK_URL` again when it is gone,
/// and logs it. Under Lambda once per scheduled invocation, elsewhere once (for cron).
pub async fn run_max_resubscribe() -> anyhow::Result<()> {
    hookline::telemetry::init();
    hookline::runtime::check_function(&hookline::config::ProcessEnv, "max-resubscribe")?;
    let env = hookline::config::ProcessEnv;
    let config = MaxConfig::from_env()?;
    let url = setup::max_webhook_url(&hookline::config::required(&env, "MAX_WEBHOOK_URL")?)
        .map_err(|e| anyhow::anyhow!("MAX_WEBHOOK_URL: {e}"))?;
    let clock: hookline::clock::SharedClock = Arc::new(hookline::clock::SystemClock);
    // The check keeps nothing: a store in memory for the client's caches.
    let deps = Deps {
        store: Arc::new(hookline::store::EmbeddedStore::in_memory(clock.clone())?),
        clock,
        bot: Arc::new(hookline::bot::Handlers::new()),
        http: hookline::http::HttpClient::new()?,
        deferral: Default::default(),
    };
    let client = Arc::new(TamTamClient::max(&config, &deps));
    let secret = config.webhook_secret().clone();
    hookline::runtime::run_scheduled(move || {
        let (client, url, secret) = (Arc::clone(&client), url.clone(), secret.clone());
        async move {
            setup::ensure_subscribed(&client, &url, Some(&secret))
                .await
                .map(|resubscribed| {
                    json!({"url": hookline::redact::redact_url(&url), "resubscribed": resubscribed})
                })
        }
    })
    .await?;
    Ok(())
}

/// Decodes an update as the adapter would, with no HTTP: the bot is the first user the message
/// mentions (a dialog needs none). `None` for an update the bot ignores. For tests of a bot on
/// recorded payloads (`hookline_server::testing::message_from`).
pub fn decode_fixture(
    body: &[u8],
    now_ms: i64,
) -> Result<Option<hookline::model::Incoming>, HookError> {
    decode_fixture_as(Dialect::TamTam, body, now_ms)
}

/// [`decode_fixture`] in either dialect.
pub fn decode_fixture_as(
    dialect: Dialect,
    body: &[u8],
    _now_ms: i64,
) -> Result<Option<hookline::model::Incoming>, HookError> {
    let update: Update =
        serde_json::from_slice(body).map_err(|e| HookError::Malformed(format!("update: {e}")))?;
    let raw: Value = serde_json::from_slice(body).unwrap_or_default();
    let mention = raw["message"]["body"]["markup"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["type"] == "user_mention");
    let me = event::BotInfo {
        user_id: mention.and_then(|m| m["user_id"].as_i64()).unwrap_or(-1),
        name: String::new(),
        first_name: None,
        username: mention
            .and_then(|m| m["user_link"].as_str())
            .map(|l| l.trim_start_matches('@').to_owned()),
    };
    Ok(decode::decode_update(dialect, update, Some(&me)).into_incoming())
}

#[cfg(test)]
mod tests {
    use hookline::model::Choice;

    use super::*;

    #[test]
    fn replies_link_to_the_message_and_choices_become_callback_buttons() {
        let text = new_message(&Reply::text("Sunny"), Some("mid.1"), None);
        assert_eq!(
            text,
            json!({"text": "Sunny", "attachments": null, "link": {"type": "reply", "mid": "mid.1"}, "notify": true})
        );
        let choices = Reply::choices("Pick one:", [Choice::new("Yes", "choice:yes")]);
        let keyboard = new_message(&choices, None, None);
        assert_eq!(keyboard["link"], Value::Null);
        assert_eq!(
            keyboard["attachments"][0]["payload"]["buttons"][0][0],
            json!({"type": "callback", "text": "Yes", "payload": "choice:yes"})
        );
        let long = new_message(&Reply::text("x".repeat(5000)), None, None);
        assert_eq!(
            long["text"].as_str().unwrap().chars().count(),
            MAX_TEXT_CHARS
        );
    }

    #[test]
    fn markdown_is_rendered_and_a_mention_leads_the_text() {
        let md = new_message(&Reply::markdown("**hot**"), None, Some("@boris"));
        assert_eq!(md["format"], "markdown");
        assert_eq!(md["text"], "@boris **hot**");
        assert_eq!(
            new_message(&Reply::text("x"), None, None).get("format"),
            None
        );
    }
}
