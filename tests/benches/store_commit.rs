//! The embedded store's write path alone: sixteen writers, each claiming then completing unique
//! events (two durable writes per event, as the pipeline does), for a few seconds.
//!
//! ```sh
//! cargo bench -p hookline-tests --bench store_commit
//! ```

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookline::clock::SystemClock;
use hookline::store::{EmbeddedStore, Key, StateStore};

const WRITERS: usize = 16;
const RUN: Duration = Duration::from_secs(4);

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(std::env::current_exe().unwrap().parent().unwrap()).unwrap();
        let store =
            EmbeddedStore::open(&dir.path().join("state.redb"), Arc::new(SystemClock)).unwrap();
        let events = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (store, events) = (store.clone(), Arc::clone(&events));
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < RUN {
                    let key = Key::new("tailchat#event", format!("w{w}-{n:012}"));
                    assert!(
                        store
                            .put_if_absent(&key, "\"in-progress\"", Some(i64::MAX / 2))
                            .await
                            .unwrap()
                    );
                    store
                        .put(&key, "\"completed\"", Some(i64::MAX / 2))
                        .await
                        .unwrap();
                    n += 1;
                    events.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let n = events.load(Ordering::Relaxed);
        println!(
            "{:.0} events/s, {:.1} writes per commit, file {} KiB",
            n as f64 / secs,
            2.0 * n as f64 / store.commits() as f64,
            std::fs::metadata(dir.path().join("state.redb"))
                .unwrap()
                .len()
                / 1024
        );
    });
}
