//! Secrets that cannot leak through `Debug`/`Display`, and the one constant-time comparison
//! every webhook token goes through.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A configuration secret (app secret, callback token, access token).
///
/// `Debug` and `Display` print `***`, so a config struct can be logged or shown in an error
/// without exposing it. Read the value with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call sites are easy to audit by grepping for `expose`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, stable, non-reversible name for this secret (12 hex digits of its SHA-256), for
    /// namespacing store keys by a credential without storing the credential.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..6])
    }

    /// Compares a presented value with this secret in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        secret_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Constant-time equality for secrets of any length.
///
/// Both sides are hashed first so that neither the content nor the length of the expected secret
/// is revealed by timing (`subtle`'s slice comparison returns early on a length mismatch).
pub fn secret_eq(expected: &[u8], presented: &[u8]) -> bool {
    let a = Sha256::digest(expected);
    let b = Sha256::digest(presented);
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert!(!format!("{s:?}{s}").contains("hunter2"));
    }

    #[test]
    fn fingerprints_are_short_stable_and_distinct() {
        let a = Secret::new("token-a");
        assert_eq!(a.fingerprint().len(), 12);
        assert_eq!(a.fingerprint(), Secret::new("token-a").fingerprint());
        assert_ne!(a.fingerprint(), Secret::new("token-b").fingerprint());
        assert!(!a.fingerprint().contains("token"));
    }

    #[test]
    fn matches_only_the_exact_value() {
        let s = Secret::new("abc123");
        assert!(s.matches("abc123"));
        assert!(!s.matches("abc124"));
        assert!(!s.matches("abc12"));
        assert!(!s.matches(""));
    }
}
