//! The `hookline` binary as a user runs it: `serve` on the embedded store and the emulator,
//! `GET /healthz`, then `simulate --url` against it.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{free_port, workspace_bin};

#[tokio::test]
async fn serve_answers_healthz_and_simulate_gets_the_bots_reply() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = tokio::process::Command::new(workspace_bin("hookline"))
        .arg("serve")
        .env_remove("TAILCHAT_URL")
        .env_remove("TAILCHAT_CALLBACK_TOKEN")
        .env_remove("HOOKLINE_TABLE")
        .env("HOOKLINE_BIND", format!("127.0.0.1:{port}"))
        .env("HOOKLINE_DATA_DIR", data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hookline serve");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            ready = r.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "hookline serve did not answer /healthz within 10 s");

    let simulate = |text: &'static str| {
        tokio::process::Command::new(workspace_bin("hookline"))
            .args(["simulate", "tailchat", text, "--url", &base])
            .env_remove("TAILCHAT_CALLBACK_TOKEN")
            .output()
    };
    let out = simulate("hello there").await.expect("simulate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-> 200 OK"), "{stdout}");
    assert!(
        stdout.contains("reply: [at=6448e822834c12425646f473][/at] Your message: hello there"),
        "{stdout}"
    );

    // Notes persist in the embedded store between webhooks.
    simulate("/remember water the plants")
        .await
        .expect("simulate");
    let out = simulate("/notes").await.expect("simulate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1. water the plants"), "{stdout}");

    server.start_kill().expect("stop serve");
    let _ = server.wait().await;
    assert!(
        data.path().join("state.redb").exists(),
        "the embedded store lives in HOOKLINE_DATA_DIR"
    );
}
