//! A test kit for bots: run a bot on a message with no HTTP, an in-memory store and a clock
//! that moves only when told.
//!
//! ```no_run
//! # async fn demo() {
//! use hookline::testing::{Message, TestBot};
//! let t = TestBot::new(hookline::bot::Handlers::new());
//! assert_eq!(t.say("/help").await, "Commands:\n/help - List the commands");
//! let replies = t.send(Message::text("hi").from_user("u2", "Ann").direct()).await;
//! # }
//! ```
//!
//! To run a bot through the real pipeline against the platform emulators, use
//! `hookline_server::testing`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::bot::{Bot, BotResult, Ctx, SharedBot, State};
use crate::clock::{Clock, ManualClock, SharedClock};
use crate::http::HttpClient;
use crate::model::{ChatKind, Incoming, IncomingKind, Platform};
use crate::store::{EmbeddedStore, SharedStore};

/// The fixed time a [`TestBot`] starts at: 2026-01-01T00:00:00Z.
pub const START_MS: i64 = 1_767_225_600_000;

/// A message to give a bot, built with a short builder. Unset fields get defaults: Tailchat,
/// chat `chat-1` (a group), sender `user-1` named "Test User", a fresh event id, the test clock's
/// time.
#[derive(Debug, Clone)]
pub struct Message {
    incoming: Incoming,
    event_id_set: bool,
    time_set: bool,
}

impl Message {
    fn of(kind: IncomingKind) -> Self {
        Self {
            incoming: Incoming {
                platform: Platform::Tailchat,
                event_id: "".into(),
                chat: "chat-1".into(),
                chat_kind: ChatKind::Group,
                sender: "user-1".into(),
                sender_name: Some("Test User".into()),
                addressed: true,
                sent_at_ms: 0,
                kind,
                raw: bytes::Bytes::new(),
            },
            event_id_set: false,
            time_set: false,
        }
    }

    /// A text message (the mention of the bot already stripped, as the platforms deliver it).
    pub fn text(text: &str) -> Self {
        Self::of(IncomingKind::Text(text.to_owned()))
    }

    /// A press of the button carrying `payload`.
    pub fn button(payload: &str) -> Self {
        Self::of(IncomingKind::Callback(payload.to_owned()))
    }

    /// A user started the bot (TamTam `bot_started`), with a deep-link payload.
    pub fn started(payload: Option<&str>) -> Self {
        Self::of(IncomingKind::Started(payload.map(str::to_owned))).direct()
    }

    /// The bot was added to the chat.
    pub fn added_to_chat() -> Self {
        Self::of(IncomingKind::AddedToChat)
    }

    /// A message the bot cannot read (`what`: "picture", "file", …).
    pub fn unsupported(what: &str) -> Self {
        Self::of(IncomingKind::Unsupported(what.to_owned()))
    }

    /// A neutral event as a platform adapter decoded it (see `hookline_server::testing`).
    pub fn from_incoming(incoming: Incoming) -> Self {
        Self {
            incoming,
            event_id_set: true,
            time_set: true,
        }
    }

    /// On `platform`.
    #[must_use]
    pub fn on(mut self, platform: Platform) -> Self {
        self.incoming.platform = platform;
        self
    }

    /// In chat `chat`.
    #[must_use]
    pub fn in_chat(mut self, chat: &str) -> Self {
        self.incoming.chat = chat.into();
        self
    }

    /// In a direct chat with the bot.
    #[must_use]
    pub fn direct(mut self) -> Self {
        self.incoming.chat_kind = ChatKind::Direct;
        self
    }

    /// From user `id` called `name`.
    #[must_use]
    pub fn from_user(mut self, id: &str, name: &str) -> Self {
        self.incoming.sender = id.into();
        self.incoming.sender_name = Some(name.to_owned());
        self
    }

    /// With event id `id` (give two messages the same id to test a redelivery).
    #[must_use]
    pub fn with_event_id(mut self, id: &str) -> Self {
        self.incoming.event_id = id.into();
        self.event_id_set = true;
        self
    }

    /// Sent at `ms` (Unix ms).
    #[must_use]
    pub fn at_ms(mut self, ms: i64) -> Self {
        self.incoming.sent_at_ms = ms;
        self.time_set = true;
        self
    }

    /// With the platform's raw payload, for bots that use [`Ctx::payload`].
    #[must_use]
    pub fn with_raw(mut self, raw: &[u8]) -> Self {
        self.incoming.raw = bytes::Bytes::copy_from_slice(raw);
        self
    }

    /// The neutral event.
    pub fn incoming(&self) -> &Incoming {
        &self.incoming
    }
}

/// A bot under test: an in-memory store and a [`ManualClock`] starting at [`START_MS`].
pub struct TestBot {
    bot: SharedBot,
    store: SharedStore,
    clock: Arc<ManualClock>,
    http: HttpClient,
    sent: AtomicU64,
}

impl std::fmt::Debug for TestBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBot").finish_non_exhaustive()
    }
}

/// The bot key a [`TestBot`] namespaces its state with.
pub const BOT_KEY: &str = "test";

impl TestBot {
    /// A test harness for `bot`.
    ///
    /// # Panics
    /// If the in-memory store or the HTTP client cannot be created (never in practice).
    #[allow(clippy::expect_used)]
    pub fn new(bot: impl Bot) -> Self {
        let clock = Arc::new(ManualClock::new(START_MS));
        let shared: SharedClock = clock.clone();
        let store = EmbeddedStore::in_memory(shared).expect("an in-memory store");
        Self {
            bot: Arc::new(bot),
            store: Arc::new(store),
            clock,
            http: HttpClient::new().expect("an HTTP client"),
            sent: AtomicU64::new(0),
        }
    }

    /// The clock: advance it to test TTLs.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The store the bot's state lives in.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The state of chat `chat` on `platform`, as the bot sees it.
    pub fn chat_state(&self, platform: Platform, chat: &str) -> State {
        let message = Message::text("").on(platform).in_chat(chat);
        Ctx::new(
            message.incoming,
            BOT_KEY,
            self.store.clone(),
            self.http.clone(),
            self.clock.clone(),
        )
        .chat_state()
    }

    /// The context the bot would get for `message`.
    pub fn context(&self, message: Message) -> Ctx {
        let n = self.sent.fetch_add(1, Ordering::SeqCst);
        let mut incoming = message.incoming;
        if !message.event_id_set {
            incoming.event_id = format!("test-event-{n}").into();
        }
        if !message.time_set {
            incoming.sent_at_ms = self.clock.now_ms() + i64::try_from(n).unwrap_or(0);
        }
        Ctx::new(
            incoming,
            BOT_KEY,
            self.store.clone(),
            self.http.clone(),
            self.clock.clone(),
        )
    }

    /// Gives the bot `message`; returns what it answered.
    pub async fn send(&self, message: Message) -> BotResult {
        self.bot.handle(self.context(message)).await
    }

    /// Says `text` in the default chat and returns the one reply as plain text.
    ///
    /// # Panics
    /// If the bot fails or does not answer with exactly one reply.
    #[allow(clippy::panic)]
    pub async fn say(&self, text: &str) -> String {
        match self.send(Message::text(text)).await {
            Ok(replies) if replies.len() == 1 => replies[0].to_plain_text(),
            other => panic!("expected one reply to {text:?}, got {other:?}"),
        }
    }
}
