//! Update → neutral event (PLATFORMS.md §4.3, §4.6, §4.8; MAX §4b.3, §4b.7, §4b.9). The two
//! dialects decide the same way; only the platform named in the event differs.

use std::borrow::Cow;

use hookline::model::{ChatKind, Decoded, Inbound, Incoming, IncomingKind};

use crate::Dialect;
use crate::event::{BotInfo, MessageBody, Update};

/// What `send` needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TamTamContext {
    /// The chat to post to.
    pub chat_id: Option<i64>,
    /// The user to post to when there is no chat id (`?user_id=`): always the *sender* of the
    /// message, never `recipient.user_id` (in a dialog that is the bot itself).
    #[serde(default)]
    pub user_id: Option<i64>,
    /// The message a reply links to (`link: {type: reply, mid}`).
    pub reply_to: Option<String>,
    /// The button press to answer through `POST /answers`.
    pub callback_id: Option<String>,
    /// The sender's `@username`, for a reply that mentions them.
    pub sender_username: Option<String>,
}

type Decision = Decoded<Inbound<TamTamContext>>;

fn ignored(why: &'static str) -> Decision {
    Decoded::Ignored(Cow::Borrowed(why))
}

/// Whether a message in a group chat is addressed to the bot: a mention of its username or id,
/// or a command. (In a dialog every message is.)
fn addressed_to_bot(body: &MessageBody, me: &BotInfo) -> bool {
    let text = body.text.as_deref().unwrap_or_default();
    if text.trim_start().starts_with('/') {
        return true;
    }
    let username = me.username.as_deref().unwrap_or_default();
    let mentioned = body.markup.iter().flatten().any(|m| {
        m["type"] == "user_mention"
            && ((!username.is_empty()
                && m["user_link"]
                    .as_str()
                    .is_some_and(|l| l.trim_start_matches('@').eq_ignore_ascii_case(username)))
                || m["user_id"].as_i64() == Some(me.user_id))
    });
    mentioned
        || (!username.is_empty()
            && text
                .to_lowercase()
                .contains(&format!("@{}", username.to_lowercase())))
}

/// Removes a leading `@username` of the bot.
fn strip_own_mention(text: &str, me: &BotInfo) -> String {
    let trimmed = text.trim();
    if let Some(username) = me.username.as_deref().filter(|u| !u.is_empty()) {
        let mention = format!("@{username}");
        if trimmed.len() >= mention.len()
            && trimmed.is_char_boundary(mention.len())
            && trimmed[..mention.len()].eq_ignore_ascii_case(&mention)
        {
            return trimmed[mention.len()..].trim_start().to_owned();
        }
    }
    trimmed.to_owned()
}

fn attachment_kind(body: &MessageBody) -> Option<String> {
    let first = body.attachments.as_ref()?.first()?;
    let kind = first["type"].as_str().unwrap_or("attachment");
    Some(match kind {
        "image" => "picture".to_owned(),
        "audio" => "voice message".to_owned(),
        other => other.to_owned(),
    })
}

/// Whether decoding this update needs the bot's own identity (`GET /me`).
pub(crate) fn needs_me(update: &Update) -> bool {
    matches!(update, Update::MessageCreated { .. })
}

fn new_context(chat_id: i64, username: Option<String>) -> TamTamContext {
    TamTamContext {
        chat_id: Some(chat_id),
        user_id: None,
        reply_to: None,
        callback_id: None,
        sender_username: username,
    }
}

/// Decides what to do with an update. `me` must be given for `message_created`.
pub(crate) fn decode_update(dialect: Dialect, update: Update, me: Option<&BotInfo>) -> Decision {
    let platform = dialect.platform();
    match update {
        Update::MessageCreated {
            timestamp, message, ..
        } => {
            let Some(me) = me else {
                return ignored("bot identity unknown");
            };
            let Some(sender) = message.sender.clone() else {
                return ignored("channel post");
            };
            if sender.is_bot || sender.user_id == me.user_id {
                return ignored("a bot's message");
            }
            let dialog = message.recipient.chat_type == "dialog";
            let body = message.body.clone().unwrap_or_else(|| MessageBody {
                mid: String::new(),
                seq: 0,
                text: None,
                attachments: None,
                markup: None,
            });
            if message.recipient.chat_type == "channel" || (!dialog && !addressed_to_bot(&body, me))
            {
                return ignored("group message not addressed to the bot");
            }
            let text = strip_own_mention(body.text.as_deref().unwrap_or_default(), me);
            let kind = match attachment_kind(&body) {
                Some(what) if text.is_empty() => IncomingKind::Unsupported(what),
                _ if message.body.is_none() => {
                    IncomingKind::Unsupported("forwarded message".into())
                }
                _ => IncomingKind::Text(text),
            };
            // The chat, or (a dialog without one) the sender: `recipient.user_id` is the bot.
            let chat_id = message.recipient.chat_id;
            let user_id = chat_id.is_none().then_some(sender.user_id);
            let event_id = if body.mid.is_empty() {
                format!(
                    "msg#{}#{}#{}",
                    chat_id.unwrap_or_default(),
                    sender.user_id,
                    message.timestamp.max(timestamp)
                )
            } else {
                format!("mid#{}", body.mid)
            };
            let incoming = Incoming {
                platform,
                event_id: event_id.into(),
                chat: chat_id
                    .map_or_else(|| format!("user#{}", sender.user_id), |c| c.to_string())
                    .into(),
                chat_kind: if dialog {
                    ChatKind::Direct
                } else {
                    ChatKind::Group
                },
                sender: sender.user_id.to_string().into(),
                sender_name: sender.display_name(),
                addressed: true,
                raw: Default::default(),
                sent_at_ms: if message.timestamp > 0 {
                    message.timestamp
                } else {
                    timestamp
                },
                kind,
            };
            let context = TamTamContext {
                chat_id,
                user_id,
                reply_to: Some(body.mid).filter(|m| !m.is_empty()),
                callback_id: None,
                sender_username: sender.username,
            };
            Decoded::Event(Inbound { incoming, context })
        }
        Update::MessageCallback {
            timestamp,
            callback,
            message,
        } => {
            let chat_id = message.as_ref().and_then(|m| m.recipient.chat_id);
            let dialog = message
                .as_ref()
                .is_none_or(|m| m.recipient.chat_type == "dialog");
            let incoming = Incoming {
                platform,
                event_id: format!("cb#{}", callback.callback_id).into(),
                chat: chat_id
                    .map_or_else(
                        || format!("user#{}", callback.user.user_id),
                        |c| c.to_string(),
                    )
                    .into(),
                chat_kind: if dialog {
                    ChatKind::Direct
                } else {
                    ChatKind::Group
                },
                sender: callback.user.user_id.to_string().into(),
                sender_name: callback.user.display_name(),
                addressed: true,
                raw: Default::default(),
                sent_at_ms: timestamp,
                kind: IncomingKind::Callback(callback.payload.unwrap_or_default()),
            };
            let context = TamTamContext {
                chat_id,
                // The presser, for a message when the keyboard's message is gone.
                user_id: chat_id.is_none().then_some(callback.user.user_id),
                reply_to: None,
                callback_id: Some(callback.callback_id),
                sender_username: callback.user.username,
            };
            Decoded::Event(Inbound { incoming, context })
        }
        Update::BotStarted {
            timestamp,
            chat_id,
            user,
            payload,
            ..
        } => {
            let incoming = Incoming {
                platform,
                event_id: format!("started#{chat_id}#{}#{timestamp}", user.user_id).into(),
                chat: chat_id.to_string().into(),
                // bot_started comes from a dialog.
                chat_kind: ChatKind::Direct,
                sender: user.user_id.to_string().into(),
                sender_name: user.display_name(),
                addressed: true,
                raw: Default::default(),
                sent_at_ms: timestamp,
                kind: IncomingKind::Started(payload),
            };
            Decoded::Event(Inbound {
                incoming,
                context: new_context(chat_id, user.username),
            })
        }
        Update::BotAdded {
            timestamp,
            chat_id,
            user,
            user_id,
            is_channel,
        } => {
            if is_channel == Some(true) {
                return ignored("added to a channel");
            }
            // MAX stopped sending who added the bot in Nov 2026.
            let adder = user.as_ref().map(|u| u.user_id).or(user_id);
            let sender = adder.map_or_else(|| format!("chat#{chat_id}"), |id| id.to_string());
            let incoming = Incoming {
                platform,
                event_id: format!("added#{chat_id}#{sender}#{timestamp}").into(),
                chat: chat_id.to_string().into(),
                chat_kind: ChatKind::Group,
                sender: sender.into(),
                sender_name: user.as_ref().and_then(crate::event::User::display_name),
                addressed: true,
                raw: Default::default(),
                sent_at_ms: timestamp,
                kind: IncomingKind::AddedToChat,
            };
            Decoded::Event(Inbound {
                incoming,
                context: new_context(chat_id, user.and_then(|u| u.username)),
            })
        }
        Update::MessageEdited { .. } => ignored("message_edited"),
        Update::MessageRemoved { .. } => ignored("message_removed"),
        Update::BotRemoved { .. } => ignored("bot_removed"),
        Update::UserAdded { .. } => ignored("user_added"),
        Update::UserRemoved { .. } => ignored("user_removed"),
        Update::ChatTitleChanged { .. } => ignored("chat_title_changed"),
        Update::BotStopped { .. } => ignored("bot_stopped"),
        Update::DialogCleared { .. } => ignored("dialog_cleared"),
        Update::DialogRemoved { .. } => ignored("dialog_removed"),
        Update::DialogMuted { .. } => ignored("dialog_muted"),
        Update::DialogUnmuted { .. } => ignored("dialog_unmuted"),
        Update::CommentCreated { .. } => ignored("comment_created"),
        Update::CommentEdited { .. } => ignored("comment_edited"),
        Update::CommentRemoved { .. } => ignored("comment_removed"),
        Update::BotAdminPermissionsChanged { .. } => ignored("bot_admin_permissions_changed"),
        Update::MessageConstructionRequest { .. } => ignored("message_construction_request"),
        Update::MessageConstructed { .. } => ignored("message_constructed"),
        Update::MessageChatCreated { .. } => ignored("message_chat_created"),
        Update::Unknown => ignored("unknown update type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> BotInfo {
        BotInfo {
            user_id: 591_000_001,
            name: "Helper".into(),
            first_name: None,
            username: Some("helper_bot".into()),
        }
    }

    fn created(chat_type: &str, text: &str, sender_id: i64, is_bot: bool) -> Update {
        let json = serde_json::json!({
            "update_type": "message_created", "timestamp": 5,
            "message": {"sender": {"user_id": sender_id, "name": "B", "is_bot": is_bot},
                        "recipient": {"chat_id": -7, "chat_type": chat_type, "user_id": null},
                        "timestamp": 5, "body": {"mid": "mid.1", "seq": 1, "text": text, "attachments": null}}
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn group_messages_are_answered_only_when_addressed_to_the_bot() {
        let Decoded::Event(e) = decode_update(
            Dialect::TamTam,
            created("chat", "@Helper_Bot  hi there", 1, false),
            Some(&me()),
        ) else {
            panic!()
        };
        assert_eq!(e.incoming.kind, IncomingKind::Text("hi there".into()));
        assert_eq!(e.context.reply_to.as_deref(), Some("mid.1"));
        assert!(matches!(
            decode_update(
                Dialect::TamTam,
                created("chat", "/help", 1, false),
                Some(&me())
            ),
            Decoded::Event(_)
        ));
        assert!(matches!(
            decode_update(
                Dialect::TamTam,
                created("chat", "just chatting", 1, false),
                Some(&me())
            ),
            Decoded::Ignored(_)
        ));
        assert!(matches!(
            decode_update(
                Dialect::TamTam,
                created("dialog", "just chatting", 1, false),
                Some(&me())
            ),
            Decoded::Event(_)
        ));
    }

    #[test]
    fn bots_and_the_bot_itself_are_ignored() {
        assert!(matches!(
            decode_update(
                Dialect::TamTam,
                created("dialog", "hi", 2, true),
                Some(&me())
            ),
            Decoded::Ignored(_)
        ));
        assert!(matches!(
            decode_update(
                Dialect::TamTam,
                created("dialog", "hi", 591_000_001, false),
                Some(&me())
            ),
            Decoded::Ignored(_)
        ));
    }
}
