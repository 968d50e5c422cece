//! TamTam Bot API wire types (schema `tamtam-bot-api-schema` 0.3.0 and 0.5.6,
//! <https://github.com/tamtam-chat/tamtam-bot-api-schema>; PLATFORMS.md §4).
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
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// `@username`, if any.
    #[serde(default)]
    pub username: Option<String>,
    /// Whether it is a bot.
    #[serde(default)]
    pub is_bot: bool,
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
    /// The user of a dialog.
    #[serde(default)]
    pub user_id: Option<i64>,
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
    /// The content.
    pub body: MessageBody,
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
        user: User,
        #[serde(default)]
        is_channel: Option<bool>,
    },
    BotRemoved {
        timestamp: i64,
        chat_id: i64,
        user: User,
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
    },
    ChatTitleChanged {
        timestamp: i64,
        chat_id: i64,
        user: User,
        #[serde(default)]
        title: String,
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
    /// Its name.
    #[serde(default)]
    pub name: String,
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
        assert_eq!(message.body.seq, 110_810_024_736_864_877);
        assert_eq!(message.recipient.chat_id, Some(-70_123_456_789_012));
        assert_eq!(message.body.attachments, None);
        assert_eq!(message.sender, None);
    }

    #[test]
    fn unknown_update_types_decode_to_unknown() {
        let update: Update =
            serde_json::from_str(r#"{"update_type":"dialog_muted","timestamp":1,"whatever":[1]}"#)
                .unwrap();
        assert_eq!(update, Update::Unknown);
    }
}
