//! Inbox item → neutral event (PLATFORMS.md §1.2, §1.9).

use std::borrow::Cow;

use hookline::error::HookError;
use hookline::model::{ChatKind, Decoded, Inbound, Incoming, IncomingKind, Platform};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::{InboxItem, MessagePayload};
use crate::mention::strip_mention_tag;

/// What `send` needs to reply the way the SDK's `replyMessage` does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TailchatContext {
    /// The group, absent for a DM.
    pub group_id: Option<String>,
    /// The panel or DM converse.
    pub converse_id: String,
    /// The message that mentioned the bot.
    pub message_id: String,
    /// Its author.
    pub author: String,
    /// Its raw content, quoted in the reply.
    pub snippet: String,
}

/// The first stage: a `message` item to answer, or a reason to acknowledge and drop.
#[derive(Debug)]
pub(crate) enum Parsed {
    Message {
        item: InboxItem,
        payload: MessagePayload,
    },
    Other(String),
}

/// Parses the body, deciding on `type` first: anything but `message` (`dm.start`,
/// `buttonCallback` of forks, future kinds, a body without a type) is acknowledged and ignored
/// before any other field is required. A `message` item lacking its fields is malformed.
pub(crate) fn parse_inbox_item(body: &[u8]) -> Result<Parsed, HookError> {
    /// Only the type: everything else is skipped unread.
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Option<Cow<'a, str>>,
    }
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(HookError::Malformed(
            "not a Tailchat inbox item: not a JSON object".into(),
        ));
    }
    let kind = match serde_json::from_slice::<Kind<'_>>(body) {
        Ok(Kind { kind: Some(kind) }) => kind,
        // No type, or a type that is not a string: not a message.
        Ok(Kind { kind: None }) => return Ok(Parsed::Other("(none)".to_owned())),
        Err(e) if e.is_data() => return Ok(Parsed::Other("(none)".to_owned())),
        Err(e) => return Err(HookError::Malformed(format!("not JSON: {e}"))),
    };
    if kind != "message" {
        return Ok(Parsed::Other(kind.into_owned()));
    }
    let item: InboxItem = serde_json::from_slice(body)
        .map_err(|e| HookError::Malformed(format!("not a Tailchat inbox item: {e}")))?;
    let payload: MessagePayload = serde_json::from_value(item.payload.clone())
        .map_err(|e| HookError::Malformed(format!("message payload: {e}")))?;
    Ok(Parsed::Message { item, payload })
}

/// Checks that the item is addressed to our bot and not written by it, and builds the event.
pub(crate) fn decode_message(
    item: InboxItem,
    payload: MessagePayload,
    bot_user_id: &str,
    now_ms: i64,
) -> Decoded<Inbound<TailchatContext>> {
    // A leaked callback URL must not let anyone feed other users' inbox items to the bot.
    if item.user_id != bot_user_id {
        return Decoded::Ignored(Cow::Borrowed("inbox item of another user"));
    }
    if payload.message_author == bot_user_id {
        return Decoded::Ignored(Cow::Borrowed("the bot's own message"));
    }
    let sent_at_ms = item
        .created_at
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
        .unwrap_or(now_ms);
    let incoming = Incoming {
        platform: Platform::Tailchat,
        event_id: payload.message_id.as_str().into(),
        chat: payload.converse_id.as_str().into(),
        // Tailchat DMs have no group id.
        chat_kind: if payload.group_id.is_some() {
            ChatKind::Group
        } else {
            ChatKind::Direct
        },
        sender: payload.message_author.as_str().into(),
        // The inbox item carries the author's id only.
        sender_name: None,
        addressed: true,
        sent_at_ms,
        kind: IncomingKind::Text(strip_mention_tag(&payload.message_snippet)),
        raw: Default::default(),
    };
    let context = TailchatContext {
        group_id: payload.group_id,
        converse_id: payload.converse_id,
        message_id: payload.message_id,
        author: payload.message_author,
        snippet: payload.message_snippet,
    };
    Decoded::Event(Inbound { incoming, context })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: &str = "6552f3a0c3b1e2a9d4f01234";

    fn message(user_id: &str, author: &str) -> Vec<u8> {
        serde_json::json!({
            "_id": "6553a1f0c3b1e2a9d4f0aa01", "userId": user_id, "type": "message",
            "payload": {"converseId": "c", "messageId": "m", "messageAuthor": author,
                        "messageSnippet": "[at=x]Bot[/at] hi"},
            "createdAt": "2023-11-14T22:13:20.123Z"
        })
        .to_string()
        .into_bytes()
    }

    fn decode(body: &[u8]) -> Decoded<Inbound<TailchatContext>> {
        match parse_inbox_item(body).unwrap() {
            Parsed::Message { item, payload } => decode_message(item, payload, BOT, 0),
            Parsed::Other(kind) => panic!("unexpected {kind}"),
        }
    }

    #[test]
    fn decodes_a_mention_with_its_time_and_stripped_text() {
        let Decoded::Event(inbound) = decode(&message(BOT, "u1")) else {
            panic!()
        };
        assert_eq!(inbound.incoming.kind, IncomingKind::Text("hi".into()));
        assert_eq!(inbound.incoming.sent_at_ms, 1_700_000_000_123);
        assert_eq!(inbound.incoming.event_id.as_str(), "m");
        assert_eq!(inbound.context.group_id, None);
    }

    #[test]
    fn ignores_other_users_items_and_the_bots_own_messages() {
        assert!(matches!(
            decode(&message("someone-else", "u1")),
            Decoded::Ignored(_)
        ));
        assert!(matches!(decode(&message(BOT, BOT)), Decoded::Ignored(_)));
    }

    #[test]
    fn unknown_types_are_not_errors_but_broken_messages_are() {
        let other = br#"{"userId":"x","type":"plugin:com.msgbyte.topic.comment","payload":{}}"#;
        assert!(
            matches!(parse_inbox_item(other), Ok(Parsed::Other(k)) if k.starts_with("plugin:"))
        );
        // Kinds of forks carry no userId: the type decides before any other field is needed.
        let dm_start = br#"{"type":"dm.start","payload":{"botUserId":"b","converseId":"c"}}"#;
        assert!(matches!(parse_inbox_item(dm_start), Ok(Parsed::Other(k)) if k == "dm.start"));
        assert!(matches!(parse_inbox_item(b"{}"), Ok(Parsed::Other(_))));
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"type":"message"}"#,
            br#"{"userId":"x","type":"message","payload":{"converseId":"c"}}"#,
        ] {
            assert!(
                matches!(parse_inbox_item(bad), Err(HookError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
