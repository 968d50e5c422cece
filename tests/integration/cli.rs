//! The `hookline` command line through the built binary: platforms as a value enum, completion
//! scripts, `--help` naming the variables, `error: …` with exit codes 0/1/2, `simulate`'s exit
//! status, `doctor --json` and its progress, `event` from any folder.

use std::process::Output;

use axum::Json;
use axum::Router;
use axum::routing::{get, post};

use crate::support::workspace_bin;

/// Runs `hookline args…` in `dir` with only `env` (and PATH).
async fn hookline(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    tokio::process::Command::new(workspace_bin("hookline"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .await
        .expect("run hookline")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn usage_and_configuration_errors_exit_2_and_say_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookline(&["simulate", "slack", "hi"], &[], dir.path()).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("[possible values: tailchat, tencent, dingtalk, max, tamtam]"),
        "{stderr}"
    );

    // A bad variable and the same through its flag: a configuration error, with its cause.
    for (args, env) in [
        (&["serve"][..], &[("HOOKLINE_BIND", "nonsense")][..]),
        (&["serve", "--bind", "nonsense"][..], &[][..]),
    ] {
        let out = hookline(args, env, dir.path()).await;
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("error: HOOKLINE_BIND is invalid: "),
            "{stderr}"
        );
        assert!(!stderr.contains("Error:"), "Debug output: {stderr}");
    }
}

#[tokio::test]
async fn help_names_each_variable_and_completions_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookline(&["serve", "--help"], &[], dir.path()).await;
    assert!(out.status.success());
    let help = text(&out.stdout);
    for var in [
        "HOOKLINE_BIND",
        "HOOKLINE_DATA_DIR",
        "HOOKLINE_TABLE",
        "HOOKLINE_METRICS",
        "HOOKLINE_METRICS_BIND",
        "TAILCHAT_APP_SECRET",
        "MAX_WEBHOOK_SECRET",
    ] {
        assert!(help.contains(var), "{var} not in serve --help:\n{help}");
    }
    assert!(help.contains("Exit status: 0"), "{help}");
    // The defaults --help states are the code's.
    for default in [
        format!("[default: {}]", hookline::config::DEFAULT_BIND),
        format!("[default: {}]", hookline::queue::DEFAULT_WORKERS),
        format!(
            "[default: {}, loopback]",
            hookline_server::metrics::DEFAULT_BIND
        ),
    ] {
        assert!(
            help.contains(&default),
            "{default} not in serve --help:\n{help}"
        );
    }
    let out = hookline(&["setup", "max", "--help"], &[], dir.path()).await;
    assert!(text(&out.stdout).contains("[env: MAX_WEBHOOK_URL"));

    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = hookline(&["completions", shell], &[], dir.path()).await;
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["simulate", "doctor", "completions", "tamtam"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        // The platforms' possible values (clap_complete's fish, elvish and PowerShell scripts
        // complete no positional values).
        if matches!(shell, "bash" | "zsh") {
            assert!(script.contains("dingtalk"), "{shell}: no platform values");
        }
    }
}

#[tokio::test]
async fn event_works_from_any_folder_with_the_samples_in_the_binary() {
    let elsewhere = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    for platform in ["tailchat", "tencent", "dingtalk", "max", "tamtam"] {
        let env = [("DINGTALK_APP_SECRET", "dingtalk-secret")];
        let built_in = hookline(
            &["event", platform, "--at", "1700000000"],
            &env,
            elsewhere.path(),
        )
        .await;
        assert!(
            built_in.status.success(),
            "{platform}: {}",
            text(&built_in.stderr)
        );
        let file = root.join(format!("infra/events/{platform}.json"));
        let from_file = hookline(
            &[
                "event",
                platform,
                "--at",
                "1700000000",
                "--file",
                file.to_str().unwrap(),
            ],
            &env,
            elsewhere.path(),
        )
        .await;
        assert_eq!(
            text(&built_in.stdout),
            text(&from_file.stdout),
            "{platform}"
        );
        let event: serde_json::Value = serde_json::from_slice(&built_in.stdout).unwrap();
        assert_eq!(event["version"], "2.0");
    }
}

#[tokio::test]
async fn doctor_json_is_a_machine_readable_report_with_progress_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state");
    let out = hookline(
        &["doctor", "--json", "--data-dir", data.to_str().unwrap()],
        &[],
        dir.path(),
    )
    .await;
    // Nothing configured: not ready.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(report["healthy"], false);
    let findings = report["findings"].as_array().unwrap();
    let store = findings.iter().find(|f| f["scope"] == "store").unwrap();
    assert_eq!(store["status"], "ok", "{store}");
    assert!(
        store["text"]
            .as_str()
            .unwrap()
            .contains(data.to_str().unwrap()),
        "--data-dir is the store doctor checks: {store}"
    );
    let tailchat = findings.iter().find(|f| f["scope"] == "tailchat").unwrap();
    assert_eq!(tailchat["status"], "off");
    let stderr = text(&out.stderr);
    for scope in ["store", "tailchat", "tencent", "dingtalk", "tamtam", "max"] {
        assert!(stderr.contains(&format!("checking {scope}…")), "{stderr}");
    }
}

/// A webhook server that answers every POST with `status`, and an emulator with no reply.
async fn fake_server(status: u16) -> String {
    let app = Router::new()
        .route(
            "/tailchat",
            post(move || async move { axum::http::StatusCode::from_u16(status).unwrap() }),
        )
        .route(
            "/_emulator/tailchat/sent",
            get(|| async { Json(serde_json::json!([])) }),
        );
    hookline::runtime::serve_on_loopback(app).await.unwrap()
}

#[tokio::test]
async fn simulate_exits_1_without_a_2xx_answer_or_a_reply() {
    let dir = tempfile::tempdir().unwrap();
    let failing = fake_server(500).await;
    let out = hookline(
        &["simulate", "tailchat", "hi", "--url", &failing],
        &[],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("/tailchat -> 500"),
        "{}",
        text(&out.stdout)
    );

    let silent = fake_server(200).await;
    let out = hookline(
        &["simulate", "tailchat", "hi", "--url", &silent],
        &[],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("(no reply was sent)"),
        "{}",
        text(&out.stdout)
    );

    // HOOKLINE_URL is --url's variable; nothing listens there: a failure (1), said as an error.
    let port = crate::support::free_port();
    let out = hookline(
        &["simulate", "tailchat", "hi"],
        &[("HOOKLINE_URL", &format!("http://127.0.0.1:{port}"))],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: cannot reach"),
        "{}",
        text(&out.stderr)
    );

    // Answered with a reply: 0 (the in-process server on the emulators).
    let out = hookline(&["simulate", "max", "hi"], &[], dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("reply: "),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn the_readme_documents_every_flag_variable_and_metric() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env_re = regex::Regex::new(r"\[env: ([A-Z_]+)=").unwrap();
    let mut seen = 0;
    for command in [
        &["serve", "--help"][..],
        &["simulate", "--help"],
        &["doctor", "--help"],
        &["setup", "max", "--help"],
        &["setup", "tamtam", "--help"],
    ] {
        let help = text(&hookline(command, &[], dir.path()).await.stdout);
        for var in env_re.captures_iter(&help) {
            seen += 1;
            assert!(
                readme.contains(&format!("`{}`", &var[1])),
                "{} ({command:?}) is not in the README",
                &var[1]
            );
        }
    }
    assert!(seen >= 10, "{seen} variables");
    for metric in hookline::metrics::Metric::ALL {
        assert!(
            readme.contains(&format!("| `{}` |", metric.name())),
            "metric {} is not in the README's table",
            metric.name()
        );
    }
}

#[tokio::test]
async fn a_flag_wins_over_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let stdout = dir.path().join("stdout");
    let mut serve = tokio::process::Command::new(workspace_bin("hookline"))
        .args([
            "serve",
            "--metrics",
            "emf",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--data-dir", dir.path().join("state").to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOOKLINE_METRICS", "off")
        .env("HOOKLINE_BIND", "127.0.0.1:1")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "serve did not listen on --bind");
    let out = hookline(
        &["simulate", "tailchat", "hi", "--url", &base],
        &[],
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serve.start_kill().unwrap();
    let _ = serve.wait().await;
    let emf = std::fs::read_to_string(&stdout).unwrap();
    assert!(
        emf.lines()
            .any(|l| l.contains("\"_aws\"") && l.contains("\"outcome\":\"answered\"")),
        "--metrics emf over HOOKLINE_METRICS=off:\n{emf}"
    );
}
