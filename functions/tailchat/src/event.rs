//! Tailchat wire types.
//!
//! Inbox items: `server/models/chat/inbox.ts`, `packages/types/src/model/inbox.ts`
//! (<https://github.com/msgbyte/tailchat>); requests: the open-platform bot page
//! (<https://tailchat.msgbyte.com/docs/advanced-usage/openapp/bot>), PLATFORMS.md §1.

use serde::{Deserialize, Serialize};

/// The callback body of `type` `message`: one inbox item (the type is read before this).
#[derive(Debug, Deserialize)]
pub(crate) struct InboxItem {
    #[serde(rename = "userId")]
    pub user_id: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    #[serde(rename = "createdAt", default)]
    pub created_at: Option<String>,
}

/// `payload` of an inbox item of type `message` (a mention of the bot).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessagePayload {
    #[serde(default)]
    pub group_id: Option<String>,
    pub converse_id: String,
    pub message_id: String,
    pub message_author: String,
    pub message_snippet: String,
}

/// `POST /api/openapi/bot/login` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginRequest<'a> {
    pub app_id: &'a str,
    pub token: &'a str,
}

/// The `{code, data}` envelope of every successful `/api/*` call.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    pub data: T,
}

/// The login result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginData {
    pub jwt: String,
    pub user_id: String,
}

/// moleculer-web's error body: `{name, message, code, type?, data?}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// `POST /api/chat/message/sendMessage` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendMessage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<&'a str>,
    pub converse_id: &'a str,
    pub content: String,
    pub meta: MessageMeta<'a>,
}

/// `meta` of a reply: whom to notify, and what is quoted.
#[derive(Debug, Serialize)]
pub(crate) struct MessageMeta<'a> {
    pub mentions: Vec<&'a str>,
    pub reply: ReplyRef<'a>,
}

/// The quoted message.
#[derive(Debug, Serialize)]
pub(crate) struct ReplyRef<'a> {
    #[serde(rename = "_id")]
    pub id: &'a str,
    pub author: &'a str,
    pub content: &'a str,
}
