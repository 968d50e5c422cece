//! `DingTalkConfig`: the variables of a DingTalk robot.

use hookline::config::{
    ConfigError, Env, ProcessEnv, base_url, flag, optional, required, required_secret,
};
use hookline::secret::Secret;

/// The required variables.
pub const VARS: [&str; 2] = ["DINGTALK_APP_SECRET", "DINGTALK_ROBOT_CODE"];

/// The default API base of the custom robot.
pub const DEFAULT_API_URL: &str = "https://oapi.dingtalk.com";

/// The default hosts a `sessionWebhook` may point at.
pub const DEFAULT_SESSION_HOSTS: &str = "oapi.dingtalk.com,oapi.dingtalk.io";

/// The shortest accepted `DINGTALK_NOTIFY_TOKEN`.
pub const MIN_TOKEN_LEN: usize = 16;

/// The custom group robot ("自定义机器人") used for notifications and as the reply fallback.
#[derive(Debug, Clone)]
pub struct CustomRobot {
    /// `DINGTALK_WEBHOOK_TOKEN`: the `access_token` of the robot's webhook URL.
    pub access_token: Secret,
    /// `DINGTALK_WEBHOOK_SECRET`: the `SEC…` secret of its "sign" security setting.
    pub secret: Secret,
}

/// A DingTalk robot's configuration.
#[derive(Debug, Clone)]
pub struct DingTalkConfig {
    /// `DINGTALK_APP_SECRET`: the enterprise robot's app secret (signs callbacks).
    pub app_secret: Secret,
    /// `DINGTALK_ROBOT_CODE`: the robot code callbacks must carry.
    pub robot_code: String,
    /// The custom robot, when both of its variables are set.
    pub custom_robot: Option<CustomRobot>,
    /// `DINGTALK_NOTIFY_TOKEN`: enables `POST /notify` (needs the custom robot).
    pub notify_token: Option<Secret>,
    /// `DINGTALK_API_URL` (default `https://oapi.dingtalk.com`).
    pub api_url: String,
    /// `DINGTALK_SESSION_HOSTS`: hosts (optionally `host:port`) a `sessionWebhook` may use.
    pub session_hosts: Vec<String>,
    /// `DINGTALK_ALLOW_UNSIGNED`: accept unsigned legacy "Outgoing" callbacks (off by default).
    pub allow_unsigned: bool,
    /// `DINGTALK_WEBHOOK_CONVERSATION`: the `conversationId` of the custom robot's group. A reply
    /// whose session webhook expired goes through the custom robot only when it answers a
    /// message from that group; anywhere else it would land in front of other people.
    pub webhook_conversation: Option<String>,
}

impl DingTalkConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`Env`].
    pub fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let custom_robot = match (
            optional(env, "DINGTALK_WEBHOOK_TOKEN"),
            optional(env, "DINGTALK_WEBHOOK_SECRET"),
        ) {
            (Some(token), Some(secret)) => Some(CustomRobot {
                access_token: Secret::new(token),
                secret: Secret::new(secret),
            }),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::Missing("DINGTALK_WEBHOOK_SECRET")),
            (None, Some(_)) => return Err(ConfigError::Missing("DINGTALK_WEBHOOK_TOKEN")),
        };
        let notify_token = match optional(env, "DINGTALK_NOTIFY_TOKEN") {
            None => None,
            Some(_) if custom_robot.is_none() => {
                return Err(ConfigError::Invalid {
                    name: "DINGTALK_NOTIFY_TOKEN",
                    reason: "the notify endpoint sends through the custom robot: set DINGTALK_WEBHOOK_TOKEN and DINGTALK_WEBHOOK_SECRET too".into(),
                });
            }
            Some(_) => Some(required_secret(
                env,
                "DINGTALK_NOTIFY_TOKEN",
                MIN_TOKEN_LEN,
            )?),
        };
        let hosts =
            optional(env, "DINGTALK_SESSION_HOSTS").unwrap_or_else(|| DEFAULT_SESSION_HOSTS.into());
        let session_hosts: Vec<String> = hosts
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if session_hosts.is_empty()
            || session_hosts
                .iter()
                .any(|h| h.contains('/') || h.contains('@'))
        {
            return Err(ConfigError::Invalid {
                name: "DINGTALK_SESSION_HOSTS",
                reason: "expected comma-separated host names, optionally host:port".into(),
            });
        }
        Ok(Self {
            app_secret: Secret::new(required(env, "DINGTALK_APP_SECRET")?),
            robot_code: required(env, "DINGTALK_ROBOT_CODE")?,
            custom_robot,
            notify_token,
            api_url: base_url(env, "DINGTALK_API_URL", DEFAULT_API_URL)?,
            session_hosts,
            allow_unsigned: flag(env, "DINGTALK_ALLOW_UNSIGNED")?,
            webhook_conversation: optional(env, "DINGTALK_WEBHOOK_CONVERSATION"),
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

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("DINGTALK_APP_SECRET", "s"),
            ("DINGTALK_ROBOT_CODE", "dingue4kfzdxbyn0pjqd"),
        ])
    }

    #[test]
    fn defaults_and_the_optional_custom_robot() {
        let cfg = DingTalkConfig::from_source(&base()).unwrap();
        assert_eq!(
            cfg.session_hosts,
            vec!["oapi.dingtalk.com", "oapi.dingtalk.io"]
        );
        assert!(cfg.custom_robot.is_none() && cfg.notify_token.is_none() && !cfg.allow_unsigned);
        let mut env = base();
        env.insert("DINGTALK_WEBHOOK_TOKEN", "abc");
        assert_eq!(
            DingTalkConfig::from_source(&env).unwrap_err(),
            ConfigError::Missing("DINGTALK_WEBHOOK_SECRET")
        );
        env.insert("DINGTALK_WEBHOOK_SECRET", "SECxyz");
        env.insert("DINGTALK_NOTIFY_TOKEN", "notify-token-0123456789");
        let cfg = DingTalkConfig::from_source(&env).unwrap();
        assert!(cfg.custom_robot.is_some() && cfg.notify_token.is_some());
    }

    #[test]
    fn notify_without_a_robot_or_with_a_weak_token_is_refused() {
        let mut env = base();
        env.insert("DINGTALK_NOTIFY_TOKEN", "notify-token-0123456789");
        assert!(
            DingTalkConfig::from_source(&env)
                .unwrap_err()
                .to_string()
                .starts_with("DINGTALK_NOTIFY_TOKEN is invalid")
        );
        env.insert("DINGTALK_WEBHOOK_TOKEN", "abc");
        env.insert("DINGTALK_WEBHOOK_SECRET", "SECxyz");
        env.insert("DINGTALK_NOTIFY_TOKEN", "short");
        assert!(
            DingTalkConfig::from_source(&env)
                .unwrap_err()
                .to_string()
                .starts_with("DINGTALK_NOTIFY_TOKEN is invalid")
        );
    }
}
