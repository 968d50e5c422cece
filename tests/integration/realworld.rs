//! Real webhook bodies from third-party projects, replayed through each platform's router.
//!
//! The corpus lives in `../shared/realworld` beside the project (present in CI) and is never
//! copied here: it is third-party material. Each body is delivered as the platform would deliver
//! it, signed afresh where the platform signs (Tencent `Sign`, DingTalk `sign`), to a router whose
//! configuration matches the body's own ids, against the platform's emulator on loopback. Every
//! authentic body must be acknowledged (no 4xx, no 5xx), and a reply must go out exactly where
//! the body is a message addressed to the bot. URLs inside the corpus (DingTalk session webhooks)
//! are rewritten to the emulator: they come from old public posts and are never called.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hookline::clock::{Clock, SharedClock, SystemClock};
use hookline::secret::Secret;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{self, post, post_from};

/// `../shared/realworld/<platform>`: its JSON files (schemas left out), sorted by name. Absent in
/// a user's clone: said loudly and skipped; under CI, absent is a failure.
fn corpus(platform: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/realworld")
        .join(platform);
    if !dir.is_dir() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "{} is missing: CI must replay the real-world corpus",
            dir.display()
        );
        eprintln!(
            "SKIPPED: the real-world corpus is not beside this clone ({}); its replay did not run",
            dir.display()
        );
        return None;
    }
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| !p.to_string_lossy().ends_with(".schema.json"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("corpus file"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no JSON", dir.display());
    Some(files)
}

/// How many replies a body must produce; files not listed must be acknowledged, whatever
/// they produce (a new corpus file is replayed before anyone decides about it).
fn expected(table: &[(&str, usize)], name: &str) -> Option<usize> {
    table.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn check(platform: &str, name: &str, status: StatusCode, replies: usize, table: &[(&str, usize)]) {
    assert!(
        status.is_success(),
        "{platform}/{name}: an authentic body got {status}"
    );
    if let Some(want) = expected(table, name) {
        assert_eq!(replies, want, "{platform}/{name}: replies sent");
    } else {
        eprintln!("{platform}/{name}: not in the expectations table; {status}, {replies} replies");
    }
}

#[tokio::test]
async fn every_real_tailchat_body_is_acknowledged_and_messages_to_the_bot_answered() {
    let Some(files) = corpus("tailchat") else {
        return;
    };
    // The fork's inbox example addresses "<机器人ID>"; run as that bot so it is ours.
    const BOT: &str = "<机器人ID>";
    let table = [
        (
            "fork_blooworet_inbox_message_simplified_placeholders.json",
            1,
        ),
        ("fork_blooworet_dm_start_unknown_type.json", 0),
        ("fork_blooworet_button_callback_unknown_type.json", 0),
        // Websocket message objects, not inbox items: no `type`, acknowledged and ignored.
        ("ws_message_add_group_message_object.json", 0),
        ("ws_message_add_dm_message_object_no_groupid.json", 0),
    ];
    for (name, body) in files {
        let clock: SharedClock = Arc::new(SystemClock);
        let (store, _dir) = support::embedded(clock.clone());
        let emu = hookline_tailchat::emulator::TailchatEmulator::new(
            hookline_tailchat::emulator::EMULATOR_APP_ID,
            hookline_tailchat::emulator::EMULATOR_APP_SECRET,
            BOT,
        );
        let api_url = emu.serve_on_loopback().await.expect("emulator");
        let config = hookline_tailchat::TailchatConfig {
            api_url,
            app_id: hookline_tailchat::emulator::EMULATOR_APP_ID.into(),
            app_secret: Secret::new(hookline_tailchat::emulator::EMULATOR_APP_SECRET),
            callback_token: Secret::new("realworld-callback-token-01"),
        };
        let router = hookline_tailchat::router(config, support::deps(store, clock));
        let (status, _) = post(&router, "token=realworld-callback-token-01", body).await;
        check("tailchat", &name, status, emu.sent().len(), &table);
    }
}

#[tokio::test]
async fn every_real_tencent_body_is_acknowledged_and_messages_to_the_bot_answered() {
    let Some(files) = corpus("tencent") else {
        return;
    };
    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    const TOKEN: &str = "realworld-callback-token-01";
    let table = [
        ("official_doc_bot_on_group_message.json", 1),
        // Addressed to "Jonh", not to a chatbot account (@RBT#…): not ours.
        ("official_doc_bot_on_c2c_message.json", 0),
        ("fixture_group_multi_bot_mention_no_rbt_prefix.json", 0),
        ("fixture_group_empty_atrobots_array.json", 0),
        ("fixture_state_change_unsupported_command.json", 0),
        ("group_after_group_info_changed_body.json", 0),
        ("group_after_new_member_join_body.json", 0),
        ("group_after_send_msg_chatroom_uuid_account.json", 0),
        (
            "group_after_send_msg_custom_elem_avchatroom_trimmed.json",
            0,
        ),
        ("group_after_send_msg_custom_groupid_prefix_minimal.json", 0),
        ("group_after_send_msg_public_2019_gogf.json", 0),
        ("group_after_send_msg_restapi_tls_not_found_body.json", 0),
        ("group_before_send_msg_avchatroom_body.json", 0),
    ];
    let queries: HashMap<String, Value> = files
        .iter()
        .filter_map(|(name, bytes)| {
            let stem = name.strip_suffix("_query_params.json")?;
            Some((
                stem.to_owned(),
                serde_json::from_slice(bytes).expect("query JSON"),
            ))
        })
        .collect();
    for (name, body) in files
        .iter()
        .filter(|(n, _)| !n.ends_with("_query_params.json"))
    {
        let json: Value = serde_json::from_slice(body).expect("body JSON");
        // The captured query where there is one (`x_body.json` ↔ `x_query_params.json`, or the
        // REST capture's), else the documented one; SdkAppid and the command as captured.
        let stem = name.trim_end_matches(".json").trim_end_matches("_body");
        let command = json["CallbackCommand"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let captured = queries
            .get(stem)
            .or_else(|| {
                // The capture of the same command from the same project.
                queries
                    .values()
                    .find(|q| q["CallbackCommand"] == command.as_str())
            })
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut query: Vec<(String, String)> = captured
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
                    .collect()
            })
            .unwrap_or_default();
        if !query.iter().any(|(k, _)| k == "CallbackCommand") {
            query.push(("CallbackCommand".into(), command.clone()));
        }
        if !query.iter().any(|(k, _)| k == "SdkAppid") {
            query.push(("SdkAppid".into(), "1400000000".into()));
        }
        query.retain(|(k, _)| k != "Sign" && k != "RequestTime");
        let sdkappid: u64 = query
            .iter()
            .find(|(k, _)| k == "SdkAppid")
            .and_then(|(_, v)| v.parse().ok())
            .expect("numeric SdkAppid");
        let now = SystemClock.now_s().to_string();
        query.push(("RequestTime".into(), now.clone()));
        query.push(("Sign".into(), hookline_tencent::callback_sign(TOKEN, &now)));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();

        let clock: SharedClock = Arc::new(SystemClock);
        let (store, _dir) = support::embedded(clock.clone());
        let emu = hookline_tencent::emulator::TencentEmulator::new(
            sdkappid,
            KEY,
            "administrator",
            clock.clone(),
        );
        let api_url = emu.serve_on_loopback().await.expect("emulator");
        let config = hookline_tencent::TencentConfig {
            sdkappid,
            secret_key: Secret::new(KEY),
            bot_id: "@RBT#001".into(),
            admin: "administrator".into(),
            api_url,
            callback_token: Some(Secret::new(TOKEN)),
        };
        let router = hookline_tencent::router(config, support::deps(store, clock));
        let (status, answer) = post(&router, &query, body.clone()).await;
        check("tencent", name, status, emu.sent().len(), &table);
        let answer: Value = serde_json::from_str(&answer).expect("Tencent's JSON answer");
        assert_eq!(answer["ErrorCode"], 0, "{name}: {answer}");
    }
}

#[tokio::test]
async fn every_real_dingtalk_body_is_acknowledged_and_answered() {
    let Some(files) = corpus("dingtalk") else {
        return;
    };
    use hookline_dingtalk::emulator::DingTalkEmulator;
    const SECRET: &str = "realworld-app-secret-0123456789";
    // Every callback is a message to the robot (an @-mention in a group, or a DM).
    let table: Vec<(&str, usize)> = files
        .iter()
        .filter(|(n, _)| n.as_str() != "official_doc_http_headers_sample.json")
        .map(|(n, _)| (n.as_str(), 1))
        .collect();
    for (name, body) in &files {
        let mut json: Value = serde_json::from_slice(body).expect("body JSON");
        if name == "official_doc_http_headers_sample.json" {
            // The documented headers of a callback: the ones verify reads are there.
            assert!(
                json["timestamp"].is_string() || json["timestamp"].is_number(),
                "{json}"
            );
            assert!(json["sign"].is_string(), "{json}");
            continue;
        }
        for unsigned in [false, true] {
            let has_code = json.get("robotCode").is_some();
            if unsigned && has_code {
                // Legacy unsigned robots never send robotCode; signed ones are the case above.
                continue;
            }
            let clock: SharedClock = Arc::new(SystemClock);
            let (store, _dir) = support::embedded(clock.clone());
            let emu = DingTalkEmulator::new("t", "s", clock.clone());
            let emu_url = emu.serve_on_loopback().await.expect("emulator");
            // The session webhook of an old post: pointed at the emulator, valid for an hour.
            let original = json["sessionWebhook"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let session = url::Url::parse(&original).expect("sessionWebhook URL");
            let rewritten = format!(
                "{emu_url}{}?{}",
                session.path(),
                session.query().unwrap_or_default()
            );
            json["sessionWebhook"] = json!(rewritten);
            json["sessionWebhookExpiredTime"] = json!(clock.now_ms() + 3_600_000);
            let config = hookline_dingtalk::DingTalkConfig {
                app_secret: Secret::new(SECRET),
                robot_code: json["robotCode"]
                    .as_str()
                    .unwrap_or("dingrealworldrobot")
                    .to_owned(),
                custom_robot: None,
                notify_token: None,
                api_url: emu_url.clone(),
                // Only the emulator: a real DingTalk host would be refused before any call.
                session_hosts: vec![emu_url.trim_start_matches("http://").to_owned()],
                allow_unsigned: unsigned,
                webhook_conversation: None,
            };
            let router = hookline_dingtalk::router(config, support::deps(store, clock.clone()));
            let ts = clock.now_ms().to_string();
            let mut request = Request::post("/").header("content-type", "application/json");
            if !unsigned {
                request = request
                    .header("timestamp", &ts)
                    .header("sign", hookline_dingtalk::sign::sign(SECRET, &ts));
            }
            let request = request.body(Body::from(json.to_string())).expect("request");
            let response = router.oneshot(request).await.expect("infallible");
            let label = format!("{name}{}", if unsigned { " (unsigned)" } else { "" });
            check("dingtalk", &label, response.status(), emu.sent().len(), &[]);
            assert_eq!(
                emu.sent().len(),
                expected(&table, name).unwrap_or(1),
                "dingtalk/{label}: replies sent"
            );
        }
    }
}

#[tokio::test]
async fn every_real_tamtam_and_max_body_is_acknowledged() {
    let Some(files) = corpus("tamtam") else {
        return;
    };
    use hookline_tamtam::emulator::TamTamEmulator;
    const TOKEN: &str = "realworld-callback-token-01";
    // The TamTam-era fixture is a button press: answered once through /answers. The MAX
    // payloads (TamTam's successor, issue "MAX") go through the TamTam router here only to
    // prove that none of them breaks it; what they get answered is MAX's adapter's business.
    let table = [("tamtam_dsl_fixture_message_callback_location_image.json", 1)];
    for (name, body) in files {
        let clock: SharedClock = Arc::new(SystemClock);
        let (store, _dir) = support::embedded(clock.clone());
        let emu = TamTamEmulator::new("bot-token", 591_000_001, "helper_bot");
        let api_url = emu.serve_on_loopback().await.expect("emulator");
        let config = hookline_tamtam::TamTamConfig {
            token: Secret::new("bot-token"),
            callback_token: Secret::new(TOKEN),
            api_url,
            allowed_subnets: hookline_tamtam::default_subnets(),
        };
        let router = hookline_tamtam::router(config, support::deps(store, clock));
        let (status, _) = post_from(
            &router,
            Some("185.16.150.153"),
            &format!("token={TOKEN}"),
            body,
        )
        .await;
        let replies = emu.sent().len();
        if name.starts_with("max_") {
            assert_eq!(status, StatusCode::OK, "tamtam/{name}");
        } else {
            check("tamtam", &name, status, replies, &table);
        }
    }
}

/// Every `max_*.json` through the MAX router, with the secret header MAX sends: acknowledged
/// with 200, and answered exactly where it is a message, a button press, a start or an
/// addition addressed to the bot. Each reply goes to the body's own chat id, exactly (ids are
/// i64 end to end), and never to `recipient.user_id` (in a dialog, the bot itself).
#[tokio::test]
async fn every_real_max_body_is_acknowledged_and_messages_to_the_bot_answered() {
    let Some(files) = corpus("tamtam") else {
        return;
    };
    use hookline_tamtam::emulator::TamTamEmulator;
    const SECRET: &str = "realworld-max-secret_01";
    let table = [
        ("max_comment_created_unknown_type_no_sender.json", 0),
        // Answered through POST /answers (callback.user pressed; message.sender is the bot).
        ("max_probe_message_callback_partly_reconstructed.json", 1),
        ("max_real_message_created_start_command.json", 1),
        ("max_real_probe_bot_started_toplevel_user_id.json", 1),
        ("max_real_probe_message_created_dialog.json", 1),
        ("max_real_webhook_message_created_two_part_name.json", 1),
        ("max_sdk_go_webhook_bot_added.json", 1),
        ("max_sdk_go_webhook_bot_removed.json", 0),
        ("max_sdk_go_webhook_bot_started.json", 1),
        ("max_sdk_go_webhook_bot_stopped.json", 0),
        ("max_sdk_go_webhook_chat_title_changed.json", 0),
        ("max_sdk_go_webhook_dialog_cleared.json", 0),
        ("max_sdk_go_webhook_dialog_muted.json", 0),
        ("max_sdk_go_webhook_dialog_removed.json", 0),
        ("max_sdk_go_webhook_dialog_unmuted.json", 0),
        ("max_sdk_go_webhook_message_callback.json", 1),
        // A group message that neither mentions the bot nor is a command.
        ("max_sdk_go_webhook_message_created.json", 0),
        ("max_sdk_go_webhook_message_edited.json", 0),
        ("max_sdk_go_webhook_message_removed.json", 0),
        ("max_sdk_go_webhook_user_added.json", 0),
        ("max_sdk_go_webhook_user_removed.json", 0),
    ];
    let mut replayed = 0;
    for (name, body) in files.into_iter().filter(|(n, _)| n.starts_with("max_")) {
        replayed += 1;
        let update: Value = serde_json::from_slice(&body).expect("corpus JSON");
        let clock: SharedClock = Arc::new(SystemClock);
        let (store, _dir) = support::embedded(clock.clone());
        let emu = TamTamEmulator::max("max-bot-token", 591_000_001, "helper_bot");
        let api_url = emu.serve_on_loopback().await.expect("emulator");
        let config = hookline_tamtam::MaxConfig {
            token: Secret::new("max-bot-token"),
            webhook_secrets: vec![Secret::new(SECRET)],
            api_url,
            allowed_subnets: None,
            ca_pem: None,
        };
        let router = hookline_tamtam::max_router(config, support::deps(store, clock));
        let (status, _) = support::post_with(
            &router,
            Some("203.0.113.7"),
            "",
            &[("x-max-bot-api-secret", SECRET)],
            body,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "max/{name}");
        let sent = emu.sent();
        check("max", &name, status, sent.len(), &table);
        assert_eq!(
            emu.token_in_url(),
            0,
            "max/{name}: the token went into a URL"
        );
        let message = &update["message"];
        let bot_itself = message["recipient"]["user_id"].as_i64();
        for call in &sent {
            let to = call["query"]["chat_id"]
                .as_str()
                .or(call["query"]["user_id"].as_str());
            if call["path"] == "/messages" {
                let to: i64 = to.expect("an address").parse().expect("an i64");
                assert_ne!(
                    Some(to),
                    bot_itself,
                    "max/{name}: replied to the bot itself"
                );
                let chat = message["recipient"]["chat_id"]
                    .as_i64()
                    .or(update["chat_id"].as_i64());
                assert_eq!(Some(to), chat, "max/{name}: not the body's chat, exactly");
                if let Some(mid) = message["body"]["mid"].as_str() {
                    assert_eq!(call["body"]["link"]["mid"], mid, "max/{name}");
                }
            }
        }
    }
    assert_eq!(
        replayed,
        table.len(),
        "max_* files and this test's table differ"
    );
}
