//! `hookline`: every platform in one process (`serve`), a realistic webhook on demand
//! (`simulate`), and a configuration check (`doctor`), for the echo bot, or the forward bridge
//! with `HOOKLINE_BOT=forward`. A crate of one's own calls [`hookline_server::main`] with its bot.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bot = hookline_bots::from_env(&hookline::config::ProcessEnv)?;
    hookline_server::main(bot).await
}
