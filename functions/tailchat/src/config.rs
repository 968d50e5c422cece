//! `TailchatConfig`: the four variables of a Tailchat bot.

use hookline::config::{ConfigError, Env, ProcessEnv, base_url, required, required_secret};
use hookline::secret::Secret;

/// The variables, in the order the README lists them.
pub const VARS: [&str; 4] = [
    "TAILCHAT_URL",
    "TAILCHAT_APP_ID",
    "TAILCHAT_APP_SECRET",
    "TAILCHAT_CALLBACK_TOKEN",
];

/// The shortest accepted `TAILCHAT_CALLBACK_TOKEN`: it is the webhook's only protection.
pub const MIN_TOKEN_LEN: usize = 16;

/// A Tailchat bot's configuration.
#[derive(Debug, Clone)]
pub struct TailchatConfig {
    /// `TAILCHAT_URL`: the Tailchat server's base URL (its API lives under `/api`).
    pub api_url: String,
    /// `TAILCHAT_APP_ID`: the open app's id (`tc_…`).
    pub app_id: String,
    /// `TAILCHAT_APP_SECRET`: the open app's secret.
    pub app_secret: Secret,
    /// `TAILCHAT_CALLBACK_TOKEN`: the `?token=` of the callback URL pasted into Tailchat.
    pub callback_token: Secret,
}

impl TailchatConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`Env`].
    pub fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let api_url = required(env, "TAILCHAT_URL")?;
        Ok(Self {
            api_url: base_url(env, "TAILCHAT_URL", &api_url)?,
            app_id: required(env, "TAILCHAT_APP_ID")?,
            app_secret: Secret::new(required(env, "TAILCHAT_APP_SECRET")?),
            callback_token: required_secret(env, "TAILCHAT_CALLBACK_TOKEN", MIN_TOKEN_LEN)?,
        })
    }

    /// The variables that are not set.
    pub fn missing(env: &dyn Env) -> Vec<&'static str> {
        hookline::config::missing(env, &VARS)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn full() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("TAILCHAT_URL", "https://tailchat.example.com/"),
            ("TAILCHAT_APP_ID", "tc_6448e822834c12425646f470"),
            ("TAILCHAT_APP_SECRET", "V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5"),
            ("TAILCHAT_CALLBACK_TOKEN", "0123456789abcdef0123"),
        ])
    }

    #[test]
    fn reads_every_variable() {
        let cfg = TailchatConfig::from_source(&full()).unwrap();
        assert_eq!(cfg.api_url, "https://tailchat.example.com");
        assert_eq!(cfg.app_id, "tc_6448e822834c12425646f470");
        assert!(cfg.callback_token.matches("0123456789abcdef0123"));
        assert!(TailchatConfig::missing(&full()).is_empty());
    }

    #[test]
    fn names_each_missing_or_weak_variable() {
        let mut env = full();
        env.remove("TAILCHAT_APP_SECRET");
        assert_eq!(
            TailchatConfig::from_source(&env).unwrap_err(),
            ConfigError::Missing("TAILCHAT_APP_SECRET")
        );
        assert_eq!(TailchatConfig::missing(&env), vec!["TAILCHAT_APP_SECRET"]);
        let mut env = full();
        env.insert("TAILCHAT_CALLBACK_TOKEN", "short");
        let err = TailchatConfig::from_source(&env).unwrap_err().to_string();
        assert!(
            err.starts_with("TAILCHAT_CALLBACK_TOKEN is invalid"),
            "{err}"
        );
    }
}
