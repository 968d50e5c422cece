//! The embedded backend: one redb file, ACID, one writer at a time.
//!
//! redb serialises write transactions, so read-check-write inside one transaction is atomic,
//! which is all `put_if_absent` and `add` need. redb is synchronous; every operation runs on the
//! blocking pool so a commit's fsync never stalls the async workers.
//!
//! The file holds cached credentials and chats' notes: it is created `0600` in a folder created
//! `0700`. Expired items are invisible at once and deleted by a sweep at open and then at most
//! every [`SWEEP_EVERY_S`] seconds, run by the write that finds it due, so the file does not grow
//! with every event ever claimed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Item, Key, StateStore, StoreError, is_live};
use crate::clock::SharedClock;

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");

#[derive(Serialize, Deserialize)]
struct Record {
    v: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<i64>,
}

/// How often, at most, expired items are deleted (seconds).
pub const SWEEP_EVERY_S: i64 = 600;

/// The embedded (redb) store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    clock: SharedClock,
    last_sweep: Arc<AtomicI64>,
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
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(format!(
                "{} is in use by another process (a running `hookline serve`?)",
                path.display()
            )),
            e => unavailable(format!("cannot open {}: {e}", path.display())),
        })?;
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(ITEMS).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        let now = clock.now_s();
        sweep(&db, now)?;
        Ok(Self {
            db: Arc::new(db),
            clock,
            last_sweep: Arc::new(AtomicI64::new(now)),
        })
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
        Ok(Self {
            db: Arc::new(db),
            clock,
            last_sweep: Arc::new(AtomicI64::new(now)),
        })
    }

    /// Deletes every expired item now; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, StoreError> {
        self.blocking(sweep).await
    }

    /// Runs a write; when a sweep is due, the first writer to see it starts one in the
    /// background (the write's caller does not wait for it).
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database, i64) -> Result<T, StoreError> + Send + 'static,
    {
        let out = self.blocking(f).await?;
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
        let key = key.clone();
        self.blocking(move |db, now| {
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
        .await
    }

    async fn put(&self, key: &Key, value: &str, expires_at: Option<i64>) -> Result<(), StoreError> {
        let (key, bytes) = (key.clone(), encode(value, expires_at)?);
        self.write(move |db, _| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(unavailable)?;
                table
                    .insert((key.pk.as_str(), key.sk.as_str()), bytes.as_slice())
                    .map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn compare_and_set(
        &self,
        key: &Key,
        expected: Option<&str>,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (key, bytes) = (key.clone(), encode(value, expires_at)?);
        let expected = expected.map(str::to_owned);
        self.write(move |db, now| {
            let txn = db.begin_write().map_err(unavailable)?;
            let written = {
                let mut table = txn.open_table(ITEMS).map_err(unavailable)?;
                let k = (key.pk.as_str(), key.sk.as_str());
                let current = live_in(&table, k, now)?;
                if current.map(|r| r.v) == expected {
                    table.insert(k, bytes.as_slice()).map_err(unavailable)?;
                    true
                } else {
                    false
                }
            };
            if written {
                txn.commit().map_err(unavailable)?;
            } else {
                txn.abort().map_err(unavailable)?;
            }
            Ok(written)
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |db, _| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(unavailable)?;
                table
                    .remove((key.pk.as_str(), key.sk.as_str()))
                    .map_err(unavailable)?;
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn delete_if(&self, key: &Key, value: &str) -> Result<bool, StoreError> {
        let (key, value) = (key.clone(), value.to_owned());
        self.write(move |db, now| {
            let txn = db.begin_write().map_err(unavailable)?;
            let deleted = {
                let mut table = txn.open_table(ITEMS).map_err(unavailable)?;
                let k = (key.pk.as_str(), key.sk.as_str());
                if live_in(&table, k, now)?.is_some_and(|r| r.v == value) {
                    table.remove(k).map_err(unavailable)?;
                    true
                } else {
                    false
                }
            };
            if deleted {
                txn.commit().map_err(unavailable)?;
            } else {
                txn.abort().map_err(unavailable)?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn query_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let (pk, prefix) = (pk.to_owned(), sk_prefix.to_owned());
        self.blocking(move |db, now| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(ITEMS).map_err(unavailable)?;
            let mut out = Vec::new();
            for entry in table
                .range((pk.as_str(), prefix.as_str())..)
                .map_err(unavailable)?
            {
                let (k, v) = entry.map_err(unavailable)?;
                let (p, s) = k.value();
                if p != pk || !s.starts_with(prefix.as_str()) {
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
        .await
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
