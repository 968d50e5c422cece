//! Configuration from the environment: typed structs built once, errors that name the variable.
//!
//! Everything reads through [`Env`], so tests build configurations from literal maps instead of
//! mutating the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::secret::Secret;

/// Where configuration values come from.
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for HashMap<&str, &str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| (*v).to_owned())
    }
}

/// A configuration error; the message always names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable is set but unusable.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it (never the value of a secret).
        reason: String,
    },
}

/// A set, non-empty (after trimming) variable.
pub fn optional(env: &dyn Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The variables of `vars` that are unset or blank.
pub fn missing(env: &dyn Env, vars: &[&'static str]) -> Vec<&'static str> {
    vars.iter()
        .copied()
        .filter(|v| optional(env, v).is_none())
        .collect()
}

/// A required variable.
pub fn required(env: &dyn Env, name: &'static str) -> Result<String, ConfigError> {
    optional(env, name).ok_or(ConfigError::Missing(name))
}

/// A required secret of at least `min_len` bytes.
pub fn required_secret(
    env: &dyn Env,
    name: &'static str,
    min_len: usize,
) -> Result<Secret, ConfigError> {
    let value = required(env, name)?;
    if value.len() < min_len {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("must be at least {min_len} characters long"),
        });
    }
    Ok(Secret::new(value))
}

/// An optional variable parsed with `FromStr`, or `default` when unset.
pub fn parsed<T>(env: &dyn Env, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(env, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

/// A boolean flag: `1`, `true`, `yes`, `on` (any case) are true; unset is false.
pub fn flag(env: &dyn Env, name: &'static str) -> Result<bool, ConfigError> {
    match optional(env, name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Some(_) => Err(ConfigError::Invalid {
            name,
            reason: "expected 1/0, true/false, yes/no or on/off".into(),
        }),
    }
}

/// An `http(s)://` base URL without a trailing slash.
pub fn base_url(env: &dyn Env, name: &'static str, default: &str) -> Result<String, ConfigError> {
    let value = optional(env, name).unwrap_or_else(|| default.to_owned());
    match url::Url::parse(&value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(value.trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError::Invalid {
            name,
            reason: "expected an http:// or https:// URL".into(),
        }),
    }
}

/// Settings every binary shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedConfig {
    /// `HOOKLINE_TABLE`: the DynamoDB table; `None` selects the embedded store.
    pub table: Option<String>,
    /// `HOOKLINE_DATA_DIR`: the embedded store's folder.
    pub data_dir: PathBuf,
    /// `HOOKLINE_BIND`: the address `serve` listens on.
    pub bind: SocketAddr,
    /// `HOOKLINE_TRUST_PROXY` and `HOOKLINE_TRUSTED_PROXIES`: the peers whose
    /// `X-Forwarded-For` `serve` believes (none unless `HOOKLINE_TRUST_PROXY=1`; then the CIDRs
    /// listed, loopback by default). Never used under Lambda.
    pub proxies: crate::runtime::TrustedProxies,
    /// `HOOKLINE_QUEUE_URL`: deferred mode's SQS queue; set, a webhook function defers every
    /// event to it.
    pub queue_url: Option<String>,
}

/// The default `HOOKLINE_TRUSTED_PROXIES`.
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.0/8,::1/128";

/// A comma-separated list of CIDRs (a bare address is its own /32 or /128).
pub fn cidrs(name: &'static str, list: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::Invalid {
                    name,
                    reason: format!("{c:?} is not a CIDR such as 192.0.2.0/24"),
                })
        })
        .collect()
}

/// The default `HOOKLINE_BIND`.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";

impl SharedConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`Env`].
    pub fn from_source(env: &dyn Env) -> Result<Self, ConfigError> {
        // Under Lambda only /tmp is writable. One folder per function: redb locks its file, and
        // `cargo lambda watch` runs every function on one machine.
        let default_dir = if env.var("AWS_LAMBDA_RUNTIME_API").is_some() {
            let function: String = env
                .var("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .collect();
            format!("/tmp/.hookline/{function}")
        } else {
            "./.hookline".to_owned()
        };
        Ok(Self {
            table: optional(env, "HOOKLINE_TABLE"),
            data_dir: PathBuf::from(optional(env, "HOOKLINE_DATA_DIR").unwrap_or(default_dir)),
            bind: parsed(
                env,
                "HOOKLINE_BIND",
                DEFAULT_BIND
                    .parse()
                    .map_err(|_| ConfigError::Missing("HOOKLINE_BIND"))?,
            )?,
            proxies: {
                let listed = optional(env, "HOOKLINE_TRUSTED_PROXIES");
                let list = listed.as_deref().unwrap_or(DEFAULT_TRUSTED_PROXIES);
                let nets = cidrs("HOOKLINE_TRUSTED_PROXIES", list)?;
                if flag(env, "HOOKLINE_TRUST_PROXY")? {
                    crate::runtime::TrustedProxies(nets)
                } else {
                    crate::runtime::TrustedProxies::default()
                }
            },
            queue_url: optional(env, "HOOKLINE_QUEUE_URL"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable() {
        let env: HashMap<&str, &str> = HashMap::from([("HOOKLINE_BIND", "not an address")]);
        let err = SharedConfig::from_source(&env).unwrap_err();
        assert!(
            err.to_string().starts_with("HOOKLINE_BIND is invalid"),
            "{err}"
        );
        assert_eq!(
            required(&env, "TAILCHAT_URL").unwrap_err().to_string(),
            "TAILCHAT_URL is not set"
        );
    }

    #[test]
    fn defaults_apply_when_unset_or_blank() {
        let env: HashMap<&str, &str> = HashMap::from([("HOOKLINE_TABLE", "  ")]);
        let cfg = SharedConfig::from_source(&env).unwrap();
        assert_eq!(cfg.table, None);
        assert_eq!(cfg.bind.to_string(), DEFAULT_BIND);
        assert_eq!(cfg.data_dir, PathBuf::from("./.hookline"));
        assert!(cfg.proxies.0.is_empty());
        let trusting: HashMap<&str, &str> = HashMap::from([("HOOKLINE_TRUST_PROXY", "1")]);
        let cfg = SharedConfig::from_source(&trusting).unwrap();
        assert_eq!(cfg.proxies.0.len(), 2, "loopback by default");
        let bad: HashMap<&str, &str> = HashMap::from([
            ("HOOKLINE_TRUST_PROXY", "1"),
            ("HOOKLINE_TRUSTED_PROXIES", "10.0.0.0/8,nonsense"),
        ]);
        assert!(
            SharedConfig::from_source(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("HOOKLINE_TRUSTED_PROXIES is invalid")
        );
    }

    #[test]
    fn lambda_defaults_the_data_dir_to_tmp() {
        let mut env: HashMap<&str, &str> =
            HashMap::from([("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]);
        assert_eq!(
            SharedConfig::from_source(&env).unwrap().data_dir,
            PathBuf::from("/tmp/.hookline/")
        );
        env.insert("AWS_LAMBDA_FUNCTION_NAME", "../hookline-tamtam");
        assert_eq!(
            SharedConfig::from_source(&env).unwrap().data_dir,
            PathBuf::from("/tmp/.hookline/hookline-tamtam")
        );
    }

    #[test]
    fn short_secrets_are_refused_without_echoing_them() {
        let env: HashMap<&str, &str> = HashMap::from([("TOKEN", "short")]);
        let err = required_secret(&env, "TOKEN", 16).unwrap_err();
        assert!(!err.to_string().contains("short"), "{err}");
    }

    #[test]
    fn base_urls_lose_their_trailing_slash_and_must_be_http() {
        let env: HashMap<&str, &str> =
            HashMap::from([("A", "https://x.example/"), ("B", "ftp://x")]);
        assert_eq!(
            base_url(&env, "A", "http://d").unwrap(),
            "https://x.example"
        );
        assert!(base_url(&env, "B", "http://d").is_err());
        assert_eq!(
            base_url(&env, "C", "http://d.example").unwrap(),
            "http://d.example"
        );
    }

    #[test]
    fn flags_reject_unclear_values() {
        let env: HashMap<&str, &str> = HashMap::from([("F", "maybe"), ("T", "1")]);
        assert!(flag(&env, "F").is_err());
        assert!(flag(&env, "T").unwrap());
    }
}
