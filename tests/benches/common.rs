//! Shared by the benches and the tests that load `serve`: the release binaries beside the bench,
//! and a Tailchat callback that mentions the bot.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

/// A release binary of the workspace (benches are built in the release profile's folder).
pub fn release_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|p| p.parent()).unwrap().join(name);
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release --bins first",
        bin.display()
    );
    bin
}

/// A Tailchat group message mentioning the bot `bot_user`, with `message_id` (the dedup key).
pub fn tailchat_mention(bot_user: &str, message_id: &str) -> serde_json::Value {
    serde_json::json!({
        "_id": "6553a1f0c3b1e2a9d4f0aa01", "userId": bot_user, "type": "message",
        "payload": {"groupId": "644f7c9d2a1b3c4d5e6f7081", "converseId": "644f7c9d2a1b3c4d5e6f7082",
                    "messageId": message_id, "messageAuthor": "6448e822834c12425646f473",
                    "messageSnippet": format!("[at={bot_user}]EchoBot[/at] hi")},
        "createdAt": "2023-11-14T22:13:20.123Z"
    })
}
