//! The one error enum every front-end maps to its protocol.
//!
//! No `#[non_exhaustive]` and no catch-all arms in the front-ends: a new variant must break
//! every protocol's mapping until someone decides what it means there.

use strongroom_crypto::Purpose;
use strongroom_store::StoreError;

/// Why an operation did not succeed. Messages never contain key material, plaintext, tokens
/// or encryption-context values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential, or one that is malformed, unknown, expired or revoked. One message for
    /// every cause.
    #[error("missing or invalid credentials")]
    Unauthenticated,
    /// A signed request (AWS SigV4) names a known access key, but its signature does not
    /// match, its scope is wrong, or it was signed too long ago. The reason names no secret.
    #[error("{0}")]
    InvalidSignature(String),
    /// The principal may not do this.
    #[error("access denied")]
    AccessDenied,
    /// The named resource does not exist.
    #[error("{kind}{} not found", if name.is_empty() { String::new() } else { format!(" {name}") })]
    NotFound {
        /// `key ring`, `key`, `key version`, `alias`, `token`.
        kind: &'static str,
        /// The name as the caller gave it (names are not secret).
        name: String,
    },
    /// The name is taken.
    #[error("{kind}{} already exists", if name.is_empty() { String::new() } else { format!(" {name}") })]
    AlreadyExists {
        /// What kind of resource.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The request is malformed or out of range.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field at fault.
        field: String,
        /// What is wrong, without echoing the value.
        reason: String,
    },
    /// The resource is in a state that does not allow the operation.
    #[error("{resource} is {state}; {operation} {requirement}")]
    InvalidState {
        /// What is in the wrong state, e.g. `key payments/card version 2`.
        resource: String,
        /// The state it is in.
        state: &'static str,
        /// The operation refused.
        operation: &'static str,
        /// What the operation needs, e.g. `needs it enabled`.
        requirement: &'static str,
    },
    /// The key's purpose does not allow this operation.
    #[error("key {key} has purpose {purpose}; {operation} needs a key of purpose {required}")]
    InvalidKeyUsage {
        /// The key.
        key: String,
        /// Its purpose.
        purpose: Purpose,
        /// The operation refused.
        operation: &'static str,
        /// The purpose the operation needs.
        required: &'static str,
    },
    /// The ciphertext is malformed, altered, for another key, or the context differs.
    #[error("ciphertext is not valid for this key and context")]
    InvalidCiphertext,
    /// The request named a key, and the ciphertext was made under another key. Only said
    /// to a caller allowed to use the key it named; the native API reports it as
    /// `invalid_ciphertext`, the AWS API as `IncorrectKeyException`.
    #[error("the ciphertext was not made under the key named in the request")]
    IncorrectKey,
    /// The key changed while the operation ran; retry.
    #[error("{0}")]
    Conflict(String),
    /// The principal is over its request quota for this class of operation.
    #[error("too many {class} requests; retry after {retry_after_secs} s")]
    Throttled {
        /// The quota class (`crypto`, `read`, `write`, `keygen`).
        class: &'static str,
        /// When a request of this class will be allowed again, in whole seconds (at least 1).
        retry_after_secs: u64,
    },
    /// A dependency (store, audit log) cannot serve now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an impossible state. The detail is logged with the request id, never sent.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The stable, documented error code (`docs/api.md`), also written to the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidSignature(_) => "invalid_signature",
            Error::AccessDenied => "access_denied",
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::InvalidState { .. } => "invalid_state",
            Error::InvalidKeyUsage { .. } => "invalid_key_usage",
            Error::InvalidCiphertext => "invalid_ciphertext",
            Error::IncorrectKey => "incorrect_key",
            Error::Conflict(_) => "conflict",
            Error::Throttled { .. } => "throttled",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// Shorthand for an `InvalidArgument`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            name: name.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(kind) => Error::AlreadyExists {
                kind,
                name: String::new(),
            },
            StoreError::NotFound(kind) => Error::not_found(kind, ""),
            StoreError::Conflict => {
                Error::Conflict("the resource was modified concurrently; retry".into())
            }
            StoreError::Unavailable(m) => Error::Unavailable(m),
            StoreError::Corrupt(m) => Error::Internal(format!("store: {m}")),
        }
    }
}

impl From<strongroom_crypto::Error> for Error {
    fn from(e: strongroom_crypto::Error) -> Self {
        use strongroom_crypto::Error as C;
        match e {
            C::InvalidCiphertext => Error::InvalidCiphertext,
            C::DigestLength { expected } => Error::invalid(
                "digest",
                format!("must be {expected} bytes for this key's algorithm"),
            ),
            C::DigestNotSupported => Error::invalid(
                "digest",
                "this key's algorithm signs messages only; send `message`",
            ),
            C::PlaintextTooLong => Error::invalid("plaintext", "too long for this key"),
            C::InvalidPublicKey => Error::invalid(
                "public_key",
                "is not a valid public key on this key's curve (SubjectPublicKeyInfo DER)",
            ),
            C::WrongAlgorithm => {
                Error::Internal("operation dispatched to the wrong algorithm".into())
            }
            C::Unseal | C::InvalidKeyMaterial => {
                Error::Internal("stored key material failed its integrity check".into())
            }
            C::Rng | C::Internal(_) => Error::Internal(e.to_string()),
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
