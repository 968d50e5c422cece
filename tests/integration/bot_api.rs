//! A bot's errors and panics through the real pipeline (`hookline_server::testing`): "retry
//! later" is redelivered where the platform redelivers and retried in-process where it does not
//! (Tailchat), "give up" completes the event, "answer instead" is sent, a panic is logged and the
//! event completed while the server keeps running, also under Lambda.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hookline::bot::{Bot, BotError, BotResult, Ctx, Handlers};
use hookline::model::Reply;
use hookline_server::testing::TestServer;

use crate::support::workspace_bin;
use crate::support::{start_tailchat, tailchat_message};

/// A bot whose first `fail` calls fail with `error`, then answers "ok <n>".
struct Flaky {
    calls: Arc<AtomicUsize>,
    fail: usize,
    error: BotError,
}

#[hookline::async_trait]
impl Bot for Flaky {
    async fn handle(&self, _: Ctx) -> BotResult {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.fail {
            return Err(self.error.clone());
        }
        Ok(vec![Reply::text(format!("ok {n}"))])
    }
}

fn flaky(fail: usize, error: BotError) -> (Flaky, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let bot = Flaky {
        calls: calls.clone(),
        fail,
        error,
    };
    (bot, calls)
}

#[tokio::test]
async fn retry_later_releases_the_event_for_the_platforms_redelivery() {
    for platform in ["tamtam", "dingtalk", "tencent"] {
        let (bot, calls) = flaky(1, BotError::retry("the weather API is down"));
        let server = TestServer::start(bot).await.unwrap();
        let webhook = server.webhook(platform, "weather?");
        let first = server.deliver(&webhook).await.unwrap();
        assert_eq!(first.status, 503, "{platform}: {}", first.body);
        let again = server.deliver(&webhook).await.unwrap();
        assert_eq!(again.status, 200, "{platform}");
        let replies = again.replies.unwrap();
        assert_eq!(replies.len(), 1, "{platform}: one reply, to the redelivery");
        assert!(replies[0].contains("ok 2"), "{platform}: {replies:?}");
        // A third delivery is a duplicate of a handled event.
        let third = server.deliver(&webhook).await.unwrap();
        assert_eq!(third.replies.unwrap().len(), 1, "{platform}");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "{platform}");
    }
}

#[tokio::test]
async fn retry_later_on_tailchat_which_never_redelivers_is_retried_in_process() {
    let (bot, calls) = flaky(2, BotError::retry("busy"));
    let server = TestServer::start(bot).await.unwrap();
    let replies = server.say("tailchat", "hello").await.unwrap();
    assert_eq!(replies.len(), 1);
    assert!(replies[0].contains("ok 3"), "{replies:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_bot_that_keeps_asking_to_retry_is_given_up_at_the_invocations_deadline() {
    use hookline::clock::{Clock, SystemClock};
    use hookline::pipeline::RawRequest;
    let (bot, calls) = flaky(usize::MAX, BotError::retry("never"));
    let emu =
        hookline_tailchat::emulator::TailchatEmulator::new("app", "secret-secret-secret", "bot");
    let api = emu.serve_on_loopback().await.unwrap();
    let clock: hookline::clock::SharedClock = Arc::new(SystemClock);
    let (store, _dir) = crate::support::embedded(clock.clone());
    let mut deps = crate::support::deps(store, clock);
    deps.bot = Arc::new(bot);
    let config = hookline_tailchat::TailchatConfig {
        api_url: api,
        app_id: "app".into(),
        app_secret: hookline::secret::Secret::new("secret-secret-secret"),
        callback_token: hookline::secret::Secret::new("callback-token-0000"),
    };
    let pipeline = hookline_tailchat::pipeline(config, deps);
    let mut body: serde_json::Value = crate::support::fixture_json("tailchat/message_group.json");
    body["userId"] = "bot".into();
    let now = SystemClock.now_ms();
    let request = RawRequest {
        headers: Default::default(),
        query: Some("token=callback-token-0000".into()),
        body: serde_json::to_vec(&body).unwrap().into(),
        client_ip: None,
        now_ms: now,
    };
    let started = std::time::Instant::now();
    // 3.5 s left: calls stop 2 s before, so the retries have 1.5 s.
    let mut seen = hookline::pipeline::Seen::default();
    let (response, outcome) = pipeline
        .handle(request.clone(), Some(now + 3_500), &mut seen)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        outcome,
        hookline::telemetry::Outcome::Failed("bot_retry_exhausted")
    );
    assert!(seen.event_id.is_some());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let tries = calls.load(Ordering::SeqCst);
    assert!((2..=4).contains(&tries), "{tries} tries");
    assert!(emu.sent().is_empty());
    // Given up means handled: a repeat is a duplicate, the bot is not run again.
    let (_, outcome) = pipeline
        .handle(request, Some(now + 3_500), &mut Default::default())
        .await
        .unwrap();
    assert_eq!(outcome, hookline::telemetry::Outcome::Duplicate);
    assert_eq!(calls.load(Ordering::SeqCst), tries);
}

#[tokio::test]
async fn give_up_completes_the_event_and_answer_instead_is_sent() {
    for platform in ["tailchat", "tamtam"] {
        let (bot, calls) = flaky(usize::MAX, BotError::give_up("no such city"));
        let server = TestServer::start(bot).await.unwrap();
        let webhook = server.webhook(platform, "weather in Atlantis");
        for _ in 0..2 {
            let exchange = server.deliver(&webhook).await.unwrap();
            assert_eq!(exchange.status, 200, "{platform}");
            assert_eq!(exchange.replies.unwrap().len(), 0, "{platform}");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{platform}: a redelivery is a duplicate"
        );

        let (bot, _) = flaky(
            usize::MAX,
            BotError::answer("Sorry, I do not know that city."),
        );
        let server = TestServer::start(bot).await.unwrap();
        let replies = server.say(platform, "weather in Atlantis").await.unwrap();
        assert_eq!(replies.len(), 1, "{platform}");
        assert!(
            replies[0].contains("Sorry, I do not know that city."),
            "{platform}: {replies:?}"
        );
    }
}

fn panicky() -> Handlers {
    Handlers::new()
        .command("boom", "Panics", |_| async {
            panic!("the bot author's bug")
        })
        .on_text(|cx: Ctx| async move { Ok(vec![Reply::text(format!("fine: {}", cx.text()))]) })
}

#[tokio::test]
async fn a_panicking_bot_is_caught_and_the_server_keeps_serving() {
    let server = TestServer::start(panicky()).await.unwrap();
    for platform in hookline_server::testing::PLATFORMS {
        let webhook = server.webhook(platform, "/boom");
        let exchange = server.deliver(&webhook).await.unwrap();
        assert_eq!(exchange.status, 200, "{platform}: {}", exchange.body);
        assert_eq!(exchange.replies.unwrap().len(), 0, "{platform}");
        // Completed: the redelivery does not run (and panic) again.
        assert_eq!(server.deliver(&webhook).await.unwrap().status, 200);
        let replies = server.say(platform, "still there?").await.unwrap();
        assert_eq!(replies.len(), 1, "{platform}");
        assert!(
            replies[0].contains("fine: still there?"),
            "{platform}: {replies:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_bot_under_lambda_still_answers_and_the_function_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, mut lambda) = start_tailchat(&workspace_bin("hookline-test-bot"), dir.path()).await;
    let message = tailchat_message;
    let answer = lambda
        .invoke(message("65530000c3b1e2a9d4f0aa01", "/boom"))
        .await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert!(emu.sent().is_empty());
    let answer = lambda
        .invoke(message("65530000c3b1e2a9d4f0aa02", "hi"))
        .await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(emu.sent().len(), 1);
    assert!(
        lambda.child.try_wait().unwrap().is_none(),
        "the function survived the panic"
    );
    let log = std::fs::read_to_string(&lambda.log).unwrap();
    assert!(log.contains("the bot panicked"), "{log}");
    assert!(log.contains("the bot author's bug"), "{log}");
}

#[tokio::test]
async fn a_bot_is_unit_tested_on_recorded_payloads_with_the_platforms_own_fields() {
    use hookline::model::{ChatKind, Platform};
    use hookline::testing::TestBot;
    use hookline_server::testing::message_from;

    // What the neutral model carries, decoded by each adapter from a recorded webhook.
    let cases = [
        (
            "dingtalk",
            "dingtalk/text_group_mention.json",
            ChatKind::Group,
            Some("Zhang San"),
        ),
        (
            "dingtalk",
            "dingtalk/text_direct.json",
            ChatKind::Direct,
            Some("Li Si"),
        ),
        (
            "tailchat",
            "tailchat/message_group.json",
            ChatKind::Group,
            None,
        ),
        (
            "tailchat",
            "tailchat/message_dm.json",
            ChatKind::Direct,
            None,
        ),
        (
            "tamtam",
            "tamtam/message_created_group_mention.json",
            ChatKind::Group,
            Some("Boris"),
        ),
        (
            "tamtam",
            "tamtam/message_created_dialog_null_attachments.json",
            ChatKind::Direct,
            None,
        ),
        (
            "tencent",
            "tencent/group_message_signed.json",
            ChatKind::Group,
            None,
        ),
        (
            "tencent",
            "tencent/c2c_message_signed.json",
            ChatKind::Direct,
            None,
        ),
    ];
    for (platform, file, kind, name) in cases {
        let message = message_from(platform, &crate::support::fixture(file)).unwrap();
        let incoming = message.incoming();
        assert_eq!(incoming.platform.as_str(), platform, "{file}");
        assert_eq!(incoming.chat_kind, kind, "{file}");
        if name.is_some() {
            assert_eq!(incoming.sender_name.as_deref(), name, "{file}");
        }
        assert!(incoming.addressed, "{file}");
    }
    // The escape hatch: the platform's own payload, typed by the bot.
    #[derive(serde::Deserialize)]
    struct TamTamUpdate {
        user_locale: Option<String>,
        message: serde_json::Value,
    }
    let bot = Handlers::new().on_text(|cx: Ctx| async move {
        let update: TamTamUpdate = cx.payload()?;
        let locale = update.user_locale.unwrap_or_default();
        let mid = update.message["body"]["mid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(vec![Reply::text(format!(
            "{locale} {mid} {}",
            cx.sender_name()
        ))])
    });
    let t = TestBot::new(bot);
    let body = crate::support::fixture("tamtam/message_created_group_mention.json");
    let message = message_from("tamtam", &body).unwrap();
    assert_eq!(message.incoming().platform, Platform::TamTam);
    let replies = t.send(message).await.unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let expected = format!(
        "{} {} Boris",
        raw["user_locale"].as_str().unwrap_or_default(),
        raw["message"]["body"]["mid"].as_str().unwrap()
    );
    assert_eq!(replies[0].to_plain_text(), expected);
    // A payload the adapter ignores is an error, not a silent empty message.
    let removed = crate::support::fixture("tamtam/message_removed_group.json");
    assert!(message_from("tamtam", &removed).is_err());
}
