//! `hookline simulate <platform> "<text>"`: sends a realistic webhook to a running server (or to
//! one started in-process on the emulators) and prints the status and the bot's reply.

use anyhow::{Context, bail};
use hookline::bot::SharedBot;
use hookline::clock::{Clock, SystemClock};
use hookline::config::{Env, optional};
use hookline_tailchat::emulator::EMULATOR_BOT_USER_ID;
use hookline_tencent::emulator::{EMULATOR_BOT_ID, EMULATOR_SDKAPPID};
use serde_json::{Value, json};

use crate::app;

/// Picks the reply text out of a recorded message, if that message answers the simulation.
pub type ReplyMatcher = Box<dyn Fn(&Value) -> Option<String> + Send>;

/// One simulated webhook, and how to find the bot's answer among what the emulator recorded.
pub struct Simulation {
    /// The webhook's path on the server.
    pub path: &'static str,
    /// Its query.
    pub query: Vec<(String, String)>,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Value,
    /// The reply text of a recorded message, if it answers this webhook.
    pub reply_in: ReplyMatcher,
}

fn hex_id() -> String {
    format!(
        "{:024x}",
        u128::from(rand::random::<u64>()) << 32 | u128::from(rand::random::<u32>())
    )
}

/// A Tailchat inbox callback like T1 of PLATFORMS.md §1.8, with fresh ids.
pub fn tailchat(env: &dyn Env, text: &str) -> Simulation {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let message_id = hex_id();
    let body = json!({
        "_id": hex_id(),
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
        "readed": false, "createdAt": now, "updatedAt": now, "__v": 0
    });
    Simulation {
        path: "/tailchat",
        query: vec![("token".into(), app::tailchat_token(env))],
        headers: vec![("x-tc-payload-type".into(), "inbox".into())],
        body,
        reply_in: Box::new(move |m| {
            (m["meta"]["reply"]["_id"] == message_id.as_str())
                .then(|| m["content"].as_str().unwrap_or_default().to_owned())
        }),
    }
}

/// A `Bot.OnGroupMessage` callback like C1 of PLATFORMS.md §2.8, signed when
/// `TENCENT_CALLBACK_TOKEN` is set. Against a live server (`live`), the app and bot ids come
/// from the environment.
pub fn tencent(env: &dyn Env, text: &str, live: bool) -> Simulation {
    let from_env = |name| live.then(|| optional(env, name)).flatten();
    let sdkappid = from_env("TENCENT_SDKAPPID").unwrap_or_else(|| EMULATOR_SDKAPPID.to_string());
    let bot = from_env("TENCENT_BOT_ID").unwrap_or_else(|| EMULATOR_BOT_ID.to_owned());
    let now_s = SystemClock.now_s();
    let sender = format!("simulator-{:08x}", rand::random::<u32>());
    let mut query: Vec<(String, String)> = [
        ("SdkAppid", sdkappid.as_str()),
        ("CallbackCommand", "Bot.OnGroupMessage"),
        ("contenttype", "json"),
        ("ClientIP", "127.0.0.1"),
        ("OptPlatform", "RESTAPI"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(token) = optional(env, "TENCENT_CALLBACK_TOKEN") {
        let time = now_s.to_string();
        query.push((
            "Sign".into(),
            hookline_tencent::callback_sign(&token, &time),
        ));
        query.push(("RequestTime".into(), time));
    }
    let body = json!({
        "CallbackCommand": "Bot.OnGroupMessage", "GroupId": "@TGS#hookline-simulate", "Type": "Public",
        "From_Account": sender, "Operator_Account": sender, "Random": rand::random::<u32>(),
        "MsgSeq": rand::random::<u32>(), "MsgTime": now_s, "OnlineOnlyFlag": 0,
        "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": format!("@{bot} {text}")}}],
        "AtRobots_Account": [bot], "CloudCustomData": "", "EventTime": now_s * 1000
    });
    Simulation {
        path: "/tencent",
        query,
        headers: Vec::new(),
        body,
        reply_in: Box::new(move |m| {
            (m["body"]["GroupAtInfo"][0]["GroupAt_Account"] == sender.as_str()).then(|| {
                m["body"]["MsgBody"][0]["MsgContent"]["Text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
        }),
    }
}

/// A TamTam `message_created` in a dialog with the bot, from a fresh user.
pub fn tamtam(env: &dyn Env, text: &str) -> Simulation {
    let now_ms = SystemClock.now_ms();
    let user_id = 600_000_000 + i64::from(rand::random::<u16>());
    let mid = format!("mid.{:032x}", u128::from(rand::random::<u64>()));
    let body = json!({
        "update_type": "message_created", "timestamp": now_ms,
        "message": {
            "sender": {"user_id": user_id, "name": "Simulator", "username": null, "is_bot": false, "last_activity_time": now_ms},
            "recipient": {"chat_id": user_id, "chat_type": "dialog", "user_id": user_id},
            "timestamp": now_ms, "link": null,
            "body": {"mid": mid, "seq": now_ms, "text": text, "attachments": null}
        },
        "user_locale": "en"
    });
    Simulation {
        path: "/tamtam",
        query: vec![("token".into(), app::tamtam_token(env))],
        headers: Vec::new(),
        body,
        reply_in: reply_linked_to(mid),
    }
}

/// The text (and buttons) of a TamTam or MAX message that replies to `mid`.
fn reply_linked_to(mid: String) -> ReplyMatcher {
    Box::new(move |m| {
        (m["body"]["link"]["mid"] == mid.as_str()).then(|| {
            let mut text = m["body"]["text"].as_str().unwrap_or_default().to_owned();
            if let Some(rows) = m["body"]["attachments"][0]["payload"]["buttons"].as_array() {
                let labels: Vec<&str> = rows
                    .iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter_map(|b| b["text"].as_str())
                    .collect();
                text.push_str(&format!("\n[buttons: {}]", labels.join(" | ")));
            }
            text
        })
    })
}

/// A MAX `message_created` in a dialog with the bot, from a fresh user, shaped like MAX's real
/// deliveries (PLATFORMS.md §4b.8 X1): `first_name`/`last_name` and no `username`, a dialog
/// `chat_id` of its own, `recipient.user_id` = the bot, a `seq` above 2^53, and the webhook
/// secret in `X-Max-Bot-Api-Secret`.
pub fn max(env: &dyn Env, text: &str) -> Simulation {
    let now_ms = SystemClock.now_ms();
    let user_id = 100_000_000 + i64::from(rand::random::<u16>());
    let chat_id = 300_000_000 + i64::from(rand::random::<u16>());
    let seq = 117_411_127_858_129_490_i64 + i64::from(rand::random::<u16>());
    let mid = format!("mid.{chat_id:016x}{seq:016x}");
    let body = json!({
        "message": {
            "recipient": {"chat_type": "dialog", "chat_id": chat_id,
                          "user_id": hookline_tamtam::emulator::EMULATOR_BOT_ID},
            "timestamp": now_ms,
            "body": {"mid": mid, "seq": seq, "text": text},
            "sender": {"user_id": user_id, "first_name": "Simulator", "is_bot": false, "last_name": "",
                       "last_activity_time": now_ms, "name": "Simulator"}
        },
        "timestamp": now_ms, "user_locale": "en", "update_type": "message_created"
    });
    Simulation {
        path: "/max",
        query: Vec::new(),
        headers: vec![("x-max-bot-api-secret".into(), app::max_secret(env))],
        body,
        reply_in: reply_linked_to(mid),
    }
}

/// A DingTalk group @-mention like D1 of PLATFORMS.md §3.3, signed, whose `sessionWebhook` is
/// the emulator of the server at `base`.
pub fn dingtalk(env: &dyn Env, text: &str, live: bool, base: &str) -> Simulation {
    use hookline_dingtalk::emulator::{EMULATOR_APP_SECRET, EMULATOR_ROBOT_CODE};
    let from_env = |name| live.then(|| optional(env, name)).flatten();
    let secret = from_env("DINGTALK_APP_SECRET").unwrap_or_else(|| EMULATOR_APP_SECRET.to_owned());
    let robot_code =
        from_env("DINGTALK_ROBOT_CODE").unwrap_or_else(|| EMULATOR_ROBOT_CODE.to_owned());
    let now_ms = SystemClock.now_ms();
    let timestamp = now_ms.to_string();
    let session = format!("{:032x}", u128::from(rand::random::<u64>()));
    let body = json!({
        "conversationId": "cidhooklinesimulate==", "msgId": format!("msg{}==", hex_id()),
        "senderNick": "Simulator", "isAdmin": false, "senderStaffId": "simulator",
        "sessionWebhookExpiredTime": now_ms + 5_400_000, "createAt": now_ms,
        "conversationType": "2", "senderId": "$:LWCP_v1:$simulator==", "conversationTitle": "hookline",
        "isInAtList": true,
        "sessionWebhook": format!("{base}/_emulator/dingtalk/robot/sendBySession?session={session}"),
        "text": {"content": format!(" {text}")}, "robotCode": robot_code, "msgtype": "text"
    });
    Simulation {
        path: "/dingtalk",
        query: Vec::new(),
        headers: vec![
            (
                "sign".into(),
                hookline_dingtalk::sign::sign(&secret, &timestamp),
            ),
            ("timestamp".into(), timestamp),
        ],
        body,
        reply_in: Box::new(move |m| {
            (m["session"] == session.as_str()).then(|| {
                let body = &m["body"];
                match body["msgtype"].as_str() {
                    Some("actionCard") => {
                        let buttons: Vec<&str> = body["actionCard"]["btns"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|b| b["title"].as_str())
                            .collect();
                        format!(
                            "{}\n[buttons: {}]",
                            body["actionCard"]["title"].as_str().unwrap_or_default(),
                            buttons.join(" | ")
                        )
                    }
                    Some("markdown") => body["markdown"]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    _ => body["text"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                }
            })
        }),
    }
}

/// What one simulated webhook got.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `POST <url> -> <status>`.
    pub request: String,
    /// The webhook's status.
    pub status: u16,
    /// The webhook's answer body.
    pub body: String,
    /// The replies the emulator recorded, as text; `None` when the server talks to the real
    /// platform.
    pub replies: Option<Vec<String>>,
    /// The event went to the server's queue: its reply comes after the webhook's answer.
    pub deferred: bool,
}

/// How long `simulate` waits for the reply to a deferred event.
pub const DEFERRED_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs the simulation; returns what to print, and whether the webhook was answered 2xx and a
/// reply arrived (a server that talks to the real platform counts as answered: its reply is
/// there, out of sight).
pub async fn run(
    env: &dyn Env,
    bot: SharedBot,
    platform: &str,
    text: &str,
    url: Option<String>,
) -> anyhow::Result<(String, bool)> {
    let exchange = exchange(env, bot, platform, text, url).await?;
    let mut out = exchange.request;
    if !(200..300).contains(&exchange.status) {
        out.push_str(&format!("\n{}", exchange.body));
        if matches!(exchange.status, 401 | 404) {
            out.push_str("\n(the server's secrets differ from this shell's environment)");
        }
        return Ok((out, false));
    }
    let Some(replies) = exchange.replies else {
        out.push_str(&format!(
            "\n(the server talks to the real {platform}: look for the reply there)"
        ));
        return Ok((out, true));
    };
    if replies.is_empty() && exchange.deferred {
        out.push_str(&format!(
            "\n(deferred to the queue; no reply within {} s)",
            DEFERRED_WAIT.as_secs()
        ));
    } else if replies.is_empty() {
        out.push_str("\n(no reply was sent)");
    } else if exchange.deferred {
        out.push_str("\n(deferred: answered from the queue)");
    }
    let answered = !replies.is_empty();
    for reply in replies {
        out.push_str(&format!("\nreply: {reply}"));
    }
    Ok((out, answered))
}

/// Sends one realistic webhook saying `text` to a running server at `url`, or (without `url`)
/// to a private in-process server on the emulators running `bot`, and reads what the emulator
/// recorded.
pub async fn exchange(
    env: &dyn Env,
    bot: SharedBot,
    platform: &str,
    text: &str,
    url: Option<String>,
) -> anyhow::Result<Exchange> {
    let live = url.is_some();
    if !matches!(
        platform,
        "tailchat" | "tencent" | "tamtam" | "max" | "dingtalk"
    ) {
        bail!(
            "unknown platform {platform:?}: this build supports tailchat, tencent, tamtam, max and dingtalk"
        );
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
            let deps = app::scratch_deps(dir.path(), bot).map_err(anyhow::Error::msg)?;
            let app = app::build(env, deps, &base, app::Emulators::ForAll);
            tokio::spawn(hookline::runtime::serve_listener(
                listener,
                app.router,
                hookline::runtime::TrustedProxies::default(),
            ));
            _keep = Some(dir);
            base
        }
    };
    let simulation = simulation(env, platform, text, live, &base);
    let mut exchange = deliver(&base, platform, &simulation).await?;
    // A slow command answered from the queue: wait for its reply.
    let end = tokio::time::Instant::now() + DEFERRED_WAIT;
    if exchange.deferred && exchange.replies.as_ref().is_some_and(Vec::is_empty) {
        eprintln!(
            "deferred to the queue: waiting up to {} s for the reply…",
            DEFERRED_WAIT.as_secs()
        );
    }
    while exchange.deferred
        && exchange.replies.as_ref().is_some_and(Vec::is_empty)
        && tokio::time::Instant::now() < end
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        exchange.replies = replies(&base, platform, &simulation).await;
    }
    Ok(exchange)
}

/// The simulated webhook of `platform` saying `text` (`live`: signed with the environment's
/// secrets for a server that talks to the real platform).
pub fn simulation(env: &dyn Env, platform: &str, text: &str, live: bool, base: &str) -> Simulation {
    match platform {
        "tailchat" => tailchat(env, text),
        "tencent" => tencent(env, text, live),
        "tamtam" => tamtam(env, text),
        "max" => max(env, text),
        _ => dingtalk(env, text, live, base),
    }
}

/// Posts `simulation` to the server at `base` and reads what `platform`'s emulator recorded in
/// answer to it (every reply so far: posting the same simulation twice shows a duplicate).
pub async fn deliver(
    base: &str,
    platform: &str,
    simulation: &Simulation,
) -> anyhow::Result<Exchange> {
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}{}", simulation.path))
        .query(&simulation.query)
        .headers(
            simulation
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        reqwest::header::HeaderName::from_bytes(k.as_bytes()).ok()?,
                        v.parse().ok()?,
                    ))
                })
                .collect(),
        )
        .json(&simulation.body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {base}: {}", e.without_url()))?;
    let status = response.status();
    let deferred = response
        .headers()
        .contains_key(hookline::pipeline::DEFERRED_HEADER);
    let body = response.text().await.unwrap_or_default();
    let mut exchange = Exchange {
        request: format!("POST {base}{} -> {status}", simulation.path),
        status: status.as_u16(),
        body,
        replies: None,
        deferred,
    };
    if !status.is_success() {
        return Ok(exchange);
    }
    exchange.replies = replies(base, platform, simulation).await;
    Ok(exchange)
}

/// The replies to `simulation` the emulator of `platform` recorded so far; `None` without an
/// emulator.
pub async fn replies(base: &str, platform: &str, simulation: &Simulation) -> Option<Vec<String>> {
    let sent = reqwest::Client::new()
        .get(format!("{base}/_emulator/{platform}/sent"))
        .send()
        .await
        .ok()?;
    if !sent.status().is_success() {
        return None;
    }
    let recorded: Vec<Value> = sent.json().await.unwrap_or_default();
    Some(
        recorded
            .iter()
            .filter_map(|m| (simulation.reply_in)(m))
            .collect(),
    )
}
