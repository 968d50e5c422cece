//! TamTam signs nothing (PLATFORMS.md §4.2). Two checks: the source address is inside the
//! allowed subnets (from the Lambda request context or the TCP peer; `X-Forwarded-For` only with
//! `HOOKLINE_TRUST_PROXY=1`, decided in `hookline::runtime`), and the `?token=` of the
//! subscription URL matches in constant time.

use hookline::error::HookError;
use hookline::pipeline::RawRequest;

use crate::config::TamTamConfig;

/// Checks source subnet (403) and token (404).
pub(crate) fn verify_update(config: &TamTamConfig, request: &RawRequest) -> Result<(), HookError> {
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
    let Some(ip) = request.client_ip.map(|ip| ip.to_canonical()) else {
        return Err(HookError::ForbiddenSource("unknown source address".into()));
    };
    if !config.allowed_subnets.iter().any(|net| net.contains(&ip)) {
        return Err(HookError::ForbiddenSource(ip.to_string()));
    }
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
}
