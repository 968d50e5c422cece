//! Idempotency with AWS Powertools semantics, on top of the state store.
//!
//! `claim` writes `{platform}#{bot}#evt#{event id}` as IN_PROGRESS with the function timeout as
//! its expiry (an invocation that dies mid-way frees the event when its time is up). `complete`
//! marks it COMPLETED for 24 h (longer than any platform retries: TamTam's 8 h). `release`
//! deletes it after a failure, so the platform's redelivery can succeed.
//!
//! Deferred mode adds three states. `claim_queued` writes QUEUED with an expiry covering the
//! queue's retention, so a platform redelivery while the event waits is a duplicate. A worker
//! `start`s it (RUNNING until its lease ends: a worker that dies frees it when its time is up),
//! then completes it, puts it back (`requeue`, QUEUED again) for a later attempt, or marks it
//! DEAD after the last attempt (`dead`, with a report for `hookline doctor`). A DEAD event can
//! still be started: a redriven dead-letter message is worked again.

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
    Queued,
    Running { until_ms: i64 },
    Dead { reason: String },
}

impl Record {
    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A worker's attempt to start a queued event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// This worker holds the event until its lease ends: run it.
    Started,
    /// Already answered (a duplicate queue delivery): drop the job.
    Completed,
    /// Another worker holds a live lease: try again later (never drop: it may fail).
    Busy,
}

/// The partition of dead-letter reports (`hookline doctor` lists it).
pub const DEAD_LETTERS: &str = "hookline#dead";

/// How long a dead-letter report and a DEAD claim are kept: an SQS dead-letter queue's longest
/// retention.
pub const DEAD_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// A dead-letter report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The platform.
    pub platform: Platform,
    /// The event.
    pub event_id: EventId,
    /// When it was given up (Unix ms).
    pub at_ms: i64,
    /// Why.
    pub reason: String,
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
    /// It waits in the queue, runs in a worker or was dead-lettered: acknowledge, do nothing.
    Queued,
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
        self.claim_as(event, &Record::InProgress, in_progress_ttl)
            .await
    }

    /// Claims an event for the queue: QUEUED until `ttl` (the queue's retention) has passed.
    pub async fn claim_queued(&self, event: &EventId, ttl: Duration) -> Result<Claim, StoreError> {
        self.claim_as(event, &Record::Queued, ttl).await
    }

    async fn claim_as(
        &self,
        event: &EventId,
        record: &Record,
        in_progress_ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let key = self.key(event);
        let value = record.json();
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
                Ok(Record::Queued | Record::Running { .. } | Record::Dead { .. }) => {
                    Ok(Claim::Queued)
                }
                Err(e) => Err(StoreError::Corrupt {
                    key: key.to_string(),
                    reason: e.to_string(),
                }),
            };
        }
        Ok(Claim::InProgress)
    }

    /// A worker takes the queued event at `key` until `until_ms` (its lease). A RUNNING record
    /// whose lease has not ended is someone else's unless `take_over` (the one process that
    /// owns an embedded queue, restarting). An absent record (released, or expired past the
    /// queue's retention) is taken: losing an answer is worse than a late one.
    pub async fn start(
        &self,
        key: &Key,
        until_ms: i64,
        take_over: bool,
    ) -> Result<Start, StoreError> {
        let running = Record::Running { until_ms }.json();
        let expires = Some(self.expiry(crate::queue::QUEUED_CLAIM_TTL));
        for _ in 0..3 {
            let current = self.store.get(key).await?;
            let expected = match &current {
                None => None,
                Some(item) => match serde_json::from_str::<Record>(&item.value) {
                    Ok(Record::Completed) => return Ok(Start::Completed),
                    Ok(Record::Running { until_ms: lease })
                        if lease > self.clock.now_ms() && !take_over =>
                    {
                        return Ok(Start::Busy);
                    }
                    Ok(Record::InProgress) => return Ok(Start::Busy),
                    Ok(_) => Some(item.value.as_str()),
                    Err(e) => {
                        return Err(StoreError::Corrupt {
                            key: key.to_string(),
                            reason: e.to_string(),
                        });
                    }
                },
            };
            if self
                .store
                .compare_and_set(key, expected, &running, expires)
                .await?
            {
                return Ok(Start::Started);
            }
        }
        Ok(Start::Busy)
    }

    /// Puts a started event back in the queue's hands (a later attempt will start it again).
    pub async fn requeue(&self, key: &Key) -> Result<(), StoreError> {
        self.store
            .put(
                key,
                &Record::Queued.json(),
                Some(self.expiry(crate::queue::QUEUED_CLAIM_TTL)),
            )
            .await
    }

    /// Marks a queued event dead-lettered and files a report for `hookline doctor`. A
    /// platform redelivery is still a duplicate; a redriven queue message works it again.
    pub async fn dead(&self, key: &Key, report: &DeadLetter) -> Result<(), StoreError> {
        let expires = Some(self.expiry(DEAD_TTL));
        let reason = report.reason.clone();
        self.store
            .put(key, &Record::Dead { reason }.json(), expires)
            .await?;
        let value = serde_json::to_string(report).unwrap_or_default();
        self.store
            .put(&Key::new(DEAD_LETTERS, key.pk.clone()), &value, expires)
            .await
    }

    /// The dead-letter reports still kept, oldest key first.
    pub async fn dead_letters(store: &SharedStore) -> Result<Vec<DeadLetter>, StoreError> {
        let items = store.query_prefix(DEAD_LETTERS, "").await?;
        items
            .into_iter()
            .map(|(sk, item)| {
                serde_json::from_str(&item.value).map_err(|e| StoreError::Corrupt {
                    key: format!("{DEAD_LETTERS}/{sk}"),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Marks a claimed event as handled.
    pub async fn complete(&self, key: &Key) -> Result<(), StoreError> {
        let value = Record::Completed.json();
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
