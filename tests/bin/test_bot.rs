//! `hookline-test-bot`: a user crate's binary in miniature (`hookline_server::main` with a bot of
//! its own), whose `/boom` command panics: the integration tests run it under a fake Lambda
//! Runtime API to show that a bot's panic neither kills the function nor loses the answer. Its
//! `/slow <ms> [tag]` sleeps, then answers, from the queue (a slow command: deferred mode).

use hookline::bot::{Ctx, Handlers};
use hookline::model::Reply;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bot = Handlers::new()
        .command("boom", "Panics", |_| async {
            panic!("the bot author's bug")
        })
        .slow_command("slow", "Sleeps <ms>, then answers", |cx: Ctx| async move {
            let (ms, tag) = cx.args().split_once(' ').unwrap_or((cx.args(), ""));
            let ms: u64 = ms.parse().unwrap_or(1000);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Ok(vec![Reply::text(format!("slept {ms} ms: {tag}"))])
        })
        .on_text(|cx: Ctx| async move { Ok(vec![Reply::text(format!("fine: {}", cx.text()))]) });
    hookline_server::main(std::sync::Arc::new(bot)).await
}
