//! Deferred mode: acknowledge the webhook at once, answer from a queue.
//!
//! The webhook runs the accept half of the pipeline (verify, decode, claim) and, for an event
//! the bot [defers](crate::bot::Bot::defers) (or every event when `HOOKLINE_QUEUE_URL` is set),
//! claims it QUEUED, puts a [`Job`] on a [`Queue`] and answers the platform. A worker runs the
//! process half (bot, send, complete) through the platform's [`Worker`], registered in
//! [`Workers`] when its webhook is built.
//!
//! Two queues: Amazon SQS on Lambda ([`sqs`]: the webhook functions send, one worker function
//! consumes with partial batch failures and a dead-letter queue) and, under `hookline serve`, a
//! durable queue in the state store with a bounded pool of workers ([`embedded`]).
//!
//! One retry rule for both: a "retry later" (the bot's, an unreachable platform API) puts the
//! event back (its claim QUEUED again) to come back after [`retry_delay`], which doubles with
//! every attempt; after `HOOKLINE_QUEUE_MAX_ATTEMPTS` it is dead-lettered and reported by
//! `hookline doctor`. The claim of a queued event outlives the queue's retention
//! ([`QUEUED_CLAIM_TTL`]), so a platform redelivery meanwhile is always a duplicate.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Env, optional, parsed};
use crate::model::{EventId, Platform};
use crate::store::Key;

pub mod embedded;
pub mod sqs;

/// How long the queue keeps a message: the template's `MessageRetentionPeriod` (SQS's default,
/// 4 days).
pub const QUEUE_RETENTION: Duration = Duration::from_secs(4 * 24 * 3600);

/// The expiry of a QUEUED (or RUNNING) claim: the queue's retention and an hour, so that no
/// message the queue still holds can find its claim gone.
pub const QUEUED_CLAIM_TTL: Duration = Duration::from_secs(QUEUE_RETENTION.as_secs() + 3600);

/// The longest a retried event waits: SQS's largest visibility timeout (12 h).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(12 * 3600);

/// The default `HOOKLINE_QUEUE_MAX_ATTEMPTS` (the template's `maxReceiveCount`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The default `HOOKLINE_QUEUE_RETRY_SECS`: the wait after a first failed attempt.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(30);

/// The default `HOOKLINE_WORKERS`: how many events `serve` answers at once from its queue.
pub const DEFAULT_WORKERS: usize = 8;

/// The largest job put on a queue (SQS's historical message limit; every queue accepts it).
/// A larger one is answered inline instead.
pub const MAX_JOB_BYTES: usize = 256 * 1024;

/// How long a worker of `serve` holds an event it runs (no invocation deadline there).
pub const SERVE_LEASE: Duration = Duration::from_secs(15 * 60);

/// The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed: `base`
/// doubled per attempt, at most [`MAX_RETRY_DELAY`].
pub fn retry_delay(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(MAX_RETRY_DELAY)
}

/// The queue settings (`HOOKLINE_QUEUE_*`, `HOOKLINE_WORKERS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// `HOOKLINE_QUEUE_URL`: the SQS queue; set, every event of a webhook function is deferred.
    pub url: Option<String>,
    /// `HOOKLINE_QUEUE_MAX_ATTEMPTS`: attempts before an event is dead-lettered.
    pub max_attempts: u32,
    /// `HOOKLINE_QUEUE_RETRY_SECS`: the first retry's wait.
    pub retry_base: Duration,
    /// `HOOKLINE_WORKERS`: `serve`'s worker pool.
    pub workers: usize,
}

impl QueueConfig {
    /// Reads the settings.
    pub fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let max_attempts = parsed(env, "HOOKLINE_QUEUE_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)?;
        let retry_secs = parsed(
            env,
            "HOOKLINE_QUEUE_RETRY_SECS",
            DEFAULT_RETRY_BASE.as_secs(),
        )?;
        let workers = parsed(env, "HOOKLINE_WORKERS", DEFAULT_WORKERS)?;
        let positive = |name, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    name,
                    reason: "must be at least 1".into(),
                })
            }
        };
        positive("HOOKLINE_QUEUE_MAX_ATTEMPTS", max_attempts >= 1)?;
        positive("HOOKLINE_QUEUE_RETRY_SECS", retry_secs >= 1)?;
        positive("HOOKLINE_WORKERS", workers >= 1)?;
        Ok(Self {
            url: optional(env, "HOOKLINE_QUEUE_URL"),
            max_attempts,
            retry_base: Duration::from_secs(retry_secs),
            workers,
        })
    }
}

/// A claimed event on its way to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The platform whose [`Worker`] runs it.
    pub platform: Platform,
    /// The event (for logs).
    pub event_id: EventId,
    /// Its claim.
    pub claim: Key,
    /// The platform's `Inbound` (the neutral event and the reply context), as JSON.
    pub inbound: serde_json::Value,
}

/// One attempt at a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first.
    pub number: u32,
    /// The last one: a failure dead-letters the event.
    pub last: bool,
    /// Run even if the claim says another worker holds it (`serve` restarting: it is the
    /// queue's only consumer).
    pub take_over: bool,
    /// When this attempt's hold on the event ends (Unix ms): the invocation's deadline.
    pub lease_until_ms: i64,
}

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Worked {
    /// Answered, given up for good or a duplicate: remove the job.
    Done,
    /// Try again after [`retry_delay`].
    Retry(String),
    /// The last attempt failed: the event is dead-lettered (reported).
    Dead(String),
}

/// Runs jobs of one platform: implemented by its pipeline.
#[async_trait]
pub trait Worker: Send + Sync {
    /// Runs one attempt.
    async fn work(&self, job: Job, attempt: Attempt) -> Worked;
}

/// The workers of one process, by platform. Building a platform's webhook registers its
/// pipeline here.
#[derive(Default)]
pub struct Workers {
    by_platform: RwLock<HashMap<Platform, Arc<dyn Worker>>>,
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("platforms", &self.platforms())
            .finish()
    }
}

impl Workers {
    /// Makes `worker` the one for `platform`'s jobs.
    pub fn register(&self, platform: Platform, worker: Arc<dyn Worker>) {
        if let Ok(mut map) = self.by_platform.write() {
            map.insert(platform, worker);
        }
    }

    /// The platforms with a worker.
    pub fn platforms(&self) -> Vec<Platform> {
        self.by_platform
            .read()
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Runs one attempt of `job` on its platform's worker. A platform without one (its
    /// variables are missing here) is a retry, so that a fixed configuration still answers.
    pub async fn work(&self, job: Job, attempt: Attempt) -> Worked {
        let worker = self
            .by_platform
            .read()
            .ok()
            .and_then(|m| m.get(&job.platform).cloned());
        match worker {
            Some(worker) => worker.work(job, attempt).await,
            None => {
                let why = format!(
                    "no {} worker here: the platform's variables are missing",
                    job.platform
                );
                tracing::error!(platform = %job.platform, event = %job.event_id, "{why}");
                if attempt.last {
                    Worked::Dead(why)
                } else {
                    Worked::Retry(why)
                }
            }
        }
    }
}

/// A queue failure: the event is answered inline instead.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or refused the message.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The job is larger than [`MAX_JOB_BYTES`].
    #[error("job of {0} bytes is larger than a queue message may be")]
    TooLarge(usize),
}

/// Where deferred events wait.
#[async_trait]
pub trait Queue: Send + Sync + fmt::Debug {
    /// Puts `job` on the queue, durably: once this returns, the job will be worked.
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError>;
}

/// Deferred mode's part of the pipeline's dependencies.
#[derive(Debug, Clone, Default)]
pub struct Deferral {
    /// The queue deferred events go to; `None`: every event is answered inline.
    pub queue: Option<Arc<dyn Queue>>,
    /// Defer every event, not only those the bot defers (`HOOKLINE_QUEUE_URL` set).
    pub every_event: bool,
    /// The workers this process runs queued jobs with.
    pub workers: Arc<Workers>,
}

/// A job as JSON, refusing one too large for a queue message.
pub fn encode(job: &Job) -> Result<String, QueueError> {
    let body = serde_json::to_string(job).map_err(|e| QueueError::Unavailable(e.to_string()))?;
    if body.len() > MAX_JOB_BYTES {
        return Err(QueueError::TooLarge(body.len()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_sqs_largest_visibility_timeout() {
        let base = Duration::from_secs(30);
        assert_eq!(retry_delay(base, 1), Duration::from_secs(30));
        assert_eq!(retry_delay(base, 2), Duration::from_secs(60));
        assert_eq!(retry_delay(base, 4), Duration::from_secs(240));
        assert_eq!(retry_delay(base, 30), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(base, u32::MAX), MAX_RETRY_DELAY);
    }

    #[test]
    fn queue_settings_default_and_refuse_zero() {
        let none: HashMap<&str, &str> = HashMap::new();
        let config = QueueConfig::from_source(&none).unwrap();
        assert_eq!(config.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(config.workers, DEFAULT_WORKERS);
        assert_eq!(config.url, None);
        let zero: HashMap<&str, &str> = HashMap::from([("HOOKLINE_WORKERS", "0")]);
        let err = QueueConfig::from_source(&zero).unwrap_err().to_string();
        assert!(err.starts_with("HOOKLINE_WORKERS is invalid"), "{err}");
    }

    #[test]
    fn a_job_too_large_for_a_queue_message_is_refused() {
        let job = Job {
            platform: Platform::Tailchat,
            event_id: EventId::from("e"),
            claim: Key::new("p", "s"),
            inbound: serde_json::Value::String("x".repeat(MAX_JOB_BYTES)),
        };
        assert!(matches!(encode(&job), Err(QueueError::TooLarge(_))));
    }
}
