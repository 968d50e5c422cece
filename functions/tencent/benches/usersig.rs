//! Making a UserSig against reading a cached one, in the same run.
//!
//! `cargo bench -p hookline-tencent --bench usersig`
//!
//! - `usersig/generate`: `gen_usersig` (HMAC-SHA256, deflate, base64), what a cold process pays.
//! - `usersig/read_embedded_store`: reading a cached UserSig from the embedded store (a redb read
//!   transaction on the local disk): the cheapest store read there is. DynamoDB adds a network
//!   round trip of milliseconds on top, so if generating beats this, caching UserSigs in the store
//!   can only cost time.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hookline::clock::{SharedClock, SystemClock};
use hookline::store::{EmbeddedStore, Key, StateStore};
use hookline_tencent::usersig::gen_usersig;

const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

fn usersig(c: &mut Criterion) {
    let mut group = c.benchmark_group("usersig");
    group.bench_function("generate", |b| {
        b.iter(|| {
            gen_usersig(
                black_box(1_400_000_000),
                KEY,
                "administrator",
                604_800,
                1_700_000_000,
            )
        })
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let store = EmbeddedStore::open(&dir.path().join("s.redb"), clock).unwrap();
    let key = Key::new("tencent#1400000000#cred", "usersig#administrator");
    let cached = gen_usersig(1_400_000_000, KEY, "administrator", 604_800, 1_700_000_000);
    runtime.block_on(store.put(&key, &cached, None)).unwrap();
    group.bench_function("read_embedded_store", |b| {
        b.iter(|| runtime.block_on(store.get(black_box(&key))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, usersig);
criterion_main!(benches);
