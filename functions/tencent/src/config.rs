//! `TencentConfig`: the variables of a Tencent Cloud Chat chatbot.

use hookline::config::{ConfigError, Env, ProcessEnv, base_url, flag, optional, required};
use hookline::secret::Secret;

/// The required variables.
pub const VARS: [&str; 3] = ["TENCENT_SDKAPPID", "TENCENT_SECRET_KEY", "TENCENT_BOT_ID"];

/// The shortest accepted `TENCENT_CALLBACK_TOKEN` (the console takes 1 to 128 characters; a
/// short one is guessable).
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a live chatbot needs `TENCENT_CALLBACK_TOKEN`, and where to get it.
pub const TOKEN_REQUIRED: &str = "required: without it anyone who knows the SdkAppid (it is in \
every client app) can make the chatbot post into its groups and DMs. In the Chat console open \
Callback Configuration, switch on callback authentication (回调鉴权), and set the same token here \
(16 to 128 characters); or set TENCENT_ALLOW_UNSIGNED=1 to accept unsigned callbacks anyway";

/// The default REST endpoint (mainland China data centre).
pub const DEFAULT_API_URL: &str = "https://console.tim.qq.com";

/// A Tencent Cloud Chat chatbot's configuration.
#[derive(Debug, Clone)]
pub struct TencentConfig {
    /// `TENCENT_SDKAPPID`: the app's SDKAppID.
    pub sdkappid: u64,
    /// `TENCENT_SECRET_KEY`: the app's key, which signs UserSigs.
    pub secret_key: Secret,
    /// `TENCENT_BOT_ID`: the chatbot account (`@RBT#…`).
    pub bot_id: String,
    /// `TENCENT_ADMIN`: the app admin the REST calls are made as (default `administrator`).
    pub admin: String,
    /// `TENCENT_API_URL`: the data centre's REST domain (default `https://console.tim.qq.com`).
    pub api_url: String,
    /// `TENCENT_CALLBACK_TOKEN`: the console's callback authentication token; every callback
    /// must carry a valid, fresh `Sign`. `None` only with `TENCENT_ALLOW_UNSIGNED=1`.
    pub callback_token: Option<Secret>,
}

impl TencentConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`Env`], for a chatbot that answers callbacks: callback authentication is
    /// required (see [`TOKEN_REQUIRED`]).
    pub fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let config = Self::for_api_calls(env)?;
        if config.callback_token.is_none() {
            if !flag(env, "TENCENT_ALLOW_UNSIGNED")? {
                return Err(ConfigError::Invalid {
                    name: "TENCENT_CALLBACK_TOKEN",
                    reason: TOKEN_REQUIRED.into(),
                });
            }
            tracing::warn!(
                "TENCENT_ALLOW_UNSIGNED=1: callbacks are checked by SdkAppid only, and anyone who \
                 knows it can drive the chatbot; set TENCENT_CALLBACK_TOKEN"
            );
        }
        Ok(config)
    }

    /// Reads any [`Env`], for a tool that only calls the REST API (`hookline setup tencent`):
    /// it receives no callback, so needs no callback token (one that is set is still checked).
    pub fn for_api_calls(env: &dyn Env) -> Result<Self, ConfigError> {
        let sdkappid =
            required(env, "TENCENT_SDKAPPID")?
                .parse()
                .map_err(|_| ConfigError::Invalid {
                    name: "TENCENT_SDKAPPID",
                    reason: "expected the numeric SDKAppID from the console".into(),
                })?;
        let bot_id = required(env, "TENCENT_BOT_ID")?;
        if !bot_id.starts_with("@RBT#") || bot_id.len() > 32 {
            return Err(ConfigError::Invalid {
                name: "TENCENT_BOT_ID",
                reason: "a chatbot account starts with @RBT# and is at most 32 bytes".into(),
            });
        }
        let callback_token = optional(env, "TENCENT_CALLBACK_TOKEN").map(Secret::new);
        if callback_token
            .as_ref()
            .is_some_and(|t| !(MIN_TOKEN_LEN..=128).contains(&t.expose().len()))
        {
            return Err(ConfigError::Invalid {
                name: "TENCENT_CALLBACK_TOKEN",
                reason: format!(
                    "must be {MIN_TOKEN_LEN} to 128 characters (the console accepts up to 128)"
                ),
            });
        }
        Ok(Self {
            sdkappid,
            secret_key: Secret::new(required(env, "TENCENT_SECRET_KEY")?),
            bot_id,
            admin: optional(env, "TENCENT_ADMIN").unwrap_or_else(|| "administrator".into()),
            api_url: base_url(env, "TENCENT_API_URL", DEFAULT_API_URL)?,
            callback_token,
        })
    }

    /// The required variables that are not set.
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
            (
                "TENCENT_CALLBACK_TOKEN",
                "a-callback-token-of-32-characters",
            ),
            ("TENCENT_SDKAPPID", "1400000000"),
            (
                "TENCENT_SECRET_KEY",
                "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e",
            ),
            ("TENCENT_BOT_ID", "@RBT#001"),
        ])
    }

    #[test]
    fn applies_the_documented_defaults() {
        let cfg = TencentConfig::from_source(&full()).unwrap();
        assert_eq!(cfg.sdkappid, 1_400_000_000);
        assert_eq!(cfg.admin, "administrator");
        assert_eq!(cfg.api_url, "https://console.tim.qq.com");
        assert!(cfg.callback_token.is_some());
    }

    #[test]
    fn refuses_to_run_without_callback_authentication_unless_explicitly_allowed() {
        let mut env = full();
        env.remove("TENCENT_CALLBACK_TOKEN");
        let err = TencentConfig::from_source(&env).unwrap_err().to_string();
        assert!(
            err.starts_with("TENCENT_CALLBACK_TOKEN is invalid: required"),
            "{err}"
        );
        assert!(err.contains("callback authentication") && err.contains("TENCENT_ALLOW_UNSIGNED"));
        // `setup` only calls the REST API: no callback, no token needed.
        assert!(TencentConfig::for_api_calls(&env).is_ok());
        env.insert("TENCENT_ALLOW_UNSIGNED", "1");
        assert!(
            TencentConfig::from_source(&env)
                .unwrap()
                .callback_token
                .is_none()
        );
        let mut short = full();
        short.insert("TENCENT_CALLBACK_TOKEN", "short");
        assert!(TencentConfig::from_source(&short).is_err());
    }

    #[test]
    fn names_the_variable_at_fault() {
        let mut env = full();
        env.insert("TENCENT_SDKAPPID", "14000x");
        assert!(
            TencentConfig::from_source(&env)
                .unwrap_err()
                .to_string()
                .starts_with("TENCENT_SDKAPPID is invalid")
        );
        let mut env = full();
        env.insert("TENCENT_BOT_ID", "jarvis");
        assert!(
            TencentConfig::from_source(&env)
                .unwrap_err()
                .to_string()
                .starts_with("TENCENT_BOT_ID is invalid")
        );
        let mut env = full();
        env.remove("TENCENT_SECRET_KEY");
        assert_eq!(TencentConfig::missing(&env), vec!["TENCENT_SECRET_KEY"]);
        assert_eq!(
            TencentConfig::from_source(&env).unwrap_err(),
            ConfigError::Missing("TENCENT_SECRET_KEY")
        );
    }
}
