//! The bot author's API: what came in ([`Ctx`]), what to answer ([`Reply`]), what to keep
//! ([`State`]), and how to fail ([`BotError`]). No HTTP request and no AWS type is in sight.
//!
//! A bot is any [`Bot`]: one `handle` method, like serenity's `EventHandler`. Most bots are
//! easier to write with [`Handlers`], which routes by kind and command like grammY's
//! `bot.command` and teloxide's handlers, and writes `/help` from the commands it was given:
//!
//! ```no_run
//! use hookline::bot::{BotError, Ctx, Handlers};
//! use hookline::model::Reply;
//!
//! async fn roll(cx: Ctx) -> Result<Vec<Reply>, BotError> {
//!     let sides: u32 = cx.args().parse().unwrap_or(6);
//!     Ok(vec![Reply::text(format!("You rolled {}", 1 + cx.now_ms() as u32 % sides.max(1)))])
//! }
//!
//! let bot = Handlers::new()
//!     .command("roll", "Roll a die: /roll 20", roll)
//!     .on_text(|cx: Ctx| async move { Ok(vec![Reply::text(format!("You said {}", cx.text()))]) });
//! ```
//!
//! The entry points (`hookline_server::main`, each platform crate's `run`) take the bot as a
//! value; `hookline::testing` runs one without any HTTP.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::http::HttpClient;
use crate::model::{ChatId, ChatKind, EventId, Incoming, IncomingKind, Platform, Reply, UserId};
use crate::store::{SharedStore, StoreError};

mod handlers;
mod state;

pub use handlers::Handlers;
pub use state::{State, UPDATE_TRIES};

/// A bot command: what `/help` lists, what TamTam's command menu shows, and what routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name without the slash (lowercase).
    pub name: String,
    /// One line of help.
    pub description: String,
}

impl Command {
    /// A command.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into().to_lowercase(),
            description: description.into(),
        }
    }
}

/// `/help`'s text for `commands`.
pub fn help_text(commands: &[Command]) -> String {
    let mut out = String::from("Commands:");
    for c in commands {
        out.push_str(&format!("\n/{} - {}", c.name, c.description));
    }
    out
}

/// A command as the user typed it: `/Roll@dice_bot 2d6` is `roll` with args `2d6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandCall {
    /// The name, lowercased, without the slash and the `@botname`.
    pub name: String,
    /// The rest of the text, trimmed.
    pub args: String,
}

impl CommandCall {
    /// Parses `/cmd@botname args`; `None` when the text is not a command.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim_start().strip_prefix('/')?;
        let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let name = word.split('@').next().unwrap_or_default().to_lowercase();
        (!name.is_empty()).then(|| Self {
            name,
            args: args.trim().to_owned(),
        })
    }
}

/// How a bot fails. The pipeline maps each to its retry rule (DESIGN.md).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BotError {
    /// Transient (an API of the bot's was down, the store was unreachable): the event is
    /// released and the platform redelivers it; where no platform would (Tailchat), it is tried
    /// again in-process until the invocation's deadline, then given up and logged.
    #[error("retry later: {0}")]
    Retry(String),
    /// Permanent: the event is marked handled and the reason logged; nothing is sent.
    #[error("gave up: {0}")]
    GiveUp(String),
    /// Send these replies instead (an apology, a usage line); the event is handled.
    #[error("answered instead ({} replies)", .0.len())]
    Answer(Vec<Reply>),
}

impl BotError {
    /// A transient failure.
    pub fn retry(why: impl fmt::Display) -> Self {
        Self::Retry(why.to_string())
    }

    /// A permanent failure.
    pub fn give_up(why: impl fmt::Display) -> Self {
        Self::GiveUp(why.to_string())
    }

    /// Answer with one text instead.
    pub fn answer(text: impl Into<String>) -> Self {
        Self::Answer(vec![Reply::text(text)])
    }
}

impl From<StoreError> for BotError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt { .. } => Self::GiveUp(e.to_string()),
            _ => Self::Retry(e.to_string()),
        }
    }
}

impl From<crate::http::HttpError> for BotError {
    fn from(e: crate::http::HttpError) -> Self {
        Self::Retry(e.to_string())
    }
}

impl From<crate::config::ConfigError> for BotError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::GiveUp(e.to_string())
    }
}

/// What a handler returns.
pub type BotResult = Result<Vec<Reply>, BotError>;

/// A bot.
#[async_trait]
pub trait Bot: Send + Sync + 'static {
    /// Answers one event. A panic here is caught: logged, the event marked handled.
    async fn handle(&self, cx: Ctx) -> BotResult;

    /// The commands the bot understands, for `/help` and TamTam's command menu.
    fn commands(&self) -> Vec<Command> {
        Vec::new()
    }

    /// Whether `incoming` is answered from the queue (deferred mode: the webhook is acknowledged
    /// at once, a worker runs the bot) rather than inside the webhook. For bots that take
    /// seconds (language models, slow APIs); per event, so only the slow commands need pay for
    /// the queue. `HOOKLINE_QUEUE_URL` on Lambda defers every event regardless.
    fn defers(&self, incoming: &crate::model::Incoming) -> bool {
        let _ = incoming;
        false
    }
}

#[async_trait]
impl<B: Bot + ?Sized> Bot for Arc<B> {
    async fn handle(&self, cx: Ctx) -> BotResult {
        (**self).handle(cx).await
    }

    fn commands(&self) -> Vec<Command> {
        (**self).commands()
    }

    fn defers(&self, incoming: &crate::model::Incoming) -> bool {
        (**self).defers(incoming)
    }
}

/// A bot shared by every part of one process.
pub type SharedBot = Arc<dyn Bot>;

/// Everything a bot sees of one event, and its tools. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    incoming: Incoming,
    command: Option<CommandCall>,
    store: SharedStore,
    namespace: String,
    http: HttpClient,
    clock: SharedClock,
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("platform", &self.inner.incoming.platform)
            .field("event", &self.inner.incoming.event_id)
            .field("chat", &self.inner.incoming.chat)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// The context of `incoming` for the bot `bot_key` of its platform.
    pub fn new(
        incoming: Incoming,
        bot_key: &str,
        store: SharedStore,
        http: HttpClient,
        clock: SharedClock,
    ) -> Self {
        let command = match &incoming.kind {
            IncomingKind::Text(t) => CommandCall::parse(t),
            _ => None,
        };
        let namespace = format!("{}#{bot_key}", incoming.platform);
        Self {
            inner: Arc::new(CtxInner {
                incoming,
                command,
                store,
                namespace,
                http,
                clock,
            }),
        }
    }

    /// The neutral event.
    pub fn incoming(&self) -> &Incoming {
        &self.inner.incoming
    }

    /// The platform.
    pub fn platform(&self) -> Platform {
        self.inner.incoming.platform
    }

    /// The event's id (the dedup key): stable across redeliveries.
    pub fn event_id(&self) -> &EventId {
        &self.inner.incoming.event_id
    }

    /// The chat.
    pub fn chat(&self) -> &ChatId {
        &self.inner.incoming.chat
    }

    /// Group or direct chat.
    pub fn chat_kind(&self) -> ChatKind {
        self.inner.incoming.chat_kind
    }

    /// Whether the chat is a group.
    pub fn is_group(&self) -> bool {
        self.chat_kind() == ChatKind::Group
    }

    /// The sender's id.
    pub fn sender(&self) -> &UserId {
        &self.inner.incoming.sender
    }

    /// The sender's display name where the platform gives one, else their id.
    pub fn sender_name(&self) -> &str {
        self.inner
            .incoming
            .sender_name
            .as_deref()
            .unwrap_or(self.inner.incoming.sender.as_str())
    }

    /// Whether the bot was addressed (mentioned, or a direct chat).
    pub fn addressed(&self) -> bool {
        self.inner.incoming.addressed
    }

    /// What happened.
    pub fn kind(&self) -> &IncomingKind {
        &self.inner.incoming.kind
    }

    /// The message text with the bot's mention stripped and trimmed; empty for other events.
    pub fn text(&self) -> &str {
        match &self.inner.incoming.kind {
            IncomingKind::Text(t) => t.trim(),
            _ => "",
        }
    }

    /// The command, when the text is one.
    pub fn command(&self) -> Option<&CommandCall> {
        self.inner.command.as_ref()
    }

    /// The command's arguments (empty when there are none or the text is not a command).
    pub fn args(&self) -> &str {
        self.inner.command.as_ref().map_or("", |c| c.args.as_str())
    }

    /// The payload of the pressed button, for a button press.
    pub fn button(&self) -> Option<&str> {
        match &self.inner.incoming.kind {
            IncomingKind::Callback(p) => Some(p),
            _ => None,
        }
    }

    /// The webhook body as the platform sent it.
    pub fn raw_body(&self) -> &[u8] {
        &self.inner.incoming.raw
    }

    /// The escape hatch: the platform's own payload, parsed into the platform crate's type (or
    /// any serde type, `serde_json::Value` included) for what the neutral model lacks.
    pub fn payload<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, BotError> {
        serde_json::from_slice(&self.inner.incoming.raw)
            .map_err(|e| BotError::give_up(format!("the {} payload: {e}", self.platform())))
    }

    /// State kept per chat (shared by everyone in it).
    pub fn chat_state(&self) -> State {
        self.state_of("chat", self.chat().as_str())
    }

    /// State kept per user (the sender), across chats on this platform.
    pub fn user_state(&self) -> State {
        self.state_of("user", self.sender().as_str())
    }

    fn state_of(&self, scope: &str, id: &str) -> State {
        State::new(
            self.inner.store.clone(),
            self.inner.clock.clone(),
            format!("{}#state#{scope}#{id}", self.inner.namespace),
        )
    }

    /// The shared outbound HTTP client (timeouts, retry rule, the invocation's deadline).
    pub fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// The time (Unix ms) by the pipeline's clock (fixed in tests).
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_bot_names_and_case() {
        assert_eq!(
            CommandCall::parse("/Roll@dice_bot  2d6 "),
            Some(CommandCall {
                name: "roll".into(),
                args: "2d6".into()
            })
        );
        assert_eq!(CommandCall::parse("/"), None);
        assert_eq!(CommandCall::parse("hello /x"), None);
        assert_eq!(CommandCall::parse("/help").unwrap().args, "");
    }

    #[test]
    fn store_errors_are_transient_and_corruption_is_not() {
        let down = BotError::from(StoreError::Unavailable("x".into()));
        assert!(matches!(down, BotError::Retry(_)));
        let corrupt = BotError::from(StoreError::Corrupt {
            key: "k".into(),
            reason: "r".into(),
        });
        assert!(matches!(corrupt, BotError::GiveUp(_)));
    }
}
