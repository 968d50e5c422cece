//! The forward bridge (`HOOKLINE_BOT=forward`): a bot in any language, anywhere.
//!
//! Every verified, deduplicated, normalised event is POSTed as JSON to `HOOKLINE_FORWARD_URL`
//! (schema: `schemas/forward.schema.json`, `$defs/request`), signed like Stripe's webhooks:
//!
//! ```text
//! Hookline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(HOOKLINE_FORWARD_SECRET, "<t>.<body>")>
//! ```
//!
//! The endpoint answers `200` with `{"replies": [...]}` (`$defs/response`) or `204` for no
//! reply. How its other answers are treated (the retry rule of DESIGN.md; the event id is
//! stable, so an endpoint can deduplicate a repeated call):
//! - no connection, `429`, `503`, other `5xx`, a timeout: tried again within the invocation, then
//!   "retry later" (the platform redelivers; Tailchat, which never does, is retried in-process);
//! - any other status: given up and logged with the status and the body's start;
//! - a `2xx` whose body is not a valid answer: given up, with a log line saying what is wrong.

use std::time::Duration;

use hmac::{Hmac, Mac};
use hookline::bot::{Bot, BotError, BotResult, Ctx};
use hookline::config::{ConfigError, Env, required, required_secret};
use hookline::http::Idempotence;
use hookline::model::{Choice, IncomingKind, Reply};
use hookline::secret::Secret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Hookline-Signature";
/// The shortest accepted `HOOKLINE_FORWARD_SECRET`.
pub const MIN_SECRET_LEN: usize = 16;
/// The version of the request format (`version` in the request).
pub const FORMAT_VERSION: u32 = 1;
/// The most replies taken from one answer.
pub const MAX_REPLIES: usize = 10;

/// The forward bridge.
#[derive(Debug, Clone)]
pub struct ForwardBot {
    url: String,
    secret: Secret,
}

impl ForwardBot {
    /// A bridge to `url` (HTTPS, or HTTP on a loopback address for local development) signing
    /// with `secret`.
    pub fn new(url: &str, secret: Secret) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: "HOOKLINE_FORWARD_URL",
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        let loopback = match parsed.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(invalid(
                "must be an https:// URL (http:// only on a loopback address)".into(),
            ));
        }
        if secret.expose().len() < MIN_SECRET_LEN {
            return Err(ConfigError::Invalid {
                name: "HOOKLINE_FORWARD_SECRET",
                reason: format!("must be at least {MIN_SECRET_LEN} characters"),
            });
        }
        Ok(Self {
            url: url.to_owned(),
            secret,
        })
    }

    /// From `HOOKLINE_FORWARD_URL` and `HOOKLINE_FORWARD_SECRET`.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let url = required(env, "HOOKLINE_FORWARD_URL")?;
        let secret = required_secret(env, "HOOKLINE_FORWARD_SECRET", MIN_SECRET_LEN)?;
        Self::new(&url, secret)
    }
}

/// `Hookline-Signature`'s value for `body` sent at `t` (Unix seconds).
pub fn signature(secret: &Secret, t: i64, body: &[u8]) -> String {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the endpoint receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardRequest {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// `tailchat`, `tencent`, `dingtalk`, `tamtam` or `max`.
    pub platform: String,
    /// Stable across redeliveries: deduplicate on it.
    pub event_id: String,
    /// The chat.
    pub chat: ForwardChat,
    /// The sender.
    pub sender: ForwardSender,
    /// Whether the bot was addressed.
    pub addressed: bool,
    /// When it happened (Unix ms).
    pub sent_at_ms: i64,
    /// What happened.
    pub event: ForwardEvent,
}

/// A chat of a [`ForwardRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardChat {
    /// Its id.
    pub id: String,
    /// `group` or `direct`.
    pub kind: String,
}

/// A sender of a [`ForwardRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardSender {
    /// Their id.
    pub id: String,
    /// Their display name, where the platform gives one.
    pub name: Option<String>,
}

/// The event of a [`ForwardRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ForwardEvent {
    /// A message.
    Text {
        /// The text, the bot's mention stripped.
        text: String,
        /// The command, when the text is one.
        command: Option<ForwardCommand>,
    },
    /// A button press.
    Button {
        /// The button's payload.
        payload: String,
    },
    /// A user started the bot.
    Started {
        /// The deep-link payload.
        payload: Option<String>,
    },
    /// The bot was added to the chat.
    Added,
    /// A message the bot cannot read.
    Unsupported {
        /// What it was.
        what: String,
    },
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardCommand {
    /// The name, lowercase, without `/` and `@bot`.
    pub name: String,
    /// The rest of the text.
    pub args: String,
}

impl ForwardRequest {
    /// The request for the event of `cx`.
    pub fn of(cx: &Ctx) -> Self {
        let incoming = cx.incoming();
        let event = match &incoming.kind {
            IncomingKind::Text(text) => ForwardEvent::Text {
                text: text.trim().to_owned(),
                command: cx.command().map(|c| ForwardCommand {
                    name: c.name.clone(),
                    args: c.args.clone(),
                }),
            },
            IncomingKind::Callback(payload) => ForwardEvent::Button {
                payload: payload.clone(),
            },
            IncomingKind::Started(payload) => ForwardEvent::Started {
                payload: payload.clone(),
            },
            IncomingKind::AddedToChat => ForwardEvent::Added,
            IncomingKind::Unsupported(what) => ForwardEvent::Unsupported { what: what.clone() },
        };
        Self {
            version: FORMAT_VERSION,
            platform: incoming.platform.to_string(),
            event_id: incoming.event_id.to_string(),
            chat: ForwardChat {
                id: incoming.chat.to_string(),
                kind: if cx.is_group() { "group" } else { "direct" }.to_owned(),
            },
            sender: ForwardSender {
                id: incoming.sender.to_string(),
                name: incoming.sender_name.clone(),
            },
            addressed: incoming.addressed,
            sent_at_ms: incoming.sent_at_ms,
            event,
        }
    }
}

/// The endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardResponse {
    /// What to send, in order.
    #[serde(default)]
    pub replies: Vec<ForwardReply>,
}

/// One reply of a [`ForwardResponse`].
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ForwardReply {
    /// Plain text.
    Text {
        /// The text.
        text: String,
        /// Name the sender in a group.
        #[serde(default)]
        mention_sender: bool,
    },
    /// Markdown (plain-text fallback where a platform does not render it).
    Markdown {
        /// The markdown.
        markdown: String,
        /// Name the sender in a group.
        #[serde(default)]
        mention_sender: bool,
    },
    /// A question with buttons.
    Choices {
        /// The question.
        text: String,
        /// The buttons.
        choices: Vec<ForwardChoice>,
    },
    /// The acknowledgement of a button press.
    Notification {
        /// The text.
        text: String,
    },
}

/// A button of [`ForwardReply::Choices`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardChoice {
    /// What the user sees.
    pub label: String,
    /// What comes back when pressed.
    pub payload: String,
}

impl From<ForwardReply> for Reply {
    fn from(reply: ForwardReply) -> Self {
        match reply {
            ForwardReply::Text {
                text,
                mention_sender,
            } => {
                let r = Reply::text(text);
                if mention_sender {
                    r.mention_sender()
                } else {
                    r
                }
            }
            ForwardReply::Markdown {
                markdown,
                mention_sender,
            } => {
                let r = Reply::markdown(markdown);
                if mention_sender {
                    r.mention_sender()
                } else {
                    r
                }
            }
            ForwardReply::Choices { text, choices } => Reply::choices(
                text,
                choices.into_iter().map(|c| Choice::new(c.label, c.payload)),
            ),
            ForwardReply::Notification { text } => Reply::notification(text),
        }
    }
}

/// The replies of an endpoint's `2xx` answer: an empty body is no reply; anything else must be
/// a valid [`ForwardResponse`].
pub fn parse_answer(body: &[u8]) -> Result<Vec<Reply>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let response: ForwardResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if response.replies.len() > MAX_REPLIES {
        return Err(format!(
            "{} replies; at most {MAX_REPLIES} are sent",
            response.replies.len()
        ));
    }
    Ok(response.replies.into_iter().map(Reply::from).collect())
}

fn start_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    hookline::model::truncate_bytes(&text, 200).into_owned()
}

#[hookline::async_trait]
impl Bot for ForwardBot {
    async fn handle(&self, cx: Ctx) -> BotResult {
        let body = serde_json::to_vec(&ForwardRequest::of(&cx))
            .map_err(|e| BotError::give_up(format!("cannot encode the event: {e}")))?;
        let t = cx.now_ms().div_euclid(1000);
        let request = cx
            .http()
            .request(reqwest::Method::POST, &self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, t, &body))
            .timeout(FORWARD_TIMEOUT)
            .body(body);
        // Safe: the call posts nothing to the chat, and the endpoint sees the same event id.
        let answer = cx.http().execute(request, Idempotence::Safe).await?;
        let status = answer.status.as_u16();
        match status {
            200..=299 => parse_answer(&answer.body).map_err(|why| {
                tracing::error!(event = %cx.event_id(), %why, "the forward endpoint's answer is not valid (see schemas/forward.schema.json)");
                BotError::give_up(format!("the forward endpoint's answer is not valid: {why}"))
            }),
            429 | 500..=599 => Err(BotError::retry(format!(
                "the forward endpoint answered {status}"
            ))),
            _ => Err(BotError::give_up(format!(
                "the forward endpoint answered {status}: {}",
                start_of(&answer.body)
            ))),
        }
    }
}

/// How long one call to the endpoint may take (the platform webhooks' own limits are 3–5 s for
/// DingTalk and Tencent; a slow bot belongs on a queue).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(8);

#[cfg(test)]
mod tests {
    use hookline::testing::{Message, TestBot};

    use super::*;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef")
    }

    #[test]
    fn the_signature_is_an_hmac_of_the_timestamp_and_the_body() {
        // Computed with Python's hmac: hmac.new(b"0123456789abcdef", b"1700000000.{}", sha256).
        assert_eq!(
            signature(&secret(), 1_700_000_000, b"{}"),
            "t=1700000000,v1=e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e"
        );
    }

    #[test]
    fn urls_must_be_https_or_loopback_and_secrets_long() {
        assert!(ForwardBot::new("https://bot.example/hook", secret()).is_ok());
        assert!(ForwardBot::new("http://127.0.0.1:8080/hook", secret()).is_ok());
        assert!(ForwardBot::new("http://localhost:8080/", secret()).is_ok());
        assert!(ForwardBot::new("http://bot.example/hook", secret()).is_err());
        assert!(ForwardBot::new("not a url", secret()).is_err());
        let short = ForwardBot::new("https://bot.example/", Secret::new("short"));
        assert!(
            short
                .unwrap_err()
                .to_string()
                .contains("HOOKLINE_FORWARD_SECRET")
        );
    }

    #[test]
    fn answers_map_to_replies_and_invalid_ones_say_why() {
        let replies = parse_answer(
            br#"{"replies": [{"type": "text", "text": "hi", "mention_sender": true},
                             {"type": "markdown", "markdown": "**b**"},
                             {"type": "choices", "text": "?", "choices": [{"label": "A", "payload": "a"}]},
                             {"type": "notification", "text": "ok"}]}"#,
        )
        .unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::text("hi").mention_sender(),
                Reply::markdown("**b**"),
                Reply::choices("?", [Choice::new("A", "a")]),
                Reply::notification("ok"),
            ]
        );
        assert_eq!(parse_answer(b"").unwrap(), vec![]);
        assert_eq!(parse_answer(br#"{"replies": []}"#).unwrap(), vec![]);
        let bad = parse_answer(br#"{"replies": [{"type": "photo"}]}"#).unwrap_err();
        assert!(bad.contains("photo"), "{bad}");
        assert!(parse_answer(br#"{"reply": "typo"}"#).is_err());
        assert!(parse_answer(b"<html>").is_err());
    }

    #[tokio::test]
    async fn the_request_carries_the_neutral_event() {
        let t = TestBot::new(hookline::bot::Handlers::new());
        let cx = t.context(
            Message::text("/roll@dice 2d6")
                .from_user("u9", "Ann")
                .with_event_id("ev1")
                .at_ms(5),
        );
        let request = ForwardRequest::of(&cx);
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1, "platform": "tailchat", "event_id": "ev1",
                "chat": {"id": "chat-1", "kind": "group"},
                "sender": {"id": "u9", "name": "Ann"},
                "addressed": true, "sent_at_ms": 5,
                "event": {"type": "text", "text": "/roll@dice 2d6", "command": {"name": "roll", "args": "2d6"}}
            })
        );
    }
}
