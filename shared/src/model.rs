//! The platform-neutral model: what came in, what the bot answers.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The four platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Tailchat open-platform bots.
    Tailchat,
    /// Tencent Cloud Chat (IM) chatbots.
    Tencent,
    /// DingTalk robots.
    DingTalk,
    /// TamTam bots.
    TamTam,
}

impl Platform {
    /// The lowercase name used in routes, store keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tailchat => "tailchat",
            Self::Tencent => "tencent",
            Self::DingTalk => "dingtalk",
            Self::TamTam => "tamtam",
        }
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

/// One event the bot should answer, in platform-neutral form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Where it came from.
    pub platform: Platform,
    /// The dedup key (message id, callback id, …).
    pub event_id: EventId,
    /// The conversation to answer in.
    pub chat: ChatId,
    /// Who triggered it.
    pub sender: UserId,
    /// When the platform says it happened (Unix ms); also orders the bot's notes.
    pub sent_at_ms: i64,
    /// What happened.
    pub kind: IncomingKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// One thing the bot wants to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Plain text.
    Text(String),
    /// A question with choices: buttons where the platform has them, text elsewhere.
    Choices {
        /// The question.
        text: String,
        /// The choices, in order.
        choices: Vec<Choice>,
    },
    /// A short acknowledgement of a button press (TamTam `/answers` notification).
    Notification(String),
}

/// One choice of a [`Reply::Choices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// What the user sees.
    pub label: String,
    /// What comes back when it is chosen.
    pub payload: String,
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
    /// The reply as plain text, for platforms without buttons.
    pub fn to_plain_text(&self) -> String {
        match self {
            Self::Text(t) | Self::Notification(t) => t.clone(),
            Self::Choices { text, choices } => {
                let mut out = text.clone();
                for (i, c) in choices.iter().enumerate() {
                    out.push_str(&format!("\n{}. {}", i + 1, c.label));
                }
                out
            }
        }
    }
}

/// An event decoded together with what the platform adapter needs to answer it.
#[derive(Debug, Clone)]
pub struct Inbound<C> {
    /// The neutral event the bot sees.
    pub incoming: Incoming,
    /// Platform-specific reply context (ids to quote, webhooks to answer through, …).
    pub context: C,
}

/// The outcome of decoding one webhook request.
#[derive(Debug)]
pub enum Decoded<T> {
    /// An event for the bot.
    Event(T),
    /// Deliberately not answered (unknown type, not for us, our own message); acknowledged 200.
    Ignored(Cow<'static, str>),
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
        let reply = Reply::Choices {
            text: "Pick one:".into(),
            choices: vec![
                Choice {
                    label: "Yes".into(),
                    payload: "choice:yes".into(),
                },
                Choice {
                    label: "No".into(),
                    payload: "choice:no".into(),
                },
            ],
        };
        assert_eq!(reply.to_plain_text(), "Pick one:\n1. Yes\n2. No");
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
