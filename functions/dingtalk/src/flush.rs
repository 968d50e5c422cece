//! Delivers the custom robot's queued messages as markdown digests (`hookline-dingtalk-flush`).
//! Beside a running `hookline serve`, which holds the embedded store, it asks that server to
//! flush (`POST /dingtalk/flush`, signed with the robot's secret) instead.

use std::sync::Arc;

use crate::DingTalkConfig;
use hookline::clock::{SharedClock, SystemClock};
use hookline::config::SharedConfig;
use hookline::http::{HttpClient, Idempotence};
use hookline::pipeline::Deps;
use hookline::store::StoreError;

/// The `hookline-dingtalk-flush` function: one flush per (scheduled) invocation under Lambda,
/// one flush and exit elsewhere (for cron), or a signed request to a running `hookline serve`
/// that holds the embedded store.
pub async fn run_flush() -> anyhow::Result<()> {
    hookline::telemetry::init();
    hookline::runtime::check_function(&hookline::config::ProcessEnv, "dingtalk-flush")?;
    let shared = SharedConfig::from_env()?;
    let config = DingTalkConfig::from_env()?;
    let clock: SharedClock = Arc::new(SystemClock);
    let http = HttpClient::new()?;
    let store = match hookline::store::open(&shared, clock.clone()).await {
        Ok(store) => store,
        Err(StoreError::InUse(why)) => {
            return through_serve(&shared, &config, clock, http, &why).await;
        }
        Err(e) => return Err(e.into()),
    };
    let deps = Deps {
        store,
        clock,
        // The flush sends queued replies; it runs no bot.
        bot: Arc::new(hookline::bot::Handlers::new()),
        http,
        deferral: Default::default(),
    };
    let sender = crate::sender(&config, &deps).ok_or_else(no_robot)?;
    hookline::runtime::run_scheduled(move || {
        let sender = Arc::clone(&sender);
        async move { sender.flush().await.map(|report| serde_json::json!(report)) }
    })
    .await?;
    Ok(())
}

fn no_robot() -> anyhow::Error {
    anyhow::anyhow!(
        "DINGTALK_WEBHOOK_TOKEN and DINGTALK_WEBHOOK_SECRET are not set: nothing to flush"
    )
}

/// The store is held by `hookline serve` on `HOOKLINE_BIND`: ask it to flush, print its report.
async fn through_serve(
    shared: &SharedConfig,
    config: &DingTalkConfig,
    clock: SharedClock,
    http: HttpClient,
    why: &str,
) -> anyhow::Result<()> {
    let robot = config.custom_robot.as_ref().ok_or_else(no_robot)?;
    let url = format!(
        "{}/dingtalk/flush",
        hookline::runtime::local_base(shared.bind)
    );
    tracing::info!(%why, %url, "the store is in use; asking the running server to flush");
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in crate::robot::flush_request_headers(robot, clock.now_ms()) {
        headers.insert(name, value.parse()?);
    }
    let answer = http
        .post_json(&url, headers, &serde_json::json!({}), Idempotence::Safe)
        .await?;
    let body = String::from_utf8_lossy(&answer.body);
    if !answer.status.is_success() {
        anyhow::bail!("{url} answered {}: {body}", answer.status);
    }
    println!("{body}");
    Ok(())
}
