//! Callback → neutral event (PLATFORMS.md §3.2, §3.4).

use std::borrow::Cow;

use hookline::error::HookError;
use hookline::model::{ChatKind, Decoded, Inbound, Incoming, IncomingKind, Platform};
use url::Url;

use crate::event::Callback;
use crate::webhook::allowed_session_webhook;

/// What `send` needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DingTalkContext {
    /// Where to reply (checked against `DINGTALK_SESSION_HOSTS`).
    pub session_webhook: Url,
    /// When it stops working (Unix ms).
    pub expires_at_ms: i64,
    /// The sender's staff id, for `atUserIds`.
    pub staff_id: Option<String>,
    /// A group conversation (`conversationType` "2").
    pub group: bool,
    /// `conversationId`: decides whether the custom robot may stand in for an expired session.
    pub conversation_id: String,
}

/// Decodes a (verified) callback body.
pub(crate) fn decode_callback(
    body: &[u8],
    session_hosts: &[String],
    now_ms: i64,
) -> Result<Decoded<Inbound<DingTalkContext>>, HookError> {
    let callback: Callback = serde_json::from_slice(body)
        .map_err(|e| HookError::Malformed(format!("callback body: {e}")))?;
    // Checked before anything is stored or sent: the signature does not cover the body.
    let session_webhook = allowed_session_webhook(&callback.session_webhook, session_hosts)
        .map_err(HookError::Malformed)?;
    let group = callback.conversation_type == "2";
    if group && callback.is_in_at_list != Some(true) {
        return Ok(Decoded::Ignored(Cow::Borrowed(
            "group message that does not @ the robot",
        )));
    }
    let kind = match callback.msgtype.as_str() {
        "text" => IncomingKind::Text(
            callback
                .text
                .map(|t| t.content.trim().to_owned())
                .unwrap_or_default(),
        ),
        "picture" => IncomingKind::Unsupported("picture".into()),
        "richText" => IncomingKind::Unsupported("rich text message".into()),
        "audio" => IncomingKind::Unsupported("voice message".into()),
        other => IncomingKind::Unsupported(other.to_owned()),
    };
    let staff_id = callback.sender_staff_id.filter(|s| !s.is_empty());
    let incoming = Incoming {
        platform: Platform::DingTalk,
        event_id: callback.msg_id.into(),
        chat: callback.conversation_id.as_str().into(),
        chat_kind: if group {
            ChatKind::Group
        } else {
            ChatKind::Direct
        },
        sender_name: callback.sender_nick.filter(|n| !n.is_empty()),
        addressed: true,
        raw: Default::default(),
        sender: staff_id
            .clone()
            .or(callback.sender_id)
            .unwrap_or_default()
            .into(),
        sent_at_ms: callback.create_at.unwrap_or(now_ms),
        kind,
    };
    let context = DingTalkContext {
        session_webhook,
        expires_at_ms: callback.session_webhook_expired_time,
        staff_id,
        group,
        conversation_id: callback.conversation_id,
    };
    Ok(Decoded::Event(Inbound { incoming, context }))
}
