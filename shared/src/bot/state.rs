//! Typed key/value state of one chat or one user ([`State`]), on the pipeline's store.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::BotError;
use crate::clock::SharedClock;
use crate::store::{Key, SharedStore};

/// The most tries of one [`State::update`] under contention.
pub const UPDATE_TRIES: usize = 32;

/// Typed key/value state of one chat or one user, on the pipeline's store (DynamoDB or the
/// embedded file). Values are JSON; every operation is strongly consistent; a TTL makes an item
/// disappear for every operation once it passes.
#[derive(Clone)]
pub struct State {
    store: SharedStore,
    clock: SharedClock,
    pk: String,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State").field("pk", &self.pk).finish()
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, BotError> {
    serde_json::to_string(value).map_err(|e| BotError::give_up(format!("cannot encode: {e}")))
}

impl State {
    /// A state scope on `store` under partition `pk` (for tests and tools; bots use
    /// [`Ctx::chat_state`] and [`Ctx::user_state`]).
    ///
    /// [`Ctx::chat_state`]: super::Ctx::chat_state
    /// [`Ctx::user_state`]: super::Ctx::user_state
    pub fn new(store: SharedStore, clock: SharedClock, pk: impl Into<String>) -> Self {
        Self {
            store,
            clock,
            pk: pk.into(),
        }
    }

    fn key(&self, key: &str) -> Key {
        Key::new(&self.pk, key)
    }

    fn expiry(&self, ttl: Option<Duration>) -> Option<i64> {
        ttl.map(|t| self.clock.now_s() + i64::try_from(t.as_secs().max(1)).unwrap_or(i64::MAX / 2))
    }

    fn decode<T: DeserializeOwned>(&self, key: &str, raw: &str) -> Result<T, BotError> {
        serde_json::from_str(raw).map_err(|e| {
            BotError::give_up(format!("state {key} does not hold the expected type: {e}"))
        })
    }

    /// The value at `key`, unless absent or expired.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, BotError> {
        match self.store.get(&self.key(key)).await? {
            Some(item) => self.decode(key, &item.value).map(Some),
            None => Ok(None),
        }
    }

    /// Writes `value` at `key` (overwriting), expiring after `ttl` when given.
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), BotError> {
        let raw = encode(value)?;
        Ok(self
            .store
            .put(&self.key(key), &raw, self.expiry(ttl))
            .await?)
    }

    /// Writes `value` only if `key` holds nothing; returns whether this call wrote it (of racing
    /// callers, exactly one).
    pub async fn put_if_absent<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, BotError> {
        let raw = encode(value)?;
        Ok(self
            .store
            .put_if_absent(&self.key(key), &raw, self.expiry(ttl))
            .await?)
    }

    /// Writes `new` only if `key` holds `expected` (`None`: nothing); returns whether it did.
    pub async fn compare_and_set<T: Serialize>(
        &self,
        key: &str,
        expected: Option<&T>,
        new: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, BotError> {
        let expected = expected.map(encode).transpose()?;
        let raw = encode(new)?;
        Ok(self
            .store
            .compare_and_set(&self.key(key), expected.as_deref(), &raw, self.expiry(ttl))
            .await?)
    }

    /// Reads, changes and writes `key` atomically (compare-and-set, tried again when another
    /// writer got there first): `f` gets the current value (`None` when absent) and returns the
    /// new one. Returns the value written.
    pub async fn update<T, F>(&self, key: &str, ttl: Option<Duration>, f: F) -> Result<T, BotError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(Option<T>) -> T + Send,
    {
        let k = self.key(key);
        for _ in 0..UPDATE_TRIES {
            let current = self.store.get(&k).await?.map(|item| item.value);
            let value = match &current {
                Some(raw) => Some(self.decode::<T>(key, raw)?),
                None => None,
            };
            let new = f(value);
            let raw = encode(&new)?;
            if self
                .store
                .compare_and_set(&k, current.as_deref(), &raw, self.expiry(ttl))
                .await?
            {
                return Ok(new);
            }
        }
        Err(BotError::retry(format!(
            "state {key}: still contended after {UPDATE_TRIES} tries"
        )))
    }

    /// Adds `by` to the integer at `key` (absent counts as 0) atomically; returns the new value.
    pub async fn increment(
        &self,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, BotError> {
        self.update(key, ttl, |n: Option<i64>| n.unwrap_or(0).saturating_add(by))
            .await
    }

    /// Deletes `key`; deleting nothing is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BotError> {
        Ok(self.store.delete(&self.key(key)).await?)
    }

    /// Every live `(key, value)` whose key starts with `prefix`, in ascending key order.
    pub async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, BotError> {
        let items = self.store.query_prefix(&self.pk, prefix).await?;
        items
            .into_iter()
            .map(|(key, item)| {
                let value = self.decode(&key, &item.value)?;
                Ok((key, value))
            })
            .collect()
    }
}
