//! Tailchat signs nothing (PLATFORMS.md §1.2): the only secret is the `?token=` we put in the
//! callback URL. A wrong or missing token is answered 404, as if the route did not exist.

use hookline::error::HookError;
use hookline::pipeline::RawRequest;
use hookline::secret::Secret;

/// Checks the `?token=` query parameter in constant time.
pub(crate) fn verify_token(expected: &Secret, request: &RawRequest) -> Result<(), HookError> {
    match request.query_param("token") {
        Some(presented) if expected.matches(&presented) => Ok(()),
        _ => Err(HookError::UnknownToken),
    }
}

#[cfg(test)]
mod tests {
    use hookline::pipeline::RawRequest;

    use super::*;

    fn request(query: Option<&str>) -> RawRequest {
        RawRequest {
            headers: Default::default(),
            query: query.map(str::to_owned),
            body: Default::default(),
            client_ip: None,
            now_ms: 0,
        }
    }

    #[test]
    fn accepts_only_the_exact_token() {
        let secret = Secret::new("0123456789abcdef+/");
        assert!(verify_token(&secret, &request(Some("token=0123456789abcdef%2B%2F"))).is_ok());
        assert!(verify_token(&secret, &request(Some("a=1&token=0123456789abcdef%2B%2F"))).is_ok());
        for q in [
            None,
            Some(""),
            Some("token="),
            Some("token=0123456789abcdef"),
            Some("tok=0123456789abcdef+/"),
        ] {
            assert!(
                matches!(
                    verify_token(&secret, &request(q)),
                    Err(HookError::UnknownToken)
                ),
                "{q:?}"
            );
        }
    }
}
