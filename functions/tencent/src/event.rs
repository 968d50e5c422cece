//! Tencent Cloud Chat wire types.
//!
//! Callbacks: "Callback After Reminding a Chatbot in a Group" (`Bot.OnGroupMessage`, doc 68953)
//! and `Bot.OnC2CMessage` (doc 68952); replies: `group_open_http_svc/send_group_msg` (doc 34959)
//! and `openim/sendmsg`. PLATFORMS.md §2.

use serde::{Deserialize, Serialize};

/// `Bot.OnGroupMessage`.
pub const GROUP_MESSAGE: &str = "Bot.OnGroupMessage";
/// `Bot.OnC2CMessage`.
pub const C2C_MESSAGE: &str = "Bot.OnC2CMessage";

/// One `TIMMessage` element.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct MsgElem {
    #[serde(rename = "MsgType")]
    pub msg_type: String,
    #[serde(rename = "MsgContent", default)]
    pub msg_content: serde_json::Value,
}

/// Who a chatbot callback is for and from: read before anything else is required, so that a
/// callback that is not ours is acknowledged however little else it carries.
#[derive(Debug, Deserialize)]
pub(crate) struct Routing {
    #[serde(rename = "From_Account", default)]
    pub from_account: String,
    #[serde(rename = "To_Account", default)]
    pub to_account: String,
    #[serde(rename = "AtRobots_Account", default)]
    pub at_robots: Option<Vec<String>>,
}

/// `Bot.OnGroupMessage` body.
#[derive(Debug, Deserialize)]
pub(crate) struct GroupMessage {
    #[serde(rename = "GroupId")]
    pub group_id: String,
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(rename = "MsgSeq")]
    pub msg_seq: u64,
    #[serde(rename = "MsgTime", default)]
    pub msg_time: Option<i64>,
    #[serde(rename = "MsgBody", default)]
    pub msg_body: Vec<MsgElem>,
    #[serde(rename = "TopicId", default)]
    pub topic_id: Option<String>,
}

/// `Bot.OnC2CMessage` body.
#[derive(Debug, Deserialize)]
pub(crate) struct C2cMessage {
    #[serde(rename = "From_Account")]
    pub from_account: String,
    #[serde(rename = "MsgKey")]
    pub msg_key: String,
    #[serde(rename = "MsgTime", default)]
    pub msg_time: Option<i64>,
    #[serde(rename = "MsgBody", default)]
    pub msg_body: Vec<MsgElem>,
}

/// `GroupAtInfo` entry: whom the reply @-mentions.
#[derive(Debug, Serialize)]
pub(crate) struct GroupAt<'a> {
    #[serde(rename = "GroupAtAllFlag")]
    pub all: u8,
    #[serde(rename = "GroupAt_Account")]
    pub account: &'a str,
}

/// `send_group_msg` body.
#[derive(Debug, Serialize)]
pub(crate) struct SendGroupMsg<'a> {
    #[serde(rename = "GroupId")]
    pub group_id: &'a str,
    #[serde(rename = "Random")]
    pub random: u32,
    #[serde(rename = "From_Account")]
    pub from_account: &'a str,
    #[serde(rename = "MsgBody")]
    pub msg_body: Vec<MsgElem>,
    #[serde(rename = "GroupAtInfo")]
    pub group_at: Vec<GroupAt<'a>>,
    #[serde(rename = "TopicId", skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<&'a str>,
}

/// `openim/sendmsg` body.
#[derive(Debug, Serialize)]
pub(crate) struct SendC2cMsg<'a> {
    /// 2: do not sync the message to the sender's other devices.
    #[serde(rename = "SyncOtherMachine")]
    pub sync_other_machine: u8,
    #[serde(rename = "From_Account")]
    pub from_account: &'a str,
    #[serde(rename = "To_Account")]
    pub to_account: &'a str,
    /// Deterministic, like `MsgRandom`: Tencent's one-to-one dedup key is (sender, `MsgSeq`,
    /// `MsgRandom`, CRC32 of the content) for 120 s, and an absent `MsgSeq` is filled with a
    /// random one, which would make every retry a new message.
    #[serde(rename = "MsgSeq")]
    pub msg_seq: u32,
    #[serde(rename = "MsgRandom")]
    pub msg_random: u32,
    #[serde(rename = "MsgBody")]
    pub msg_body: Vec<MsgElem>,
}

/// The envelope of every REST answer (HTTP 200 even on failure).
#[derive(Debug, Deserialize)]
pub(crate) struct RestResult {
    #[serde(rename = "ActionStatus", default)]
    pub action_status: String,
    #[serde(rename = "ErrorCode", default)]
    pub error_code: i64,
    #[serde(rename = "ErrorInfo", default)]
    pub error_info: String,
}

/// A text element.
pub(crate) fn text_elem(text: &str) -> MsgElem {
    MsgElem {
        msg_type: "TIMTextElem".into(),
        msg_content: serde_json::json!({ "Text": text }),
    }
}
