//! `hookline doctor` against the emulators of a `hookline serve`: it reports every configured
//! platform's credentials as working or not, names what is missing, never prints a secret, and
//! never makes a platform post a message.

use std::collections::HashMap;
use std::process::Output;

use crate::serve::start_serve;
use crate::support::{emulator_sent, example_env, workspace_bin};

/// infra/example.env with its APIs on `here` (the example points at 127.0.0.1:3000).
fn example(here: &str) -> HashMap<String, String> {
    example_env()
        .into_iter()
        .map(|(k, v)| (k, v.replace("127.0.0.1:3000", here)))
        .collect()
}

async fn doctor(env: &HashMap<String, String>, data: &std::path::Path) -> (bool, String) {
    let out: Output = tokio::process::Command::new(workspace_bin("hookline"))
        .arg("doctor")
        .env_clear()
        .envs(env)
        .env("HOOKLINE_DATA_DIR", data)
        .env("RUST_LOG", "error")
        .output()
        .await
        .expect("hookline doctor");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn line<'a>(report: &'a str, platform: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(platform) && !l.contains(" warn "))
        .unwrap_or_else(|| panic!("no {platform} line in\n{report}"))
}

async fn nothing_sent(base: &str) {
    for platform in ["tailchat", "tencent", "dingtalk", "tamtam"] {
        let sent = emulator_sent(base, platform).await;
        assert_eq!(
            sent,
            serde_json::json!([]),
            "doctor made {platform} post something"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_every_platforms_credentials_without_sending_anything() {
    let dir = tempfile::tempdir().unwrap();
    let serve_data = dir.path().join("serve").display().to_string();
    let (mut serve, base) = start_serve(&[("HOOKLINE_DATA_DIR", serve_data)]).await;
    let here = base.trim_start_matches("http://").to_owned();
    let data = dir.path().join("doctor");

    // The example configuration works against the emulators.
    let env = example(&here);
    let (ok, report) = doctor(&env, &data).await;
    assert!(ok, "{report}");
    assert!(line(&report, "store").contains(" ok "), "{report}");
    assert!(
        line(&report, "tailchat").contains("login ok, bot user 656d756c61746f7200000001"),
        "{report}"
    );
    assert!(
        line(&report, "tencent").contains("UserSig of administrator accepted"),
        "{report}"
    );
    assert!(report.contains("chatbot @RBT#001: NotImported"), "{report}");
    assert!(
        line(&report, "dingtalk").contains("token and signature accepted"),
        "{report}"
    );
    assert!(
        line(&report, "tamtam").contains("GET /me ok, bot hookline (@hookline_bot"),
        "{report}"
    );

    // Wrong credentials fail, each with its reason, and exit 1.
    let mut wrong = env.clone();
    wrong.insert(
        "TAILCHAT_APP_SECRET".into(),
        "not-the-app-secret-0000000000000".into(),
    );
    wrong.insert("TENCENT_SECRET_KEY".into(), "0".repeat(64));
    wrong.insert(
        "DINGTALK_WEBHOOK_SECRET".into(),
        "SECnot-the-robot-secret".into(),
    );
    wrong.insert("TAMTAM_TOKEN".into(), "not-the-tamtam-token".into());
    let (ok, report) = doctor(&wrong, &data).await;
    assert!(!ok, "{report}");
    assert!(line(&report, "tailchat").contains("FAIL"), "{report}");
    assert!(
        line(&report, "tailchat").contains("check TAILCHAT_APP_SECRET"),
        "{report}"
    );
    assert!(
        line(&report, "tencent").contains("FAIL  SDKAppID 1400000000"),
        "{report}"
    );
    assert!(
        line(&report, "tencent").contains("ErrorCode 70009"),
        "{report}"
    );
    assert!(line(&report, "dingtalk").contains("FAIL"), "{report}");
    assert!(
        line(&report, "dingtalk").contains("errcode 310000"),
        "{report}"
    );
    assert!(line(&report, "tamtam").contains("FAIL"), "{report}");
    for (name, secret) in &wrong {
        let secret_var =
            name.ends_with("_SECRET") || name.ends_with("_TOKEN") || name.ends_with("_KEY");
        if secret_var && !secret.is_empty() {
            assert!(
                !report.contains(secret.as_str()),
                "{name} leaked:\n{report}"
            );
        }
    }

    // Half a configuration names what is missing; none at all is not a working setup.
    let partial = HashMap::from([("TAMTAM_TOKEN".to_owned(), "t".to_owned())]);
    let (ok, report) = doctor(&partial, &data).await;
    assert!(!ok);
    assert!(
        line(&report, "tamtam").contains("FAIL  missing TAMTAM_CALLBACK_TOKEN"),
        "{report}"
    );
    assert!(
        line(&report, "tailchat").contains("off   not configured"),
        "{report}"
    );
    let (ok, report) = doctor(&HashMap::new(), &data).await;
    assert!(!ok, "{report}");

    nothing_sent(&base).await;
    serve.start_kill().expect("stop serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_setup_and_the_flush_work_beside_a_running_serve() {
    let dir = tempfile::tempdir().unwrap();
    // serve holds the embedded store in `data`; every command below is pointed at the same one.
    let data = dir.path().join("serve");
    let (mut serve, base) = start_serve(&[("HOOKLINE_DATA_DIR", data.display().to_string())]).await;
    let here = base.trim_start_matches("http://").to_owned();
    let env = example(&here);

    let (ok, report) = doctor(&env, &data).await;
    assert!(ok, "{report}");
    assert!(
        line(&report, "store").contains("held by a running process"),
        "{report}"
    );

    let run = |bin: &str, args: &[&str]| {
        tokio::process::Command::new(workspace_bin(bin))
            .args(args)
            .env_clear()
            .envs(&env)
            .env("HOOKLINE_DATA_DIR", &data)
            .env("HOOKLINE_BIND", &here)
            .env("RUST_LOG", "error")
            .output()
    };
    let setup = run(
        "hookline",
        &["setup", "tamtam", "--url", "https://bot.example.com/tamtam"],
    )
    .await
    .expect("hookline setup tamtam");
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    let flush = run("hookline-dingtalk-flush", &[]).await.expect("flush");
    let stdout = String::from_utf8_lossy(&flush.stdout);
    assert!(
        flush.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&flush.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a flush report");
    assert_eq!(report["pending"], 0, "{report}");
    serve.kill().await.expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_lists_dingtalk_notifications_set_aside_as_dead_letters() {
    use hookline::store::{EmbeddedStore, Key, StateStore};
    let dir = tempfile::tempdir().unwrap();
    let serve_data = dir.path().join("serve").display().to_string();
    let (mut serve, base) = start_serve(&[("HOOKLINE_DATA_DIR", serve_data)]).await;
    let env = example(base.trim_start_matches("http://"));
    let data = dir.path().join("doctor");
    {
        let clock: hookline::clock::SharedClock = std::sync::Arc::new(hookline::clock::SystemClock);
        let store = EmbeddedStore::open(&data.join("state.redb"), clock).unwrap();
        let token = hookline::secret::Secret::new(&env["DINGTALK_WEBHOOK_TOKEN"]);
        let letter = serde_json::json!({"notification": {"text": "disk full on db-1"},
                                        "reason": "errcode 460101 (message too long)", "at_ms": 1});
        store
            .put(
                &Key::new(format!("dingtalk#{}#dead", token.fingerprint()), "0001#a"),
                &letter.to_string(),
                None,
            )
            .await
            .unwrap();
    }
    let (_, report) = doctor(&env, &data).await;
    assert!(
        report.contains("dead letters") && report.contains("disk full on db-1"),
        "{report}"
    );
    assert!(report.contains("460101"), "{report}");
    serve.kill().await.expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_dead_lettered_deferred_events_and_the_dead_letter_queues_depth() {
    use hookline::idempotency::{DeadLetter, Idempotency};
    use hookline::model::{EventId, Platform};
    use hookline::store::{EmbeddedStore, Key};
    let Some(endpoint) = crate::support::dynamodb_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("doctor");
    {
        let clock: hookline::clock::SharedClock = std::sync::Arc::new(hookline::clock::SystemClock);
        let store: hookline::store::SharedStore = std::sync::Arc::new(
            EmbeddedStore::open(&data.join("state.redb"), clock.clone()).unwrap(),
        );
        let idem = Idempotency::new(store.clone(), clock, Platform::TamTam, "bot");
        let event = EventId::from("mid.0042");
        let report = DeadLetter {
            platform: Platform::TamTam,
            event_id: event.clone(),
            at_ms: 1,
            reason: "retry later: the model API is down".into(),
        };
        idem.dead(&idem.key(&event), &report).await.unwrap();
        let job = Key::new(
            hookline::queue::embedded::QUEUE_PARTITION,
            "tamtam#bot#evt#mid.7",
        );
        store.put(&job, "{}", None).await.unwrap();
    }
    // A dead-letter queue with one message in it, on moto.
    let sqs = crate::support::sqs_client(&endpoint);
    let dlq = sqs
        .create_queue()
        .queue_name(format!("doctor-dlq-{:016x}", crate::support::rand_id()))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    sqs.send_message()
        .queue_url(&dlq)
        .message_body("{}")
        .send()
        .await
        .unwrap();
    let env: HashMap<String, String> = [
        ("HOOKLINE_DLQ_URL", dlq.as_str()),
        ("AWS_ENDPOINT_URL_SQS", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let (_, report) = doctor(&env, &data).await;
    let lines: Vec<&str> = report.lines().filter(|l| l.starts_with("queue")).collect();
    assert!(
        lines.iter().any(|l| l.contains("warn")
            && l.contains("1 deferred event(s) failed every attempt")
            && l.contains("tamtam event mid.0042")
            && l.contains("the model API is down")),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("1 deferred event(s) wait in serve's queue")),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("warn") && l.contains("1 message(s) in the dead-letter queue")),
        "{report}"
    );
}
