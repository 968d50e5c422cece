//! `MaxConfig`: the variables of a MAX bot (PLATFORMS.md §4b).

use hookline::config::{ConfigError, Env, ProcessEnv, base_url, optional, required};
use hookline::secret::Secret;
use ipnet::IpNet;

use crate::config::parse_subnets;

/// The required variables.
pub const MAX_VARS: [&str; 2] = ["MAX_TOKEN", "MAX_WEBHOOK_SECRET"];

/// The current MAX Bot API host (mandatory since 19 Jul 2026, §4b.1).
pub const DEFAULT_MAX_API_URL: &str = "https://platform-api2.max.ru";

/// The source subnets MAX has published at one time or another (§4b.2: the 2025 schema's /31s,
/// and TamTam's /30s in the 2026 documentation snapshots). Which, if any, is real is open
/// (§4b.10), so none is enforced unless `MAX_ALLOWED_SUBNETS` says so; these are what a user
/// may paste there.
pub const MAX_PUBLISHED_SUBNETS: [&str; 7] = [
    "5.101.42.200/31",
    "31.177.104.200/31",
    "89.221.230.200/31",
    "185.16.150.0/30",
    "185.16.150.84/30",
    "185.16.150.152/30",
    "185.16.150.192/30",
];

/// A MAX bot's configuration.
#[derive(Debug, Clone)]
pub struct MaxConfig {
    /// `MAX_TOKEN`: the bot's token, sent as `Authorization: <token>` only.
    pub token: Secret,
    /// `MAX_WEBHOOK_SECRET`: what `X-Max-Bot-Api-Secret` must be. Several, comma-separated,
    /// while rotating: the first is the one `hookline setup max` subscribes with, every one is
    /// accepted.
    pub webhook_secrets: Vec<Secret>,
    /// `MAX_API_URL` (default [`DEFAULT_MAX_API_URL`]).
    pub api_url: String,
    /// `MAX_ALLOWED_SUBNETS`: where webhooks may come from; unset, every source is accepted and
    /// logged (MAX's addresses are not settled).
    pub allowed_subnets: Option<Vec<IpNet>>,
    /// `MAX_CA_PEM`: extra root certificates (PEM text; the variable holds the PEM itself or a
    /// file path), trusted in addition to the default roots for calls to MAX.
    pub ca_pem: Option<String>,
}

/// Checks one webhook secret: 5–256 of `[A-Za-z0-9_-]` (MAX's own rule for `secret`).
pub fn valid_webhook_secret(secret: &str) -> bool {
    (5..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn webhook_secrets(env: &dyn Env) -> Result<Vec<Secret>, ConfigError> {
    const NAME: &str = "MAX_WEBHOOK_SECRET";
    let raw = required(env, NAME)?;
    let secrets: Vec<&str> = raw.split(',').map(str::trim).collect();
    if secrets.len() > 2 {
        return Err(ConfigError::Invalid {
            name: NAME,
            reason: "at most two secrets (the new one first, while rotating)".into(),
        });
    }
    if let Some(position) = secrets.iter().position(|s| !valid_webhook_secret(s)) {
        return Err(ConfigError::Invalid {
            name: NAME,
            reason: format!(
                "secret #{} must be 5 to 256 characters of A-Z, a-z, 0-9, _ and - (MAX's rule)",
                position + 1
            ),
        });
    }
    Ok(secrets.into_iter().map(Secret::new).collect())
}

/// `MAX_CA_PEM`: inline PEM (a literal `\n` stands for a newline, as a one-line variable needs)
/// or the path of a PEM file.
fn ca_pem(env: &dyn Env) -> Result<Option<String>, ConfigError> {
    const NAME: &str = "MAX_CA_PEM";
    let Some(value) = optional(env, NAME) else {
        return Ok(None);
    };
    let pem = if value.contains("-----BEGIN") {
        value.replace("\\n", "\n")
    } else {
        std::fs::read_to_string(value.trim()).map_err(|e| ConfigError::Invalid {
            name: NAME,
            reason: format!("neither PEM text nor a readable file ({e})"),
        })?
    };
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError::Invalid {
            name: NAME,
            reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        });
    }
    hookline::http::pem_certificates(&pem)
        .map_err(|reason| ConfigError::Invalid { name: NAME, reason })?;
    Ok(Some(pem))
}

impl MaxConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`Env`].
    pub fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        let allowed_subnets = optional(env, "MAX_ALLOWED_SUBNETS")
            .map(|list| parse_subnets("MAX_ALLOWED_SUBNETS", &list))
            .transpose()?;
        Ok(Self {
            token: Secret::new(required(env, "MAX_TOKEN")?),
            webhook_secrets: webhook_secrets(env)?,
            api_url: base_url(env, "MAX_API_URL", DEFAULT_MAX_API_URL)?,
            allowed_subnets,
            ca_pem: ca_pem(env)?,
        })
    }

    /// The required variables that are not set.
    pub fn missing(env: &dyn Env) -> Vec<&'static str> {
        hookline::config::missing(env, &MAX_VARS)
    }

    /// The secret `hookline setup max` subscribes with.
    pub fn webhook_secret(&self) -> &Secret {
        &self.webhook_secrets[0]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env<'a>(extra: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
        let mut env = HashMap::from([("MAX_TOKEN", "tok"), ("MAX_WEBHOOK_SECRET", "s3cret_-X")]);
        env.extend(extra.iter().copied());
        env
    }

    #[test]
    fn defaults_to_the_current_host_and_no_subnet_check() {
        let cfg = MaxConfig::from_source(&env(&[])).unwrap();
        assert_eq!(cfg.api_url, "https://platform-api2.max.ru");
        assert!(cfg.allowed_subnets.is_none());
        assert!(cfg.ca_pem.is_none());
        assert_eq!(cfg.webhook_secret().expose(), "s3cret_-X");
        assert!(!format!("{cfg:?}").contains("s3cret"));
        assert!(!format!("{cfg:?}").contains("tok\""));
    }

    #[test]
    fn the_webhook_secret_follows_maxs_rule() {
        for bad in [
            "abcd",
            "has space",
            "ünïcode",
            "a.b.c.d.e",
            &"x".repeat(257),
            "a,b,c",
        ] {
            let err = MaxConfig::from_source(&env(&[("MAX_WEBHOOK_SECRET", bad)]))
                .map(drop)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("MAX_WEBHOOK_SECRET is invalid"),
                "{bad}: {err}"
            );
            assert!(!err.contains(bad), "the secret is echoed: {err}");
        }
        for good in ["abcde", "A-Z_0-9", &"x".repeat(256)] {
            assert!(MaxConfig::from_source(&env(&[("MAX_WEBHOOK_SECRET", good)])).is_ok());
        }
        let rotating =
            MaxConfig::from_source(&env(&[("MAX_WEBHOOK_SECRET", "new-one, old-one")])).unwrap();
        assert_eq!(rotating.webhook_secrets.len(), 2);
        assert_eq!(rotating.webhook_secret().expose(), "new-one");
        assert_eq!(
            MaxConfig::missing(&HashMap::from([("MAX_TOKEN", "t")])),
            vec!["MAX_WEBHOOK_SECRET"]
        );
    }

    #[test]
    fn a_bad_ca_or_subnet_list_is_refused_by_name() {
        let garbage = "-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----";
        let err = MaxConfig::from_source(&env(&[("MAX_CA_PEM", garbage)]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("MAX_CA_PEM is invalid"), "{err}");
        let err = MaxConfig::from_source(&env(&[("MAX_CA_PEM", "/nonexistent/ca.pem")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("MAX_CA_PEM is invalid"), "{err}");
        let subnets = MaxConfig::from_source(&env(&[("MAX_ALLOWED_SUBNETS", "5.101.42.200/31")]))
            .unwrap()
            .allowed_subnets
            .unwrap();
        assert_eq!(subnets.len(), 1);
        assert!(
            MAX_PUBLISHED_SUBNETS
                .iter()
                .all(|s| s.parse::<IpNet>().is_ok())
        );
    }
}
