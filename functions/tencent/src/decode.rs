//! Callback → neutral event (PLATFORMS.md §2.3, §2.4, §2.9).

use std::borrow::Cow;

use std::sync::LazyLock;

use hookline::error::HookError;
use hookline::model::{ChatKind, Decoded, Inbound, Incoming, IncomingKind, Platform};
use regex::Regex;

use crate::event::{C2C_MESSAGE, C2cMessage, GROUP_MESSAGE, GroupMessage, MsgElem, Routing};

/// Where the reply goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    /// A group (or a community topic in it).
    Group {
        /// `GroupId`.
        group_id: String,
        /// `TopicId` of a community topic.
        topic_id: Option<String>,
        /// `MsgSeq` of the mention.
        msg_seq: u64,
        /// Who mentioned the bot (the reply @-mentions them).
        sender: String,
    },
    /// A one-to-one chat.
    C2c {
        /// The user.
        user: String,
        /// `MsgKey` of their message.
        msg_key: String,
    },
}

/// What `send` needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TencentContext {
    /// Where the reply goes.
    pub target: Target,
}

/// Leading mentions: `@name` runs with half- or full-width `@` (the seed's `@@RBT#001 hello` is
/// `@` + the robot id).
static LEADING_MENTIONS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\s*[@＠]\S+)+\s*").unwrap_or_else(|e| panic!("static regex: {e}"))
});

/// Concatenates the `TIMTextElem` texts.
pub(crate) fn text_of(body: &[MsgElem]) -> String {
    body.iter()
        .filter(|e| e.msg_type == "TIMTextElem")
        .filter_map(|e| e.msg_content.get("Text").and_then(|t| t.as_str()))
        .collect()
}

/// Removes the leading @-mentions (of this bot and of others mentioned with it).
pub fn strip_leading_mentions(text: &str) -> String {
    LEADING_MENTIONS.replace(text, "").trim_end().to_owned()
}

fn kind_of(body: &[MsgElem], text: String) -> IncomingKind {
    if !text.trim().is_empty() {
        return IncomingKind::Text(text);
    }
    let what = match body.first().map(|e| e.msg_type.as_str()) {
        Some("TIMImageElem") => "picture",
        Some("TIMSoundElem") => "voice message",
        Some("TIMVideoFileElem") => "video",
        Some("TIMFileElem") => "file",
        Some("TIMFaceElem") => "sticker",
        Some("TIMLocationElem") => "location",
        Some("TIMTextElem") | None => return IncomingKind::Text(String::new()),
        Some(_) => "message of a kind I cannot read",
    };
    IncomingKind::Unsupported(what.into())
}

fn malformed(e: serde_json::Error) -> HookError {
    HookError::Malformed(format!("callback body: {e}"))
}

/// The body's routing fields; the body must be a JSON object.
pub(crate) fn routing(body: &[u8]) -> Result<Routing, HookError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(HookError::Malformed(
            "callback body: not a JSON object".into(),
        ));
    }
    serde_json::from_slice(body).map_err(malformed)
}

/// Decodes a callback whose query said `command`.
pub(crate) fn decode_callback(
    command: Option<&str>,
    body: &[u8],
    bot_id: &str,
    now_ms: i64,
) -> Result<Decoded<Inbound<TencentContext>>, HookError> {
    let ignored = |why: &'static str| Ok(Decoded::Ignored(Cow::Borrowed(why)));
    match command {
        None => ignored("console URL probe"),
        Some(GROUP_MESSAGE) => {
            let routing = routing(body)?;
            if !routing.at_robots.iter().flatten().any(|r| r == bot_id) {
                return ignored("group message for another chatbot");
            }
            if routing.from_account.starts_with("@RBT#") {
                return ignored("a chatbot's own message");
            }
            let msg: GroupMessage = serde_json::from_slice(body).map_err(malformed)?;
            let text = strip_leading_mentions(&text_of(&msg.msg_body));
            let incoming = Incoming {
                platform: Platform::Tencent,
                event_id: format!("{}#{}", msg.group_id, msg.msg_seq).into(),
                chat: msg
                    .topic_id
                    .clone()
                    .unwrap_or_else(|| msg.group_id.clone())
                    .into(),
                chat_kind: ChatKind::Group,
                sender: msg.from_account.as_str().into(),
                sender_name: None,
                addressed: true,
                sent_at_ms: msg.msg_time.map_or(now_ms, |t| t.saturating_mul(1000)),
                kind: kind_of(&msg.msg_body, text),
                raw: Default::default(),
            };
            let target = Target::Group {
                group_id: msg.group_id,
                topic_id: msg.topic_id,
                msg_seq: msg.msg_seq,
                sender: msg.from_account,
            };
            Ok(Decoded::Event(Inbound {
                incoming,
                context: TencentContext { target },
            }))
        }
        Some(C2C_MESSAGE) => {
            let routing = routing(body)?;
            if routing.to_account != bot_id {
                return ignored("one-to-one message to another account");
            }
            if routing.from_account.starts_with("@RBT#") {
                return ignored("a chatbot's own message");
            }
            let msg: C2cMessage = serde_json::from_slice(body).map_err(malformed)?;
            let text = text_of(&msg.msg_body).trim().to_owned();
            let incoming = Incoming {
                platform: Platform::Tencent,
                event_id: format!("c2c#{}", msg.msg_key).into(),
                chat: format!("c2c#{}", msg.from_account).into(),
                chat_kind: ChatKind::Direct,
                sender: msg.from_account.as_str().into(),
                sender_name: None,
                addressed: true,
                sent_at_ms: msg.msg_time.map_or(now_ms, |t| t.saturating_mul(1000)),
                kind: kind_of(&msg.msg_body, text),
                raw: Default::default(),
            };
            let target = Target::C2c {
                user: msg.from_account,
                msg_key: msg.msg_key,
            };
            Ok(Decoded::Event(Inbound {
                incoming,
                context: TencentContext { target },
            }))
        }
        Some(_) => ignored("callback command the bot does not handle"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_leading_robot_mentions_only() {
        assert_eq!(strip_leading_mentions("@@RBT#001 hello"), "hello");
        assert_eq!(
            strip_leading_mentions("@Jarvis @Friday summarise this"),
            "summarise this"
        );
        assert_eq!(strip_leading_mentions("＠机器人　你好"), "你好");
        assert_eq!(strip_leading_mentions("hello @Jarvis"), "hello @Jarvis");
        assert_eq!(strip_leading_mentions("@@RBT#001"), "");
        assert_eq!(strip_leading_mentions("  plain  "), "  plain");
    }

    #[test]
    fn routes_by_the_robot_list_and_ignores_robots_and_other_commands() {
        let body = |at: &str, from: &str| {
            format!(
                r#"{{"GroupId":"g","From_Account":"{from}","MsgSeq":1,"MsgBody":[{{"MsgType":"TIMTextElem","MsgContent":{{"Text":"@x hi"}}}}],"AtRobots_Account":["{at}"]}}"#
            )
            .into_bytes()
        };
        let ok = decode_callback(
            Some(GROUP_MESSAGE),
            &body("@RBT#001", "jared"),
            "@RBT#001",
            0,
        )
        .unwrap();
        let Decoded::Event(inbound) = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(inbound.incoming.kind, IncomingKind::Text("hi".into()));
        assert_eq!(inbound.incoming.event_id.as_str(), "g#1");
        for (command, body) in [
            (Some(GROUP_MESSAGE), body("@RBT#002", "jared")),
            (Some(GROUP_MESSAGE), body("@RBT#001", "@RBT#002")),
            (
                Some("Group.CallbackAfterSendMsg"),
                body("@RBT#001", "jared"),
            ),
            (None, Vec::new()),
        ] {
            assert!(matches!(
                decode_callback(command, &body, "@RBT#001", 0).unwrap(),
                Decoded::Ignored(_)
            ));
        }
    }

    #[test]
    fn pictures_are_unsupported_and_garbage_is_malformed() {
        let pic = br#"{"From_Account":"u","To_Account":"@RBT#001","MsgKey":"k","MsgBody":[{"MsgType":"TIMImageElem","MsgContent":{}}]}"#;
        let Decoded::Event(inbound) =
            decode_callback(Some(C2C_MESSAGE), pic, "@RBT#001", 0).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            inbound.incoming.kind,
            IncomingKind::Unsupported("picture".into())
        );
        for bad in [
            &b"{"[..],
            b"[]",
            br#"{"GroupId":"g","AtRobots_Account":["@RBT#001"]}"#,
            br#"{"GroupId":"g","From_Account":"u","MsgSeq":-1,"AtRobots_Account":["@RBT#001"]}"#,
        ] {
            assert!(matches!(
                decode_callback(Some(GROUP_MESSAGE), bad, "@RBT#001", 0),
                Err(HookError::Malformed(_))
            ));
        }
        // Not ours: acknowledged however little else it carries (real hand-written fixtures
        // omit MsgSeq).
        let other = br#"{"GroupId":"g","AtRobots_Account":[]}"#;
        assert!(matches!(
            decode_callback(Some(GROUP_MESSAGE), other, "@RBT#001", 0),
            Ok(Decoded::Ignored(_))
        ));
    }
}
