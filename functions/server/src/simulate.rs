//! `hookline simulate <platform> "<text>"`: sends a realistic webhook to a running server (or to
//! one started in-process on the emulators) and prints the status and the bot's reply.

use std::sync::Arc;

use anyhow::{Context, bail};
use hookline::config::{Env, optional};
use hookline::pipeline::Deps;
use hookline_tailchat::emulator::EMULATOR_BOT_USER_ID;
use serde_json::{Value, json};

use crate::app::{self, EMULATOR_TOKEN};

/// A Tailchat inbox callback like T1 of PLATFORMS.md §1.8, with fresh ids.
pub fn tailchat_callback(text: &str, message_id: &str) -> Value {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "_id": format!("{:024x}", rand::random::<u64>()),
        "userId": EMULATOR_BOT_USER_ID,
        "type": "message",
        "payload": {
            "groupId": "644f7c9d2a1b3c4d5e6f7081",
            "converseId": "644f7c9d2a1b3c4d5e6f7082",
            "messageId": message_id,
            "messageAuthor": "6448e822834c12425646f473",
            "messageSnippet": format!("[at={EMULATOR_BOT_USER_ID}]hookline[/at] {text}"),
            "messagePlainContent": format!("@hookline {text}"),
        },
        "readed": false,
        "createdAt": now,
        "updatedAt": now,
        "__v": 0
    })
}

/// Runs the simulation and returns what to print.
pub async fn run(
    env: &dyn Env,
    platform: &str,
    text: &str,
    url: Option<String>,
) -> anyhow::Result<String> {
    if platform != "tailchat" {
        bail!("unknown platform {platform:?}: this build supports tailchat");
    }
    // Without --url: a private server on a free loopback port, on the emulators, with a
    // throw-away store.
    let mut _keep = None;
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let dir = tempfile::tempdir().context("cannot create a temporary store")?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let base = app::local_base(listener.local_addr()?);
            let clock: hookline::clock::SharedClock = Arc::new(hookline::clock::SystemClock);
            let store = hookline::store::EmbeddedStore::open(
                &dir.path().join("state.redb"),
                clock.clone(),
            )?;
            let deps = Deps {
                store: Arc::new(store),
                clock,
                bot: Arc::new(hookline::bot::DefaultBot),
                http: hookline::http::HttpClient::new()?,
            };
            let app = app::build(env, deps, &base, true);
            tokio::spawn(hookline::runtime::serve_listener(
                listener, app.router, false,
            ));
            _keep = Some(dir);
            base
        }
    };
    let token =
        optional(env, "TAILCHAT_CALLBACK_TOKEN").unwrap_or_else(|| EMULATOR_TOKEN.to_owned());
    let message_id = format!("{:024x}", rand::random::<u64>());
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/tailchat"))
        .query(&[("token", token.as_str())])
        .header("x-tc-payload-type", "inbox")
        .json(&tailchat_callback(text, &message_id))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {base}: {}", e.without_url()))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let mut out = format!("POST {base}/tailchat -> {status}");
    if !status.is_success() {
        out.push_str(&format!("\n{body}"));
        if status.as_u16() == 404 {
            out.push_str("\n(404: the server's TAILCHAT_CALLBACK_TOKEN differs from this shell's)");
        }
        return Ok(out);
    }
    let sent = http
        .get(format!("{base}/_emulator/tailchat/sent"))
        .send()
        .await;
    let replies: Vec<Value> = match sent {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        _ => {
            out.push_str("\n(the server talks to a real Tailchat: look for the reply there)");
            return Ok(out);
        }
    };
    let mine: Vec<&Value> = replies
        .iter()
        .filter(|m| m["meta"]["reply"]["_id"] == message_id.as_str())
        .collect();
    if mine.is_empty() {
        out.push_str("\n(no reply was sent)");
    }
    for reply in mine {
        out.push_str(&format!(
            "\nreply: {}",
            reply["content"].as_str().unwrap_or_default()
        ));
    }
    Ok(out)
}
