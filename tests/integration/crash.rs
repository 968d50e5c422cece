//! `kill -9` of `hookline serve` under load (the embedded store's group commit): after a restart
//! and a redelivery of every event that was sent, nothing is answered twice and every event that
//! was acknowledged (`200`) was answered exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookline_tailchat::emulator::TailchatEmulator;

use crate::serve::start_serve_of;
use crate::support::free_port;

const TOKEN: &str = "crash-callback-token-0123456789";
const APP_ID: &str = "tc_6448e822834c12425646f470";
const APP_SECRET: &str = "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5";
const BOT_USER: &str = "6552f3a0c3b1e2a9d4f01234";
/// At most this many events (the emulator's ledger keeps the last 1000 replies).
const EVENTS: usize = 600;

fn callback(message_id: &str) -> String {
    crate::common::tailchat_mention(BOT_USER, message_id).to_string()
}

async fn post(http: &reqwest::Client, base: &str, id: &str) -> Option<u16> {
    http.post(format!("{base}/tailchat?token={TOKEN}"))
        .header("content-type", "application/json")
        .body(callback(id))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_then_redelivery_answers_nothing_twice_and_loses_nothing_acknowledged() {
    let emu = TailchatEmulator::new(APP_ID, APP_SECRET, BOT_USER);
    let api = emu.serve_on_loopback().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TAILCHAT_URL", api),
        ("TAILCHAT_APP_ID", APP_ID.to_owned()),
        ("TAILCHAT_APP_SECRET", APP_SECRET.to_owned()),
        ("TAILCHAT_CALLBACK_TOKEN", TOKEN.to_owned()),
        ("HOOKLINE_DATA_DIR", dir.path().display().to_string()),
    ];
    let port = free_port();
    let (mut server, base) = start_serve_of("hookline", port, &env).await;

    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (next, stop, sent, acked, base) = (
                Arc::clone(&next),
                Arc::clone(&stop),
                Arc::clone(&sent),
                Arc::clone(&acked),
                base.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= EVENTS {
                        break;
                    }
                    let id = format!("{n:024x}");
                    sent.lock().unwrap().push(id.clone());
                    match post(&http, &base, &id).await {
                        Some(200) => {
                            acked.lock().unwrap().insert(id);
                        }
                        Some(_) => {}
                        // The server is gone.
                        None => break,
                    }
                }
            })
        })
        .collect();
    // Kill it mid-load: once a third of the events are acknowledged.
    for _ in 0..600 {
        if acked.lock().unwrap().len() >= EVENTS / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let sent: Vec<String> = sent.lock().unwrap().clone();
    let acked: HashSet<String> = acked.lock().unwrap().clone();
    assert!(
        acked.len() < sent.len(),
        "the kill came after the load ({} of {} acknowledged): nothing was in flight",
        acked.len(),
        sent.len()
    );

    // Restart on the same store; the platform delivers every event again.
    let (mut server, base) = start_serve_of("hookline", port, &env).await;
    let http = reqwest::Client::new();
    let mut statuses = HashMap::new();
    for chunk in sent.chunks(16) {
        let answers =
            futures_util::future::join_all(chunk.iter().map(|id| post(&http, &base, id))).await;
        for (id, status) in chunk.iter().zip(answers) {
            statuses.insert(id.clone(), status);
        }
    }
    server.start_kill().unwrap();

    let mut replies: HashMap<String, usize> = HashMap::new();
    for message in emu.sent() {
        let id = message["meta"]["reply"]["_id"].as_str().unwrap().to_owned();
        *replies.entry(id).or_default() += 1;
    }
    assert_eq!(
        emu.sent_total(),
        emu.sent().len(),
        "the ledger kept every reply"
    );
    for id in &sent {
        let n = replies.get(id).copied().unwrap_or(0);
        assert!(n <= 1, "{id} answered {n} times");
        if acked.contains(id) {
            assert_eq!(n, 1, "{id} was acknowledged but not answered");
            // Its completion was durable before the 200: the redelivery is a known duplicate.
            assert_eq!(
                statuses[id],
                Some(200),
                "{id}: acknowledged, then redelivery got {:?}",
                statuses[id]
            );
        }
        // A redelivery is answered 200 (done, or done now) or 409 (a claim the crash left
        // in progress: the platform tries again later).
        assert!(
            matches!(statuses[id], Some(200 | 409)),
            "{id}: redelivery got {:?}",
            statuses[id]
        );
    }
    println!(
        "sent {}, acknowledged before the kill {}, answered in all {}",
        sent.len(),
        acked.len(),
        replies.len()
    );
}
