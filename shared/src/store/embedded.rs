//! The embedded backend: one redb file, ACID, one writer at a time.
//!
//! **Group commit.** Every write (put, compare-and-set, delete) goes to one committer thread,
//! which takes whatever writes are waiting, applies them in order inside **one** write
//! transaction (a compare-and-set sees the writes before it in the batch, so racing claims still
//! have exactly one winner), makes the batch durable once and only then answers each caller. A
//! caller's write is durable when its call returns, exactly as with a transaction of its own (a
//! claim before the bot runs, a completion before the platform's success answer), but
//! concurrent events share one sync: while one batch is on disk the next writes queue and go
//! together. Nothing waits on purpose: a lone write goes at once. A failed batch fails every
//! write in it, and none of them is applied. The committer thread runs at a slightly lower
//! priority than its writers ([`COMMITTER_NICE`]), so that on a busy CPU they queue what they
//! have before it takes the next batch.
//!
//! **Durable in the journal.** A batch is made durable by appending its changes to the journal
//! beside the file ([`journal`](super::journal): one small sequential write and one
//! `fdatasync`), after which the transaction commits without durability (readers see it); redb's
//! own durable commits (every page touched, synced) happen at checkpoints only. Whatever can be
//! read is durable. Reads are redb read transactions on the calling task, seeing the last commit.
//!
//! The file holds cached credentials and chats' notes: it is created `0600` in a folder created
//! `0700`. Expired items are invisible at once and deleted by a sweep at open and then at most
//! every [`SWEEP_EVERY_S`] seconds, run by the write that finds it due, so the file does not grow
//! with every event ever claimed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::journal::{CHECKPOINT_AT, Change, Journal};
use super::{Item, Key, StateStore, StoreError, is_live};
use crate::clock::SharedClock;

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");

/// The store's own values: the journal's current tag.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const JOURNAL_TAG: &str = "journal_tag";

/// Without writes for this long, the committer checkpoints the journal.
const IDLE_CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
struct Record {
    v: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<i64>,
}

/// How often, at most, expired items are deleted (seconds).
pub const SWEEP_EVERY_S: i64 = 600;

/// redb's page cache. Its default (1 GiB) lets the cache grow with the file; the items a
/// webhook reads are the few it just wrote, and a miss is one `pread` of the operating system's
/// cache.
const CACHE_BYTES: usize = 4 << 20;

/// The most writes one commit takes (the rest wait for the next one).
pub const MAX_BATCH: usize = 256;

/// How far the committer thread lowers its priority (added to its nice value, at most 19).
///
/// When a sync completes, the committer wakes up with the batch's answers and the next writes.
/// At the same priority it preempts the thread handing it writes at once, so each batch holds
/// only the few writes queued during one sync, and a 2-core `serve` spent its time switching
/// between the two. A little lower, it runs when the writers have queued what they had (or
/// after their time slice): larger batches, fewer syncs and switches. It still gets its share
/// of a busy CPU (about a quarter against one busy thread at nice 5), and at once an idle one.
/// Measured in `serve_load` (README, "Benchmarks"): nice 19 starved it, nice 10 was no better.
pub const COMMITTER_NICE: i32 = 5;

/// Lowers the calling thread's priority by [`COMMITTER_NICE`]: `nice(2)`, which on Linux sets
/// the calling thread's own nice value (raising it needs no privilege). Best effort: a failure
/// leaves it as it was.
fn yield_to_writers() {
    #[cfg(target_os = "linux")]
    let _ = rustix::process::nice(COMMITTER_NICE);
}

/// The embedded (redb) store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    clock: SharedClock,
    last_sweep: Arc<AtomicI64>,
    committer: Arc<Committer>,
    commits: Arc<AtomicU64>,
}

/// The committer thread's end of the store. Dropped with the last clone of the store: it closes
/// the queue and waits for the thread, so the file is released when the store is gone (a
/// restart in the same process, a test, `setup` after `serve` can open it at once).
struct Committer {
    writes: Mutex<Option<mpsc::Sender<Write>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        drop(self.writes.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // It finishes the batch in hand (a commit) and ends.
            let _ = thread.join();
        }
    }
}

/// One write of a batch.
#[derive(Debug)]
enum Op {
    Put(Key, Vec<u8>),
    CompareAndSet(Key, Option<String>, Vec<u8>),
    Delete(Key),
    DeleteIf(Key, String),
}

/// A write and where its outcome goes.
struct Write {
    op: Op,
    done: tokio::sync::oneshot::Sender<Result<bool, StoreError>>,
}

/// Applies `op` inside the batch's transaction; whether it changed anything (a compare-and-set
/// that did not match, a conditional delete of something else: `false`).
fn apply(
    table: &mut redb::Table<'_, (&'static str, &'static str), &'static [u8]>,
    op: &Op,
    now: i64,
) -> Result<bool, StoreError> {
    match op {
        Op::Put(key, bytes) => {
            table
                .insert((key.pk.as_str(), key.sk.as_str()), bytes.as_slice())
                .map_err(unavailable)?;
            Ok(true)
        }
        Op::CompareAndSet(key, expected, bytes) => {
            let k = (key.pk.as_str(), key.sk.as_str());
            if live_in(table, k, now)?.map(|r| r.v) == *expected {
                table.insert(k, bytes.as_slice()).map_err(unavailable)?;
                Ok(true)
            } else {
                Ok(false)
            }
        }
        Op::Delete(key) => {
            table
                .remove((key.pk.as_str(), key.sk.as_str()))
                .map_err(unavailable)?;
            Ok(true)
        }
        Op::DeleteIf(key, value) => {
            let k = (key.pk.as_str(), key.sk.as_str());
            if live_in(table, k, now)?.is_some_and(|r| r.v == *value) {
                table.remove(k).map_err(unavailable)?;
                Ok(true)
            } else {
                Ok(false)
            }
        }
    }
}

/// Applies a batch in one transaction and commits it once (not at all when nothing changed):
/// each write's outcome, or the error that failed them all. An op whose own step fails (an
/// unreadable record) fails alone; it changed nothing.
///
/// With a journal, the batch's changes are appended and synced there first and the transaction
/// is then committed without durability (see [`journal`](super::journal)); without one (the
/// in-memory store) the commit itself is durable.
fn commit_batch(
    db: &Database,
    ops: &[&Op],
    now: i64,
    journal: Option<&mut Journal>,
) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
    let mut txn = db.begin_write().map_err(unavailable)?;
    if journal.is_some() {
        txn.set_durability(redb::Durability::None)
            .map_err(unavailable)?;
    }
    let outcomes: Vec<Result<bool, StoreError>> = {
        let mut table = txn.open_table(ITEMS).map_err(unavailable)?;
        ops.iter().map(|op| apply(&mut table, op, now)).collect()
    };
    let changes: Vec<Change> = ops
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Ok(true)))
        .map(|(op, _)| op.change())
        .collect();
    if changes.is_empty() {
        txn.abort().map_err(unavailable)?;
        return Ok(outcomes);
    }
    if let Some(journal) = journal
        && let Err(e) = journal.append(&changes)
    {
        txn.abort().map_err(unavailable)?;
        return Err(unavailable(format!("cannot write the journal: {e}")));
    }
    txn.commit().map_err(unavailable)?;
    Ok(outcomes)
}

impl Op {
    /// What this op, having changed something, did: the journal's record of it.
    fn change(&self) -> Change {
        match self {
            Op::Put(key, bytes) | Op::CompareAndSet(key, _, bytes) => {
                Change::Set(key.pk.clone(), key.sk.clone(), bytes.clone())
            }
            Op::Delete(key) | Op::DeleteIf(key, _) => {
                Change::Remove(key.pk.clone(), key.sk.clone())
            }
        }
    }
}

/// A durable commit storing a new journal tag: every change so far is in redb for good, and the
/// journal starts again.
fn checkpoint(db: &Database, journal: &mut Journal) -> Result<(), StoreError> {
    checkpoint_with(db, journal, &[])
}

/// Applies the journal's records left by a process that did not close the store (a crash, a
/// kill) and checkpoints them; returns how many changes there were.
fn recover(db: &Database, journal: &mut Journal) -> Result<usize, StoreError> {
    let changes = journal.recover();
    if !changes.is_empty() {
        checkpoint_with(db, journal, &changes)?;
    }
    Ok(changes.len())
}

/// Applies `changes` and a new journal tag in one durable commit, then restarts the journal.
fn checkpoint_with(
    db: &Database,
    journal: &mut Journal,
    changes: &[Change],
) -> Result<(), StoreError> {
    let tag = super::journal::new_tag();
    let txn = db.begin_write().map_err(unavailable)?;
    {
        let mut table = txn.open_table(ITEMS).map_err(unavailable)?;
        for change in changes {
            match change {
                Change::Set(pk, sk, bytes) => {
                    table
                        .insert((pk.as_str(), sk.as_str()), bytes.as_slice())
                        .map_err(unavailable)?;
                }
                Change::Remove(pk, sk) => {
                    table
                        .remove((pk.as_str(), sk.as_str()))
                        .map_err(unavailable)?;
                }
            }
        }
        txn.open_table(META)
            .map_err(unavailable)?
            .insert(JOURNAL_TAG, tag)
            .map_err(unavailable)?;
    }
    txn.commit().map_err(unavailable)?;
    journal.restart(tag);
    Ok(())
}

/// The committer: one batch per commit until every sender is gone. With a journal it also
/// checkpoints: when the journal is half full, after a second without writes, after a failed
/// batch (whose record the journal may hold although redb does not), and at the end.
fn run_committer(
    db: Arc<Database>,
    clock: SharedClock,
    commits: Arc<AtomicU64>,
    queue: mpsc::Receiver<Write>,
    mut journal: Option<Journal>,
) {
    // Changes committed without durability since the last checkpoint; a failed batch.
    let (mut unsaved, mut failed) = (false, false);
    loop {
        let first = match &mut journal {
            Some(j) => match queue.recv_timeout(IDLE_CHECKPOINT) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if unsaved {
                        unsaved = checkpoint_or_warn(&db, j);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match queue.recv() {
                Ok(first) => first,
                Err(_) => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let ops: Vec<&Op> = batch.iter().map(|w| &w.op).collect();
        let outcome = match &mut journal {
            Some(j) if failed || j.used() >= CHECKPOINT_AT => {
                // After a failure this must succeed before anything is appended again.
                match checkpoint(&db, j) {
                    Ok(()) => {
                        (unsaved, failed) = (false, false);
                        commit_batch(&db, &ops, clock.now_s(), Some(j))
                    }
                    Err(e) if failed => Err(e),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not checkpoint the journal");
                        commit_batch(&db, &ops, clock.now_s(), Some(j))
                    }
                }
            }
            j => commit_batch(&db, &ops, clock.now_s(), j.as_mut()),
        };
        commits.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(outcomes) => {
                unsaved |= outcomes.iter().any(|o| matches!(o, Ok(true)));
                for (write, outcome) in batch.into_iter().zip(outcomes) {
                    // A caller that stopped waiting does not stop the others.
                    let _ = write.done.send(outcome);
                }
            }
            Err(e) => {
                failed = journal.is_some();
                let reason = e.to_string();
                for write in batch {
                    let _ = write
                        .done
                        .send(Err(StoreError::Unavailable(reason.clone())));
                }
            }
        }
    }
    if let Some(j) = &mut journal
        && (unsaved || failed)
    {
        checkpoint_or_warn(&db, j);
    }
}

/// Checkpoints; returns whether changes remain unsaved (it failed, and said so).
fn checkpoint_or_warn(db: &Database, journal: &mut Journal) -> bool {
    match checkpoint(db, journal) {
        Ok(()) => false,
        Err(e) => {
            tracing::warn!(error = %e, "could not checkpoint the journal");
            true
        }
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn decode(key: (&str, &str), bytes: &[u8]) -> Result<Record, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("{}/{}", key.0, key.1),
        reason: e.to_string(),
    })
}

fn encode(value: &str, expires_at: Option<i64>) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&Record {
        v: value.to_owned(),
        e: expires_at,
    })
    .map_err(unavailable)
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database file and its folder.
    pub fn open(path: &Path, clock: SharedClock) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)
                .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        create_private_file(path)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", path.display())))?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(format!(
                    "{} is in use by another process (a running `hookline serve`?)",
                    path.display()
                )),
                e => unavailable(format!("cannot open {}: {e}", path.display())),
            })?;
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(ITEMS).map_err(unavailable)?;
        let tag = {
            let mut meta = txn.open_table(META).map_err(unavailable)?;
            let stored = meta
                .get(JOURNAL_TAG)
                .map_err(unavailable)?
                .map(|t| t.value());
            match stored {
                Some(tag) => tag,
                None => {
                    let tag = super::journal::new_tag();
                    meta.insert(JOURNAL_TAG, tag).map_err(unavailable)?;
                    tag
                }
            }
        };
        txn.commit().map_err(unavailable)?;
        let mut journal_path = path.as_os_str().to_owned();
        journal_path.push(".journal");
        let journal_path = std::path::PathBuf::from(journal_path);
        let mut journal = Journal::open(&journal_path, tag)
            .map_err(|e| unavailable(format!("cannot open {}: {e}", journal_path.display())))?;
        let recovered = recover(&db, &mut journal)?;
        if recovered > 0 {
            tracing::info!(
                changes = recovered,
                "applied the journal of a store not closed"
            );
        }
        let now = clock.now_s();
        sweep(&db, now)?;
        Self::start(db, clock, now, Some(journal))
    }

    /// The store over an opened database, with its committer thread (which ends with the last
    /// clone of the store).
    fn start(
        db: Database,
        clock: SharedClock,
        now: i64,
        journal: Option<Journal>,
    ) -> Result<Self, StoreError> {
        let db = Arc::new(db);
        let commits = Arc::new(AtomicU64::new(0));
        let (writes, queue) = mpsc::channel();
        let (committer_db, committer_clock, committer_commits) =
            (Arc::clone(&db), clock.clone(), Arc::clone(&commits));
        let thread = std::thread::Builder::new()
            .name("hookline-store-commit".into())
            .spawn(move || {
                yield_to_writers();
                run_committer(
                    committer_db,
                    committer_clock,
                    committer_commits,
                    queue,
                    journal,
                )
            })
            .map_err(|e| unavailable(format!("cannot start the committer: {e}")))?;
        Ok(Self {
            db,
            clock,
            last_sweep: Arc::new(AtomicI64::new(now)),
            committer: Arc::new(Committer {
                writes: Mutex::new(Some(writes)),
                thread: Mutex::new(Some(thread)),
            }),
            commits,
        })
    }

    /// Commits so far (one per batch of writes): with [`StateStore`] writes counted by the
    /// caller, how many fsyncs concurrent writes shared.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// A store in memory only, gone with the process: for tests (`hookline::testing`).
    pub fn in_memory(clock: SharedClock) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(ITEMS).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        let now = clock.now_s();
        Self::start(db, clock, now, None)
    }

    /// Deletes every expired item now; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, StoreError> {
        self.blocking(sweep).await
    }

    /// Hands a write to the committer and waits until its batch is committed; when a sweep is
    /// due, the first writer to see it starts one in the background (the write's caller does
    /// not wait for it).
    async fn write(&self, op: Op) -> Result<bool, StoreError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let sent = self
            .committer
            .writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|writes| writes.send(Write { op, done }));
        if !matches!(sent, Some(Ok(()))) {
            return Err(unavailable("the committer has stopped"));
        }
        let out = outcome
            .await
            .map_err(|_| unavailable("the committer has stopped"))??;
        let now = self.clock.now_s();
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now - last >= SWEEP_EVERY_S
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let db = Arc::clone(&self.db);
            tokio::task::spawn_blocking(move || {
                if let Err(e) = sweep(&db, now) {
                    // A failed sweep is tried again when the next one is due.
                    tracing::warn!(error = %e, "could not delete expired items");
                }
            });
        }
        Ok(out)
    }

    /// Runs a read on the calling task: a redb read transaction never waits for a writer (it
    /// reads the last commit) and takes microseconds on this small file, less than handing it to
    /// the blocking pool would cost; under load the pool's extra threads and their allocator
    /// arenas were most of `serve`'s resident memory.
    fn read<T>(
        &self,
        f: impl FnOnce(&Database, i64) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.db, self.clock.now_s())
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database, i64) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let now = self.clock.now_s();
        tokio::task::spawn_blocking(move || f(&db, now))
            .await
            .map_err(unavailable)?
    }
}

/// Deletes the expired items in one write transaction, committed only when it removed any (a
/// commit is an fsync, and the sweep at open is on every cold start's path).
fn sweep(db: &Database, now: i64) -> Result<usize, StoreError> {
    let txn = db.begin_write().map_err(unavailable)?;
    let removed = {
        let mut table = txn.open_table(ITEMS).map_err(unavailable)?;
        let before = table.len().map_err(unavailable)?;
        // Unreadable records are kept: a sweep must never destroy what it cannot judge.
        table
            .retain(|_, value| {
                serde_json::from_slice::<Record>(value).map_or(true, |r| is_live(r.e, now))
            })
            .map_err(unavailable)?;
        before - table.len().map_err(unavailable)?
    };
    if removed == 0 {
        txn.abort().map_err(unavailable)?;
    } else {
        txn.commit().map_err(unavailable)?;
    }
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates the file readable and writable by its owner only; an existing file is left as it is.
#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

#[cfg(not(unix))]
fn create_private_file(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Reads the live record at `key` inside a write transaction's table.
fn live_in(
    table: &redb::Table<'_, (&'static str, &'static str), &'static [u8]>,
    key: (&str, &str),
    now: i64,
) -> Result<Option<Record>, StoreError> {
    match table.get(key).map_err(unavailable)? {
        Some(guard) => {
            let rec = decode(key, guard.value())?;
            Ok(is_live(rec.e, now).then_some(rec))
        }
        None => Ok(None),
    }
}

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.read(|db, now| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(ITEMS).map_err(unavailable)?;
            let k = (key.pk.as_str(), key.sk.as_str());
            let Some(guard) = table.get(k).map_err(unavailable)? else {
                return Ok(None);
            };
            let rec = decode(k, guard.value())?;
            Ok(is_live(rec.e, now).then_some(Item {
                value: rec.v,
                expires_at: rec.e,
            }))
        })
    }

    async fn put(&self, key: &Key, value: &str, expires_at: Option<i64>) -> Result<(), StoreError> {
        let bytes = encode(value, expires_at)?;
        self.write(Op::Put(key.clone(), bytes)).await.map(drop)
    }

    async fn compare_and_set(
        &self,
        key: &Key,
        expected: Option<&str>,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let bytes = encode(value, expires_at)?;
        self.write(Op::CompareAndSet(
            key.clone(),
            expected.map(str::to_owned),
            bytes,
        ))
        .await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.write(Op::Delete(key.clone())).await.map(drop)
    }

    async fn delete_if(&self, key: &Key, value: &str) -> Result<bool, StoreError> {
        self.write(Op::DeleteIf(key.clone(), value.to_owned()))
            .await
    }

    async fn query_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let (pk, prefix) = (pk, sk_prefix);
        self.read(|db, now| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(ITEMS).map_err(unavailable)?;
            let mut out = Vec::new();
            for entry in table.range((pk, prefix)..).map_err(unavailable)? {
                let (k, v) = entry.map_err(unavailable)?;
                let (p, s) = k.value();
                if p != pk || !s.starts_with(prefix) {
                    break;
                }
                let rec = decode((p, s), v.value())?;
                if is_live(rec.e, now) {
                    out.push((
                        s.to_owned(),
                        Item {
                            value: rec.v,
                            expires_at: rec.e,
                        },
                    ));
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn store(dir: &Path) -> (EmbeddedStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let store = EmbeddedStore::open(&dir.join("data/state.redb"), clock.clone()).unwrap();
        (store, clock)
    }

    /// A process killed after its writes were acknowledged leaves them in the journal only (its
    /// commits were not durable): the next open applies them, and ignores records written under
    /// an older tag.
    #[tokio::test]
    async fn writes_left_in_the_journal_by_a_killed_process_are_there_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/state.redb");
        let (first, _) = store(dir.path());
        first
            .put(&Key::new("p", "before"), "durable", None)
            .await
            .unwrap();
        drop(first);
        // What the killed process had acknowledged: records under redb's tag, nothing in redb.
        let db = Database::open(&path).unwrap();
        let tag = db
            .begin_read()
            .unwrap()
            .open_table(META)
            .unwrap()
            .get(JOURNAL_TAG)
            .unwrap()
            .unwrap()
            .value();
        drop(db);
        let journal_path = dir.path().join("data/state.redb.journal");
        let mut journal = Journal::open(&journal_path, tag.wrapping_add(1)).unwrap();
        let set = |sk: &str, v: &str| Change::Set("p".into(), sk.into(), encode(v, None).unwrap());
        journal.append(&[set("stale", "x")]).unwrap();
        journal.restart(tag);
        journal
            .append(&[
                set("claimed", "in-progress"),
                Change::Remove("p".into(), "before".into()),
            ])
            .unwrap();
        journal.append(&[set("claimed", "completed")]).unwrap();
        drop(journal);

        let (reopened, _) = store(dir.path());
        let value = |k: &'static str| {
            let s = reopened.clone();
            async move { s.get(&Key::new("p", k)).await.unwrap().map(|i| i.value) }
        };
        assert_eq!(value("claimed").await.as_deref(), Some("completed"));
        assert_eq!(value("before").await, None, "the removal is applied too");
        assert_eq!(value("stale").await, None, "a record of another tag is not");
        // Applied once and checkpointed: a second open finds nothing more to apply.
        reopened
            .put(&Key::new("p", "before"), "again", None)
            .await
            .unwrap();
        drop(reopened);
        let (last, _) = store(dir.path());
        assert_eq!(
            last.get(&Key::new("p", "before"))
                .await
                .unwrap()
                .map(|i| i.value)
                .as_deref(),
            Some("again")
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_file_and_its_folder_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let _store = store(dir.path());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&dir.path().join("data/state.redb")), 0o600);
    }

    #[tokio::test]
    async fn expired_items_are_deleted_not_just_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        let soon = clock.now_s() + 10;
        for i in 0..3 {
            let key = Key::new("p", format!("evt{i}"));
            store.put(&key, "x", Some(soon)).await.unwrap();
        }
        store.put(&Key::new("p", "keep"), "x", None).await.unwrap();
        clock.advance(Duration::from_secs(11));
        assert_eq!(store.sweep_expired().await.unwrap(), 3);
        assert_eq!(store.sweep_expired().await.unwrap(), 0);
        assert!(store.get(&Key::new("p", "keep")).await.unwrap().is_some());

        // Without anyone asking: the first write after SWEEP_EVERY_S starts a sweep.
        let soon = clock.now_s() + 10;
        store
            .put(&Key::new("p", "old"), "x", Some(soon))
            .await
            .unwrap();
        let stored = |store: &EmbeddedStore| {
            let txn = store.db.begin_read().unwrap();
            txn.open_table(ITEMS).unwrap().len().unwrap()
        };
        assert_eq!(stored(&store), 2, "keep, and old");
        clock.advance(Duration::from_secs(
            u64::try_from(SWEEP_EVERY_S).unwrap() + 1,
        ));
        store.put(&Key::new("p", "new"), "x", None).await.unwrap();
        let mut waited = 0;
        while stored(&store) != 2 && waited < 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert_eq!(stored(&store), 2, "old is gone: keep, and new");
    }

    #[test]
    fn a_batch_is_one_transaction_in_which_each_write_sees_the_ones_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        let claim =
            |v: &str| Op::CompareAndSet(Key::new("p", "evt"), None, encode(v, None).unwrap());
        let (a, b) = (claim("a"), claim("b"));
        let release = Op::DeleteIf(Key::new("p", "evt"), "a".into());
        let c = claim("c");
        let put = Op::Put(Key::new("p", "other"), encode("x", None).unwrap());
        let outcomes = commit_batch(
            &store.db,
            &[&a, &b, &release, &c, &put],
            clock.now_s(),
            None,
        )
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect::<Vec<_>>();
        // Two racing claims: one wins. The winner releases; a later claim then wins.
        assert_eq!(outcomes, [true, false, true, true, true]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let value = |k: &str| {
            rt.block_on(store.get(&Key::new("p", k)))
                .unwrap()
                .map(|i| i.value)
        };
        assert_eq!(value("evt").as_deref(), Some("c"));
        assert_eq!(value("other").as_deref(), Some("x"));
        // Nothing changed: no commit (no fsync) at all.
        let lost = claim("d");
        assert_eq!(
            commit_batch(&store.db, &[&lost], clock.now_s(), None).unwrap()[0]
                .as_ref()
                .unwrap(),
            &false
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_share_commits_and_each_is_durable_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/state.redb");
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let store = EmbeddedStore::open(&path, clock.clone()).unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = Key::new("p", format!("evt{i}"));
                    let won = store.put_if_absent(&key, "claimed", None).await.unwrap();
                    let again = store.put_if_absent(&key, "claimed", None).await.unwrap();
                    (won, again)
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), (true, false));
        }
        let commits = store.commits();
        // 64 claims that changed something: at most 64 commits, and every duplicate claim
        // (which changes nothing) shared a commit or needed none.
        assert!((1..=64).contains(&commits), "{commits}");
        drop(store);
        // Durable: what the reopened file holds (released as the last clone was dropped).
        let reopened = EmbeddedStore::open(&path, clock.clone()).unwrap();
        assert_eq!(reopened.query_prefix("p", "evt").await.unwrap().len(), 64);
    }

    /// The committer yields to the threads handing it writes: its nice value is theirs plus
    /// [`COMMITTER_NICE`].
    #[cfg(target_os = "linux")]
    #[test]
    fn the_committer_runs_at_a_lower_priority_than_its_writers() {
        // Field 19 of /proc/<task>/stat, counted after the command name in parentheses.
        let nice = |stat: &str| -> i32 {
            let after = &stat[stat.rfind(')').unwrap() + 1..];
            after.split_whitespace().nth(16).unwrap().parse().unwrap()
        };
        let ours = nice(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
        let dir = tempfile::tempdir().unwrap();
        let (_store, _) = store(dir.path());
        let committers = || {
            let mut found = Vec::new();
            for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                if comm.trim_end() == "hookline-store-"
                    && let Ok(stat) = std::fs::read_to_string(task.path().join("stat"))
                {
                    found.push(nice(&stat));
                }
            }
            found
        };
        // (At nice 19 already, there is nothing lower: the committer stays at 19.)
        let expected = (ours + COMMITTER_NICE).min(19);
        let mut seen = committers();
        for _ in 0..200 {
            if seen.contains(&expected) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            seen = committers();
        }
        assert!(
            seen.contains(&expected),
            "committers at {seen:?}, ours {ours}"
        );
        // Only the committer: the writers (this thread) keep theirs.
        let now = nice(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
        assert_eq!(now, ours, "the writers' priority is unchanged");
    }

    #[test]
    fn a_second_process_is_told_who_holds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_held, clock) = store(dir.path());
        let err = EmbeddedStore::open(&dir.path().join("data/state.redb"), clock).unwrap_err();
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
    }
}
