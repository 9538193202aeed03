//! Sealing the secret store's values with a key derived from the cluster secret.
//!
//! The key is HKDF-SHA256(cluster secret, info [`SEAL_KEY_INFO`]); a value is sealed
//! with XChaCha20-Poly1305 under a random 24-byte nonce, with the secret's name as
//! associated data, so that a sealed value opens only under the name it was sealed for.
//! Only sealed values are replicated, logged by Raft or snapshotted: a node opens one
//! when it needs the clear text, and the clear text is wiped when dropped.

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Secret;

/// The HKDF info of the secret store's key; a new version of the scheme gets a new one.
const SEAL_KEY_INFO: &[u8] = b"eventide secret store v1";

/// The bytes of a nonce.
pub const NONCE_BYTES: usize = 24;
/// What sealing adds to a value: the Poly1305 tag.
pub const SEAL_OVERHEAD: usize = 16;

/// A sealed value: the nonce it was sealed under and the ciphertext with its tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: [u8; NONCE_BYTES],
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(<redacted>, {} bytes)", self.ciphertext.len())
    }
}

/// Why a value could not be sealed or opened. Never holds any part of the value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("failed to seal the value of secret {name}")]
    Seal { name: String },
    #[error("failed to open secret {name}: wrong cluster secret, other name or damaged value")]
    Open { name: String },
}

/// Seals and opens the secret store's values; built from the cluster secret.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    /// The sealer of the cluster with this secret.
    pub fn new(secret: &Secret) -> Sealer {
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, secret.bytes())
            .expand(SEAL_KEY_INFO, key.as_mut())
            .expect("32 bytes is a valid hkdf-sha256 output length");
        Sealer { cipher: XChaCha20Poly1305::new(key.as_ref().into()) }
    }

    /// Seals `plaintext` as the value of secret `name`, under a fresh random nonce.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<Sealed, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad: name.as_bytes() })
            .map_err(|_| SealError::Seal { name: name.to_owned() })?;
        Ok(Sealed { nonce: nonce.into(), ciphertext })
    }

    /// Opens the value of secret `name`; fails unless it was sealed by this cluster's
    /// secret for this very name and is unchanged.
    pub fn open(&self, name: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload { msg: &sealed.ciphertext, aad: name.as_bytes() },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open { name: name.to_owned() })
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(text: &str) -> Sealer {
        Sealer::new(&Secret::try_new(text.as_bytes()).expect("valid secret"))
    }

    const VALUE: &[u8] = b"hunter2-deploy-key";

    #[test]
    fn a_sealed_value_opens_to_itself() {
        let sealer = sealer("the first cluster secret");
        let sealed = sealer.seal("DEPLOY_KEY", VALUE).expect("seals");
        assert_eq!(sealed.ciphertext.len(), VALUE.len() + SEAL_OVERHEAD);
        assert!(!sealed.ciphertext.windows(VALUE.len()).any(|w| w == VALUE));
        assert_eq!(sealer.open("DEPLOY_KEY", &sealed).expect("opens").as_slice(), VALUE);
        let empty = sealer.seal("EMPTY", b"").expect("seals");
        assert!(sealer.open("EMPTY", &empty).expect("opens").is_empty());
    }

    #[test]
    fn another_cluster_secret_cannot_open_it() {
        let sealed = sealer("the first cluster secret").seal("DEPLOY_KEY", VALUE).expect("seals");
        let error = sealer("the other cluster secret").open("DEPLOY_KEY", &sealed).unwrap_err();
        assert_eq!(error, SealError::Open { name: "DEPLOY_KEY".into() });
    }

    #[test]
    fn it_opens_under_no_other_name() {
        let sealer = sealer("the first cluster secret");
        let sealed = sealer.seal("DEPLOY_KEY", VALUE).expect("seals");
        assert!(sealer.open("OTHER_KEY", &sealed).is_err());
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused() {
        let sealer = sealer("the first cluster secret");
        let sealed = sealer.seal("DEPLOY_KEY", VALUE).expect("seals");
        for at in 0..sealed.ciphertext.len() {
            let mut tampered = sealed.clone();
            tampered.ciphertext[at] ^= 1;
            assert!(sealer.open("DEPLOY_KEY", &tampered).is_err(), "ciphertext byte {at}");
        }
        for at in 0..NONCE_BYTES {
            let mut tampered = sealed.clone();
            tampered.nonce[at] ^= 1;
            assert!(sealer.open("DEPLOY_KEY", &tampered).is_err(), "nonce byte {at}");
        }
        let mut cut = sealed;
        cut.ciphertext.pop();
        assert!(sealer.open("DEPLOY_KEY", &cut).is_err());
    }

    #[test]
    fn every_seal_has_its_own_nonce() {
        let sealer = sealer("the first cluster secret");
        let a = sealer.seal("DEPLOY_KEY", VALUE).expect("seals");
        let b = sealer.seal("DEPLOY_KEY", VALUE).expect("seals");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn debug_shows_no_value() {
        let sealer = sealer("the first cluster secret");
        let sealed = sealer.seal("DEPLOY_KEY", VALUE).expect("seals");
        assert_eq!(format!("{sealed:?}"), "Sealed(<redacted>, 34 bytes)");
        assert_eq!(format!("{sealer:?}"), "Sealer(<redacted>)");
    }
}
