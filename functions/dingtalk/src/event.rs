//! DingTalk wire types: the enterprise robot's HTTP callback ("接收消息的消息协议",
//! <https://open.dingtalk.com/document/isvapp/receive-message>) and the custom robot's message
//! shapes (<https://open.dingtalk.com/document/robots/custom-robot-access>). PLATFORMS.md §3.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `createAt` is documented as a string and sent as a number: accept both.
fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// `text` of a text message.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TextContent {
    #[serde(default)]
    pub content: String,
}

/// The callback body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Callback {
    pub msgtype: String,
    pub msg_id: String,
    pub conversation_id: String,
    pub conversation_type: String,
    pub session_webhook: String,
    pub session_webhook_expired_time: i64,
    #[serde(default, deserialize_with = "int_or_string")]
    pub create_at: Option<i64>,
    #[serde(default)]
    pub text: Option<TextContent>,
    #[serde(default)]
    pub sender_staff_id: Option<String>,
    #[serde(default)]
    pub sender_id: Option<String>,
    #[serde(default)]
    pub is_in_at_list: Option<bool>,
    #[serde(default)]
    pub sender_nick: Option<String>,
}

/// `at` of an outgoing message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct At {
    /// Mobiles to @.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_mobiles: Vec<String>,
    /// User ids to @ (internal groups only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_user_ids: Vec<String>,
    /// @ everyone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_at_all: bool,
}

impl At {
    /// Whether it mentions nobody.
    pub fn is_empty(&self) -> bool {
        self.at_mobiles.is_empty() && self.at_user_ids.is_empty() && !self.is_at_all
    }

    /// ` @a @b` for the text: DingTalk shows a mention where `@<id>` stands in the text.
    pub fn suffix(&self) -> String {
        self.at_user_ids
            .iter()
            .chain(&self.at_mobiles)
            .map(|who| format!(" @{who}"))
            .collect()
    }
}

/// A link of a `feedCard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedLink {
    /// Title.
    pub title: String,
    /// Target.
    #[serde(rename = "messageURL")]
    pub message_url: String,
    /// Picture.
    #[serde(rename = "picURL")]
    pub pic_url: String,
}

/// A button of an `actionCard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardButton {
    /// Label.
    pub title: String,
    /// Target.
    #[serde(rename = "actionURL")]
    pub action_url: String,
}

/// A message to a robot webhook (custom robot or `sessionWebhook`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RobotMessage {
    /// `text`.
    Text {
        /// The text.
        content: String,
        /// Mentions.
        at: At,
    },
    /// `markdown`.
    Markdown {
        /// The notification title.
        title: String,
        /// The markdown.
        text: String,
        /// Mentions.
        at: At,
    },
    /// `link`.
    Link {
        /// Title.
        title: String,
        /// Summary.
        text: String,
        /// Target.
        message_url: String,
        /// Picture.
        pic_url: String,
    },
    /// `actionCard` with buttons.
    ActionCard {
        /// Title.
        title: String,
        /// Markdown body.
        text: String,
        /// Buttons.
        buttons: Vec<CardButton>,
        /// Buttons side by side (`true`) or stacked.
        horizontal: bool,
    },
    /// `feedCard`.
    FeedCard {
        /// The links.
        links: Vec<FeedLink>,
    },
}

impl RobotMessage {
    /// The JSON DingTalk expects (§3.1). Mentions are also written into the text, where DingTalk
    /// renders them.
    pub fn to_json(&self) -> Value {
        use serde_json::json;
        let with_at = |mut body: Value, at: &At| {
            if !at.is_empty() {
                body["at"] = serde_json::to_value(at).unwrap_or_default();
            }
            body
        };
        match self {
            Self::Text { content, at } => with_at(
                json!({"msgtype": "text", "text": {"content": format!("{content}{}", at.suffix())}}),
                at,
            ),
            Self::Markdown { title, text, at } => with_at(
                json!({"msgtype": "markdown", "markdown": {"title": title, "text": format!("{text}{}", at.suffix())}}),
                at,
            ),
            Self::Link {
                title,
                text,
                message_url,
                pic_url,
            } => json!({"msgtype": "link", "link": {
                "title": title, "text": text, "messageUrl": message_url, "picUrl": pic_url}}),
            Self::ActionCard {
                title,
                text,
                buttons,
                horizontal,
            } => json!({"msgtype": "actionCard", "actionCard": {
                "title": title, "text": text, "btnOrientation": if *horizontal { "1" } else { "0" }, "btns": buttons}}),
            Self::FeedCard { links } => {
                json!({"msgtype": "feedCard", "feedCard": {"links": links}})
            }
        }
    }
}

/// The answer of every robot endpoint: `{"errcode", "errmsg"}` at HTTP 200.
#[derive(Debug, Deserialize)]
pub(crate) struct RobotResult {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_message_type_has_the_documented_shape() {
        let at = At {
            at_mobiles: vec!["13800000000".into()],
            at_user_ids: vec!["manager4021".into()],
            is_at_all: false,
        };
        assert_eq!(
            RobotMessage::Text {
                content: "Deploy done".into(),
                at: at.clone()
            }
            .to_json(),
            json!({"msgtype": "text", "text": {"content": "Deploy done @manager4021 @13800000000"},
                   "at": {"atMobiles": ["13800000000"], "atUserIds": ["manager4021"]}})
        );
        assert_eq!(
            RobotMessage::Markdown {
                title: "Build #42".into(),
                text: "### Build #42".into(),
                at: At::default()
            }
            .to_json(),
            json!({"msgtype": "markdown", "markdown": {"title": "Build #42", "text": "### Build #42"}})
        );
        assert_eq!(
            RobotMessage::Link {
                title: "Release notes".into(),
                text: "v1.2 is out".into(),
                message_url: "https://example.com/rn".into(),
                pic_url: String::new()
            }
            .to_json(),
            json!({"msgtype": "link", "link": {"title": "Release notes", "text": "v1.2 is out", "messageUrl": "https://example.com/rn", "picUrl": ""}})
        );
        let btns = vec![CardButton {
            title: "Yes".into(),
            action_url: "https://example.com/y".into(),
        }];
        assert_eq!(
            RobotMessage::ActionCard {
                title: "Vote".into(),
                text: "Pick one".into(),
                buttons: btns,
                horizontal: true
            }
            .to_json(),
            json!({"msgtype": "actionCard", "actionCard": {"title": "Vote", "text": "Pick one", "btnOrientation": "1",
                   "btns": [{"title": "Yes", "actionURL": "https://example.com/y"}]}})
        );
        let links = vec![FeedLink {
            title: "Item 1".into(),
            message_url: "https://example.com/1".into(),
            pic_url: "https://example.com/1.png".into(),
        }];
        assert_eq!(
            RobotMessage::FeedCard { links }.to_json(),
            json!({"msgtype": "feedCard", "feedCard": {"links": [{"title": "Item 1", "messageURL": "https://example.com/1", "picURL": "https://example.com/1.png"}]}})
        );
        let all = At {
            is_at_all: true,
            ..At::default()
        };
        assert_eq!(
            RobotMessage::Text {
                content: "x".into(),
                at: all
            }
            .to_json()["at"],
            json!({"isAtAll": true})
        );
    }

    #[test]
    fn create_at_is_accepted_as_number_or_string() {
        let base = r#""msgtype":"text","msgId":"m","conversationId":"c","conversationType":"1","sessionWebhook":"w","sessionWebhookExpiredTime":1"#;
        let n: Callback =
            serde_json::from_str(&format!("{{{base},\"createAt\":1699999999800}}")).unwrap();
        let s: Callback =
            serde_json::from_str(&format!("{{{base},\"createAt\":\"1699999999800\"}}")).unwrap();
        assert_eq!(
            (n.create_at, s.create_at),
            (Some(1_699_999_999_800), Some(1_699_999_999_800))
        );
    }
}
