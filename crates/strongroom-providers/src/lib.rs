//! Key providers: the one interface Strongroom uses for keys that live somewhere else — a
//! cloud KMS, Vault/OpenBao Transit, an HSM — so that key sets, envelopes and external keys
//! are written once over all of them (`issues show 5`, `docs/providers.md`).
//!
//! A provider is declared in the server's configuration file (TOML) as
//! `[providers.<name>] kind = "…"` plus its own settings; [`Config::parse`] reads that file
//! and [`Config::build`] makes the providers. Implemented: `vault-transit`, `aws-kms`, `pkcs11`,
//! `gcp-kms` and `azure-keyvault`, each behind the cargo feature of that name. Core
//! holds no HTTP: providers live here, behind this trait.
//!
//! **Invariants:** plaintext data keys and credentials never appear in errors, logs or
//! `Debug` output; every call has a timeout; errors say whether retrying may help.

#![warn(missing_docs)]

#[cfg(feature = "aws-kms")]
pub mod aws_kms;
#[cfg(feature = "azure-keyvault")]
pub mod azure_keyvault;
#[cfg(any(
    feature = "vault-transit",
    feature = "aws-kms",
    feature = "pkcs11",
    feature = "gcp-kms",
    feature = "azure-keyvault"
))]
mod config;
#[cfg(any(feature = "pkcs11", feature = "azure-keyvault"))]
mod der;
pub mod failover;
#[cfg(feature = "gcp-kms")]
pub mod gcp_kms;
#[cfg(any(
    feature = "vault-transit",
    feature = "gcp-kms",
    feature = "azure-keyvault"
))]
mod http;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
#[cfg(feature = "vault-transit")]
pub mod vault_transit;

#[cfg(any(
    feature = "vault-transit",
    feature = "aws-kms",
    feature = "pkcs11",
    feature = "gcp-kms",
    feature = "azure-keyvault"
))]
pub use config::{Config, KeySetDefaults, ProviderConfig};
pub use failover::FailoverPolicy;

/// The provider name Strongroom's own keys go by (`software:<ring>/<key>`); a configuration
/// file may not use it.
pub const SOFTWARE: &str = "software";

use std::time::Duration;

use strongroom_crypto::{EncryptionContext, KeyMaterial};

/// Why a provider call failed. Messages name the provider and key, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider has no such key.
    #[error("{provider}: key {key:?} not found")]
    NotFound {
        /// The provider's configured name.
        provider: String,
        /// The provider's key name.
        key: String,
    },
    /// The provider refused Strongroom's credentials for this operation.
    #[error("{provider}: access denied ({detail})")]
    AccessDenied {
        /// The provider's configured name.
        provider: String,
        /// What the provider said (no secrets).
        detail: String,
    },
    /// The provider could not open the ciphertext (altered, another key, another context).
    #[error("{provider}: the wrapped key does not open with this key and context")]
    InvalidCiphertext {
        /// The provider's configured name.
        provider: String,
    },
    /// The provider answered and refused the request for a reason of its own (a key in the
    /// wrong state, a parameter it does not take). The provider is up: not retryable, and
    /// no circuit breaker counts it.
    #[error("{provider}: refused ({detail})")]
    Refused {
        /// The provider's configured name.
        provider: String,
        /// What the provider said (no secrets).
        detail: String,
    },
    /// The provider or this kind of provider does not offer the operation.
    #[error("{provider}: {operation} is not supported by this provider")]
    Unsupported {
        /// The provider's configured name.
        provider: String,
        /// The operation asked for.
        operation: &'static str,
    },
    /// The provider did not answer in time, or answered with a server error.
    #[error("{provider}: unavailable ({detail})")]
    Unavailable {
        /// The provider's configured name.
        provider: String,
        /// What happened (no secrets).
        detail: String,
        /// Whether a retry may succeed (timeouts, 5xx, connection failures).
        retryable: bool,
    },
    /// The configuration is wrong.
    #[error("provider configuration: {0}")]
    Config(String),
}

impl ProviderError {
    /// `Refused` by `provider`.
    pub fn refused(provider: &str, detail: impl Into<String>) -> Self {
        ProviderError::Refused {
            provider: provider.to_string(),
            detail: detail.into(),
        }
    }

    /// `Unavailable` from `provider`, retryable or not.
    pub fn unavailable(provider: &str, detail: impl Into<String>, retryable: bool) -> Self {
        ProviderError::Unavailable {
            provider: provider.to_string(),
            detail: detail.into(),
            retryable,
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable {
                retryable: true,
                ..
            }
        )
    }
}

/// Result alias.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// A key as a provider describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKey {
    /// The provider's name for the key.
    pub name: String,
    /// The provider's key type, in its own words (e.g. `aes256-gcm96`).
    pub key_type: String,
    /// The newest version, where the provider versions keys.
    pub latest_version: Option<u32>,
    /// Whether the provider will encrypt with it.
    pub can_encrypt: bool,
    /// The rotation period, where the provider rotates on a schedule.
    pub rotation_period: Option<Duration>,
    /// Whether the provider has the key (or, where it switches versions rather than keys,
    /// its current version) enabled, where it says.
    pub enabled: Option<bool>,
}

/// The state of one version of a provider key, in common terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionState {
    /// Usable.
    Enabled,
    /// Switched off; can be switched on again.
    Disabled,
    /// Scheduled for destruction; can still be restored at the provider.
    PendingDestruction,
    /// Gone.
    Destroyed,
    /// Another state, in the provider's own words (e.g. Cloud KMS `PENDING_GENERATION`).
    Other(String),
}

impl VersionState {
    /// The name in API answers: `enabled`, `disabled`, `pending-destruction`, `destroyed`,
    /// or the provider's own word.
    pub fn as_str(&self) -> &str {
        match self {
            VersionState::Enabled => "enabled",
            VersionState::Disabled => "disabled",
            VersionState::PendingDestruction => "pending-destruction",
            VersionState::Destroyed => "destroyed",
            VersionState::Other(s) => s,
        }
    }
}

/// One version of a provider key, as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderVersion {
    /// The version in the provider's own terms (`"3"`, an Azure version id).
    pub version: String,
    /// Its state.
    pub state: VersionState,
    /// Whether new wraps or signatures use it.
    pub primary: bool,
    /// When it was made (RFC 3339), where the provider says.
    pub created_at: Option<String>,
}

/// A data key wrapped by a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// The wrapped bytes, as the provider returned them.
    pub ciphertext: Vec<u8>,
    /// The key version that wrapped it, if the provider says.
    pub key_version: Option<u32>,
    /// The provider's request id, for the audit event.
    pub request_id: Option<String>,
}

/// A data key a provider unwrapped.
pub struct Unwrapped {
    /// The data key.
    pub plaintext: KeyMaterial,
    /// The provider's request id, for the audit event.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for Unwrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unwrapped")
            .field("plaintext", &"[REDACTED]")
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// A signature a provider made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// In Strongroom's format for the algorithm: ECDSA as DER, RSA as the raw signature.
    pub signature: Vec<u8>,
    /// The provider's request id, for the audit event.
    pub request_id: Option<String>,
}

/// What Strongroom needs from any place keys live. Operations a provider does not offer
/// answer [`ProviderError::Unsupported`].
#[async_trait::async_trait]
pub trait KeyProvider: std::fmt::Debug + Send + Sync + 'static {
    /// The provider's configured name (`[providers.<name>]`).
    fn name(&self) -> &str;
    /// The provider's kind (`vault-transit`, …).
    fn kind(&self) -> &'static str;
    /// Describes one of the provider's keys.
    async fn describe(&self, key: &str) -> Result<ProviderKey>;
    /// Wraps a data key under `key`, bound to `context` (the same context must unwrap it).
    async fn wrap(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped>;
    /// Unwraps what [`KeyProvider::wrap`] returned.
    async fn unwrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Unwrapped>;
    /// Wraps again, under `key`'s current version, what [`KeyProvider::wrap`] returned (after
    /// a rotation), under the same context. Where the provider re-wraps in one call (Transit
    /// `rewrap`) the data key never leaves it; otherwise this unwraps and wraps.
    async fn rewrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped> {
        rewrap_here(self, key, ciphertext, context).await
    }
    /// A fresh data key of `len` bytes, generated by the provider where it can (Transit
    /// `datakey`, AWS `GenerateDataKey`: the provider's own random source, an HSM's for
    /// some), else here, and wrapped under `key` bound to `context` as
    /// [`KeyProvider::wrap`] would.
    async fn generate_data_key(
        &self,
        key: &str,
        len: usize,
        context: &EncryptionContext,
    ) -> Result<(Unwrapped, Wrapped)> {
        generate_here(self, key, len, context).await
    }
    /// Makes a new key version the one that wraps; returns it in the provider's own terms
    /// (`"3"`, or an Azure version id).
    async fn rotate(&self, key: &str) -> Result<String> {
        let _ = key;
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation: "rotate",
        })
    }
    /// Sets (`Some`) or turns off (`None`) the provider's own automatic rotation of `key`.
    async fn set_rotation_period(&self, key: &str, period: Option<Duration>) -> Result<()> {
        let _ = (key, period);
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation: "set-rotation-period",
        })
    }
    /// The SubjectPublicKeyInfo (DER) of an asymmetric key's current version.
    async fn public_key(&self, key: &str) -> Result<Vec<u8>> {
        let _ = key;
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation: "get-public-key",
        })
    }
    /// Signs a message, or a digest already hashed with `algorithm`'s hash, with an
    /// asymmetric key as `algorithm` (an ECDSA or RSA signing algorithm) says.
    async fn sign(
        &self,
        key: &str,
        algorithm: strongroom_crypto::Algorithm,
        input: strongroom_crypto::keys::SignInput<'_>,
    ) -> Result<Signed> {
        let _ = (key, algorithm, input);
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation: "sign",
        })
    }
    /// The provider's own automatic rotation period of `key` (`None`: it does not rotate it).
    async fn rotation_schedule(&self, key: &str) -> Result<Option<Duration>> {
        self.describe(key).await.map(|d| d.rotation_period)
    }
    /// Every version of `key`, oldest first, as the provider lists them.
    async fn list_versions(&self, key: &str) -> Result<Vec<ProviderVersion>> {
        let _ = key;
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation: "list-versions",
        })
    }
    /// Enables or disables `key` at the provider: the whole key where the provider switches
    /// keys (AWS KMS), its current version where it switches versions (Cloud KMS, Key
    /// Vault). Applies to every user of that provider key, not only Strongroom.
    async fn set_enabled(&self, key: &str, enabled: bool) -> Result<()> {
        let _ = (key, enabled);
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation: if enabled { "enable-key" } else { "disable-key" },
        })
    }
    /// Generates a new key named `key` inside the provider (an HSM's token), whose
    /// material never leaves it; refused if the name is taken. Only some kinds can.
    async fn create_key(&self, key: &str) -> Result<ProviderKey> {
        let _ = key;
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation: "create-key",
        })
    }
    /// Generates a new asymmetric signing key pair named `key` inside the provider for
    /// `algorithm`; the private key never leaves it. Only some kinds can.
    async fn create_signing_key(
        &self,
        key: &str,
        algorithm: strongroom_crypto::Algorithm,
    ) -> Result<ProviderKey> {
        let _ = (key, algorithm);
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation: "create-key (signing)",
        })
    }
    /// Destroys the key `key` that [`KeyProvider::create_key`] or
    /// [`KeyProvider::create_signing_key`] made, every version of it; a key already gone is
    /// not an error. Only kinds that create keys can.
    async fn destroy_key(&self, key: &str) -> Result<()> {
        let _ = key;
        Err(ProviderError::Unsupported {
            provider: self.name().to_string(),
            operation: "destroy-key",
        })
    }
    /// Whether the provider answers (cheaply, with Strongroom's credentials).
    async fn health(&self) -> Result<()>;
}

/// [`KeyProvider::generate_data_key`] for providers that do not make data keys: random
/// bytes from here, wrapped by the provider.
pub async fn generate_here<P: KeyProvider + ?Sized>(
    p: &P,
    key: &str,
    len: usize,
    context: &EncryptionContext,
) -> Result<(Unwrapped, Wrapped)> {
    let dk = KeyMaterial::new(strongroom_crypto::rand::bytes(len).map_err(|_| {
        ProviderError::unavailable(p.name(), "no random bytes for a data key", false)
    })?);
    // Exposed to wrap it.
    let w = p.wrap(key, dk.expose_secret(), context).await?;
    Ok((
        Unwrapped {
            plaintext: dk,
            request_id: w.request_id.clone(),
        },
        w,
    ))
}

/// [`KeyProvider::rewrap`] for providers that cannot re-wrap in one call: unwrap, then wrap
/// under the current version (the data key is held here, zeroized, for the two calls).
pub async fn rewrap_here<P: KeyProvider + ?Sized>(
    p: &P,
    key: &str,
    ciphertext: &[u8],
    context: &EncryptionContext,
) -> Result<Wrapped> {
    let opened = p.unwrap(key, ciphertext, context).await?;
    // Exposed to wrap it again.
    p.wrap(key, opened.plaintext.expose_secret(), context).await
}

/// Every provider's `timeout` when its table names none.
#[cfg(any(
    feature = "vault-transit",
    feature = "aws-kms",
    feature = "pkcs11",
    feature = "gcp-kms",
    feature = "azure-keyvault"
))]
pub(crate) fn default_timeout() -> String {
    "5s".into()
}

/// The DER inside the PEM block labelled `label` (`PUBLIC KEY`, `PRIVATE KEY`), if any.
#[cfg(any(feature = "vault-transit", feature = "gcp-kms"))]
pub(crate) fn pem_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let (begin, end) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| *l != end)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()
        .filter(|d| !d.is_empty())
}

#[cfg(any(
    feature = "vault-transit",
    feature = "gcp-kms",
    feature = "azure-keyvault"
))]
/// RFC 3339 UTC of Unix seconds (civil date from days, Howard Hinnant's algorithm).
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses `"5s"`, `"500ms"`, `"2m"` (configuration timeouts).
#[cfg(any(
    feature = "vault-transit",
    feature = "aws-kms",
    feature = "pkcs11",
    feature = "gcp-kms",
    feature = "azure-keyvault"
))]
pub(crate) fn parse_duration(s: &str, field: &str) -> Result<Duration> {
    let bad =
        || ProviderError::Config(format!("{field}: expected e.g. 500ms, 5s or 2m, got {s:?}"));
    let (num, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1u64)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        return Err(bad());
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms = n
        .checked_mul(unit)
        .filter(|ms| *ms > 0 && *ms <= 600_000)
        .ok_or_else(bad)?;
    Ok(Duration::from_millis(ms))
}

#[cfg(all(
    test,
    any(
        feature = "vault-transit",
        feature = "gcp-kms",
        feature = "azure-keyvault"
    )
))]
mod tests {
    #[test]
    fn rfc3339_of_unix_seconds() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
