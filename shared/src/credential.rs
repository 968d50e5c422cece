//! A cached credential (Tailchat JWT, Tencent UserSig): in memory for warm invocations, in the
//! store for cold ones, refreshed lazily from its own expiry, never on a timer, and fetched by
//! at most one task per process at a time.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use crate::clock::{SharedClock, millis};
use crate::store::{Key, SharedStore, StoreError};

/// A credential and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential<T> {
    /// The credential.
    pub value: T,
    /// When the platform stops accepting it (Unix ms).
    pub expires_at_ms: i64,
}

/// The cache.
#[derive(Debug)]
pub struct CredentialCache<T> {
    store: SharedStore,
    key: Key,
    clock: SharedClock,
    refresh_before: Duration,
    memory: RwLock<Option<Credential<T>>>,
    refreshing: Mutex<()>,
}

impl<T> CredentialCache<T>
where
    T: Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync,
{
    /// A cache stored at `key` that refreshes once less than `refresh_before` remains.
    pub fn new(store: SharedStore, key: Key, clock: SharedClock, refresh_before: Duration) -> Self {
        Self {
            store,
            key,
            clock,
            refresh_before,
            memory: RwLock::new(None),
            refreshing: Mutex::new(()),
        }
    }

    fn fresh(&self, c: &Credential<T>) -> bool {
        c.expires_at_ms - self.clock.now_ms() > millis(self.refresh_before)
    }

    /// The current credential, fetching a new one with `fetch` when the cached one is missing or
    /// close to expiry.
    pub async fn get_or_fetch<F, Fut, E>(&self, fetch: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credential<T>, E>>,
        E: From<StoreError>,
    {
        if let Some(c) = self.memory.read().await.as_ref().filter(|c| self.fresh(c)) {
            return Ok(c.value.clone());
        }
        // Single flight: whoever holds the gate fetches; the rest find its result afterwards.
        let _gate = self.refreshing.lock().await;
        if let Some(c) = self.memory.read().await.as_ref().filter(|c| self.fresh(c)) {
            return Ok(c.value.clone());
        }
        if let Some(item) = self.store.get(&self.key).await? {
            match serde_json::from_str::<Credential<T>>(&item.value) {
                Ok(c) if self.fresh(&c) => {
                    let value = c.value.clone();
                    *self.memory.write().await = Some(c);
                    return Ok(value);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(key = %self.key, error = %e, "ignoring unreadable cached credential")
                }
            }
        }
        let fetched = fetch().await?;
        let json = serde_json::to_string(&fetched).map_err(|e| StoreError::Corrupt {
            key: self.key.to_string(),
            reason: e.to_string(),
        })?;
        self.store
            .put(
                &self.key,
                &json,
                Some(fetched.expires_at_ms.div_euclid(1000)),
            )
            .await?;
        let value = fetched.value.clone();
        *self.memory.write().await = Some(fetched);
        Ok(value)
    }

    /// Forgets `stale` (a credential the platform refused), unless a newer one replaced it.
    pub async fn invalidate(&self, stale: &T) -> Result<(), StoreError> {
        let _gate = self.refreshing.lock().await;
        let mut memory = self.memory.write().await;
        if memory.as_ref().is_some_and(|c| &c.value == stale) {
            *memory = None;
        }
        if let Some(item) = self.store.get(&self.key).await? {
            let cached = serde_json::from_str::<Credential<T>>(&item.value).ok();
            if cached.is_none_or(|c| &c.value == stale) {
                self.store.delete(&self.key).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::EmbeddedStore;

    const HOUR_MS: i64 = 3_600_000;

    fn cache(clock: Arc<ManualClock>, dir: &tempfile::TempDir) -> Arc<CredentialCache<String>> {
        let store =
            Arc::new(EmbeddedStore::open(&dir.path().join("s.redb"), clock.clone()).unwrap());
        Arc::new(CredentialCache::new(
            store,
            Key::new("t#b#cred", "jwt"),
            clock,
            Duration::from_secs(86_400),
        ))
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let cache = cache(clock.clone(), &dir);
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, fetches) = (Arc::clone(&cache), Arc::clone(&fetches));
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(|| async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, StoreError>(Credential {
                            value: "jwt-1".to_owned(),
                            expires_at_ms: 30 * 24 * HOUR_MS,
                        })
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "jwt-1");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refreshes_when_less_than_the_margin_remains_and_after_invalidation() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let cache = cache(clock.clone(), &dir);
        let next = |v: &'static str| async move {
            Ok::<_, StoreError>(Credential {
                value: v.to_owned(),
                expires_at_ms: clock_exp(),
            })
        };
        fn clock_exp() -> i64 {
            2 * 24 * HOUR_MS
        }
        assert_eq!(cache.get_or_fetch(|| next("a")).await.unwrap(), "a");
        clock.set(clock_exp() - 25 * HOUR_MS);
        assert_eq!(
            cache.get_or_fetch(|| next("b")).await.unwrap(),
            "a",
            "25 h left: still fresh"
        );
        clock.set(clock_exp() - 23 * HOUR_MS);
        assert_eq!(
            cache.get_or_fetch(|| next("c")).await.unwrap(),
            "c",
            "23 h left: refreshed"
        );
        cache.invalidate(&"c".to_owned()).await.unwrap();
        assert_eq!(cache.get_or_fetch(|| next("d")).await.unwrap(), "d");
    }

    #[tokio::test]
    async fn a_cold_process_reuses_the_stored_credential() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(0));
        let exp = 30 * 24 * HOUR_MS;
        let first = cache(clock.clone(), &dir);
        first
            .get_or_fetch(|| async {
                Ok::<_, StoreError>(Credential {
                    value: "x".to_owned(),
                    expires_at_ms: exp,
                })
            })
            .await
            .unwrap();
        drop(first);
        let second = cache(clock, &dir);
        let got = second
            .get_or_fetch(|| async {
                Ok::<_, StoreError>(Credential {
                    value: "y".to_owned(),
                    expires_at_ms: exp,
                })
            })
            .await
            .unwrap();
        assert_eq!(got, "x");
    }
}
