//! The embedded backend: one redb file, ACID, one writer at a time.
//!
//! redb serialises write transactions, so read-check-write inside one transaction is atomic,
//! which is all `put_if_absent` and `add` need. redb is synchronous; every operation runs on the
//! blocking pool so a commit's fsync never stalls the async workers.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
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

/// The embedded (redb) store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    clock: SharedClock,
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
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::create(path)
            .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(unavailable)?;
        txn.open_table(ITEMS).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        Ok(Self {
            db: Arc::new(db),
            clock,
        })
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
        self.blocking(move |db, _| {
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

    async fn put_if_absent(
        &self,
        key: &Key,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (key, bytes) = (key.clone(), encode(value, expires_at)?);
        self.blocking(move |db, now| {
            let txn = db.begin_write().map_err(unavailable)?;
            let written = {
                let mut table = txn.open_table(ITEMS).map_err(unavailable)?;
                let k = (key.pk.as_str(), key.sk.as_str());
                if live_in(&table, k, now)?.is_some() {
                    false
                } else {
                    table.insert(k, bytes.as_slice()).map_err(unavailable)?;
                    true
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
        self.blocking(move |db, _| {
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

    async fn add(
        &self,
        key: &Key,
        delta: i64,
        ceiling: i64,
        expires_at: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let key = key.clone();
        self.blocking(move |db, now| {
            let txn = db.begin_write().map_err(unavailable)?;
            let result = {
                let mut table = txn.open_table(ITEMS).map_err(unavailable)?;
                let k = (key.pk.as_str(), key.sk.as_str());
                let (current, expiry) = match live_in(&table, k, now)? {
                    Some(rec) => {
                        let n = rec.v.parse::<i64>().map_err(|e| StoreError::Corrupt {
                            key: format!("{}/{}", k.0, k.1),
                            reason: format!("not a counter: {e}"),
                        })?;
                        (n, rec.e)
                    }
                    None => (0, expires_at),
                };
                match current.checked_add(delta).filter(|n| *n <= ceiling) {
                    Some(next) => {
                        let bytes = encode(&next.to_string(), expiry)?;
                        table.insert(k, bytes.as_slice()).map_err(unavailable)?;
                        Some(next)
                    }
                    None => None,
                }
            };
            if result.is_some() {
                txn.commit().map_err(unavailable)?;
            } else {
                txn.abort().map_err(unavailable)?;
            }
            Ok(result)
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
