//! Cold start of the real `hookline-tailchat` Lambda binary, with a process-spawn baseline.
//!
//! ```sh
//! cargo build --release --bins && cargo bench -p hookline-tests --bench cold_start
//! ```
//!
//! Each round starts a fresh process under a fake Lambda Runtime API on loopback (a fresh
//! embedded store, so the first invocation also logs in to the Tailchat emulator), and measures:
//! - `cold`: process spawn → the first Function URL invocation answered (init + first request);
//! - `warm`: the second invocation of the same process;
//! - `peak RSS`: the process's high-water resident memory (`VmHWM`) after both.
//!
//! The baseline is spawning and reaping `true`: the floor of any cold start on this machine.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
#[path = "../integration/fake_lambda.rs"]
mod fake_lambda;

use std::time::{Duration, Instant};

use hookline_tailchat::emulator::TailchatEmulator;
use serde_json::Value;

const ROUNDS: usize = 20;
const TOKEN: &str = "bench-callback-token-0123456789";

fn event(message_id: &str) -> Value {
    let body = common::tailchat_mention("6552f3a0c3b1e2a9d4f01234", message_id);
    fake_lambda::function_url_event(
        &format!("token={TOKEN}"),
        body.to_string().as_bytes(),
        "203.0.113.9",
    )
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<34} median {:>7.2} ms   p90 {:>7.2} ms   min {:>7.2} ms   max {:>7.2} ms",
        ms(p(0.5)),
        ms(p(0.9)),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("cold_start: bench");
        return;
    }
    let bin = common::release_bin("hookline-tailchat");
    let emu = TailchatEmulator::new(
        "tc_6448e822834c12425646f470",
        "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5",
        "6552f3a0c3b1e2a9d4f01234",
    );
    let api_url = emu.serve_on_loopback().await.unwrap();
    let env = [
        ("TAILCHAT_URL", api_url),
        ("TAILCHAT_APP_ID", "tc_6448e822834c12425646f470".to_owned()),
        (
            "TAILCHAT_APP_SECRET",
            "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5".to_owned(),
        ),
        ("TAILCHAT_CALLBACK_TOKEN", TOKEN.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];

    let mut spawn = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        tokio::process::Command::new("true").status().await.unwrap();
        spawn.push(t.elapsed());
    }
    let (mut cold, mut warm, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let mut lambda = fake_lambda::Lambda::start(&bin, &env, dir.path()).await;
        let answer = lambda.invoke(event(&format!("{:024x}", 2 * round))).await;
        cold.push(t.elapsed());
        assert_eq!(answer["statusCode"], 200, "{answer}");
        let t = Instant::now();
        let answer = lambda
            .invoke(event(&format!("{:024x}", 2 * round + 1)))
            .await;
        warm.push(t.elapsed());
        assert_eq!(answer["statusCode"], 200, "{answer}");
        if let Some(kib) = lambda.child.id().and_then(peak_rss_kib) {
            rss.push(kib);
        }
        lambda.child.kill().await.unwrap();
    }
    println!(
        "hookline-tailchat ({} bytes), {ROUNDS} rounds",
        std::fs::metadata(&bin).unwrap().len()
    );
    summary("baseline: spawn `true`", spawn);
    summary("cold: spawn → first reply sent", cold);
    summary("warm: second invocation", warm);
    rss.sort_unstable();
    if let (Some(lo), Some(hi)) = (rss.first(), rss.last()) {
        println!(
            "{:<34} {} – {} KiB",
            "peak RSS after two invocations", lo, hi
        );
    }
    assert_eq!(
        emu.sent().len(),
        2 * ROUNDS,
        "every invocation answered exactly once"
    );
}
