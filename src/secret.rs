//! Secrets handed to callers: API keys and session tokens. Each is 192 random bits from the
//! operating system, shown once, and stored only as its SHA-256 digest (a random secret of
//! that size needs no slow password hash: there is nothing to guess). The prefix says what a
//! secret is, for people and for secret scanners.

use std::fmt;

use sha2::{Digest, Sha256};

/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "ask_";
/// Prefix of session tokens.
pub const SESSION_TOKEN_PREFIX: &str = "ast_";

const RANDOM_BYTES: usize = 24;

/// The OS random source failed; nothing can be issued safely.
#[derive(Debug, thiserror::Error)]
#[error("the system random source failed: {0}")]
pub struct RandomError(String);

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A secret as issued: shown to its holder once, never logged (its `Debug` is redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A new random secret with `prefix`.
    pub fn generate(prefix: &str) -> Result<Self, RandomError> {
        let mut bytes = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
        Ok(Self(format!("{prefix}{}", hex(&bytes))))
    }

    /// Wraps a secret given by an operator (the bootstrap key).
    pub fn from_text(text: String) -> Self {
        Self(text)
    }

    /// The secret itself, to hand to its holder.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored and compared: the SHA-256 digest, hex.
    pub fn digest(&self) -> String {
        digest(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The SHA-256 digest of a presented credential, hex.
pub fn digest(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let a = Secret::generate(API_KEY_PREFIX).unwrap();
        let b = Secret::generate(API_KEY_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("ask_"));
        assert_eq!(a.expose().len(), 4 + 48);
        assert_eq!(a.digest().len(), 64);
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }
}
