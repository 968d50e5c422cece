//! # hookline-tailchat
//!
//! The Tailchat open-platform bot webhook: [`router`] serves `POST /` (mounted at `/tailchat` by
//! `hookline serve`, the Function URL root under Lambda).
//!
//! Tailchat signs nothing, so the callback URL carries a secret, `?token=<TAILCHAT_CALLBACK_TOKEN>`,
//! checked in constant time (404 on mismatch). Inbox items of type `message` addressed to our bot
//! are answered the way the official SDK's `replyMessage` does; every other type is acknowledged
//! and ignored. Dedup key: `payload.messageId`.
//!
//! Environment: `TAILCHAT_URL`, `TAILCHAT_APP_ID`, `TAILCHAT_APP_SECRET`,
//! `TAILCHAT_CALLBACK_TOKEN`, plus the shared `HOOKLINE_*` variables.

use std::sync::Arc;

use axum::Router;
use hookline::error::HookError;
use hookline::model::{Decoded, Inbound, Platform, Reply};
use hookline::pipeline::{Adapter, Deps, Pipeline, RawRequest, webhook};

mod client;
mod config;
mod decode;
pub mod emulator;
mod event;
pub mod mention;
mod verify;

pub use client::{BotSession, TailchatClient, jwt_expiry_ms, login_token, session_key};
pub use config::{MIN_TOKEN_LEN, TailchatConfig, VARS};
pub use decode::TailchatContext;

use crate::decode::{Parsed, decode_message, parse_inbox_item};
use crate::event::{MessageMeta, ReplyRef, SendMessage};

/// The Tailchat adapter.
#[derive(Debug)]
pub struct TailchatAdapter {
    config: TailchatConfig,
    client: TailchatClient,
}

impl TailchatAdapter {
    /// An adapter for `config`.
    pub fn new(config: TailchatConfig, deps: &Deps) -> Self {
        let client = TailchatClient::new(&config, deps);
        Self { config, client }
    }

    /// The API client.
    pub fn client(&self) -> &TailchatClient {
        &self.client
    }
}

impl Adapter for TailchatAdapter {
    type Context = TailchatContext;

    fn platform(&self) -> Platform {
        Platform::Tailchat
    }

    fn bot_key(&self) -> &str {
        &self.config.app_id
    }

    fn redelivers(&self) -> bool {
        // Tailchat posts an inbox item once and never again.
        false
    }

    fn verify(&self, request: &RawRequest) -> Result<(), HookError> {
        verify::verify_token(&self.config.callback_token, request)
    }

    async fn decode(
        &self,
        request: &RawRequest,
    ) -> Result<Decoded<Inbound<TailchatContext>>, HookError> {
        match parse_inbox_item(&request.body)? {
            Parsed::Other(kind) => Ok(Decoded::Ignored(
                format!("inbox item of type {kind:?}").into(),
            )),
            Parsed::Message { item, payload } => {
                // Our user id comes from the login answer (cached with the JWT).
                let session = self.client.session().await?;
                Ok(decode_message(
                    item,
                    payload,
                    &session.user_id,
                    request.now_ms,
                ))
            }
        }
    }

    async fn send(
        &self,
        inbound: &Inbound<TailchatContext>,
        replies: &[Reply],
        delivered: &mut usize,
    ) -> Result<(), HookError> {
        let ctx = &inbound.context;
        for reply in replies {
            // The SDK's replyMessage: mention the author, quote the message (PLATFORMS.md §1.6).
            // The author is never the bot (decode drops those), so the bot never mentions itself.
            let message = SendMessage {
                group_id: ctx.group_id.as_deref(),
                converse_id: &ctx.converse_id,
                content: format!("[at={}][/at] {}", ctx.author, reply.to_plain_text()),
                meta: MessageMeta {
                    mentions: vec![&ctx.author],
                    reply: ReplyRef {
                        id: &ctx.message_id,
                        author: &ctx.author,
                        content: &ctx.snippet,
                    },
                },
            };
            self.client.send_message(&message).await?;
            *delivered += 1;
        }
        Ok(())
    }
}

/// The webhook router for one Tailchat bot.
pub fn router(config: TailchatConfig, deps: Deps) -> Router {
    webhook(Arc::new(pipeline(config, deps)))
}

/// The pipeline behind [`router`], for callers that need the adapter too.
pub fn pipeline(config: TailchatConfig, deps: Deps) -> Pipeline<TailchatAdapter> {
    let adapter = TailchatAdapter::new(config, &deps);
    Pipeline::new(adapter, deps)
}

/// The `hookline-tailchat` function for `bot`: under Lambda it serves the Function URL, elsewhere
/// `HOOKLINE_BIND`. A crate of its own bot calls this from its `main`.
pub async fn run(bot: hookline::bot::SharedBot) -> Result<(), hookline::runtime::BoxError> {
    hookline::runtime::run_function("tailchat", bot, TailchatConfig::from_env, router).await
}

/// Decodes a callback body as the adapter would, with no HTTP and no login: the bot is the
/// inbox item's owner. `None` for an item the bot ignores. For tests of a bot on recorded
/// payloads (`hookline_server::testing::message_from`).
pub fn decode_fixture(
    body: &[u8],
    now_ms: i64,
) -> Result<Option<hookline::model::Incoming>, HookError> {
    match parse_inbox_item(body)? {
        Parsed::Other(_) => Ok(None),
        Parsed::Message { item, payload } => {
            let bot = item.user_id.clone();
            Ok(decode_message(item, payload, &bot, now_ms).into_incoming())
        }
    }
}
