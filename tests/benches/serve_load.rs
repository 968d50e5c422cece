//! `hookline serve` under load, against its ceiling: the same request flow with no store.
//!
//! ```sh
//! cargo build --release --bins && cargo bench -p hookline-tests --bench serve_load
//! ```
//!
//! One Tailchat bot. The platform API is the Tailchat emulator in this process, on loopback.
//! Sixteen connections (keep-alive) each post callbacks with unique message ids, one after
//! another; every callback is answered by the echo bot with a reply through the emulator before
//! its `200`. After a warm-up, several rounds measure answered callbacks per second, p50 and p99
//! latency, and replies sent against callbacks answered (they must match).
//!
//! Two servers, both on CPU 0 with rounds alternating between them, while this process runs on
//! CPU 1 (where the machine has two and `taskset` exists):
//! - `serve`: the release `hookline serve`, its embedded store in a folder on disk (fsync'd;
//!   `SERVE_LOAD_DATA_IN=<folder>` puts it elsewhere, e.g. on a tmpfs to leave the disk out);
//! - `ceiling`: this binary re-run as a server (`--ceiling`) with the same Tailchat router, the
//!   same echo bot, the same HTTP client, log line and serving stack, but an in-memory map for a
//!   store: what the flow costs without durability.
//!
//! For both it reports the server's CPU time per answered callback (every thread, from
//! `/proc/<pid>/task/*/schedstat`): on a shared machine the rates move with the neighbours and
//! the CPU an event costs moves less (about ±10 % between sessions), so it is the figure to
//! compare two builds by, alternated in one session. For `serve` it
//! also reports its resident memory: idle after start, idle after the load, and the peak
//! (`VmHWM`), started from a binary whose pages were dropped from the page cache (see
//! `uncache`).

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hookline::clock::{Clock, SystemClock};
use hookline::store::{Item, Key, StateStore, StoreError};
use hookline_tailchat::emulator::TailchatEmulator;

const CONCURRENCY: usize = 16;
const WARM_UP: Duration = Duration::from_secs(2);
const ROUND: Duration = Duration::from_secs(4);
const ROUNDS: usize = 5;
const TOKEN: &str = "bench-callback-token-0123456789";
const APP_ID: &str = "tc_6448e822834c12425646f470";
const APP_SECRET: &str = "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5";
const BOT_USER: &str = "6552f3a0c3b1e2a9d4f01234";

/// The ceiling's store: a map in memory, expiry honoured, nothing durable.
#[derive(Debug, Default)]
struct MemoryStore(Mutex<HashMap<(String, String), Item>>);

fn live(item: &Item) -> bool {
    item.expires_at.is_none_or(|e| SystemClock.now_s() < e)
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let map = self.0.lock().unwrap();
        Ok(map
            .get(&(key.pk.clone(), key.sk.clone()))
            .filter(|i| live(i))
            .cloned())
    }
    async fn put(&self, key: &Key, value: &str, expires_at: Option<i64>) -> Result<(), StoreError> {
        let item = Item {
            value: value.to_owned(),
            expires_at,
        };
        self.0
            .lock()
            .unwrap()
            .insert((key.pk.clone(), key.sk.clone()), item);
        Ok(())
    }
    async fn compare_and_set(
        &self,
        key: &Key,
        expected: Option<&str>,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut map = self.0.lock().unwrap();
        let k = (key.pk.clone(), key.sk.clone());
        let current = map.get(&k).filter(|i| live(i)).map(|i| i.value.as_str());
        if current != expected {
            return Ok(false);
        }
        let item = Item {
            value: value.to_owned(),
            expires_at,
        };
        map.insert(k, item);
        Ok(true)
    }
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap()
            .remove(&(key.pk.clone(), key.sk.clone()));
        Ok(())
    }
    async fn delete_if(&self, key: &Key, value: &str) -> Result<bool, StoreError> {
        let mut map = self.0.lock().unwrap();
        let k = (key.pk.clone(), key.sk.clone());
        if map.get(&k).is_some_and(|i| live(i) && i.value == value) {
            map.remove(&k);
            return Ok(true);
        }
        Ok(false)
    }
    async fn query_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let map = self.0.lock().unwrap();
        let mut out: Vec<(String, Item)> = map
            .iter()
            .filter(|((p, s), i)| p == pk && s.starts_with(sk_prefix) && live(i))
            .map(|((_, s), i)| (s.clone(), i.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// `--ceiling <port>`: the Tailchat webhook of `serve`, with the store in memory.
async fn ceiling_server(port: u16) {
    hookline::telemetry::init_with_default("info");
    let config = hookline_tailchat::TailchatConfig::from_env().unwrap();
    let deps = hookline::pipeline::Deps {
        store: Arc::new(MemoryStore::default()),
        clock: Arc::new(SystemClock),
        bot: Arc::new(hookline_bots::echo::bot()),
        http: hookline::http::HttpClient::new().unwrap(),
        deferral: Default::default(),
    };
    let router = axum::Router::new().nest("/tailchat", hookline_tailchat::router(config, deps));
    hookline::runtime::serve_local(
        router,
        ([127, 0, 0, 1], port).into(),
        hookline::runtime::TrustedProxies::default(),
    )
    .await
    .unwrap();
}

/// `taskset`, where there are two CPUs to pin to. Decided once, before this process pins itself
/// (its own affinity then shows one CPU): the re-run process finds `SERVE_LOAD_PINNED` set.
fn taskset() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/taskset");
    let pinned = std::env::var_os("SERVE_LOAD_PINNED").is_some();
    let two = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    ((pinned || two) && path.exists()).then_some(path)
}

/// A server process on CPU 0 (when pinning is possible).
fn spawn_server(program: &PathBuf, args: &[&str], env: &[(&str, String)]) -> tokio::process::Child {
    let mut command = match taskset() {
        Some(taskset) => {
            let mut c = tokio::process::Command::new(taskset);
            c.arg("-c").arg("0").arg(program);
            c
        }
        None => tokio::process::Command::new(program),
    };
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn callback(message_id: &str) -> String {
    common::tailchat_mention(BOT_USER, message_id).to_string()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// `CONCURRENCY` connections posting until `length` is over: (latencies of answered callbacks,
/// callbacks not answered 200).
async fn load(url: &str, length: Duration) -> (Vec<Duration>, usize) {
    let end = Instant::now() + length;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let (mut latencies, mut failed) = (Vec::new(), 0);
                while Instant::now() < end {
                    let id = format!("{:024x}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
                    let t = Instant::now();
                    let ok = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(callback(&id))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    if ok {
                        latencies.push(t.elapsed());
                    } else {
                        failed += 1;
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let (mut all, mut failed) = (Vec::new(), 0);
    for task in tasks {
        let (l, f) = task.await.unwrap();
        all.extend(l);
        failed += f;
    }
    (all, failed)
}

fn kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{base} did not start");
}

/// CPU time the process `pid` has had so far, every thread (`/proc/<pid>/task/*/schedstat`,
/// nanoseconds on a CPU). Threads that ended are not counted; the servers' threads live as long
/// as they do.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// What one round measured.
struct Round {
    /// Answered callbacks per second.
    rate: f64,
    /// p99 latency, ms.
    p99: f64,
    /// The server's CPU time per answered callback, µs: what the machine's noise moves least.
    cpu_us: f64,
}

/// One round against `base`, served by process `pid`.
async fn round(name: &str, n: usize, base: &str, pid: u32, emu: &TailchatEmulator) -> Round {
    let url = format!("{base}/tailchat?token={TOKEN}");
    let before = emu.sent_total();
    let cpu_before = cpu_ns(pid);
    let t = Instant::now();
    let (mut latencies, failed) = load(&url, ROUND).await;
    let elapsed = t.elapsed();
    let cpu = cpu_ns(pid).saturating_sub(cpu_before);
    let replies = emu.sent_total() - before;
    latencies.sort_unstable();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    let p99 = p(0.99).as_secs_f64() * 1e3;
    let cpu_us = cpu as f64 / 1e3 / latencies.len().max(1) as f64;
    println!(
        "{name:<8} round {n}: {rate:>7.0} answered/s   p50 {:>6.2} ms   p99 {p99:>6.2} ms   max {:>6.1} ms   cpu {cpu_us:>5.1} µs/answered   replies {replies} / answered {} (not 200: {failed})",
        p(0.5).as_secs_f64() * 1e3,
        p(1.0).as_secs_f64() * 1e3,
        latencies.len(),
    );
    assert_eq!(
        replies,
        latencies.len(),
        "{name}: every answered callback, one reply"
    );
    Round { rate, p99, cpu_us }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("serve_load: bench");
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--ceiling") {
        ceiling_server(args[i + 1].parse().unwrap()).await;
        return;
    }
    // This process on CPU 1, the server on CPU 0.
    if std::env::var_os("SERVE_LOAD_PINNED").is_none()
        && let Some(taskset) = taskset()
    {
        // Re-run pinned; the servers it starts get CPU 0 through `taskset -c 0`.
        let status = std::process::Command::new(taskset)
            .arg("-c")
            .arg("1")
            .args(&args)
            .env("SERVE_LOAD_PINNED", "1")
            .status()
            .unwrap();
        std::process::exit(status.code().unwrap_or(1));
    }
    println!(
        "pinned: {}; concurrency {CONCURRENCY}, warm-up {WARM_UP:?}, {ROUNDS} rounds of {ROUND:?}",
        if taskset().is_some() {
            "server CPU 0, load CPU 1"
        } else {
            "no (one CPU or no taskset)"
        }
    );
    let emu = TailchatEmulator::new(APP_ID, APP_SECRET, BOT_USER);
    let api = emu.serve_on_loopback().await.unwrap();
    let env = |port: u16, data: &str| {
        vec![
            ("TAILCHAT_URL", api.clone()),
            ("TAILCHAT_APP_ID", APP_ID.to_owned()),
            ("TAILCHAT_APP_SECRET", APP_SECRET.to_owned()),
            ("TAILCHAT_CALLBACK_TOKEN", TOKEN.to_owned()),
            ("HOOKLINE_BIND", format!("127.0.0.1:{port}")),
            ("HOOKLINE_DATA_DIR", data.to_owned()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
        ]
    };
    // The store on disk, beside the build, so that its fsyncs are real. SERVE_LOAD_DATA_IN:
    // another folder to make it in, e.g. a tmpfs (`/dev/shm`), whose fsyncs cost nothing: what
    // is left of the gap to the ceiling is then the store's code, not the disk.
    let data_in = std::env::var_os("SERVE_LOAD_DATA_IN")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::release_bin("hookline").parent().unwrap().to_owned());
    let data = tempfile::tempdir_in(&data_in)
        .unwrap_or_else(|e| panic!("cannot make the store in {}: {e}", data_in.display()));

    // Both servers run for the whole bench (the idle one costs nothing) and the rounds
    // alternate, so that both see the same machine: on a shared 2-core machine the ceiling alone
    // moved by a third between runs, and a ratio of rounds run side by side holds still.
    let port = free_port();
    let ceiling_base = format!("http://127.0.0.1:{port}");
    let mut ceiling = spawn_server(
        &std::env::current_exe().unwrap(),
        &["--ceiling", &port.to_string()],
        &env(port, &data.path().join("unused").display().to_string()),
    );
    wait_ready_tailchat(&ceiling_base).await;

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // SERVE_LOAD_BIN: another `hookline` to measure, e.g. `target/profiling/hookline` (symbols
    // kept, for `perf record -p <its pid>` during the rounds).
    let bin = std::env::var_os("SERVE_LOAD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::release_bin("hookline"));
    uncache(&bin);
    let mut serve = spawn_server(
        &bin,
        &["serve"],
        &env(port, &data.path().display().to_string()),
    );
    wait_ready(&base).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server_pid(&serve);
    println!(
        "serve: {} (pid {pid}), store in {}",
        bin.display(),
        data.path().display()
    );
    let idle_start = kib(pid, "VmRSS:");

    for url in [&ceiling_base, &base] {
        load(&format!("{url}/tailchat?token={TOKEN}"), WARM_UP).await;
    }
    let ceiling_pid = server_pid(&ceiling);
    let (mut ceiling_rates, mut serve_rates, mut ratios, mut p99s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ceiling_cpu, mut serve_cpu) = (Vec::new(), Vec::new());
    for n in 1..=ROUNDS {
        let c = round("ceiling", n, &ceiling_base, ceiling_pid, &emu).await;
        let s = round("serve", n, &base, pid, &emu).await;
        println!(
            "          round {n}: serve / ceiling = {:.0} %",
            100.0 * s.rate / c.rate
        );
        ceiling_rates.push(c.rate);
        serve_rates.push(s.rate);
        ratios.push(s.rate / c.rate);
        p99s.push(s.p99);
        ceiling_cpu.push(c.cpu_us);
        serve_cpu.push(s.cpu_us);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_after = kib(pid, "VmRSS:");
    let peak = kib(pid, "VmHWM:");
    serve.kill().await.unwrap();
    ceiling.kill().await.unwrap();
    println!(
        "medians of {ROUNDS} alternating rounds: ceiling {:.0}/s, serve {:.0}/s, serve / ceiling {:.0} %, serve p99 {:.2} ms",
        median(ceiling_rates),
        median(serve_rates),
        100.0 * median(ratios),
        median(p99s),
    );
    let (ceiling_cpu, serve_cpu) = (median(ceiling_cpu), median(serve_cpu));
    println!(
        "CPU per answered callback (medians): ceiling {ceiling_cpu:.1} µs, serve {serve_cpu:.1} µs, ceiling / serve {:.0} %",
        100.0 * ceiling_cpu / serve_cpu,
    );
    println!(
        "serve RSS: idle after start {:.1} MiB, idle after the load {:.1} MiB, peak {:.1} MiB",
        idle_start as f64 / 1024.0,
        idle_after as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// Drops `path`'s pages from the page cache (written back first). When a file is in the cache,
/// the kernel maps the cached pages around each one a process touches (fault-around), so a
/// binary just built, all of it cached, started with 0.5–0.9 MiB more resident than the same
/// file later. Started uncached, what is resident is what `serve` read, and readahead.
fn uncache(path: &std::path::Path) {
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.sync_data();
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    }
}

/// The server's own pid: `taskset` execs it, so the child's pid is the server's.
fn server_pid(child: &tokio::process::Child) -> u32 {
    child.id().unwrap()
}

/// The ceiling serves only /tailchat: ready when a GET there is answered at all.
async fn wait_ready_tailchat(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/tailchat")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{base} did not start");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
