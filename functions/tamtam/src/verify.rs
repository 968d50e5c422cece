//! TamTam signs nothing (PLATFORMS.md §4.2). Two checks: the source address is inside the
//! allowed subnets (from the Lambda request context or the TCP peer; `X-Forwarded-For` only with
//! `HOOKLINE_TRUST_PROXY=1`, decided in `hookline::runtime`), and the `?token=` of the
//! subscription URL matches in constant time.
//!
//! MAX (§4b.2, §4b.9) sends the subscription's secret in `X-Max-Bot-Api-Secret`: a missing or
//! wrong one is refused (401) in constant time, and "no header" never matches. Its source
//! addresses are not settled, so the subnet check applies only when `MAX_ALLOWED_SUBNETS` is
//! set (403 outside it); otherwise the source is logged, to settle the question.

use hookline::error::HookError;
use hookline::pipeline::RawRequest;
use ipnet::IpNet;

use crate::config::TamTamConfig;
use crate::max_config::MaxConfig;

/// The header MAX carries the subscription's secret in (looked up case-insensitively).
pub const SECRET_HEADER: &str = "x-max-bot-api-secret";

fn check_source(request: &RawRequest, subnets: &[IpNet]) -> Result<(), HookError> {
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
    let Some(ip) = request.client_ip.map(|ip| ip.to_canonical()) else {
        return Err(HookError::ForbiddenSource("unknown source address".into()));
    };
    if !subnets.iter().any(|net| net.contains(&ip)) {
        return Err(HookError::ForbiddenSource(ip.to_string()));
    }
    Ok(())
}

/// Checks a MAX webhook: the source (403) when subnets are configured, the secret header (401).
pub(crate) fn verify_max(config: &MaxConfig, request: &RawRequest) -> Result<(), HookError> {
    match &config.allowed_subnets {
        Some(subnets) => check_source(request, subnets)?,
        None => tracing::info!(
            source = %request.client_ip.map(|ip| ip.to_canonical().to_string()).unwrap_or_else(|| "unknown".into()),
            "MAX webhook source address (MAX_ALLOWED_SUBNETS unset: not checked)"
        ),
    }
    let presented = request
        .headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Every configured secret is compared (no early exit), each in constant time.
    let matched = !presented.is_empty()
        && config
            .webhook_secrets
            .iter()
            .fold(false, |any, secret| secret.matches(presented) | any);
    if matched {
        Ok(())
    } else {
        Err(HookError::Unauthenticated(
            "X-Max-Bot-Api-Secret missing or wrong",
        ))
    }
}

/// Checks source subnet (403) and token (404).
pub(crate) fn verify_update(config: &TamTamConfig, request: &RawRequest) -> Result<(), HookError> {
    check_source(request, &config.allowed_subnets)?;
    match request.query_param("token") {
        Some(presented) if config.callback_token.matches(&presented) => Ok(()),
        _ => Err(HookError::UnknownToken),
    }
}

#[cfg(test)]
mod tests {
    use hookline::secret::Secret;

    use super::*;
    use crate::config::default_subnets;

    fn config() -> TamTamConfig {
        TamTamConfig {
            token: Secret::new("t"),
            callback_token: Secret::new("0123456789abcdef"),
            api_url: "http://x".into(),
            allowed_subnets: default_subnets(),
        }
    }

    fn request(ip: Option<&str>, query: &str) -> RawRequest {
        RawRequest {
            headers: Default::default(),
            query: Some(query.into()),
            body: Default::default(),
            client_ip: ip.map(|i| i.parse().unwrap()),
            now_ms: 0,
        }
    }

    #[test]
    fn only_the_four_subnets_with_the_token_pass() {
        let ok = "token=0123456789abcdef";
        for ip in [
            "185.16.150.0",
            "185.16.150.3",
            "185.16.150.85",
            "185.16.150.155",
            "185.16.150.195",
            "::ffff:185.16.150.1",
        ] {
            assert!(
                verify_update(&config(), &request(Some(ip), ok)).is_ok(),
                "{ip}"
            );
        }
        for ip in [
            "185.16.150.4",
            "185.16.150.88",
            "127.0.0.1",
            "10.0.0.1",
            "::1",
        ] {
            assert!(
                matches!(
                    verify_update(&config(), &request(Some(ip), ok)),
                    Err(HookError::ForbiddenSource(_))
                ),
                "{ip}"
            );
        }
        assert!(matches!(
            verify_update(&config(), &request(None, ok)),
            Err(HookError::ForbiddenSource(_))
        ));
        assert!(matches!(
            verify_update(&config(), &request(Some("185.16.150.1"), "token=nope")),
            Err(HookError::UnknownToken)
        ));
        assert!(matches!(
            verify_update(&config(), &request(Some("185.16.150.1"), "")),
            Err(HookError::UnknownToken)
        ));
    }

    fn max_config(subnets: Option<&str>) -> MaxConfig {
        MaxConfig {
            token: Secret::new("t"),
            webhook_secrets: vec![Secret::new("new-secret"), Secret::new("old-secret")],
            api_url: "http://x".into(),
            allowed_subnets: subnets.map(|s| crate::config::parse_subnets("X", s).unwrap()),
            ca_pem: None,
        }
    }

    fn max_request(ip: &str, secret: Option<&str>) -> RawRequest {
        let mut request = request(Some(ip), "");
        if let Some(secret) = secret {
            request
                .headers
                .insert("X-Max-Bot-Api-Secret", secret.parse().unwrap());
        }
        request
    }

    #[test]
    fn max_needs_the_secret_header_and_the_subnets_only_when_configured() {
        let open = max_config(None);
        for secret in ["new-secret", "old-secret"] {
            assert!(verify_max(&open, &max_request("203.0.113.9", Some(secret))).is_ok());
        }
        for bad in [
            None,
            Some(""),
            Some("new-secre"),
            Some("new-secret2"),
            Some("NEW-SECRET"),
        ] {
            assert!(
                matches!(
                    verify_max(&open, &max_request("203.0.113.9", bad)),
                    Err(HookError::Unauthenticated(_))
                ),
                "{bad:?}"
            );
        }
        let fenced = max_config(Some("5.101.42.200/31"));
        assert!(verify_max(&fenced, &max_request("5.101.42.201", Some("new-secret"))).is_ok());
        assert!(matches!(
            verify_max(&fenced, &max_request("5.101.42.202", Some("new-secret"))),
            Err(HookError::ForbiddenSource(_))
        ));
    }
}
