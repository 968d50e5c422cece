//! # hookline-tencent
//!
//! The Tencent Cloud Chat (IM) chatbot webhook: [`router`] serves `POST /` (mounted at
//! `/tencent` by `hookline serve`, the Function URL root under Lambda) for the app's callback
//! URL. Handles `Bot.OnGroupMessage` (a user @-mentions the chatbot in a group) and
//! `Bot.OnC2CMessage` (a one-to-one message to it); every other command is acknowledged with the
//! OK body and ignored.
//!
//! Checks: `SdkAppid` is ours; with `TENCENT_CALLBACK_TOKEN`, a valid `Sign` no older than 60 s;
//! `CallbackCommand` agrees between query and body. Dedup keys: `GroupId`+`MsgSeq`, `MsgKey`.
//! Replies go through `send_group_msg` / `openim/sendmsg` as the app admin with a cached
//! UserSig, from the chatbot account, with a `Random` derived from the event so a retried reply
//! is deduplicated by Tencent itself.
//!
//! Environment: `TENCENT_SDKAPPID`, `TENCENT_SECRET_KEY`, `TENCENT_BOT_ID`, optional
//! `TENCENT_ADMIN`, `TENCENT_API_URL`, `TENCENT_CALLBACK_TOKEN`, plus the shared `HOOKLINE_*`.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hookline::error::HookError;
use hookline::model::{Decoded, Inbound, Platform, Reply};
use hookline::pipeline::{Adapter, Deps, Pipeline, RawRequest, webhook};
use sha2::{Digest, Sha256};

mod client;
mod config;
mod decode;
pub mod emulator;
mod event;
pub mod usersig;
mod verify;

pub use client::{TencentClient, USERSIG_REFRESH_BEFORE, USERSIG_REFUSED, USERSIG_TTL};
pub use config::{DEFAULT_API_URL, MIN_TOKEN_LEN, TencentConfig, VARS};
pub use decode::{Target, TencentContext, strip_leading_mentions};
pub use verify::{MAX_SKEW_S, callback_sign, verify_sign};

use crate::event::{GroupAt, SendC2cMsg, SendGroupMsg, text_elem};

/// The longest reply text sent, in bytes (Tencent refuses message bodies over 8 KB: 80002).
pub const MAX_TEXT_BYTES: usize = 7_900;

/// The `Random` of reply number `index` to an event: the first four bytes of a SHA-256 over the
/// bot and the event's identity, so a retried reply carries the same `Random` and Tencent drops
/// the repeat (groups: same `Random` within 5 minutes = same message; one-to-one: see
/// [`message_seq`]).
pub fn message_random(bot_id: &str, target: &Target, index: usize) -> u32 {
    let seed = match target {
        Target::Group {
            group_id, msg_seq, ..
        } => format!("{bot_id}\n{group_id}\n{msg_seq}\n{index}"),
        Target::C2c { msg_key, .. } => format!("{bot_id}\nc2c\n{msg_key}\n{index}"),
    };
    first_u32(&seed)
}

/// The `MsgSeq` of one-to-one reply number `index`. Tencent deduplicates one-to-one messages
/// on (sender, `MsgSeq`, `MsgRandom`, CRC32 of the content) for 120 s and fills an absent
/// `MsgSeq` with a random one (cloud.tencent.com/document/product/269/2282, "单聊消息通过发送人
/// ID，MsgSeq，MsgRandom，消息内容的 CRC32 校验和组成去重 Key，该 Key 的有效期是120秒"), so a
/// deterministic `MsgSeq` is what makes an in-process retry of an ambiguous send safe. Our
/// retries end within the invocation's deadline (seconds), well inside the 120 s.
pub fn message_seq(bot_id: &str, msg_key: &str, index: usize) -> u32 {
    first_u32(&format!("{bot_id}\nc2c-seq\n{msg_key}\n{index}"))
}

fn first_u32(seed: &str) -> u32 {
    let digest = Sha256::digest(seed.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn fit(text: String) -> String {
    hookline::model::truncate_bytes(&text, MAX_TEXT_BYTES).into_owned()
}

/// The Tencent adapter.
#[derive(Debug)]
pub struct TencentAdapter {
    config: TencentConfig,
    client: TencentClient,
    bot_key: String,
}

impl TencentAdapter {
    /// An adapter for `config`.
    pub fn new(config: TencentConfig, deps: &Deps) -> Self {
        let client = TencentClient::new(&config, deps);
        let bot_key = format!("{}/{}", config.sdkappid, config.bot_id);
        Self {
            config,
            client,
            bot_key,
        }
    }

    /// The REST client.
    pub fn client(&self) -> &TencentClient {
        &self.client
    }
}

/// Tencent's success answer to a callback.
pub fn ok_body() -> serde_json::Value {
    serde_json::json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0})
}

impl Adapter for TencentAdapter {
    type Context = TencentContext;

    fn platform(&self) -> Platform {
        Platform::Tencent
    }

    fn bot_key(&self) -> &str {
        &self.bot_key
    }

    fn verify(&self, request: &RawRequest) -> Result<(), HookError> {
        verify::verify_callback(&self.config, request)
    }

    async fn decode(
        &self,
        request: &RawRequest,
    ) -> Result<Decoded<Inbound<TencentContext>>, HookError> {
        let command = request.query_param("CallbackCommand");
        decode::decode_callback(
            command.as_deref(),
            &request.body,
            &self.config.bot_id,
            request.now_ms,
        )
    }

    async fn send(
        &self,
        inbound: &Inbound<TencentContext>,
        replies: &[Reply],
        delivered: &mut usize,
    ) -> Result<(), HookError> {
        let bot = self.config.bot_id.as_str();
        for (index, reply) in replies.iter().enumerate() {
            let random = message_random(bot, &inbound.context.target, index);
            match &inbound.context.target {
                Target::Group {
                    group_id,
                    topic_id,
                    sender,
                    ..
                } => {
                    let text = fit(format!("@{sender} {}", reply.to_plain_text()));
                    let body = SendGroupMsg {
                        group_id,
                        random,
                        from_account: bot,
                        msg_body: vec![text_elem(&text)],
                        group_at: vec![GroupAt {
                            all: 0,
                            account: sender,
                        }],
                        topic_id: topic_id.as_deref(),
                    };
                    self.client
                        .call(
                            "group_open_http_svc/send_group_msg",
                            "send_group_msg",
                            &body,
                        )
                        .await?;
                }
                Target::C2c { user, msg_key } => {
                    let text = fit(reply.to_plain_text());
                    let body = SendC2cMsg {
                        sync_other_machine: 2,
                        from_account: bot,
                        to_account: user,
                        msg_seq: message_seq(bot, msg_key, index),
                        msg_random: random,
                        msg_body: vec![text_elem(&text)],
                    };
                    self.client.call("openim/sendmsg", "sendmsg", &body).await?;
                }
            }
            *delivered += 1;
        }
        Ok(())
    }

    fn ack(&self) -> Response {
        Json(ok_body()).into_response()
    }
}

/// The webhook router for one Tencent chatbot.
pub fn router(config: TencentConfig, deps: Deps) -> Router {
    webhook(Arc::new(pipeline(config, deps)))
}

/// The pipeline behind [`router`].
pub fn pipeline(config: TencentConfig, deps: Deps) -> Pipeline<TencentAdapter> {
    let adapter = TencentAdapter::new(config, &deps);
    Pipeline::new(adapter, deps)
}

/// The `hookline-tencent` function for `bot`: under Lambda it serves the Function URL, elsewhere
/// `HOOKLINE_BIND`. A crate of its own bot calls this from its `main`.
pub async fn run(bot: hookline::bot::SharedBot) -> Result<(), hookline::runtime::BoxError> {
    hookline::runtime::run_function("tencent", bot, TencentConfig::from_env, router).await
}

/// Decodes a callback body as the adapter would, with no HTTP: the command is the body's
/// `CallbackCommand` (else group or one-to-one by `GroupId`), the chatbot the first of
/// `AtRobots_Account` (else `To_Account`). `None` for a callback the bot ignores. For tests of a
/// bot on recorded payloads (`hookline_server::testing::message_from`).
pub fn decode_fixture(
    body: &[u8],
    now_ms: i64,
) -> Result<Option<hookline::model::Incoming>, HookError> {
    // What the callback URL's query carries, read from the body instead.
    #[derive(serde::Deserialize)]
    struct Command {
        #[serde(rename = "CallbackCommand")]
        command: Option<String>,
        #[serde(rename = "GroupId")]
        group_id: Option<String>,
    }
    let probe: Command = serde_json::from_slice(body)
        .map_err(|e| HookError::Malformed(format!("callback body: {e}")))?;
    let command = probe.command.unwrap_or_else(|| {
        if probe.group_id.is_some() {
            event::GROUP_MESSAGE
        } else {
            event::C2C_MESSAGE
        }
        .to_owned()
    });
    let routing = decode::routing(body)?;
    let bot = routing
        .at_robots
        .and_then(|r| r.into_iter().next())
        .unwrap_or(routing.to_account);
    Ok(decode::decode_callback(Some(&command), body, &bot, now_ms)?.into_incoming())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randoms_are_stable_per_event_and_distinct_across_events_and_replies() {
        let target = |seq| Target::Group {
            group_id: "@TGS#2J4SZEAEL".into(),
            topic_id: None,
            msg_seq: seq,
            sender: "jared".into(),
        };
        assert_eq!(
            message_random("@RBT#001", &target(123), 0),
            message_random("@RBT#001", &target(123), 0)
        );
        assert_ne!(
            message_random("@RBT#001", &target(123), 0),
            message_random("@RBT#001", &target(124), 0)
        );
        assert_ne!(
            message_random("@RBT#001", &target(123), 0),
            message_random("@RBT#001", &target(123), 1)
        );
        assert_ne!(
            message_random("@RBT#001", &target(123), 0),
            message_random("@RBT#002", &target(123), 0)
        );
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let long = "好".repeat(4_000);
        let cut = fit(long);
        assert!(cut.len() <= MAX_TEXT_BYTES && cut.ends_with('…'));
        assert_eq!(fit("short".into()), "short");
    }
}
