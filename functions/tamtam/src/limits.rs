//! MAX's documented send limits (PLATFORMS.md §4b.1), kept across every invocation through the
//! store the way DingTalk's budget is: at most [`BOT_PER_SECOND`] API calls per bot and
//! [`CHAT_PER_SECOND`] messages or callback answers per chat in any second.
//!
//! Each limit is a set of slot items, each taken with a conditional write (`put_if_absent`: two
//! invocations never take the same slot) and living until the second after next, so at least
//! one full second: at most N slots are live at any instant, hence at most N calls in any
//! second. A call that finds every slot taken waits for the next second (MAX's advice: "ставить
//! в очередь или делать задержку") for up to [`MAX_WAIT`] or the invocation's deadline; only
//! then does it fail as rate limited, which the pipeline turns into a later redelivery: a reply
//! is delayed, never refused and never sent over the limit.

use std::time::{Duration, Instant};

use hookline::clock::SharedClock;
use hookline::error::{HookError, PlatformError, PlatformErrorKind};
use hookline::store::{Key, SharedStore};

/// API calls per second per bot.
pub const BOT_PER_SECOND: usize = 30;
/// `POST /messages` and `POST /answers` per second per chat.
pub const CHAT_PER_SECOND: usize = 2;
/// The longest a call waits for a slot.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// The limits of one bot.
#[derive(Debug, Clone)]
pub struct RateLimits {
    store: SharedStore,
    clock: SharedClock,
    ns: String,
}

impl RateLimits {
    /// The limits of the bot whose token has `fingerprint`.
    pub fn new(store: SharedStore, clock: SharedClock, fingerprint: &str) -> Self {
        Self {
            store,
            clock,
            ns: format!("max#{fingerprint}#rate"),
        }
    }

    async fn take(&self, pk: &str, slots: usize) -> Result<bool, HookError> {
        let live = self.store.query_prefix(pk, "slot#").await?;
        let now_ms = self.clock.now_ms();
        // Live at least one whole second: until the start of the second after next.
        let expires = now_ms.div_euclid(1000) + 2;
        let start = usize::try_from(now_ms.rem_euclid(slots as i64)).unwrap_or_default();
        for i in (0..slots).map(|i| (i + start) % slots) {
            let slot = format!("slot#{i:02}");
            if live.iter().any(|(sk, _)| *sk == slot) {
                continue;
            }
            if self
                .store
                .put_if_absent(&Key::new(pk, slot), &now_ms.to_string(), Some(expires))
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn wait_for(&self, pk: String, slots: usize, what: &str) -> Result<(), HookError> {
        let started = Instant::now();
        let mut end = started + MAX_WAIT;
        if let Some(deadline) = hookline::http::current_deadline() {
            end = end.min(deadline);
        }
        loop {
            if self.take(&pk, slots).await? {
                return Ok(());
            }
            let into_second = u64::try_from(self.clock.now_ms().rem_euclid(1000)).unwrap_or(0);
            let pause = Duration::from_millis(1000 - into_second + 5);
            if Instant::now() + pause >= end {
                return Err(PlatformError::new(
                    "max",
                    "rate_limit",
                    PlatformErrorKind::RateLimited,
                    format!(
                        "{what}: every slot stayed taken for {:?}; redelivery will retry",
                        started.elapsed()
                    ),
                )
                .into());
            }
            tracing::debug!(?pause, what, "MAX rate limit reached, waiting");
            tokio::time::sleep(pause).await;
        }
    }

    /// Waits for a slot of the bot's per-second budget, and of `chat`'s when given.
    pub async fn acquire(&self, chat: Option<i64>) -> Result<(), HookError> {
        if let Some(chat) = chat {
            self.wait_for(
                format!("{}#chat#{chat}", self.ns),
                CHAT_PER_SECOND,
                "2 messages per second per chat",
            )
            .await?;
        }
        self.wait_for(
            format!("{}#bot", self.ns),
            BOT_PER_SECOND,
            "30 requests per second per bot",
        )
        .await
    }
}
