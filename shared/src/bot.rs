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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::SharedClock;
use crate::http::HttpClient;
use crate::model::{ChatId, ChatKind, EventId, Incoming, IncomingKind, Platform, Reply, UserId};
use crate::store::{Key, SharedStore, StoreError};

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
}

#[async_trait]
impl<B: Bot + ?Sized> Bot for Arc<B> {
    async fn handle(&self, cx: Ctx) -> BotResult {
        (**self).handle(cx).await
    }

    fn commands(&self) -> Vec<Command> {
        (**self).commands()
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
        State {
            store: self.inner.store.clone(),
            clock: self.inner.clock.clone(),
            pk: format!("{}#state#{scope}#{id}", self.inner.namespace),
        }
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

/// The most tries of one [`State::update`] under contention.
pub const UPDATE_TRIES: usize = 32;

/// Typed key/value state of one chat or one user, on the pipeline's store (DynamoDB or the
/// embedded file). Values are JSON; every operation is strongly consistent; a TTL makes an item
/// disappear for every operation once it passes.
#[derive(Clone)]
pub struct State {
    store: SharedStore,
    clock: SharedClock,
    pk: String,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State").field("pk", &self.pk).finish()
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, BotError> {
    serde_json::to_string(value).map_err(|e| BotError::give_up(format!("cannot encode: {e}")))
}

impl State {
    /// A state scope on `store` under partition `pk` (for tests and tools; bots use
    /// [`Ctx::chat_state`] and [`Ctx::user_state`]).
    pub fn new(store: SharedStore, clock: SharedClock, pk: impl Into<String>) -> Self {
        Self {
            store,
            clock,
            pk: pk.into(),
        }
    }

    fn key(&self, key: &str) -> Key {
        Key::new(&self.pk, key)
    }

    fn expiry(&self, ttl: Option<Duration>) -> Option<i64> {
        ttl.map(|t| self.clock.now_s() + i64::try_from(t.as_secs().max(1)).unwrap_or(i64::MAX / 2))
    }

    fn decode<T: DeserializeOwned>(&self, key: &str, raw: &str) -> Result<T, BotError> {
        serde_json::from_str(raw).map_err(|e| {
            BotError::give_up(format!("state {key} does not hold the expected type: {e}"))
        })
    }

    /// The value at `key`, unless absent or expired.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, BotError> {
        match self.store.get(&self.key(key)).await? {
            Some(item) => self.decode(key, &item.value).map(Some),
            None => Ok(None),
        }
    }

    /// Writes `value` at `key` (overwriting), expiring after `ttl` when given.
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), BotError> {
        let raw = encode(value)?;
        Ok(self
            .store
            .put(&self.key(key), &raw, self.expiry(ttl))
            .await?)
    }

    /// Writes `value` only if `key` holds nothing; returns whether this call wrote it (of racing
    /// callers, exactly one).
    pub async fn put_if_absent<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, BotError> {
        let raw = encode(value)?;
        Ok(self
            .store
            .put_if_absent(&self.key(key), &raw, self.expiry(ttl))
            .await?)
    }

    /// Writes `new` only if `key` holds `expected` (`None`: nothing); returns whether it did.
    pub async fn compare_and_set<T: Serialize>(
        &self,
        key: &str,
        expected: Option<&T>,
        new: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, BotError> {
        let expected = expected.map(encode).transpose()?;
        let raw = encode(new)?;
        Ok(self
            .store
            .compare_and_set(&self.key(key), expected.as_deref(), &raw, self.expiry(ttl))
            .await?)
    }

    /// Reads, changes and writes `key` atomically (compare-and-set, tried again when another
    /// writer got there first): `f` gets the current value (`None` when absent) and returns the
    /// new one. Returns the value written.
    pub async fn update<T, F>(&self, key: &str, ttl: Option<Duration>, f: F) -> Result<T, BotError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(Option<T>) -> T + Send,
    {
        let k = self.key(key);
        for _ in 0..UPDATE_TRIES {
            let current = self.store.get(&k).await?.map(|item| item.value);
            let value = match &current {
                Some(raw) => Some(self.decode::<T>(key, raw)?),
                None => None,
            };
            let new = f(value);
            let raw = encode(&new)?;
            if self
                .store
                .compare_and_set(&k, current.as_deref(), &raw, self.expiry(ttl))
                .await?
            {
                return Ok(new);
            }
        }
        Err(BotError::retry(format!(
            "state {key}: still contended after {UPDATE_TRIES} tries"
        )))
    }

    /// Adds `by` to the integer at `key` (absent counts as 0) atomically; returns the new value.
    pub async fn increment(
        &self,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, BotError> {
        self.update(key, ttl, |n: Option<i64>| n.unwrap_or(0).saturating_add(by))
            .await
    }

    /// Deletes `key`; deleting nothing is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BotError> {
        Ok(self.store.delete(&self.key(key)).await?)
    }

    /// Every live `(key, value)` whose key starts with `prefix`, in ascending key order.
    pub async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, BotError> {
        let items = self.store.query_prefix(&self.pk, prefix).await?;
        items
            .into_iter()
            .map(|(key, item)| {
                let value = self.decode(&key, &item.value)?;
                Ok((key, value))
            })
            .collect()
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = BotResult> + Send>>;
type Handler = Arc<dyn Fn(Ctx) -> BoxFuture + Send + Sync>;

fn boxed<F, Fut>(f: F) -> Handler
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BotResult> + Send + 'static,
{
    Arc::new(move |cx| Box::pin(f(cx)))
}

/// A bot built from handlers: commands declared once (name, description, handler) drive
/// routing, `/help` and TamTam's command menu.
///
/// Routing: a command goes to its handler (`/help` and `/start` to the generated help unless
/// declared; an unknown command gets a pointer to `/help`); other text to [`Handlers::on_text`];
/// a button press to [`Handlers::on_button`]; "started" and "added to chat" to
/// [`Handlers::on_start`] (default: a greeting naming `/help`); a picture or file to
/// [`Handlers::on_unsupported`]. An event without a handler gets no answer.
#[derive(Clone, Default)]
pub struct Handlers {
    commands: Vec<(Command, Handler)>,
    text: Option<Handler>,
    button: Option<Handler>,
    start: Option<Handler>,
    unsupported: Option<Handler>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.commands.iter().map(|(c, _)| c.name.as_str()).collect();
        f.debug_struct("Handlers")
            .field("commands", &names)
            .finish_non_exhaustive()
    }
}

impl Handlers {
    /// No handlers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `/name`: its line in `/help` and the handler it routes to.
    #[must_use]
    pub fn command<F, Fut>(mut self, name: &str, description: &str, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.commands
            .push((Command::new(name, description), boxed(handler)));
        self
    }

    /// Handles text that is not a command.
    #[must_use]
    pub fn on_text<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.text = Some(boxed(handler));
        self
    }

    /// Handles button presses ([`Ctx::button`] is the payload).
    #[must_use]
    pub fn on_button<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.button = Some(boxed(handler));
        self
    }

    /// Handles "a user started the bot" and "the bot was added to a chat".
    #[must_use]
    pub fn on_start<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.start = Some(boxed(handler));
        self
    }

    /// Handles messages the bot cannot read (pictures, files, voice).
    #[must_use]
    pub fn on_unsupported<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotResult> + Send + 'static,
    {
        self.unsupported = Some(boxed(handler));
        self
    }

    fn declared(&self, name: &str) -> Option<&Handler> {
        self.commands
            .iter()
            .find(|(c, _)| c.name == name)
            .map(|(_, h)| h)
    }

    /// `/help`'s text: every declared command, `/help` first unless declared.
    pub fn help(&self) -> String {
        help_text(&self.commands())
    }
}

#[async_trait]
impl Bot for Handlers {
    async fn handle(&self, cx: Ctx) -> BotResult {
        let handler = match cx.kind() {
            IncomingKind::Text(_) => match cx.command() {
                Some(call) => match self.declared(&call.name) {
                    Some(h) => Some(h),
                    None if matches!(call.name.as_str(), "help" | "start") => {
                        return Ok(vec![Reply::text(self.help())]);
                    }
                    None => {
                        return Ok(vec![Reply::text(format!(
                            "Unknown command /{}. Send /help for the list.",
                            call.name
                        ))]);
                    }
                },
                None => self.text.as_ref(),
            },
            IncomingKind::Callback(_) => self.button.as_ref(),
            IncomingKind::Started(_) | IncomingKind::AddedToChat => match &self.start {
                Some(h) => Some(h),
                None => {
                    return Ok(vec![Reply::text("Hello! Send /help to see what I can do.")]);
                }
            },
            IncomingKind::Unsupported(_) => self.unsupported.as_ref(),
        };
        match handler {
            Some(h) => h(cx).await,
            None => Ok(Vec::new()),
        }
    }

    fn commands(&self) -> Vec<Command> {
        let mut out = Vec::with_capacity(self.commands.len() + 1);
        if self.declared("help").is_none() {
            out.push(Command::new("help", "List the commands"));
        }
        out.extend(self.commands.iter().map(|(c, _)| c.clone()));
        out
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
    fn help_lists_declared_commands_once() {
        let bot = Handlers::new()
            .command("roll", "Roll dice", |_| async { Ok(vec![]) })
            .command("flip", "Flip a coin", |_| async { Ok(vec![]) });
        assert_eq!(
            bot.help(),
            "Commands:\n/help - List the commands\n/roll - Roll dice\n/flip - Flip a coin"
        );
        assert_eq!(bot.commands().len(), 3);
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
