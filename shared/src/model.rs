//! The platform-neutral model: what came in, what the bot answers.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Tailchat open-platform bots.
    Tailchat,
    /// Tencent Cloud Chat (IM) chatbots.
    Tencent,
    /// DingTalk robots.
    DingTalk,
    /// TamTam bots (closed by VK on 27 Feb 2026; kept for compatibility).
    TamTam,
    /// MAX bots (VK's successor of TamTam: the same Bot API, another dialect).
    Max,
}

impl Platform {
    /// The lowercase name used in routes, store keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tailchat => "tailchat",
            Self::Tencent => "tencent",
            Self::DingTalk => "dingtalk",
            Self::TamTam => "tamtam",
            Self::Max => "max",
        }
    }

    /// Whether [`Body::Choices`] become buttons whose press comes back as a button press
    /// ([`IncomingKind::Callback`]): TamTam and MAX. DingTalk's card buttons post their label as a
    /// new message; Tailchat and Tencent show a numbered list.
    pub fn has_callback_buttons(self) -> bool {
        matches!(self, Self::TamTam | Self::Max)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! id_newtype {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    )*};
}

id_newtype!(
    /// A conversation: a group channel, a DM, a chat.
    ChatId,
    /// A user (or bot) on the platform.
    UserId,
    /// The platform's id of one delivery's event: the idempotency key.
    EventId,
);

/// Whether a chat is a group or a direct (one-to-one) chat with the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    /// A group, channel or community topic: several people.
    Group,
    /// A one-to-one chat with the bot.
    Direct,
}

/// One event the bot should answer, in platform-neutral form. Serializable, so that a claimed
/// event can wait on a queue (deferred mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incoming {
    /// Where it came from.
    pub platform: Platform,
    /// The dedup key (message id, callback id, …).
    pub event_id: EventId,
    /// The conversation to answer in.
    pub chat: ChatId,
    /// Group or direct chat.
    pub chat_kind: ChatKind,
    /// Who triggered it.
    pub sender: UserId,
    /// The sender's display name, where the platform sends one (DingTalk, TamTam).
    pub sender_name: Option<String>,
    /// Whether the bot was addressed: mentioned, answered in a direct chat, a button of its own
    /// pressed. Every platform today delivers only such events, so this is `true` unless a
    /// platform delivers a group's every message.
    pub addressed: bool,
    /// When the platform says it happened (Unix ms); also orders the bot's notes.
    pub sent_at_ms: i64,
    /// What happened.
    pub kind: IncomingKind,
    /// The webhook body exactly as received: the escape hatch to the platform's own payload
    /// (see `Ctx::payload`). Cheap to clone. Queued as text: every platform posts JSON.
    #[serde(with = "raw_text")]
    pub raw: bytes::Bytes,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncomingKind {
    /// A text message addressed to the bot, with the mention of the bot already stripped.
    Text(String),
    /// A button press carrying the button's payload.
    Callback(String),
    /// A user opened a dialog with the bot (TamTam `bot_started`), with the deep-link payload.
    Started(Option<String>),
    /// The bot was added to a chat.
    AddedToChat,
    /// A message the bot cannot read (a picture, a file); names what it was.
    Unsupported(String),
}

/// One thing the bot wants to say: a [`Body`], and whether to name the sender.
///
/// What a platform cannot show degrades the same way every time (the README's table): markdown
/// becomes [`markdown_to_plain`] text, choices a numbered list, a notification a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What to say.
    pub body: Body,
    /// Name the sender in a group chat. Tailchat, Tencent groups and DingTalk groups always
    /// do (their reply recipes mention the asker); on TamTam this adds `@username` (or the
    /// display name) in front. Direct chats never need it.
    pub mention_sender: bool,
}

/// The content of a [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Plain text.
    Text(String),
    /// Markdown (`**bold**`, `*italic*`, `` `code` ``, `[text](url)`, `# heading`): rendered
    /// on TamTam and DingTalk, sent as [`markdown_to_plain`] text elsewhere.
    Markdown(String),
    /// A question with choices: buttons where the platform has them, text elsewhere.
    Choices {
        /// The question.
        text: String,
        /// The choices, in order.
        choices: Vec<Choice>,
    },
    /// A short acknowledgement of a button press (TamTam's callback notification); a message
    /// elsewhere.
    Notification(String),
}

/// One choice of a [`Body::Choices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// What the user sees.
    pub label: String,
    /// What comes back when it is chosen.
    pub payload: String,
}

impl Choice {
    /// A choice.
    pub fn new(label: impl Into<String>, payload: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            payload: payload.into(),
        }
    }
}

impl From<Body> for Reply {
    fn from(body: Body) -> Self {
        Self {
            body,
            mention_sender: false,
        }
    }
}

/// `text` cut to at most `max_bytes` bytes of UTF-8 on a character boundary, ending in `…`
/// when anything was cut, so that a platform's size limit never refuses a whole reply.
pub fn truncate_bytes(text: &str, max_bytes: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max_bytes {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max_bytes.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

impl Reply {
    /// Plain text.
    pub fn text(text: impl Into<String>) -> Self {
        Body::Text(text.into()).into()
    }

    /// Markdown, with the plain-text fallback of [`markdown_to_plain`].
    pub fn markdown(markdown: impl Into<String>) -> Self {
        Body::Markdown(markdown.into()).into()
    }

    /// A question with choices.
    pub fn choices(text: impl Into<String>, choices: impl IntoIterator<Item = Choice>) -> Self {
        Body::Choices {
            text: text.into(),
            choices: choices.into_iter().collect(),
        }
        .into()
    }

    /// A short acknowledgement of a button press.
    pub fn notification(text: impl Into<String>) -> Self {
        Body::Notification(text.into()).into()
    }

    /// The same reply, naming the sender in a group chat.
    #[must_use]
    pub fn mention_sender(mut self) -> Self {
        self.mention_sender = true;
        self
    }

    /// The reply as plain text, for platforms without buttons or markdown: markdown through
    /// [`markdown_to_plain`], choices as a numbered list.
    pub fn to_plain_text(&self) -> String {
        match &self.body {
            Body::Text(t) | Body::Notification(t) => t.clone(),
            Body::Markdown(m) => markdown_to_plain(m),
            Body::Choices { text, choices } => {
                let mut out = text.clone();
                for (i, c) in choices.iter().enumerate() {
                    out.push_str(&format!("\n{}. {}", i + 1, c.label));
                }
                out
            }
        }
    }
}

/// The plain-text fallback of markdown, the same on every platform: emphasis markers (`**`,
/// `__`, `*`, `~~`, `` ` ``, and `_` around a word) and heading or quote markers at line starts
/// are dropped, a link `[text](url)` becomes `text (url)`, code-fence lines are dropped (their
/// content kept), and everything else is kept as written.
pub fn markdown_to_plain(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut first = true;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            continue;
        }
        if !first {
            out.push('\n');
        }
        first = false;
        let trimmed = line.trim_start();
        let line = if let Some(heading) = trimmed.strip_prefix('#') {
            heading.trim_start_matches('#').trim_start()
        } else if let Some(quote) = trimmed.strip_prefix('>') {
            quote.trim_start()
        } else {
            line
        };
        inline_plain(line, &mut out);
    }
    out
}

fn inline_plain(line: &str, out: &mut String) {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '[' => {
                // [text](url) → text (url)
                let rest: String = chars[i..].iter().collect();
                if let Some(close) = rest.find("](")
                    && let Some(end) = rest[close..].find(')')
                {
                    let text = &rest[1..close];
                    let url = &rest[close + 2..close + end];
                    inline_plain(text, out);
                    if !url.is_empty() && url != text {
                        out.push_str(&format!(" ({url})"));
                    }
                    i += rest[..close + end + 1].chars().count();
                    continue;
                }
                out.push('[');
            }
            '*' | '~' | '`' => {}
            '_' => {
                let before = i.checked_sub(1).map(|j| chars[j]);
                let after = chars.get(i + 1).copied();
                let inside_word = before.is_some_and(char::is_alphanumeric)
                    && after.is_some_and(char::is_alphanumeric);
                if inside_word {
                    out.push('_');
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
}

/// An event decoded together with what the platform adapter needs to answer it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inbound<C> {
    /// The neutral event the bot sees.
    pub incoming: Incoming,
    /// Platform-specific reply context (ids to quote, webhooks to answer through, …).
    pub context: C,
}

/// A webhook body as a JSON string (the bodies are JSON, hence UTF-8; anything else is kept
/// lossily rather than failing the event).
mod raw_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(raw: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(raw))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        Ok(bytes::Bytes::from(String::deserialize(d)?))
    }
}

/// The outcome of decoding one webhook request.
#[derive(Debug)]
pub enum Decoded<T> {
    /// An event for the bot.
    Event(T),
    /// Deliberately not answered (unknown type, not for us, our own message); acknowledged 200.
    Ignored(Cow<'static, str>),
}

impl<C> Decoded<Inbound<C>> {
    /// The neutral event, or `None` when ignored.
    pub fn into_incoming(self) -> Option<Incoming> {
        match self {
            Self::Event(inbound) => Some(inbound.incoming),
            Self::Ignored(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole_and_marks_the_cut() {
        assert_eq!(truncate_bytes("short", 10), "short");
        let text = "好".repeat(10);
        let cut = truncate_bytes(&text, 10);
        assert!(cut.len() <= 10 && cut.ends_with('…'), "{cut}");
        assert_eq!(cut, "好好…");
    }

    #[test]
    fn choices_render_as_numbered_text() {
        let reply = Reply::choices(
            "Pick one:",
            [
                Choice::new("Yes", "choice:yes"),
                Choice::new("No", "choice:no"),
            ],
        );
        assert_eq!(reply.to_plain_text(), "Pick one:\n1. Yes\n2. No");
    }

    #[test]
    fn markdown_falls_back_to_predictable_plain_text() {
        let md = "# Weather\n**Sunny**, *warm* and `dry`\n> see [the forecast](https://x.test/f)\n```\nsnake_case stays\n```\n__done__ ~~not~~";
        assert_eq!(
            markdown_to_plain(md),
            "Weather\nSunny, warm and dry\nsee the forecast (https://x.test/f)\nsnake_case stays\ndone not"
        );
        assert_eq!(Reply::markdown("[a](a)").to_plain_text(), "a");
        assert_eq!(markdown_to_plain("[unclosed"), "[unclosed");
    }

    #[test]
    fn ids_serialize_as_bare_strings() {
        assert_eq!(
            serde_json::to_string(&ChatId::from("c1")).unwrap(),
            "\"c1\""
        );
        assert_eq!(
            serde_json::to_string(&Platform::DingTalk).unwrap(),
            "\"dingtalk\""
        );
    }
}
