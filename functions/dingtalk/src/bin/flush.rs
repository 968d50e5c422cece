//! `hookline-dingtalk-flush`: delivers the custom robot's queued messages as markdown digests.
//! Under Lambda it runs once per (scheduled) invocation; elsewhere it runs once and exits, for
//! cron.

use std::sync::Arc;

use hookline::config::SharedConfig;
use hookline::pipeline::Deps;
use hookline_dingtalk::DingTalkConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookline::telemetry::init();
    let shared = SharedConfig::from_env()?;
    let config = DingTalkConfig::from_env()?;
    let deps = Deps::open(&shared).await.map_err(|e| anyhow::anyhow!(e))?;
    let sender = hookline_dingtalk::sender(&config, &deps).ok_or_else(|| {
        anyhow::anyhow!(
            "DINGTALK_WEBHOOK_TOKEN and DINGTALK_WEBHOOK_SECRET are not set: nothing to flush"
        )
    })?;
    hookline::runtime::run_scheduled(move || {
        let sender = Arc::clone(&sender);
        async move { sender.flush().await.map(|report| serde_json::json!(report)) }
    })
    .await?;
    Ok(())
}
