//! `hookline-max`: the MAX webhook as an AWS Lambda function (Function URL), or as a local
//! server on `HOOKLINE_BIND` when not under Lambda.
//! The bot is the echo bot, or the forward bridge with `HOOKLINE_BOT=forward`
//! (`hookline_bots::from_env`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bot = hookline_bots::from_env(&hookline::config::ProcessEnv)?;
    hookline_max::run(bot)
        .await
        .map_err(anyhow::Error::from_boxed)
}
