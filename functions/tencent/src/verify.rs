//! Callback authentication (PLATFORMS.md §2.2, §2.9): `SdkAppid` must be ours; with a callback
//! token configured, `Sign = hex(SHA-256(token ‖ RequestTime))` must match (constant time) and
//! `RequestTime` must be within 60 s of now; `CallbackCommand` must agree between query and body.
//!
//! `Sign` binds only the time, not the body: a captured request can be replayed with another
//! body inside the window. The dedup key (`GroupId`+`MsgSeq`, `MsgKey`) is the replay defence.

use hookline::error::HookError;
use hookline::pipeline::RawRequest;
use hookline::secret::{Secret, secret_eq};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::TencentConfig;

/// The largest accepted distance between `RequestTime` and our clock, in seconds.
pub const MAX_SKEW_S: i64 = 60;

/// `hex(SHA-256(token ‖ request_time))`, lowercase (a plain hash, not an HMAC).
pub fn callback_sign(token: &str, request_time: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(token.as_bytes());
    hash.update(request_time.as_bytes());
    hex::encode(hash.finalize())
}

/// Checks `Sign` and `RequestTime` against the token at `now_s`.
pub fn verify_sign(
    token: &Secret,
    sign: &str,
    request_time: &str,
    now_s: i64,
) -> Result<(), HookError> {
    let time: i64 = request_time
        .parse()
        .map_err(|_| HookError::Unauthenticated("RequestTime is not an integer"))?;
    if now_s.abs_diff(time) > MAX_SKEW_S.unsigned_abs() {
        return Err(HookError::Unauthenticated(
            "RequestTime is outside the 60 s window",
        ));
    }
    let expected = callback_sign(token.expose(), request_time);
    if secret_eq(expected.as_bytes(), sign.to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(HookError::Unauthenticated("Sign does not match"))
    }
}

#[derive(Deserialize)]
struct CommandOnly {
    #[serde(rename = "CallbackCommand")]
    callback_command: Option<String>,
}

/// Authenticates one callback. A request with neither `SdkAppid` nor `CallbackCommand` is the
/// console's URL probe: it passes (with a valid `Sign` when a token is configured) and is then
/// acknowledged without touching anything.
pub(crate) fn verify_callback(
    config: &TencentConfig,
    request: &RawRequest,
) -> Result<(), HookError> {
    if let Some(token) = &config.callback_token {
        let (Some(sign), Some(time)) = (
            request.query_param("Sign"),
            request.query_param("RequestTime"),
        ) else {
            return Err(HookError::Unauthenticated(
                "Sign and RequestTime are required",
            ));
        };
        verify_sign(token, &sign, &time, request.now_ms.div_euclid(1000))?;
    }
    let command = request.query_param("CallbackCommand");
    match request.query_param("SdkAppid") {
        None if command.is_none() => return Ok(()),
        Some(id) if id.trim() == config.sdkappid.to_string() => {}
        _ => {
            return Err(HookError::Unauthenticated(
                "SdkAppid is missing or not ours",
            ));
        }
    }
    let body_command = serde_json::from_slice::<CommandOnly>(&request.body)
        .ok()
        .and_then(|b| b.callback_command);
    if let (Some(query), Some(body)) = (command, body_command)
        && query != body
    {
        return Err(HookError::Unauthenticated(
            "CallbackCommand differs between query and body",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_the_reference_vectors() {
        // PLATFORMS.md §6.2
        assert_eq!(
            callback_sign("my_token", "1700000000"),
            "63b7452c43a5ccb94a07b830e8480f3d7a6d0de52a844288e48a3a4295affb4d"
        );
        assert_eq!(
            callback_sign("kdjsgjdskg", "1700000060"),
            "2f5b556993bf07708948bef927cad2657bc81867c8b4a6e735cee33dc1586906"
        );
    }

    #[test]
    fn accepts_a_fresh_sign_in_either_case_and_rejects_stale_future_or_forged_ones() {
        let token = Secret::new("my_token");
        let sign = "63b7452c43a5ccb94a07b830e8480f3d7a6d0de52a844288e48a3a4295affb4d";
        assert!(verify_sign(&token, sign, "1700000000", 1_700_000_000).is_ok());
        assert!(verify_sign(&token, &sign.to_uppercase(), "1700000000", 1_700_000_060).is_ok());
        assert!(verify_sign(&token, sign, "1700000000", 1_699_999_940).is_ok());
        assert!(
            verify_sign(&token, sign, "1700000000", 1_700_000_061).is_err(),
            "stale"
        );
        assert!(
            verify_sign(&token, sign, "1700000000", 1_699_999_939).is_err(),
            "future"
        );
        assert!(verify_sign(&token, &sign.replace('6', "7"), "1700000000", 1_700_000_000).is_err());
        assert!(verify_sign(&Secret::new("other"), sign, "1700000000", 1_700_000_000).is_err());
        assert!(verify_sign(&token, sign, "17e8", 1_700_000_000).is_err());
        assert!(verify_sign(&token, sign, " 1700000000", 1_700_000_000).is_err());
    }
}
