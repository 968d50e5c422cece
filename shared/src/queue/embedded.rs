//! `serve`'s queue: jobs kept in the state store (durable before the webhook is answered), run
//! by a bounded pool of workers.
//!
//! A job is one item of partition [`QUEUE_PARTITION`]; it is deleted once worked (answered,
//! given up or dead-lettered) and rewritten with its attempt count and next time on a retry. At
//! start-up every job still stored (queued, in flight or waiting for a retry when the process
//! stopped or was killed) is scheduled again. `serve` is the queue's only consumer, so a
//! restarted worker takes over the events the previous process held. A graceful stop lets the
//! jobs in flight finish for a grace period; whatever is left stays stored for the next start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore, mpsc};

use super::{Attempt, Job, Queue, QueueConfig, QueueError, SERVE_LEASE, Worked, Workers, encode};
use crate::clock::SharedClock;
use crate::store::{Key, SharedStore};

/// The partition jobs are kept in.
pub const QUEUE_PARTITION: &str = "hookline#queue";

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    job: Job,
    /// Attempts made so far.
    attempts: u32,
    /// Not before this time (Unix ms).
    not_before_ms: i64,
}

/// The durable queue of `serve`.
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: SharedStore,
    clock: SharedClock,
    workers: Arc<Workers>,
    config: QueueConfig,
    ready: mpsc::UnboundedSender<String>,
    next: Mutex<mpsc::UnboundedReceiver<String>>,
    /// One permit per worker; a worker holds one while it runs a job.
    busy: Arc<Semaphore>,
    stopping: AtomicBool,
}

impl EmbeddedQueue {
    /// A queue over `store`, running jobs on `workers` once [`EmbeddedQueue::start`]ed.
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        workers: Arc<Workers>,
        config: QueueConfig,
    ) -> Self {
        let (ready, next) = mpsc::unbounded_channel();
        let busy = Arc::new(Semaphore::new(config.workers));
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                workers,
                config,
                ready,
                next: Mutex::new(next),
                busy,
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// Schedules every stored job (those left by a previous run) and starts the workers.
    /// Returns how many jobs were recovered.
    pub async fn start(&self) -> Result<usize, crate::store::StoreError> {
        let stored = self.inner.store.query_prefix(QUEUE_PARTITION, "").await?;
        let now = self.inner.clock.now_ms();
        let recovered = stored.len();
        for (sk, item) in stored {
            let wait = serde_json::from_str::<Stored>(&item.value)
                .map(|s| s.not_before_ms.saturating_sub(now))
                .unwrap_or(0);
            self.inner
                .schedule(sk, Duration::from_millis(u64::try_from(wait).unwrap_or(0)));
        }
        for _ in 0..self.inner.config.workers {
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move { inner.work_loop().await });
        }
        if recovered > 0 {
            tracing::info!(
                jobs = recovered,
                "queued events from before the restart will be answered"
            );
        }
        Ok(recovered)
    }

    /// Stops taking jobs and waits up to `grace` for those in flight. Returns whether all of
    /// them finished; any other stays stored and runs after the next start.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let all = u32::try_from(self.inner.config.workers).unwrap_or(u32::MAX);
        let finished = tokio::time::timeout(grace, self.inner.busy.acquire_many(all))
            .await
            .is_ok_and(|permits| permits.is_ok());
        if !finished {
            tracing::warn!(
                ?grace,
                "events still in flight at shutdown stay queued for the next start"
            );
        }
        finished
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        encode(job)?;
        let sk = job.claim.pk.clone();
        let stored = Stored {
            job: job.clone(),
            attempts: 0,
            not_before_ms: 0,
        };
        let value =
            serde_json::to_string(&stored).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        self.inner
            .store
            .put(&Key::new(QUEUE_PARTITION, sk.clone()), &value, None)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        self.inner.schedule(sk, Duration::ZERO);
        Ok(())
    }
}

impl Inner {
    fn schedule(self: &Arc<Self>, sk: String, after: Duration) {
        if after.is_zero() {
            let _ = self.ready.send(sk);
            return;
        }
        let ready = self.ready.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = ready.send(sk);
        });
    }

    async fn work_loop(self: Arc<Self>) {
        loop {
            let Some(sk) = self.next.lock().await.recv().await else {
                return;
            };
            let Ok(permit) = Arc::clone(&self.busy).acquire_owned().await else {
                return;
            };
            if self.stopping.load(Ordering::SeqCst) {
                // Stays stored: the next start runs it.
                drop(permit);
                continue;
            }
            self.run(&sk).await;
            drop(permit);
        }
    }

    async fn run(self: &Arc<Self>, sk: &str) {
        let key = Key::new(QUEUE_PARTITION, sk);
        let stored = match self.store.get(&key).await {
            Ok(Some(item)) => serde_json::from_str::<Stored>(&item.value),
            Ok(None) => return,
            Err(e) => {
                tracing::error!(job = %sk, error = %e, "cannot read a queued job; it runs after the next start");
                return;
            }
        };
        let mut stored = match stored {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(job = %sk, error = %e, "an unreadable queued job is dropped");
                let _ = self.store.delete(&key).await;
                return;
            }
        };
        stored.attempts += 1;
        let lease = i64::try_from(SERVE_LEASE.as_millis()).unwrap_or(i64::MAX / 2);
        let attempt = Attempt {
            number: stored.attempts,
            last: stored.attempts >= self.config.max_attempts,
            take_over: true,
            lease_until_ms: self.clock.now_ms() + lease,
        };
        match self.workers.work(stored.job.clone(), attempt).await {
            Worked::Done | Worked::Dead(_) => {
                if let Err(e) = self.store.delete(&key).await {
                    // Worked again after a restart: its claim makes that a duplicate.
                    tracing::warn!(job = %sk, error = %e, "could not remove a worked job");
                }
            }
            Worked::Retry(why) => {
                let wait = super::retry_delay(self.config.retry_base, stored.attempts);
                tracing::warn!(event = %stored.job.event_id, reason = %why, ?wait, "retrying the event later");
                stored.not_before_ms =
                    self.clock.now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                match serde_json::to_string(&stored) {
                    Ok(value) => {
                        if let Err(e) = self.store.put(&key, &value, None).await {
                            tracing::warn!(job = %sk, error = %e, "could not record the attempt");
                        }
                    }
                    Err(e) => tracing::warn!(job = %sk, error = %e, "could not record the attempt"),
                }
                self.schedule(sk.to_owned(), wait);
            }
        }
    }
}
