//! `hookline-dingtalk`: the DingTalk robot callback and notify endpoint as an AWS Lambda function
//! (Function URL), or as a local server on `HOOKLINE_BIND` when not under Lambda.

use hookline::config::SharedConfig;
use hookline::pipeline::Deps;
use hookline_dingtalk::DingTalkConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookline::telemetry::init();
    let shared = SharedConfig::from_env()?;
    let config = DingTalkConfig::from_env()?;
    let deps = Deps::open(&shared).await.map_err(|e| anyhow::anyhow!(e))?;
    let router = hookline_dingtalk::router(config, deps);
    hookline::runtime::serve(router, shared.bind, shared.proxies).await?;
    Ok(())
}
