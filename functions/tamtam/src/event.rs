//! TamTam Bot API wire types (schema `tamtam-bot-api-schema` 0.3.0 and 0.5.6,
//! <https://github.com/tamtam-chat/tamtam-bot-api-schema>; PLATFORMS.md §4), and MAX's
//! (`max-messenger/api-schema` 0.0.33; PLATFORMS.md §4b.3): one superset, since MAX forked the
//! same `Update` envelope. MAX users carry `first_name`/`last_name` (`name` is deprecated), a
//! message's `body` and `sender` may be missing, and MAX adds `bot_stopped`, `dialog_*`,
//! `comment_*` and `bot_admin_permissions_changed`.
//!
//! Every id, seq and timestamp is `i64` (seqs exceed 2^53 and never go through f64), every
//! nullable field is an `Option` with a default, and an unknown `update_type` decodes to
//! [`Update::Unknown`] instead of failing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A user or bot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct User {
    /// Its id.
    pub user_id: i64,
    /// Display name (TamTam; deprecated on MAX, yet still sent).
    #[serde(default)]
    pub name: String,
    /// First name (MAX).
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name (MAX; may be `""`).
    #[serde(default)]
    pub last_name: Option<String>,
    /// `@username`, if any.
    #[serde(default)]
    pub username: Option<String>,
    /// Whether it is a bot.
    #[serde(default)]
    pub is_bot: bool,
}

impl User {
    /// `first_name` and a non-empty `last_name` (MAX), else `name`.
    pub fn display_name(&self) -> Option<String> {
        let first = self.first_name.as_deref().unwrap_or_default().trim();
        let last = self.last_name.as_deref().unwrap_or_default().trim();
        let full = match (first.is_empty(), last.is_empty()) {
            (false, false) => format!("{first} {last}"),
            (false, true) => first.to_owned(),
            (true, false) => last.to_owned(),
            (true, true) => self.name.trim().to_owned(),
        };
        Some(full).filter(|n| !n.is_empty())
    }
}

/// Where a message was sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Recipient {
    /// The chat (dialogs have one too).
    #[serde(default)]
    pub chat_id: Option<i64>,
    /// `dialog`, `chat` or `channel`.
    #[serde(default)]
    pub chat_type: String,
    /// In a dialog, the other party of the message: for an incoming message, **the bot
    /// itself**. Never a reply's address.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// The channel post a comment belongs to (MAX `comment_*`).
    #[serde(default)]
    pub post_id: Option<String>,
}

/// A message's content.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessageBody {
    /// The message id: the dedup key.
    pub mid: String,
    /// Its sequence number.
    pub seq: i64,
    /// Its text.
    #[serde(default)]
    pub text: Option<String>,
    /// Attachments (`null` allowed).
    #[serde(default)]
    pub attachments: Option<Vec<Value>>,
    /// Formatting (0.5.x).
    #[serde(default)]
    pub markup: Option<Vec<Value>>,
}

/// A message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// The sender (absent for channel posts).
    #[serde(default)]
    pub sender: Option<User>,
    /// Where it was sent.
    pub recipient: Recipient,
    /// When.
    #[serde(default)]
    pub timestamp: i64,
    /// The content (MAX: missing when the message only forwards another).
    #[serde(default)]
    pub body: Option<MessageBody>,
}

/// A button press.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Callback {
    /// When.
    #[serde(default)]
    pub timestamp: i64,
    /// The dedup key, and the id `POST /answers` needs.
    pub callback_id: String,
    /// The pressed button's payload.
    #[serde(default)]
    pub payload: Option<String>,
    /// Who pressed it.
    pub user: User,
}

/// One webhook delivery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "update_type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Update {
    MessageCreated {
        timestamp: i64,
        message: Message,
        #[serde(default)]
        user_locale: Option<String>,
    },
    MessageCallback {
        timestamp: i64,
        callback: Callback,
        #[serde(default)]
        message: Option<Message>,
    },
    MessageEdited {
        timestamp: i64,
        message: Message,
    },
    MessageRemoved {
        timestamp: i64,
        message_id: String,
        #[serde(default)]
        chat_id: Option<i64>,
        #[serde(default)]
        user_id: Option<i64>,
    },
    BotAdded {
        timestamp: i64,
        chat_id: i64,
        /// Who added the bot: no longer sent by MAX from Nov 2026.
        #[serde(default)]
        user: Option<User>,
        /// MAX's duplicate of `user.user_id` (not in any schema).
        #[serde(default)]
        user_id: Option<i64>,
        #[serde(default)]
        is_channel: Option<bool>,
    },
    BotRemoved {
        timestamp: i64,
        chat_id: i64,
        #[serde(default)]
        user: Option<User>,
        #[serde(default)]
        is_channel: Option<bool>,
    },
    UserAdded {
        timestamp: i64,
        chat_id: i64,
        user: User,
        #[serde(default)]
        inviter_id: Option<i64>,
    },
    UserRemoved {
        timestamp: i64,
        chat_id: i64,
        user: User,
        #[serde(default)]
        admin_id: Option<i64>,
    },
    BotStarted {
        timestamp: i64,
        chat_id: i64,
        user: User,
        #[serde(default)]
        payload: Option<String>,
        #[serde(default)]
        user_locale: Option<String>,
    },
    /// MAX: the user stopped (or deleted) the bot.
    BotStopped {
        timestamp: i64,
        chat_id: i64,
        #[serde(default)]
        user: Option<User>,
    },
    /// MAX: the user cleared the dialog.
    DialogCleared {
        timestamp: i64,
        chat_id: i64,
        #[serde(default)]
        user: Option<User>,
    },
    /// MAX: the user deleted the dialog (comes with `bot_stopped`).
    DialogRemoved {
        timestamp: i64,
        chat_id: i64,
        #[serde(default)]
        user: Option<User>,
    },
    /// MAX: the user muted the dialog until `muted_until` (ms).
    DialogMuted {
        timestamp: i64,
        chat_id: i64,
        #[serde(default)]
        user: Option<User>,
        #[serde(default)]
        muted_until: Option<i64>,
    },
    /// MAX: the user unmuted the dialog.
    DialogUnmuted {
        timestamp: i64,
        chat_id: i64,
        #[serde(default)]
        user: Option<User>,
    },
    ChatTitleChanged {
        timestamp: i64,
        chat_id: i64,
        #[serde(default)]
        user: Option<User>,
        #[serde(default)]
        title: String,
    },
    /// MAX: a comment on a channel post (`recipient.post_id`); usually no `sender`.
    CommentCreated {
        timestamp: i64,
        message: Message,
    },
    /// MAX: an edited comment.
    CommentEdited {
        timestamp: i64,
        message: Message,
    },
    /// MAX: a removed comment.
    CommentRemoved {
        timestamp: i64,
        message_id: String,
        #[serde(default)]
        chat_id: Option<i64>,
        #[serde(default)]
        post_id: Option<String>,
    },
    /// MAX: the bot's admin rights in a chat changed.
    BotAdminPermissionsChanged {
        timestamp: i64,
        chat_id: i64,
        #[serde(default)]
        is_admin: Option<bool>,
    },
    MessageConstructionRequest {
        timestamp: i64,
        session_id: String,
    },
    MessageConstructed {
        timestamp: i64,
        session_id: String,
    },
    MessageChatCreated {
        timestamp: i64,
        message_id: String,
        #[serde(default)]
        start_payload: Option<String>,
    },
    /// Any `update_type` this version does not know.
    #[serde(other)]
    Unknown,
}

/// `GET /me`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BotInfo {
    /// The bot's user id.
    pub user_id: i64,
    /// Its name (TamTam; MAX's deprecated `name`).
    #[serde(default)]
    pub name: String,
    /// Its first name (MAX).
    #[serde(default)]
    pub first_name: Option<String>,
    /// Its username.
    #[serde(default)]
    pub username: Option<String>,
}

/// The `{code, message}` error body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_beyond_two_to_the_53_survive_exactly() {
        let json = r#"{"update_type":"message_created","timestamp":1,"message":{"recipient":{"chat_id":-70123456789012,"chat_type":"chat","user_id":null},"body":{"mid":"m","seq":110810024736864877,"text":null,"attachments":null}}}"#;
        let Update::MessageCreated { message, .. } = serde_json::from_str(json).unwrap() else {
            panic!()
        };
        let body = message.body.unwrap();
        assert_eq!(body.seq, 110_810_024_736_864_877);
        assert_eq!(message.recipient.chat_id, Some(-70_123_456_789_012));
        assert_eq!(body.attachments, None);
        assert_eq!(message.sender, None);
    }

    #[test]
    fn unknown_update_types_decode_to_unknown() {
        let update: Update = serde_json::from_str(
            r#"{"update_type":"message_delivered","timestamp":1,"whatever":[1]}"#,
        )
        .unwrap();
        assert_eq!(update, Update::Unknown);
    }
}
