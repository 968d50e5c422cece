//! The echo bot (hookline's default; its source is `bots/src/echo.rs`), run as a crate of one's
//! own would: `cargo run --example echo -- serve`, `cargo run --example echo -- simulate max "/help"`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookline_server::main(std::sync::Arc::new(hookline_bots::echo::bot())).await
}

#[cfg(test)]
mod tests {
    use hookline::testing::TestBot;

    #[tokio::test]
    async fn the_example_answers_like_the_default_bot() {
        let t = TestBot::new(hookline_bots::echo::bot());
        assert_eq!(t.say("hello").await, "Your message: hello");
    }
}
