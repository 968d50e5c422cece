//! `hookline-max-resubscribe`: the scheduled check that subscribes `MAX_WEBHOOK_URL` again when
//! MAX has dropped it (after 8 hours of failed deliveries), and logs it. Under Lambda it runs
//! once per (scheduled) invocation; elsewhere once, for cron.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookline_max::run_max_resubscribe().await
}
