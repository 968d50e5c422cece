//! Integration tests of a bot through the real pipeline: a private `hookline serve` on a free
//! loopback port with every platform on its built-in emulator, a throw-away store, and
//! realistic, correctly signed webhooks (what `hookline simulate` sends).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hookline_server::testing::TestServer;
//! let server = TestServer::start(hookline::bot::Handlers::new()).await?;
//! let replies = server.say("tamtam", "/help").await?;
//! assert!(replies[0].contains("/help"));
//! // The same webhook twice, as a platform's retry would send it:
//! let webhook = server.webhook("dingtalk", "/help");
//! server.deliver(&webhook).await?;
//! let again = server.deliver(&webhook).await?;
//! assert_eq!(again.replies.map(|r| r.len()), Some(1));
//! # Ok(()) }
//! ```
//!
//! For unit tests without HTTP, see `hookline::testing`.

use std::collections::HashMap;
use std::sync::Arc;

use hookline::bot::Bot;

use crate::simulate::{Exchange, Simulation};

/// The platforms a [`TestServer`] runs.
pub const PLATFORMS: [&str; 5] = ["tailchat", "tencent", "tamtam", "max", "dingtalk"];

/// A private server for one bot, every platform on its emulator. The process environment is not
/// read. Stops with the test's runtime.
#[derive(Debug)]
pub struct TestServer {
    base: String,
    env: HashMap<String, String>,
    workers: Arc<hookline::queue::Workers>,
    store: hookline::store::SharedStore,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server for `bot`.
    pub async fn start(bot: impl Bot) -> anyhow::Result<Self> {
        Self::start_with(bot, None).await
    }

    /// Starts a server for `bot` that defers every event to `queue`, as a Lambda webhook with
    /// `HOOKLINE_QUEUE_URL` does; [`TestServer::workers`] runs the queued jobs.
    pub async fn start_deferred(
        bot: impl Bot,
        queue: Arc<dyn hookline::queue::Queue>,
    ) -> anyhow::Result<Self> {
        Self::start_with(bot, Some(queue)).await
    }

    async fn start_with(
        bot: impl Bot,
        queue: Option<Arc<dyn hookline::queue::Queue>>,
    ) -> anyhow::Result<Self> {
        let env: HashMap<String, String> = HashMap::new();
        let dir = tempfile::tempdir()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = crate::app::local_base(listener.local_addr()?);
        let mut deps =
            crate::app::scratch_deps(dir.path(), Arc::new(bot)).map_err(anyhow::Error::msg)?;
        let embedded = match queue {
            Some(queue) => {
                deps.deferral.queue = Some(queue);
                deps.deferral.every_event = true;
                None
            }
            None => {
                // The bot's slow commands go through serve's queue, as in production.
                let config = hookline::queue::QueueConfig::from_source(&env)?;
                let (with, queue) = crate::app::with_queue(deps, &config);
                deps = with;
                Some(queue)
            }
        };
        let workers = deps.deferral.workers.clone();
        let store = deps.store.clone();
        let app = crate::app::build(&env, deps, &base, crate::app::Emulators::ForAll);
        if let Some(queue) = &embedded {
            queue.start().await?;
        }
        tokio::spawn(hookline::runtime::serve_listener(
            listener,
            app.router,
            hookline::runtime::TrustedProxies::default(),
        ));
        Ok(Self {
            base,
            env,
            workers,
            store,
            _dir: dir,
        })
    }

    /// The workers of the server's platforms (for a test's own queue consumer).
    pub fn workers(&self) -> Arc<hookline::queue::Workers> {
        self.workers.clone()
    }

    /// The server's state store.
    pub fn store(&self) -> &hookline::store::SharedStore {
        &self.store
    }

    /// Every reply to `webhook` recorded so far (a deferred event's come after its webhook's
    /// answer).
    pub async fn replies(&self, webhook: &Webhook) -> anyhow::Result<Vec<String>> {
        crate::simulate::replies(&self.base, &webhook.platform, &webhook.simulation)
            .await
            .ok_or_else(|| anyhow::anyhow!("the emulator recorded nothing"))
    }

    /// Waits up to `timeout` for at least `count` replies to `webhook`; returns those there are.
    pub async fn wait_for_replies(
        &self,
        webhook: &Webhook,
        count: usize,
        timeout: std::time::Duration,
    ) -> anyhow::Result<Vec<String>> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let replies = self.replies(webhook).await?;
            if replies.len() >= count || tokio::time::Instant::now() >= end {
                return Ok(replies);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The server's base URL (`http://127.0.0.1:<port>`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A fresh webhook of `platform` in which a user says `text` (new event ids each call).
    pub fn webhook(&self, platform: &str, text: &str) -> Webhook {
        Webhook {
            platform: platform.to_owned(),
            simulation: crate::simulate::simulation(&self.env, platform, text, false, &self.base),
        }
    }

    /// Posts `webhook`; the exchange holds the status and every reply to it so far.
    pub async fn deliver(&self, webhook: &Webhook) -> anyhow::Result<Exchange> {
        crate::simulate::deliver(&self.base, &webhook.platform, &webhook.simulation).await
    }

    /// Says `text` on `platform` and returns the replies as text (buttons listed after the
    /// text). Fails when the webhook is not answered with success.
    pub async fn say(&self, platform: &str, text: &str) -> anyhow::Result<Vec<String>> {
        let exchange = self.deliver(&self.webhook(platform, text)).await?;
        if !(200..300).contains(&exchange.status) {
            anyhow::bail!("{}: {}", exchange.request, exchange.body);
        }
        exchange
            .replies
            .ok_or_else(|| anyhow::anyhow!("the emulator recorded nothing"))
    }
}

/// One webhook of a [`TestServer`], to deliver once or again.
pub struct Webhook {
    platform: String,
    simulation: Simulation,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("platform", &self.platform)
            .field("path", &self.simulation.path)
            .finish_non_exhaustive()
    }
}

/// A [`hookline::testing::Message`] from a platform's recorded webhook body (a fixture), decoded
/// by that platform's adapter, for unit tests of a bot on real payloads. Fails when the adapter
/// would ignore the payload (not addressed to the bot, the bot's own message, an unknown type).
pub fn message_from(platform: &str, body: &[u8]) -> anyhow::Result<hookline::testing::Message> {
    use hookline::clock::Clock as _;
    let now = hookline::clock::SystemClock.now_ms();
    let decoded = match platform {
        "tailchat" => hookline_tailchat::decode_fixture(body, now),
        "tencent" => hookline_tencent::decode_fixture(body, now),
        "tamtam" => hookline_tamtam::decode_fixture(body, now),
        "max" => hookline_tamtam::decode_fixture_as(hookline_tamtam::Dialect::Max, body, now),
        "dingtalk" => hookline_dingtalk::decode_fixture(body, now),
        other => anyhow::bail!(
            "unknown platform {other:?}: use one of {}",
            PLATFORMS.join(", ")
        ),
    }?;
    let mut incoming =
        decoded.ok_or_else(|| anyhow::anyhow!("the {platform} adapter ignores this payload"))?;
    incoming.raw = bytes::Bytes::copy_from_slice(body);
    Ok(hookline::testing::Message::from_incoming(incoming))
}

/// Says `text` on `platform` to `bot` on a fresh [`TestServer`]; returns the replies.
pub async fn simulate(bot: impl Bot, platform: &str, text: &str) -> anyhow::Result<Vec<String>> {
    TestServer::start(bot).await?.say(platform, text).await
}
