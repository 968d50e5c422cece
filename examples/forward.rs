//! The forward bridge: `HOOKLINE_FORWARD_URL=http://127.0.0.1:8090/ HOOKLINE_FORWARD_SECRET=…
//! cargo run --example forward -- serve`, with `python3 examples/forward_endpoint.py` answering.
//! The prebuilt binaries run the same bot with `HOOKLINE_BOT=forward`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bot = hookline_bots::forward::ForwardBot::from_env(&hookline::config::ProcessEnv)?;
    hookline_server::main(std::sync::Arc::new(bot)).await
}

#[cfg(test)]
mod tests {
    use hookline::config::ConfigError;
    use hookline_bots::forward::ForwardBot;

    #[test]
    fn a_missing_variable_is_named_at_start_up() {
        let env = std::collections::HashMap::from([(
            "HOOKLINE_FORWARD_URL".to_owned(),
            "https://bot.example/".to_owned(),
        )]);
        let err = ForwardBot::from_env(&env).unwrap_err();
        assert!(
            matches!(err, ConfigError::Missing("HOOKLINE_FORWARD_SECRET")),
            "{err}"
        );
    }
}
