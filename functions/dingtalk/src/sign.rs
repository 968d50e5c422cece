//! DingTalk's two HMAC-SHA256 signatures (PLATFORMS.md §3.1, §3.2, §6.3, §6.4).
//!
//! Both sign `timestamp + "\n" + secret` with the secret as key, base64 (standard, padded):
//! - inbound callbacks: the app secret, ms timestamp in the `timestamp` header, the result in the
//!   `sign` header as is; accepted within one hour either way;
//! - outbound custom-robot sends: the `SEC…` secret, a fresh ms timestamp for every request, the
//!   result URL-encoded into the query. A signed URL is never cached: DingTalk rejects it with
//!   310000 an hour later.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use hookline::error::HookError;
use sha2::Sha256;

/// The accepted distance between a callback's timestamp and our clock, in ms.
pub const MAX_SKEW_MS: i64 = 3_600_000;

fn mac(secret: &str, timestamp: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(secret.as_bytes());
    mac
}

/// `base64(HMAC-SHA256(secret, timestamp + "\n" + secret))`.
pub fn sign(secret: &str, timestamp: &str) -> String {
    STANDARD.encode(mac(secret, timestamp).finalize().into_bytes())
}

/// The `sign` query value of a custom-robot send: [`sign`], URL-encoded.
pub fn robot_sign_param(secret: &str, timestamp_ms: i64) -> String {
    url::form_urlencoded::byte_serialize(sign(secret, &timestamp_ms.to_string()).as_bytes())
        .collect()
}

/// Checks a callback's `timestamp` and `sign` headers at `now_ms`.
pub fn verify_callback_sign(
    app_secret: &str,
    timestamp: &str,
    sign: &str,
    now_ms: i64,
) -> Result<(), HookError> {
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| HookError::Unauthenticated("timestamp is not an integer"))?;
    if now_ms.abs_diff(ts) > MAX_SKEW_MS.unsigned_abs() {
        return Err(HookError::Unauthenticated(
            "timestamp is outside the one-hour window",
        ));
    }
    let presented = STANDARD
        .decode(sign.trim())
        .map_err(|_| HookError::Unauthenticated("sign is not base64"))?;
    mac(app_secret, timestamp)
        .verify_slice(&presented)
        .map_err(|_| HookError::Unauthenticated("sign does not match"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROBOT_SECRET: &str = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
    const APP_SECRET: &str = "Jq3kX0b9yQ2mV7rT1sW5uZ8aC4dE6fG0hI2jK4lM6nO8pQ0rS2tU4vW6xY8zA0bC";

    #[test]
    fn outbound_signs_match_the_reference_vectors() {
        // PLATFORMS.md §6.3
        let rows = [
            (
                1_700_000_000_000,
                "8SZas7RY4E7wuOlgLfjLwHSKZpyUEdXdLvFYSDZiiFw=",
                "8SZas7RY4E7wuOlgLfjLwHSKZpyUEdXdLvFYSDZiiFw%3D",
            ),
            (
                1_700_000_000_002,
                "xNc/ZiJKnn1sjfLVFGPGJGGhDXJnj5yDtgvHI8n/d38=",
                "xNc%2FZiJKnn1sjfLVFGPGJGGhDXJnj5yDtgvHI8n%2Fd38%3D",
            ),
            (
                1_700_000_000_015,
                "WkhwWv/d9lDN+iQSL1g+x4dWEUFe/9+W28zhERrfbFU=",
                "WkhwWv%2Fd9lDN%2BiQSL1g%2Bx4dWEUFe%2F9%2BW28zhERrfbFU%3D",
            ),
        ];
        for (ts, b64, param) in rows {
            assert_eq!(sign(ROBOT_SECRET, &ts.to_string()), b64);
            assert_eq!(robot_sign_param(ROBOT_SECRET, ts), param);
        }
    }

    #[test]
    fn inbound_signs_match_the_reference_vectors() {
        // PLATFORMS.md §6.4
        assert_eq!(
            sign(APP_SECRET, "1577262236757"),
            "OiQyf0hP6lOWryY8SYzC8LFxrvgKBZMgw8C+7o6M5Zw="
        );
        assert_eq!(
            sign(APP_SECRET, "1700000000000"),
            "mXnc+zPq3SFF2GCriInSyAkE28bPvDWdELguAUkiCS0="
        );
    }

    #[test]
    fn callbacks_pass_only_with_a_matching_sign_inside_the_hour() {
        let good = "mXnc+zPq3SFF2GCriInSyAkE28bPvDWdELguAUkiCS0=";
        let ts = "1700000000000";
        assert!(verify_callback_sign(APP_SECRET, ts, good, 1_700_000_000_000).is_ok());
        assert!(verify_callback_sign(APP_SECRET, ts, good, 1_700_003_600_000).is_ok());
        assert!(verify_callback_sign(APP_SECRET, ts, good, 1_699_996_400_000).is_ok());
        assert!(
            verify_callback_sign(APP_SECRET, ts, good, 1_700_003_600_001).is_err(),
            "stale"
        );
        assert!(
            verify_callback_sign(APP_SECRET, ts, good, 1_699_996_399_999).is_err(),
            "future"
        );
        assert!(verify_callback_sign("other", ts, good, 1_700_000_000_000).is_err());
        assert!(
            verify_callback_sign(APP_SECRET, "1700000000001", good, 1_700_000_000_000).is_err()
        );
        assert!(
            verify_callback_sign(
                APP_SECRET,
                ts,
                "mXnc%2BzPq3SFF2GCriInSyAkE28bPvDWdELguAUkiCS0%3D",
                1_700_000_000_000
            )
            .is_err(),
            "URL-encoded header"
        );
        assert!(verify_callback_sign(APP_SECRET, ts, "", 1_700_000_000_000).is_err());
        assert!(verify_callback_sign(APP_SECRET, "17e11", good, 1_700_000_000_000).is_err());
    }
}
