//! The worker function of deferred mode (`HOOKLINE_FUNCTION=worker`): consumes the SQS queue
//! the webhook functions send to, through an event source mapping with
//! `ReportBatchItemFailures`.
//!
//! One worker for every platform: a message names its platform, and the worker builds each
//! platform whose variables it has (the template gives it those of every deployed platform), the
//! same way `serve` does. One queue, one dead-letter queue and one function keep a small stack
//! small; a platform's events never wait behind another's for long, since a batch's events run
//! concurrently.

use hookline::bot::SharedBot;
use hookline::config::ProcessEnv;
use hookline::pipeline::Deps;
use hookline::queue::sqs::{SqsWorker, client_from_env};
use hookline::runtime::BoxError;

/// Runs the worker function for `bot` (under Lambda).
pub async fn run(bot: SharedBot) -> Result<(), BoxError> {
    hookline::telemetry::init();
    hookline::runtime::check_function(&ProcessEnv, "worker")?;
    let shared = hookline::config::SharedConfig::from_env()?;
    let deps = Deps::open(&shared, bot).await?;
    let worker = build(&deps).await?;
    hookline::runtime::run_sqs_worker(worker).await?;
    Ok(())
}

/// The worker for `deps`: every platform configured in the environment registered.
pub async fn build(deps: &Deps) -> Result<SqsWorker, BoxError> {
    // Building the routers registers each configured platform's pipeline as its worker.
    let app = crate::app::build(
        &ProcessEnv,
        deps.clone(),
        "http://127.0.0.1",
        crate::app::Emulators::Off,
    );
    let platforms = deps.deferral.workers.platforms();
    if platforms.is_empty() {
        let why: Vec<String> = app.statuses.iter().map(ToString::to_string).collect();
        return Err(format!(
            "the worker has no platform to work for:\n{}",
            why.join("\n")
        )
        .into());
    }
    tracing::info!(?platforms, "worker ready");
    let config = hookline::queue::QueueConfig::from_source(&ProcessEnv)?;
    let client = match &config.url {
        Some(_) => Some(client_from_env().await),
        None => None,
    };
    Ok(SqsWorker::new(
        deps.deferral.workers.clone(),
        client,
        config,
    ))
}
