//! `TamTamConfig`: the variables of a TamTam bot.

use hookline::config::{
    ConfigError, Env, ProcessEnv, base_url, optional, required, required_secret,
};
use hookline::secret::Secret;
use ipnet::IpNet;

/// The required variables.
pub const VARS: [&str; 2] = ["TAMTAM_TOKEN", "TAMTAM_CALLBACK_TOKEN"];

/// The default Bot API base URL.
pub const DEFAULT_API_URL: &str = "https://botapi.tamtam.chat";

/// The subnets TamTam sends webhooks from (the 0.3.0 documentation).
pub const DEFAULT_SUBNETS: [&str; 4] = [
    "185.16.150.0/30",
    "185.16.150.84/30",
    "185.16.150.152/30",
    "185.16.150.192/30",
];

/// The shortest accepted `TAMTAM_CALLBACK_TOKEN`.
pub const MIN_TOKEN_LEN: usize = 16;

/// A TamTam bot's configuration.
#[derive(Debug, Clone)]
pub struct TamTamConfig {
    /// `TAMTAM_TOKEN`: the bot's access token.
    pub token: Secret,
    /// `TAMTAM_CALLBACK_TOKEN`: the `?token=` of the subscription URL.
    pub callback_token: Secret,
    /// `TAMTAM_API_URL` (default `https://botapi.tamtam.chat`).
    pub api_url: String,
    /// `TAMTAM_ALLOWED_SUBNETS`: where webhooks may come from (default the four /30s).
    pub allowed_subnets: Vec<IpNet>,
}

/// Parses a comma-separated CIDR list.
pub fn parse_subnets(name: &'static str, list: &str) -> Result<Vec<IpNet>, ConfigError> {
    let nets = hookline::config::cidrs(name, list)?;
    if nets.is_empty() {
        return Err(ConfigError::Invalid {
            name,
            reason: "no subnet given".into(),
        });
    }
    Ok(nets)
}

/// The default subnets.
pub fn default_subnets() -> Vec<IpNet> {
    DEFAULT_SUBNETS
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

impl TamTamConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`Env`].
    pub fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let allowed_subnets = match optional(env, "TAMTAM_ALLOWED_SUBNETS") {
            Some(list) => parse_subnets("TAMTAM_ALLOWED_SUBNETS", &list)?,
            None => default_subnets(),
        };
        Ok(Self {
            token: Secret::new(required(env, "TAMTAM_TOKEN")?),
            callback_token: required_secret(env, "TAMTAM_CALLBACK_TOKEN", MIN_TOKEN_LEN)?,
            api_url: base_url(env, "TAMTAM_API_URL", DEFAULT_API_URL)?,
            allowed_subnets,
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

    #[test]
    fn defaults_to_the_documented_subnets_and_host() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("TAMTAM_TOKEN", "t"),
            ("TAMTAM_CALLBACK_TOKEN", "0123456789abcdef"),
        ]);
        let cfg = TamTamConfig::from_source(&env).unwrap();
        assert_eq!(cfg.api_url, DEFAULT_API_URL);
        assert_eq!(cfg.allowed_subnets.len(), 4);
        assert!(
            cfg.allowed_subnets
                .iter()
                .any(|n| n.contains(&"185.16.150.86".parse::<std::net::IpAddr>().unwrap()))
        );
        assert!(
            !cfg.allowed_subnets
                .iter()
                .any(|n| n.contains(&"185.16.150.88".parse::<std::net::IpAddr>().unwrap()))
        );
    }

    #[test]
    fn names_bad_or_missing_variables() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("TAMTAM_TOKEN", "t"),
            ("TAMTAM_CALLBACK_TOKEN", "0123456789abcdef"),
            ("TAMTAM_ALLOWED_SUBNETS", "10.0.0.0/8, nonsense"),
        ]);
        let err = TamTamConfig::from_source(&env).unwrap_err().to_string();
        assert!(
            err.starts_with("TAMTAM_ALLOWED_SUBNETS is invalid") && err.contains("nonsense"),
            "{err}"
        );
        let env: HashMap<&str, &str> = HashMap::from([("TAMTAM_TOKEN", "t")]);
        assert_eq!(TamTamConfig::missing(&env), vec!["TAMTAM_CALLBACK_TOKEN"]);
    }
}
