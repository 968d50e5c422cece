//! Idempotency with AWS Powertools semantics, on top of the state store.
//!
//! `claim` writes `{platform}#{bot}#evt#{event id}` as IN_PROGRESS with the function timeout as
//! its expiry (an invocation that dies mid-way frees the event when its time is up). `complete`
//! marks it COMPLETED for 24 h (longer than any platform retries: TamTam's 8 h). `release`
//! deletes it after a failure, so the platform's redelivery can succeed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::model::{EventId, Platform};
use crate::store::{Key, SharedStore, StoreError};

/// How long a completed record is kept.
pub const COMPLETED_TTL: Duration = Duration::from_secs(24 * 3600);

/// The default in-progress expiry (the Lambda timeout in the SAM template).
pub const DEFAULT_IN_PROGRESS_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
enum Record {
    InProgress,
    Completed,
}

/// The result of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This invocation owns the event and must `complete` or `release` it.
    Acquired(Key),
    /// The event was already handled: acknowledge, do nothing.
    Completed,
    /// Another invocation is handling it right now: ask for a redelivery later.
    InProgress,
}

/// The idempotency layer.
#[derive(Debug, Clone)]
pub struct Idempotency {
    store: SharedStore,
    clock: SharedClock,
    namespace: String,
}

impl Idempotency {
    /// Idempotency for one bot of one platform.
    pub fn new(store: SharedStore, clock: SharedClock, platform: Platform, bot: &str) -> Self {
        Self {
            store,
            clock,
            namespace: format!("{platform}#{bot}"),
        }
    }

    /// The record's key for an event.
    pub fn key(&self, event: &EventId) -> Key {
        Key::new(format!("{}#evt#{}", self.namespace, event), "idem")
    }

    fn expiry(&self, ttl: Duration) -> i64 {
        self.clock.now_s() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)
    }

    /// Claims an event for processing, holding it for at most `in_progress_ttl`.
    pub async fn claim(
        &self,
        event: &EventId,
        in_progress_ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let key = self.key(event);
        let value = serde_json::to_string(&Record::InProgress).unwrap_or_default();
        // Two rounds: the record we lost to may expire between our write and our read.
        for _ in 0..2 {
            if self
                .store
                .put_if_absent(
                    &key,
                    &value,
                    Some(self.expiry(in_progress_ttl.max(Duration::from_secs(1)))),
                )
                .await?
            {
                return Ok(Claim::Acquired(key));
            }
            let Some(item) = self.store.get(&key).await? else {
                continue;
            };
            return match serde_json::from_str::<Record>(&item.value) {
                Ok(Record::Completed) => Ok(Claim::Completed),
                Ok(Record::InProgress) => Ok(Claim::InProgress),
                Err(e) => Err(StoreError::Corrupt {
                    key: key.to_string(),
                    reason: e.to_string(),
                }),
            };
        }
        Ok(Claim::InProgress)
    }

    /// Marks a claimed event as handled.
    pub async fn complete(&self, key: &Key) -> Result<(), StoreError> {
        let value = serde_json::to_string(&Record::Completed).unwrap_or_default();
        self.store
            .put(key, &value, Some(self.expiry(COMPLETED_TTL)))
            .await
    }

    /// Gives a claimed event back after a failure.
    pub async fn release(&self, key: &Key) -> Result<(), StoreError> {
        self.store.delete(key).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::EmbeddedStore;

    fn setup() -> (Idempotency, Arc<ManualClock>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), clock.clone()).unwrap();
        (
            Idempotency::new(Arc::new(store), clock.clone(), Platform::Tailchat, "bot"),
            clock,
            dir,
        )
    }

    #[tokio::test]
    async fn a_second_claim_sees_in_progress_then_completed() {
        let (idem, _clock, _dir) = setup();
        let event = EventId::from("m1");
        let Claim::Acquired(key) = idem.claim(&event, Duration::from_secs(30)).await.unwrap()
        else {
            panic!("first claim must win");
        };
        assert_eq!(key.pk, "tailchat#bot#evt#m1");
        assert_eq!(
            idem.claim(&event, Duration::from_secs(30)).await.unwrap(),
            Claim::InProgress
        );
        idem.complete(&key).await.unwrap();
        assert_eq!(
            idem.claim(&event, Duration::from_secs(30)).await.unwrap(),
            Claim::Completed
        );
    }

    #[tokio::test]
    async fn a_released_or_timed_out_claim_can_be_taken_again() {
        let (idem, clock, _dir) = setup();
        let event = EventId::from("m2");
        let Claim::Acquired(key) = idem.claim(&event, Duration::from_secs(30)).await.unwrap()
        else {
            panic!("first claim must win");
        };
        idem.release(&key).await.unwrap();
        assert!(matches!(
            idem.claim(&event, Duration::from_secs(30)).await.unwrap(),
            Claim::Acquired(_)
        ));
        // The holder died: after the in-progress expiry the event is free again.
        clock.advance(Duration::from_secs(31));
        assert!(matches!(
            idem.claim(&event, Duration::from_secs(30)).await.unwrap(),
            Claim::Acquired(_)
        ));
    }

    #[tokio::test]
    async fn completed_records_outlive_tamtams_eight_hours_of_retries() {
        let (idem, clock, _dir) = setup();
        let event = EventId::from("m3");
        let Claim::Acquired(key) = idem.claim(&event, Duration::from_secs(30)).await.unwrap()
        else {
            panic!("first claim must win");
        };
        idem.complete(&key).await.unwrap();
        clock.advance(Duration::from_secs(8 * 3600 + 60));
        assert_eq!(
            idem.claim(&event, Duration::from_secs(30)).await.unwrap(),
            Claim::Completed
        );
        clock.advance(Duration::from_secs(16 * 3600));
        assert!(matches!(
            idem.claim(&event, Duration::from_secs(30)).await.unwrap(),
            Claim::Acquired(_)
        ));
    }
}
