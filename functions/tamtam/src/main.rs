//! `hookline-tamtam`: the TamTam webhook as an AWS Lambda function (Function URL), or as a local
//! server on `HOOKLINE_BIND` when not under Lambda.

use hookline::config::SharedConfig;
use hookline::pipeline::Deps;
use hookline_tamtam::TamTamConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookline::telemetry::init();
    let shared = SharedConfig::from_env()?;
    let config = TamTamConfig::from_env()?;
    let deps = Deps::open(&shared).await.map_err(|e| anyhow::anyhow!(e))?;
    let router = hookline_tamtam::router(config, deps);
    hookline::runtime::serve(router, shared.bind, shared.proxies).await?;
    Ok(())
}
