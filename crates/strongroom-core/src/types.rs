//! Inputs and outputs of `KeyService` operations. Front-ends convert their wire types into
//! these and back; these never see serde.

use std::fmt;

use strongroom_crypto::{Algorithm, EncryptionContext, KeyId, Plaintext, Purpose};
use strongroom_store::{
    AliasName, KeyName, KeyRecord, KeyState, Labels, RingName, Timestamp, VersionRecord,
    VersionState,
};

use crate::error::{Error, Result};

/// Largest plaintext `encrypt` accepts (and largest message `sign` and `mac` accept).
pub const MAX_PLAINTEXT: usize = 64 * 1024;
/// Largest ciphertext `decrypt` accepts.
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + strongroom_crypto::ciphertext::OVERHEAD;
/// Data keys and random byte strings are 1 to this many bytes.
pub const MAX_RANDOM: usize = 1024;
/// Default data key length (AES-256).
pub const DEFAULT_DATA_KEY_LEN: usize = 32;
/// Destruction windows are at least this long (1 day)…
pub const MIN_DESTROY_WINDOW_SECS: i64 = 86_400;
/// …at most this long (120 days)…
pub const MAX_DESTROY_WINDOW_SECS: i64 = 120 * 86_400;
/// …and default to 30 days.
pub const DEFAULT_DESTROY_WINDOW_SECS: i64 = 30 * 86_400;
/// Rotation periods are at least a day…
pub const MIN_ROTATION_PERIOD_SECS: i64 = 86_400;
/// …and at most 100 years.
pub const MAX_ROTATION_PERIOD_SECS: i64 = 36_500 * 86_400;
/// Most labels on one resource.
pub const MAX_LABELS: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 1024;
/// Token lifetimes default to a day…
pub const DEFAULT_TOKEN_TTL_SECS: i64 = 86_400;
/// …and are at most a year.
pub const MAX_TOKEN_TTL_SECS: i64 = 366 * 86_400;

/// How a request names a key: `ring/key`, `alias/<alias>`, or the key's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// `ring/key`.
    Path(RingName, KeyName),
    /// `alias/<name>`.
    Alias(AliasName),
    /// The key id (a UUID).
    Id(KeyId),
}

impl KeyRef {
    /// Parses a key reference; `field` names the request field for the error.
    pub fn parse(s: &str, field: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                field,
                "expected `<key ring>/<key>`, `alias/<alias>` or a key id",
            )
        };
        if let Some(a) = s.strip_prefix("alias/") {
            return AliasName::try_new(a).map(KeyRef::Alias).map_err(|_| bad());
        }
        if let Ok(id) = s.parse::<KeyId>() {
            return Ok(KeyRef::Id(id));
        }
        let (ring, key) = s.split_once('/').ok_or_else(bad)?;
        Ok(KeyRef::Path(
            RingName::try_new(ring).map_err(|_| bad())?,
            KeyName::try_new(key).map_err(|_| bad())?,
        ))
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Path(r, k) => write!(f, "{r}/{k}"),
            KeyRef::Alias(a) => write!(f, "alias/{a}"),
            KeyRef::Id(id) => write!(f, "{id}"),
        }
    }
}

/// Parses a duration written as an integer with a unit: `90d`, `12h`, `30m`, `45s`.
pub fn parse_duration(s: &str, field: &str) -> Result<i64> {
    let bad = || {
        Error::invalid(
            field,
            "expected a whole number followed by s, m, h or d (e.g. 30d)",
        )
    };
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.len() > 12 {
        return Err(bad());
    }
    let n: i64 = num.parse().map_err(|_| bad())?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(mul).ok_or_else(bad)
}

/// Formats seconds as the largest exact unit (`2592000` → `30d`).
pub fn format_duration(secs: i64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs != 0 && secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// Checks labels: at most 64; keys 1–63 chars of `a-z 0-9 _ -` starting with a letter;
/// values 0–63 chars of `A-Z a-z 0-9 _ . -`.
pub fn validate_labels(labels: &Labels, field: &str) -> Result<()> {
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.starts_with(|c: char| c.is_ascii_lowercase())
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !key_ok {
            return Err(Error::invalid(
                field,
                "label keys are 1-63 characters of a-z 0-9 _ - starting with a letter",
            ));
        }
        let val_ok = v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !val_ok {
            return Err(Error::invalid(
                field,
                "label values are 0-63 characters of A-Z a-z 0-9 _ . -",
            ));
        }
    }
    Ok(())
}

/// Checks a description's length and characters.
pub fn validate_description(d: &str) -> Result<()> {
    if d.len() > MAX_DESCRIPTION || d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::invalid(
            "description",
            format!("at most {MAX_DESCRIPTION} bytes, no control characters"),
        ));
    }
    Ok(())
}

/// A key's identity, as operations report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    /// The id.
    pub id: KeyId,
    /// The ring.
    pub ring: RingName,
    /// The name.
    pub name: KeyName,
}

impl KeyIdentity {
    /// `ring/key`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.ring, self.name)
    }
}

impl From<&KeyRecord> for KeyIdentity {
    fn from(k: &KeyRecord) -> Self {
        Self {
            id: k.id,
            ring: k.ring.clone(),
            name: k.name.clone(),
        }
    }
}

/// A version as reported to callers (no sealed material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// Version number.
    pub version: u32,
    /// State.
    pub state: VersionState,
    /// How it came to be (creation, rotation, scheduled rotation, import).
    pub origin: strongroom_store::VersionOrigin,
    /// Creation time.
    pub created_at: Timestamp,
    /// Scheduled destruction time.
    pub destroy_time: Option<Timestamp>,
    /// When destroyed.
    pub destroyed_at: Option<Timestamp>,
}

impl From<&VersionRecord> for VersionInfo {
    fn from(v: &VersionRecord) -> Self {
        Self {
            version: v.version,
            state: v.state,
            origin: v.origin,
            created_at: v.created_at,
            destroy_time: v.destroy_time,
            destroyed_at: v.destroyed_at,
        }
    }
}

/// Input of `create_key_ring`.
#[derive(Debug, Clone)]
pub struct CreateKeyRingInput {
    /// Name.
    pub name: RingName,
    /// Free text.
    pub description: String,
    /// Labels.
    pub labels: Labels,
}

/// Input of `create_key`.
#[derive(Debug, Clone)]
pub struct CreateKeyInput {
    /// Ring (must exist).
    pub ring: RingName,
    /// Name, unique in the ring; `None` names the key after its id (as keys created through
    /// the AWS API are).
    pub name: Option<KeyName>,
    /// Purpose; inferred from `algorithm` when absent, `encrypt-decrypt` when both are.
    pub purpose: Option<Purpose>,
    /// Algorithm; the purpose's default when absent.
    pub algorithm: Option<Algorithm>,
    /// Free text.
    pub description: String,
    /// Labels.
    pub labels: Labels,
    /// Whether material may ever be exported (default false).
    pub exportable: bool,
    /// Automatic rotation period (encrypt-decrypt keys only).
    pub rotation_period_secs: Option<i64>,
    /// First automatic rotation; defaults to now + period.
    pub next_rotation_time: Option<Timestamp>,
    /// Bind the key to a provider key (protection `external`): its material never leaves
    /// the provider (`docs/providers.md`). `None`: a software key.
    pub external: Option<strongroom_store::ExternalKey>,
    /// Generate the key inside this provider (an HSM; protection `hsm`) and bind it there.
    /// Exclusive with `external`.
    pub hsm: Option<String>,
}

/// What `update_key` changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct UpdateKeyInput {
    /// New description.
    pub description: Option<String>,
    /// New labels (replacing all).
    pub labels: Option<Labels>,
    /// Labels to add or change, keeping the others (applied after `labels`).
    pub set_labels: Labels,
    /// Label keys to remove (applied last; absent keys are ignored).
    pub remove_labels: Vec<String>,
    /// `Some(None)` turns automatic rotation off.
    pub rotation_period_secs: Option<Option<i64>>,
    /// Next automatic rotation.
    pub next_rotation_time: Option<Timestamp>,
    /// May only be set to false.
    pub exportable: Option<bool>,
}

/// Filter for `list_keys`.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Every pair must match.
    pub labels: Labels,
    /// Only keys in this state.
    pub state: Option<KeyState>,
    /// Only keys of this purpose.
    pub purpose: Option<Purpose>,
}

/// Input of `encrypt`.
#[derive(Debug)]
pub struct EncryptInput {
    /// The key (its primary version is used).
    pub key: KeyRef,
    /// At most [`MAX_PLAINTEXT`] bytes.
    pub plaintext: Plaintext,
    /// Bound to the ciphertext; needed again to decrypt.
    pub context: EncryptionContext,
}

/// Output of `encrypt`, `generate_data_key` and `re_encrypt`.
#[derive(Debug)]
pub struct EncryptOutput {
    /// The key used.
    pub key: KeyIdentity,
    /// The version used.
    pub version: u32,
    /// Ciphertext v1.
    pub ciphertext: Vec<u8>,
}

/// Input of `decrypt`.
#[derive(Debug)]
pub struct DecryptInput {
    /// Ciphertext v1.
    pub ciphertext: Vec<u8>,
    /// The context given at encryption.
    pub context: EncryptionContext,
    /// Optional: if given, the ciphertext must be this key's.
    pub key: Option<KeyRef>,
}

/// Output of `decrypt` and `asymmetric_decrypt`.
#[derive(Debug)]
pub struct DecryptOutput {
    /// The key that made the ciphertext.
    pub key: KeyIdentity,
    /// Its version.
    pub version: u32,
    /// The plaintext.
    pub plaintext: Plaintext,
}

/// Input of `generate_data_key`.
#[derive(Debug)]
pub struct GenerateDataKeyInput {
    /// The wrapping key.
    pub key: KeyRef,
    /// Data key length in bytes, 1 to [`MAX_RANDOM`].
    pub length: usize,
    /// Bound to the wrapped data key.
    pub context: EncryptionContext,
    /// Whether to return the plaintext data key too.
    pub include_plaintext: bool,
}

/// Output of `generate_data_key`.
#[derive(Debug)]
pub struct GenerateDataKeyOutput {
    /// The wrapped data key.
    pub wrapped: EncryptOutput,
    /// The plaintext data key, when asked for.
    pub plaintext: Option<Plaintext>,
}

/// Input of `generate_data_key_pair`.
#[derive(Debug)]
pub struct GenerateDataKeyPairInput {
    /// The symmetric key that wraps the private key.
    pub key: KeyRef,
    /// The pair's algorithm (an RSA or ECDSA signing algorithm names the key type; the pair
    /// is for the caller's own use).
    pub pair: Algorithm,
    /// The encryption context bound to the wrapped private key.
    pub context: EncryptionContext,
    /// Whether to return the private key in plaintext too.
    pub include_private: bool,
}

/// Output of `derive_shared_secret`.
#[derive(Debug)]
pub struct SharedSecretOutput {
    /// The key.
    pub key: KeyIdentity,
    /// The version used.
    pub version: u32,
    /// The raw ECDH shared secret (the x-coordinate), as AWS KMS returns it.
    pub secret: Plaintext,
}

/// Output of `generate_data_key_pair`.
#[derive(Debug)]
pub struct GenerateDataKeyPairOutput {
    /// The private key (PKCS#8 DER) wrapped under the key's primary version.
    pub wrapped_private: EncryptOutput,
    /// The private key, PKCS#8 DER, when asked for.
    pub private_key: Option<Plaintext>,
    /// The public key, SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
}

/// Input of `re_encrypt`.
#[derive(Debug)]
pub struct ReEncryptInput {
    /// The ciphertext to re-encrypt.
    pub ciphertext: Vec<u8>,
    /// Its context.
    pub source_context: EncryptionContext,
    /// The key the ciphertext must have been made under, when the caller names it (a
    /// ciphertext of another key is then `IncorrectKey`).
    pub source: Option<KeyRef>,
    /// The new key; the ciphertext's own key (its current primary) when absent.
    pub destination: Option<KeyRef>,
    /// The new context.
    pub destination_context: EncryptionContext,
}

/// Output of `re_encrypt`.
#[derive(Debug)]
pub struct ReEncryptOutput {
    /// Where the ciphertext came from.
    pub source_key: KeyIdentity,
    /// Its version.
    pub source_version: u32,
    /// The new ciphertext.
    pub output: EncryptOutput,
}

/// What a signature covers.
#[derive(Debug)]
pub enum SignData {
    /// The message itself (at most [`MAX_PLAINTEXT`] bytes).
    Message(Plaintext),
    /// Its digest under the key's hash.
    Digest(Vec<u8>),
}

/// Output of `export_key`: key material, for keys created exportable.
#[derive(Debug)]
pub struct ExportOutput {
    /// The key.
    pub key: KeyIdentity,
    /// Its algorithm: how to read the material (raw bytes for symmetric keys, PKCS#8 DER
    /// for private keys).
    pub algorithm: Algorithm,
    /// Each exported version's number and material (zeroized on drop).
    pub versions: Vec<(u32, strongroom_crypto::KeyMaterial)>,
}

/// Output of `sign`.
#[derive(Debug)]
pub struct SignOutput {
    /// The key.
    pub key: KeyIdentity,
    /// The version that signed.
    pub version: u32,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The signature.
    pub signature: Vec<u8>,
}

/// Output of `verify` and `mac_verify`.
#[derive(Debug)]
pub struct VerifyOutput {
    /// The key.
    pub key: KeyIdentity,
    /// The version checked against.
    pub version: u32,
    /// Whether the signature or MAC is valid.
    pub valid: bool,
}

/// Output of `mac`.
#[derive(Debug)]
pub struct MacOutput {
    /// The key.
    pub key: KeyIdentity,
    /// The version used.
    pub version: u32,
    /// The tag.
    pub mac: Vec<u8>,
}

/// Output of `get_public_key`.
#[derive(Debug)]
pub struct PublicKeyOutput {
    /// The key.
    pub key: KeyIdentity,
    /// The version.
    pub version: u32,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// SubjectPublicKeyInfo DER.
    pub der: Vec<u8>,
}

/// A token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// Principal it acts as.
    pub principal: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
}

/// A newly created token: the secret is returned exactly once.
#[derive(Debug)]
pub struct NewToken {
    /// Its description.
    pub info: TokenInfo,
    /// The token secret.
    pub secret: crate::request::BearerToken,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_refs() {
        assert!(matches!(KeyRef::parse("r/k", "key"), Ok(KeyRef::Path(..))));
        assert!(matches!(
            KeyRef::parse("alias/a/b", "key"),
            Ok(KeyRef::Alias(_))
        ));
        assert!(matches!(
            KeyRef::parse("1b4e28ba-2fa1-41d2-883f-0016d3cca427", "key"),
            Ok(KeyRef::Id(_))
        ));
        for bad in ["", "r", "r/", "/k", "r/k/x", "alias/", "../k", "r/%2e%2e"] {
            assert!(KeyRef::parse(bad, "key").is_err(), "{bad:?}");
        }
        let r = KeyRef::parse("alias/team/pay", "key").unwrap();
        assert_eq!(r.to_string(), "alias/team/pay");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d", "f").unwrap(), 2_592_000);
        assert_eq!(parse_duration("1h", "f").unwrap(), 3600);
        for bad in ["", "d", "1.5d", "-1d", "1w", "10", "1 d", "99999999999999d"] {
            assert!(parse_duration(bad, "f").is_err(), "{bad:?}");
        }
        assert_eq!(format_duration(2_592_000), "30d");
        assert_eq!(format_duration(5400), "90m");
        assert_eq!(format_duration(61), "61s");
    }

    #[test]
    fn labels() {
        let ok = Labels::from([("team".into(), "Payments.EU".into())]);
        assert!(validate_labels(&ok, "labels").is_ok());
        for (k, v) in [
            ("Team", "x"),
            ("", "x"),
            ("1a", "x"),
            ("a", "has space"),
            ("a", "x/y"),
        ] {
            let l = Labels::from([(k.to_string(), v.to_string())]);
            assert!(validate_labels(&l, "labels").is_err(), "{k}={v}");
        }
    }
}
