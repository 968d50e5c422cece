//! `hookline-dingtalk-flush`: delivers the custom robot's queued messages as markdown digests.
//! Under Lambda it runs once per (scheduled) invocation; elsewhere it runs once and exits, for
//! cron. Beside a running `hookline serve` it asks that server to flush instead.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookline_dingtalk::run_flush().await
}
