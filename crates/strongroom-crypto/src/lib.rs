//! Strongroom's cryptography: primitives over aws-lc-rs, secret-holding types, sealing under
//! the root key, and the ciphertext v1 codec.
//!
//! No I/O, no clock, no async. Formats are specified in `docs/formats/ciphertext-v1.md` and
//! `docs/sealing.md`. aws-lc-rs is the one crypto library in Strongroom (see `docs/crypto.md`).

#![warn(missing_docs)]

pub mod algorithm;
pub mod ciphertext;
pub mod context;
pub mod envelope;
pub mod hash;
pub mod import;
pub mod key_id;
pub mod keys;
pub mod rand;
pub mod seal;
pub mod secret;
pub mod sigv4;

pub use algorithm::{Algorithm, Purpose, RsaBits, Sha2, SignatureScheme};
pub use context::EncryptionContext;
pub use key_id::KeyId;
pub use seal::RootKey;
pub use secret::{KeyMaterial, Plaintext};

/// Errors from cryptographic operations. Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ciphertext is malformed, altered, or does not match the key and context. One
    /// variant for every cause, so callers cannot build an oracle from the error.
    #[error("ciphertext is not valid for this key and context")]
    InvalidCiphertext,
    /// Sealed key material did not open: wrong root key, altered blob or wrong binding.
    #[error("sealed key material failed to open")]
    Unseal,
    /// Stored key material does not fit its algorithm.
    #[error("key material does not match the key's algorithm")]
    InvalidKeyMaterial,
    /// The operation does not exist for this algorithm.
    #[error("operation not supported by the key's algorithm")]
    WrongAlgorithm,
    /// A digest of the wrong length was given for signing or verifying.
    #[error("digest must be {expected} bytes for this algorithm")]
    DigestLength {
        /// The length the algorithm's hash produces.
        expected: usize,
    },
    /// Ed25519 signs messages only.
    #[error("this algorithm signs messages, not digests")]
    DigestNotSupported,
    /// Plaintext too long for an RSA-OAEP key.
    #[error("plaintext too long for this key")]
    PlaintextTooLong,
    /// Another party's public key for key agreement is malformed or not on the key's curve.
    #[error("the public key is not a valid point on the key's curve")]
    InvalidPublicKey,
    /// The system random generator failed.
    #[error("random number generator failed")]
    Rng,
    /// A failure inside aws-lc that should not happen; the text names the step only.
    #[error("internal cryptographic error in {0}")]
    Internal(&'static str),
}
