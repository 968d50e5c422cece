//! # hookline-dingtalk
//!
//! DingTalk robots, both kinds (PLATFORMS.md §3):
//! - the enterprise robot's HTTP callback: [`router`] serves `POST /` (mounted at `/dingtalk` by
//!   `hookline serve`), verified by the `timestamp`/`sign` headers (HMAC-SHA256 of the app
//!   secret, one-hour window) and `robotCode`; replies go through the callback's
//!   `sessionWebhook` (https on `DINGTALK_SESSION_HOSTS` only), or through the custom robot when
//!   it has expired;
//! - the custom group robot: `POST /notify` (`Authorization: Bearer <DINGTALK_NOTIFY_TOKEN>`)
//!   sends through it with a fresh signature per request, within a store-wide sliding window of
//!   20 sends per minute; over budget, messages queue and go out as one markdown digest
//!   ([`robot::RobotSender::flush`], run by `hookline-dingtalk-flush` and by `hookline serve`).
//!
//! Environment: `DINGTALK_APP_SECRET`, `DINGTALK_ROBOT_CODE`, optional `DINGTALK_WEBHOOK_TOKEN` +
//! `DINGTALK_WEBHOOK_SECRET`, `DINGTALK_NOTIFY_TOKEN`, `DINGTALK_API_URL`,
//! `DINGTALK_SESSION_HOSTS`, `DINGTALK_ALLOW_UNSIGNED`, plus the shared `HOOKLINE_*`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hookline::error::{HookError, PlatformError, PlatformErrorKind};
use hookline::http::Idempotence;
use hookline::model::{Body, Decoded, Inbound, Platform, Reply};
use hookline::pipeline::{Adapter, Deps, MAX_BODY_BYTES, Pipeline, RawRequest, webhook};
use hookline::secret::Secret;
use serde::Deserialize;

mod config;
mod decode;
pub mod emulator;
pub mod event;
mod flush;
pub mod robot;
pub mod sign;
pub mod webhook;

pub use config::{
    CustomRobot, DEFAULT_API_URL, DEFAULT_SESSION_HOSTS, DingTalkConfig, MIN_TOKEN_LEN, VARS,
};
pub use decode::DingTalkContext;
pub use flush::run_flush;

use crate::event::{At, CardButton, RobotMessage};
use crate::robot::{Delivery, Notification, RobotSender, robot_result};

/// The DingTalk adapter.
#[derive(Debug)]
pub struct DingTalkAdapter {
    config: DingTalkConfig,
    deps: Deps,
    sender: Option<Arc<RobotSender>>,
}

/// The custom robot sender of `config`, if it has one.
pub fn sender(config: &DingTalkConfig, deps: &Deps) -> Option<Arc<RobotSender>> {
    config.custom_robot.clone().map(|robot| {
        Arc::new(RobotSender::new(
            robot,
            &config.api_url,
            deps.http.clone(),
            deps.store.clone(),
            deps.clock.clone(),
        ))
    })
}

#[derive(Deserialize)]
struct RobotCodeOnly {
    #[serde(rename = "robotCode")]
    robot_code: Option<String>,
}

/// A reply as a robot message: text (with the asker @-mentioned in groups) or an actionCard whose
/// buttons post the choice back into the conversation (`dtmd://dingtalkclient/sendMessage`).
fn reply_message(reply: &Reply, ctx: &DingTalkContext) -> RobotMessage {
    let at = At {
        at_user_ids: ctx.staff_id.iter().filter(|_| ctx.group).cloned().collect(),
        ..At::default()
    };
    match &reply.body {
        Body::Markdown(markdown) => RobotMessage::Markdown {
            title: markdown_title(markdown),
            text: hookline::model::truncate_bytes(markdown, robot::MAX_ENTRY_BYTES).into_owned(),
            at,
        },
        Body::Choices { text, choices } => RobotMessage::ActionCard {
            title: text.clone(),
            text: text.clone(),
            buttons: choices
                .iter()
                .map(|c| {
                    let content: String =
                        url::form_urlencoded::byte_serialize(c.label.as_bytes()).collect();
                    CardButton {
                        title: c.label.clone(),
                        action_url: format!("dtmd://dingtalkclient/sendMessage?content={content}"),
                    }
                })
                .collect(),
            horizontal: true,
        },
        _ => RobotMessage::Text {
            content: hookline::model::truncate_bytes(
                &reply.to_plain_text(),
                robot::MAX_ENTRY_BYTES,
            )
            .into_owned(),
            at,
        },
    }
}

/// A markdown message's title (what the notification shows): its first line as plain text.
fn markdown_title(markdown: &str) -> String {
    let plain = hookline::model::markdown_to_plain(markdown);
    let first = plain.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    first.chars().take(64).collect()
}

impl DingTalkAdapter {
    /// An adapter for `config`.
    pub fn new(config: DingTalkConfig, deps: &Deps) -> Self {
        let sender = sender(&config, deps);
        Self {
            config,
            deps: deps.clone(),
            sender,
        }
    }

    /// The custom robot sender, if configured.
    pub fn sender(&self) -> Option<&Arc<RobotSender>> {
        self.sender.as_ref()
    }

    async fn via_session(
        &self,
        ctx: &DingTalkContext,
        message: &RobotMessage,
    ) -> Result<(), PlatformError> {
        let resp = self
            .deps
            .http
            .post_json(
                ctx.session_webhook.as_str(),
                Default::default(),
                &message.to_json(),
                Idempotence::Unsafe,
            )
            .await
            .map_err(|e| {
                PlatformError::no_answer("dingtalk", "session_webhook", &e, Idempotence::Unsafe)
            })?;
        robot_result(
            "session_webhook",
            resp.status.as_u16(),
            &resp.body,
            Idempotence::Unsafe,
        )
    }

    async fn via_robot(&self, ctx: &DingTalkContext, reply: &Reply) -> Result<(), HookError> {
        let refused = |why: &str| -> HookError {
            PlatformError::new(
                "dingtalk",
                "reply",
                PlatformErrorKind::Rejected,
                format!("the session webhook expired and {why}; the reply is dropped"),
            )
            .into()
        };
        let Some(sender) = &self.sender else {
            return Err(refused(
                "no custom robot is configured (set DINGTALK_WEBHOOK_TOKEN and DINGTALK_WEBHOOK_SECRET)",
            ));
        };
        // The custom robot posts into its one fixed group: a DM's answer or another group's
        // notes must never appear there.
        let same_group = ctx.group
            && self
                .config
                .webhook_conversation
                .as_deref()
                .is_some_and(|c| c == ctx.conversation_id);
        if !same_group {
            return Err(refused(&format!(
                "conversation {} is not the custom robot's group (DINGTALK_WEBHOOK_CONVERSATION)",
                ctx.conversation_id
            )));
        }
        let markdown = matches!(reply.body, Body::Markdown(_));
        let text = match &reply.body {
            Body::Markdown(m) => m.clone(),
            _ => reply.to_plain_text(),
        };
        let notification = Notification {
            text: hookline::model::truncate_bytes(&text, robot::MAX_ENTRY_BYTES).into_owned(),
            title: markdown.then(|| markdown_title(&text)),
            markdown,
            at: ctx
                .staff_id
                .clone()
                .filter(|_| ctx.group)
                .map(|id| robot::NotifyAt {
                    user_ids: vec![id],
                    ..Default::default()
                }),
        };
        if sender.send(&notification).await? == Delivery::Queued {
            tracing::info!("reply queued for the custom robot's next digest");
        }
        Ok(())
    }
}

impl Adapter for DingTalkAdapter {
    type Context = DingTalkContext;

    fn platform(&self) -> Platform {
        Platform::DingTalk
    }

    fn bot_key(&self) -> &str {
        &self.config.robot_code
    }

    fn verify(&self, request: &RawRequest) -> Result<(), HookError> {
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        match (header("timestamp"), header("sign")) {
            (Some(ts), Some(sign)) => sign::verify_callback_sign(
                self.config.app_secret.expose(),
                ts,
                sign,
                request.now_ms,
            )?,
            // Legacy "Outgoing" robots sign nothing; accepted only when explicitly allowed.
            (None, None) if self.config.allow_unsigned => {}
            _ => {
                return Err(HookError::Unauthenticated(
                    "timestamp and sign headers are required",
                ));
            }
        }
        // Older enterprise robots, custom (outgoing) robots and DingTalk's own documentation
        // sample send no robotCode; the signature is the authentication. A robotCode that is
        // present and not ours is a callback for another robot signed with our secret.
        let body: RobotCodeOnly = serde_json::from_slice(&request.body)
            .map_err(|e| HookError::Malformed(format!("callback body: {e}")))?;
        match body.robot_code.as_deref() {
            Some(code) if code != self.config.robot_code => {
                Err(HookError::Unauthenticated("robotCode is not ours"))
            }
            _ => Ok(()),
        }
    }

    async fn decode(
        &self,
        request: &RawRequest,
    ) -> Result<Decoded<Inbound<DingTalkContext>>, HookError> {
        decode::decode_callback(&request.body, &self.config.session_hosts, request.now_ms)
    }

    async fn send(
        &self,
        inbound: &Inbound<DingTalkContext>,
        replies: &[Reply],
        delivered: &mut usize,
    ) -> Result<(), HookError> {
        let ctx = &inbound.context;
        for reply in replies {
            if self.deps.clock.now_ms() < ctx.expires_at_ms {
                match self.via_session(ctx, &reply_message(reply, ctx)).await {
                    Ok(()) => {
                        *delivered += 1;
                        continue;
                    }
                    // Expired early (DingTalk's word, not the field's): fall back below.
                    Err(e)
                        if e.kind == PlatformErrorKind::Rejected
                            && e.detail.contains("session") =>
                    {
                        tracing::warn!(error = %e, "session webhook refused; falling back to the custom robot");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            self.via_robot(ctx, reply).await?;
            *delivered += 1;
        }
        Ok(())
    }
}

/// `POST /notify`: authenticate, parse, send or queue.
async fn notify(
    State(state): State<Arc<NotifyState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HookError> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !state.token.matches(presented.trim()) {
        return Err(HookError::Unauthenticated("notify token missing or wrong"));
    }
    let notification: Notification =
        serde_json::from_slice(&body).map_err(|e| HookError::Malformed(e.to_string()))?;
    if notification.text.trim().is_empty() {
        return Err(HookError::Malformed("text must not be empty".into()));
    }
    if notification.size() > robot::MAX_ENTRY_BYTES {
        return Err(HookError::Malformed(format!(
            "text and title are {} bytes; at most {} (DingTalk refuses messages over 20000 bytes)",
            notification.size(),
            robot::MAX_ENTRY_BYTES
        )));
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
                Some(k.to_owned())
            }
            _ => {
                return Err(HookError::Malformed(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                ));
            }
        },
    };
    let delivery = match key {
        Some(key) => state.sender.send_once(&key, &notification).await?,
        None => state.sender.send(&notification).await?,
    };
    Ok(match delivery {
        Delivery::Sent => (StatusCode::OK, Json(serde_json::json!({"sent": true}))).into_response(),
        Delivery::Queued => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"queued": true})),
        )
            .into_response(),
    })
}

struct NotifyState {
    token: Secret,
    sender: Arc<RobotSender>,
}

/// `POST /flush`: a flush now, for `hookline-dingtalk-flush` run beside a `hookline serve` that
/// holds the embedded store. Signed with the custom robot's secret (`timestamp`, `sign`).
async fn flush(
    State(sender): State<Arc<RobotSender>>,
    headers: HeaderMap,
) -> Result<Response, HookError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(sign)) = (header("timestamp"), header("sign")) else {
        return Err(HookError::Unauthenticated(
            "timestamp and sign headers are required",
        ));
    };
    sender.verify_flush_request(ts, sign)?;
    let report = sender.flush().await?;
    Ok(Json(report).into_response())
}

/// The router of one DingTalk robot: the callback at `/`, and `/notify` when configured.
pub fn router(config: DingTalkConfig, deps: Deps) -> Router {
    let notify_token = config.notify_token.clone();
    let pipeline = Arc::new(pipeline(config, deps));
    // The notify endpoint shares the adapter's sender: one budget, one queue.
    let notify_state = match (notify_token, pipeline.adapter().sender().cloned()) {
        (Some(token), Some(sender)) => Some(Arc::new(NotifyState { token, sender })),
        _ => None,
    };
    let flusher = pipeline.adapter().sender().cloned();
    let mut router = webhook(pipeline);
    if let Some(sender) = flusher {
        router = router.merge(
            Router::new()
                .route("/flush", post(flush))
                .with_state(sender),
        );
    }
    if let Some(state) = notify_state {
        router = router.merge(
            Router::new()
                .route("/notify", post(notify))
                .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
                .with_state(state),
        );
    }
    router
}

/// The pipeline behind [`router`].
pub fn pipeline(config: DingTalkConfig, deps: Deps) -> Pipeline<DingTalkAdapter> {
    let adapter = DingTalkAdapter::new(config, &deps);
    Pipeline::new(adapter, deps)
}

/// The `hookline-dingtalk` function for `bot`: under Lambda it serves the Function URL, elsewhere
/// `HOOKLINE_BIND`. A crate of its own bot calls this from its `main`.
pub async fn run(bot: hookline::bot::SharedBot) -> Result<(), hookline::runtime::BoxError> {
    hookline::runtime::run_function("dingtalk", bot, DingTalkConfig::from_env, router).await
}

/// Decodes a callback body as the adapter would, with no HTTP (session webhooks on DingTalk's
/// own hosts). `None` for a callback the bot ignores. For tests of a bot on recorded payloads
/// (`hookline_server::testing::message_from`).
pub fn decode_fixture(
    body: &[u8],
    now_ms: i64,
) -> Result<Option<hookline::model::Incoming>, HookError> {
    let hosts: Vec<String> = DEFAULT_SESSION_HOSTS
        .split(',')
        .map(str::to_owned)
        .collect();
    Ok(decode::decode_callback(body, &hosts, now_ms)?.into_incoming())
}
