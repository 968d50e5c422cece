//! `hookline-worker`: the deferred-mode worker function (SQS), which the SAM template deploys.
//! The same code as `hookline` with `HOOKLINE_FUNCTION=worker`, without the command line and
//! the AWS SSO support only a developer's machine uses, so its package stays small.

use hookline::config::ProcessEnv;
use hookline::runtime::BoxError;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let bot = hookline_bots::from_env(&ProcessEnv)?;
    hookline_server::worker::run(bot).await
}
