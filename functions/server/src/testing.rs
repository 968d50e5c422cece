//! Integration tests of a bot through the real pipeline: a private `hookline serve` on a free
//! loopback port with every platform on its built-in emulator, a throw-away store, and one
//! realistic, correctly signed webhook per call (what `hookline simulate` does).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let bot = hookline::bot::Handlers::new();
//! let replies = hookline_server::testing::simulate(bot, "tamtam", "/help").await?;
//! assert!(replies[0].contains("/help"));
//! # Ok(()) }
//! ```
//!
//! For unit tests without HTTP, see `hookline::testing`.

use std::collections::HashMap;
use std::sync::Arc;

use hookline::bot::Bot;

/// The platforms [`simulate`] takes.
pub const PLATFORMS: [&str; 4] = ["tailchat", "tencent", "tamtam", "dingtalk"];

/// Sends `text` as a user of `platform` to `bot` through the whole pipeline (verify, decode,
/// claim, bot, send, complete) and returns the replies the platform's emulator received, as
/// text (buttons listed after the text). Fails when the webhook is not answered with success.
/// The process environment is not read: every platform runs on its emulator.
pub async fn simulate(bot: impl Bot, platform: &str, text: &str) -> anyhow::Result<Vec<String>> {
    let env: HashMap<String, String> = HashMap::new();
    let exchange = crate::simulate::exchange(&env, Arc::new(bot), platform, text, None).await?;
    if !(200..300).contains(&exchange.status) {
        anyhow::bail!("{}: {}", exchange.request, exchange.body);
    }
    exchange
        .replies
        .ok_or_else(|| anyhow::anyhow!("the emulator recorded nothing"))
}
