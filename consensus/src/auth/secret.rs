//! The cluster secret, and the values derived from it with HMAC-SHA256 so that the
//! secret itself never has to leave the node (API token, gossip cluster id, proofs).

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// The fewest bytes a secret may have (after trimming surrounding whitespace).
pub const MIN_SECRET_LEN: usize = 16;

/// Label of the API token: `hex(HMAC(secret, label))`.
const API_TOKEN_LABEL: &[u8] = b"eventide-api-token";
/// Label of the gossip cluster id.
const GOSSIP_ID_LABEL: &[u8] = b"eventide-gossip-cluster-id";

/// Why a secret was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is empty")]
    Empty,
    #[error("the secret has {len} bytes, at least {MIN_SECRET_LEN} are needed")]
    TooShort { len: usize },
}

/// The cluster secret. Cheap to clone; its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// A secret from the bytes of a file or variable; surrounding whitespace (a trailing
    /// newline) is not part of it.
    pub fn try_new(bytes: &[u8]) -> Result<Secret, SecretError> {
        let text = bytes.trim_ascii();
        match text.len() {
            0 => Err(SecretError::Empty),
            len if len < MIN_SECRET_LEN => Err(SecretError::TooShort { len }),
            _ => Ok(Secret(Arc::from(text))),
        }
    }

    /// The secret's bytes, for deriving keys (HKDF) inside this module only.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A fresh HMAC keyed with the secret.
    pub(super) fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; the error case cannot happen.
        <HmacSha256 as Mac>::new_from_slice(&self.0).expect("hmac accepts keys of any length")
    }

    /// `HMAC(secret, parts joined)` as 32 bytes.
    pub fn derive(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Checks, in constant time, that `proof` is `derive(parts)`.
    pub fn verify_derived(&self, parts: &[&[u8]], proof: &[u8]) -> bool {
        let mut mac = self.mac();
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(proof).is_ok()
    }

    /// The bearer token of the public API: clients that may mutate hold it, not the secret.
    pub fn api_token(&self) -> String {
        to_hex(&self.derive(&[API_TOKEN_LABEL]))
    }

    /// True if `token` is this secret's API token (constant time).
    pub fn is_api_token(&self, token: &str) -> bool {
        from_hex(token.trim()).is_some_and(|bytes| self.verify_derived(&[API_TOKEN_LABEL], &bytes))
    }

    /// The chitchat cluster id: nodes with different secrets ignore each other's gossip.
    pub fn gossip_cluster_id(&self) -> String {
        format!("eventide-{}", &to_hex(&self.derive(&[GOSSIP_ID_LABEL]))[..32])
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    /// Compares through derived values, so that the comparison time says nothing.
    fn eq(&self, other: &Secret) -> bool {
        other.verify_derived(&[API_TOKEN_LABEL], &self.derive(&[API_TOKEN_LABEL]))
    }
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Hex (either case) to bytes; `None` for anything else.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    text.as_bytes().chunks(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::try_new(text.as_bytes()).expect("valid secret")
    }

    #[test]
    fn short_and_empty_secrets_are_refused() {
        assert_eq!(Secret::try_new(b"  \n").unwrap_err(), SecretError::Empty);
        assert_eq!(Secret::try_new(b"short\n").unwrap_err(), SecretError::TooShort { len: 5 });
        assert!(Secret::try_new(b"0123456789abcdef\n").is_ok());
    }

    #[test]
    fn a_trailing_newline_is_not_part_of_the_secret() {
        assert_eq!(secret("0123456789abcdef\n"), secret("0123456789abcdef"));
        assert_ne!(secret("0123456789abcdef"), secret("0123456789abcdeF"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let text = format!("{:?}", secret("do-not-print-this-secret"));
        assert!(!text.contains("do-not-print"), "{text}");
    }

    #[test]
    fn the_api_token_is_checked_and_differs_per_secret() {
        let a = secret("the first cluster secret");
        let b = secret("the other cluster secret");
        let token = a.api_token();
        assert_eq!(token.len(), 64);
        assert!(a.is_api_token(&token));
        assert!(a.is_api_token(&token.to_uppercase()));
        assert!(!b.is_api_token(&token));
        assert!(!a.is_api_token("not hex"));
        assert!(!a.is_api_token(""));
        assert!(!token.contains("first"));
    }

    #[test]
    fn gossip_ids_differ_per_secret() {
        let a = secret("the first cluster secret");
        let b = secret("the other cluster secret");
        assert_eq!(a.gossip_cluster_id(), a.clone().gossip_cluster_id());
        assert_ne!(a.gossip_cluster_id(), b.gossip_cluster_id());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(to_hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("00abFF"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é1"), None);
    }
}
