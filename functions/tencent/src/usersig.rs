//! TLSSigAPIv2 UserSig (PLATFORMS.md §2.7), generated and checked in Rust.
//!
//! 1. sign `TLS.identifier:…\nTLS.sdkappid:…\nTLS.time:…\nTLS.expire:…\n` with HMAC-SHA256
//!    keyed by the app's SecretKey (its UTF-8 bytes), base64 (standard, padded) → `TLS.sig`;
//! 2. a JSON object of `TLS.ver` "2.0", identifier, sdkappid, expire, time and sig;
//! 3. zlib, then base64 with `+`→`*`, `/`→`-`, `=`→`_`.
//!
//! Compression output differs between the official libraries, so a UserSig is compared by its
//! decoded fields and `TLS.sig`, never byte for byte.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The decoded fields of a UserSig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSigFields {
    /// `TLS.ver`, "2.0".
    #[serde(rename = "TLS.ver")]
    pub ver: String,
    /// `TLS.identifier`: the account the UserSig is for.
    #[serde(rename = "TLS.identifier")]
    pub identifier: String,
    /// `TLS.sdkappid`.
    #[serde(rename = "TLS.sdkappid")]
    pub sdkappid: u64,
    /// `TLS.expire`: lifetime in seconds.
    #[serde(rename = "TLS.expire")]
    pub expire: i64,
    /// `TLS.time`: issue time, Unix seconds.
    #[serde(rename = "TLS.time")]
    pub time: i64,
    /// `TLS.sig`: base64 of the HMAC.
    #[serde(rename = "TLS.sig")]
    pub sig: String,
}

/// Why a UserSig was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserSigError {
    /// Not decodable (base64, zlib or JSON).
    #[error("malformed UserSig: {0}")]
    Malformed(String),
    /// Issued for another app.
    #[error("UserSig is for SDKAppID {0}")]
    WrongApp(u64),
    /// Issued for another account.
    #[error("UserSig is for identifier {0:?}")]
    WrongIdentifier(String),
    /// Past `time + expire`.
    #[error("UserSig expired")]
    Expired,
    /// `TLS.sig` does not match the key.
    #[error("UserSig signature does not match")]
    BadSignature,
}

fn content_sig(key: &str, identifier: &str, sdkappid: u64, time: i64, expire: i64) -> String {
    let content = format!(
        "TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(content.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn to_url_alphabet(b64: &str) -> String {
    b64.chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

/// Generates a UserSig for `identifier`, issued at `time` and valid for `expire` seconds.
pub fn gen_usersig(sdkappid: u64, key: &str, identifier: &str, expire: i64, time: i64) -> String {
    let fields = UserSigFields {
        ver: "2.0".into(),
        identifier: identifier.into(),
        sdkappid,
        expire,
        time,
        sig: content_sig(key, identifier, sdkappid, time, expire),
    };
    let json = serde_json::to_vec(&fields).unwrap_or_default();
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = zlib.write_all(&json);
    let compressed = zlib.finish().unwrap_or_default();
    to_url_alphabet(&STANDARD.encode(compressed))
}

/// Decodes a UserSig without checking it.
pub fn decode_usersig(usersig: &str) -> Result<UserSigFields, UserSigError> {
    let b64: String = usersig
        .trim()
        .chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            c => c,
        })
        .collect();
    let compressed = STANDARD
        .decode(b64)
        .map_err(|e| UserSigError::Malformed(format!("base64: {e}")))?;
    // A UserSig is a few hundred bytes; refuse to inflate a bomb.
    let mut json = Vec::new();
    ZlibDecoder::new(compressed.as_slice())
        .take(64 * 1024)
        .read_to_end(&mut json)
        .map_err(|e| UserSigError::Malformed(format!("zlib: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| UserSigError::Malformed(format!("json: {e}")))
}

/// Checks a UserSig the way the server does: app, identifier, expiry, signature.
pub fn verify_usersig(
    usersig: &str,
    sdkappid: u64,
    key: &str,
    identifier: &str,
    now_s: i64,
) -> Result<UserSigFields, UserSigError> {
    let fields = decode_usersig(usersig)?;
    if fields.sdkappid != sdkappid {
        return Err(UserSigError::WrongApp(fields.sdkappid));
    }
    if fields.identifier != identifier {
        return Err(UserSigError::WrongIdentifier(fields.identifier));
    }
    if now_s > fields.time.saturating_add(fields.expire) {
        return Err(UserSigError::Expired);
    }
    let expected = content_sig(
        key,
        &fields.identifier,
        fields.sdkappid,
        fields.time,
        fields.expire,
    );
    if !hookline::secret::secret_eq(expected.as_bytes(), fields.sig.as_bytes()) {
        return Err(UserSigError::BadSignature);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    const TIME: i64 = 1_700_000_000;
    /// PyPI tls-sig-api-v2 1.1, row 1 of PLATFORMS.md §6.1.
    const PYTHON_ADMIN: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkElNyM-Myi0uKEkvyi2BKilOyEwsKMlOACgxNDKAAKpdaUZBZlAqSMTU1NUKIl2TmgkXN0dQXZ6aD7PFyrqpIzHOz8AsJiUgsNcnVNsqwLC8zT4-0yqv0yy7ONajINfRzjQg1MjexVaoFANTGNgc_";
    /// npm tls-sig-api-v2 1.0.2, same inputs.
    const NODE_ADMIN: &str = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwokpuZl5mcUlRYkl*UVQBcUp2YkFBZkpSlaGJgZQAJEpycxNVbIyNEcVTa0oyCwCiZuamhrBRYsz05WslLycqyoS89ws-EJCIhJLTXK1jTIsy8vM0yO98ir9sotzDSpyDf1cI0KNzE1slWoBQr40pw__";
    /// PyPI lib, row 3.
    const PYTHON_ROBOT: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkHIKcQpQNDAxhssUp2YkFBZkpQDlDEwMogMqlVhRkFqUCZSzMTOCCJZm5ICFDczTFxZnpIPMtQ4pdM4OzTYISzQwD-Px8XTPSw7xSkzPDzM0jiyNKy6MqzCwNIrP8zF2KbZVqAQDbMY4_";

    #[test]
    fn generated_usersigs_carry_the_reference_fields_and_sig() {
        let rows = [
            (
                "administrator",
                15_552_000,
                "JCzxanF8NTTXau4m+2h9wv7gYJnyNksm0xm1NEXU274=",
            ),
            (
                "xiaojun",
                15_552_000,
                "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4=",
            ),
            (
                "@RBT#001",
                86_400,
                "9TsEiSk4Ra61PNNMEhgVJeciV77YsXuwZx690YjN7Ds=",
            ),
        ];
        for (identifier, expire, sig) in rows {
            let usersig = gen_usersig(1_400_000_000, KEY, identifier, expire, TIME);
            assert!(
                usersig
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "*-_".contains(c)),
                "{usersig}"
            );
            let fields = decode_usersig(&usersig).unwrap();
            assert_eq!(
                fields,
                UserSigFields {
                    ver: "2.0".into(),
                    identifier: identifier.into(),
                    sdkappid: 1_400_000_000,
                    expire,
                    time: TIME,
                    sig: sig.into()
                }
            );
            assert_eq!(
                verify_usersig(&usersig, 1_400_000_000, KEY, identifier, TIME).unwrap(),
                fields
            );
        }
    }

    #[test]
    fn the_official_libraries_usersigs_decode_and_verify() {
        for usersig in [PYTHON_ADMIN, NODE_ADMIN] {
            let fields =
                verify_usersig(usersig, 1_400_000_000, KEY, "administrator", TIME).unwrap();
            assert_eq!(fields.sig, "JCzxanF8NTTXau4m+2h9wv7gYJnyNksm0xm1NEXU274=");
            assert_eq!((fields.expire, fields.time), (15_552_000, TIME));
        }
        let robot = verify_usersig(PYTHON_ROBOT, 1_400_000_000, KEY, "@RBT#001", TIME).unwrap();
        assert_eq!(robot.sig, "9TsEiSk4Ra61PNNMEhgVJeciV77YsXuwZx690YjN7Ds=");
    }

    #[test]
    fn verification_refuses_the_wrong_app_account_key_or_time() {
        let usersig = gen_usersig(1_400_000_000, KEY, "administrator", 86_400, TIME);
        assert_eq!(
            verify_usersig(&usersig, 1_400_000_001, KEY, "administrator", TIME),
            Err(UserSigError::WrongApp(1_400_000_000))
        );
        assert!(matches!(
            verify_usersig(&usersig, 1_400_000_000, KEY, "admin2", TIME),
            Err(UserSigError::WrongIdentifier(_))
        ));
        assert_eq!(
            verify_usersig(&usersig, 1_400_000_000, "other-key", "administrator", TIME),
            Err(UserSigError::BadSignature)
        );
        assert_eq!(
            verify_usersig(&usersig, 1_400_000_000, KEY, "administrator", TIME + 86_401),
            Err(UserSigError::Expired)
        );
        assert!(
            verify_usersig(&usersig, 1_400_000_000, KEY, "administrator", TIME + 86_400).is_ok()
        );
        assert!(matches!(
            decode_usersig("not a usersig!"),
            Err(UserSigError::Malformed(_))
        ));
        assert!(matches!(
            decode_usersig("eJyr"),
            Err(UserSigError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn any_identifier_round_trips(identifier in "[@#A-Za-z0-9_.-]{1,32}", expire in 1i64..400_000_000, time in 0i64..4_000_000_000) {
            let usersig = gen_usersig(1_400_000_000, KEY, &identifier, expire, time);
            let fields = verify_usersig(&usersig, 1_400_000_000, KEY, &identifier, time).unwrap();
            prop_assert_eq!(fields.identifier, identifier);
        }

        #[test]
        fn decoding_garbage_never_panics(s in "\\PC{0,200}") {
            let _ = decode_usersig(&s);
        }
    }
}
