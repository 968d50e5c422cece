//! The state store: one small object-safe trait, two backends (DynamoDB and an embedded redb
//! file), one contract test suite (`tests/integration/store_contract.rs`) run against both.
//!
//! Items are addressed by a partition key `pk` and a sort key `sk`, carry a string value and an
//! optional expiry in epoch seconds (`expires_at`, DynamoDB's TTL attribute). An expired item is
//! absent for every operation, whether or not the backend has physically deleted it yet
//! (DynamoDB's TTL deletion lags by up to days).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::config::SharedConfig;

mod dynamo;
mod embedded;
mod journal;

pub use dynamo::DynamoStore;
pub use embedded::EmbeddedStore;

/// An item's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Key {
    /// Partition key; namespaced `{platform}#{bot}#…`.
    pub pk: String,
    /// Sort key within the partition.
    pub sk: String,
}

impl Key {
    /// A key.
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.pk, self.sk)
    }
}

/// A stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value.
    pub value: String,
    /// Expiry in epoch seconds; the item is gone once `now_s >= expires_at`.
    pub expires_at: Option<i64>,
}

/// A store failure. All of them are transient from the platform's point of view: the request
/// should be retried later, never acknowledged as processed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or refused the operation.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The embedded store's file is held by another process (a running `hookline serve`).
    #[error("state store in use: {0}")]
    InUse(String),
    /// A stored item could not be read back.
    #[error("state store item {key} is unreadable: {reason}")]
    Corrupt {
        /// The item.
        key: String,
        /// Why.
        reason: String,
    },
}

/// What the pipeline, the credential caches, the rate budgets and the bot keep.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    /// The item at `key`, unless absent or expired. Strongly consistent.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;

    /// Writes (or overwrites) an item.
    async fn put(&self, key: &Key, value: &str, expires_at: Option<i64>) -> Result<(), StoreError>;

    /// Writes an item only if none exists (an expired one counts as none). Returns whether this
    /// call wrote it; of any number of racing callers exactly one gets `true`.
    async fn put_if_absent(
        &self,
        key: &Key,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.compare_and_set(key, None, value, expires_at).await
    }

    /// Writes an item only if the live value is `expected` (`None`: no live item). Returns
    /// whether this call wrote it; of racing callers with the same `expected` exactly one gets
    /// `true`. The atomic step under the bots' typed state (increments, compare-and-set).
    async fn compare_and_set(
        &self,
        key: &Key,
        expected: Option<&str>,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError>;

    /// Deletes an item; deleting an absent item is not an error.
    async fn delete(&self, key: &Key) -> Result<(), StoreError>;

    /// Deletes the item only if it is live and its value is `value` (releasing a lock one owns);
    /// returns whether it did.
    async fn delete_if(&self, key: &Key, value: &str) -> Result<bool, StoreError>;

    /// Every live item of partition `pk` whose sort key starts with `sk_prefix`, in ascending
    /// sort-key order. Strongly consistent.
    async fn query_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<(String, Item)>, StoreError>;
}

/// A store shared by every part of one process.
pub type SharedStore = Arc<dyn StateStore>;

pub(crate) fn is_live(expires_at: Option<i64>, now_s: i64) -> bool {
    expires_at.is_none_or(|e| now_s < e)
}

/// Opens the store the configuration asks for: DynamoDB when `HOOKLINE_TABLE` is set, the
/// embedded file under `HOOKLINE_DATA_DIR` otherwise.
pub async fn open(config: &SharedConfig, clock: SharedClock) -> Result<SharedStore, StoreError> {
    match &config.table {
        Some(table) => Ok(Arc::new(DynamoStore::from_env(table, clock).await)),
        None => {
            let path = config.data_dir.join("state.redb");
            Ok(Arc::new(EmbeddedStore::open(&path, clock)?))
        }
    }
}
