//! The crate of the README's "Write your own bot", built from the README's text by
//! `tests/build-readme-crate` (run-all runs it before this suite): the binary a bot author gets
//! simulates, and runs as a Lambda function under a fake Lambda Runtime API.

use std::path::{Path, PathBuf};

use crate::support::{start_tailchat, tailchat_message};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The README crate's binary, checked to be built from the README as it is now.
fn dicebot() -> PathBuf {
    let crate_dir = root().join(".hookline/readme-crate");
    let built = std::fs::read_to_string(crate_dir.join("src/main.rs")).unwrap_or_default();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n## Write your own bot\n")
        .nth(1)
        .expect("README has the section");
    let rust = section
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("\n```\n").next())
        .expect("a rust block");
    assert_eq!(
        built.trim_end(),
        rust.trim_end(),
        "the README crate is missing or stale: run tests/build-readme-crate (tests/run-all does)"
    );
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("dicebot");
    assert!(
        bin.exists(),
        "{} is missing: run tests/build-readme-crate",
        bin.display()
    );
    bin
}

#[tokio::test]
async fn the_readme_bot_answers_on_every_platform() {
    let bin = dicebot();
    for platform in hookline_server::testing::PLATFORMS {
        let out = tokio::process::Command::new(&bin)
            .args(["simulate", platform, "/roll 2d6"])
            .env_remove("TAILCHAT_CALLBACK_TOKEN")
            .env_remove("TAMTAM_CALLBACK_TOKEN")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{platform}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("rolled 2d6: ["), "{platform}: {stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_bot_runs_as_the_lambda_function_the_template_names() {
    let dir = tempfile::tempdir().unwrap();
    let (emu, mut lambda) = start_tailchat(&dicebot(), dir.path()).await;
    let event = tailchat_message(
        "65530000c3b1e2a9d4f0bb01",
        "[at=6552f3a0c3b1e2a9d4f01234]Bot[/at] /roll 3d6",
    );
    let answer = lambda.invoke(event).await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let sent = emu.sent();
    assert_eq!(sent.len(), 1);
    let content = sent[0]["content"].as_str().unwrap();
    assert!(content.contains("rolled 3d6: ["), "{content}");
}
