//! The records the store keeps. Core gives them meaning (the state machine lives in
//! `strongroom-core`); the store only persists them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use strongroom_crypto::{Algorithm, KeyId, Purpose};

thread_local! {
    /// The second [`Timestamp::to_rfc3339`] last formatted on this thread, and its text.
    static LAST_RFC3339: std::cell::RefCell<(Option<i64>, String)> =
        const { std::cell::RefCell::new((None, String::new())) };
}

/// Seconds since the Unix epoch, UTC. Strongroom keeps times to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// RFC 3339 text in UTC, e.g. `2026-11-22T18:00:00Z`. Every request stamps its audit
    /// event with the current second: the last text made on this thread is reused.
    pub fn to_rfc3339(self) -> String {
        LAST_RFC3339
            .try_with(|last| {
                let mut last = last.borrow_mut();
                if last.0 != Some(self.0) {
                    last.1 = self.format_rfc3339();
                    last.0 = Some(self.0);
                }
                last.1.clone()
            })
            .unwrap_or_else(|_| self.format_rfc3339())
    }

    fn format_rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.0.to_string())
    }

    /// Parses RFC 3339 text (any offset); sub-second digits are dropped.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| Timestamp(t.unix_timestamp()))
    }

    /// This time plus `secs` seconds, saturating.
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Labels: short key/value strings for grouping and filtering (not secret).
pub type Labels = BTreeMap<String, String>;

macro_rules! name_type {
    ($(#[$meta:meta])* $name:ident, $max:expr, $extra:expr, $what:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Longest name, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates a name: 1 to `MAX_LEN` characters from `A-Z a-z 0-9 _ -` (plus the
            /// type's extra characters), starting with a letter or digit.
            pub fn try_new(s: &str) -> Result<Self, InvalidName> {
                let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || $extra.contains(c);
                let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
                if s.is_empty() || s.len() > $max || !first_ok || !s.chars().all(ok_char) || s.contains("//") || s.ends_with('/') {
                    return Err(InvalidName { what: $what, max: $max });
                }
                Ok(Self(s.to_string()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::try_new(s)
            }
        }
    };
}

/// A name that breaks the naming rules. The message does not echo the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} names are 1 to {max} characters of A-Z a-z 0-9 _ - and start with a letter or digit"
)]
pub struct InvalidName {
    what: &'static str,
    max: usize,
}

name_type!(
    /// A key ring's name.
    RingName, 63, "", "key ring"
);
name_type!(
    /// A key's name, unique within its key ring.
    KeyName, 63, "", "key"
);
name_type!(
    /// An alias name (may contain `/`, as in `team/payments`).
    AliasName, 250, "/", "alias"
);

/// A key ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRingRecord {
    /// Unique name.
    pub name: RingName,
    /// Free text.
    pub description: String,
    /// Labels.
    pub labels: Labels,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Whether a key (as a whole) may be used. See `docs/key-states.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Usable, subject to the state of the version used.
    Enabled,
    /// No version may be used until the key is enabled again.
    Disabled,
    /// The whole key will be deleted at `deletion_time` unless the deletion is cancelled;
    /// nothing may use or change it meanwhile.
    DeletionScheduled,
    /// Deleted: every version's material is wiped and its aliases are gone. The record
    /// remains so old ciphertexts fail clearly and the id is never reused.
    Deleted,
    /// An imported key without its material (never imported yet, or deleted by its owner):
    /// nothing may use it until the material is imported (again).
    PendingImport,
}

/// Where a key's material came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Generated by Strongroom.
    Generated,
    /// Brought by the owner (BYOK): imported wrapped, can be deleted and imported again.
    Imported,
}

/// Where a key's material lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// In Strongroom, sealed under the root key.
    Software,
    /// At a key provider (`KeyRecord::external`): the material never leaves it.
    External,
    /// Generated by Strongroom inside an HSM (a PKCS#11 provider, `KeyRecord::external`),
    /// where it stays.
    Hsm,
}

/// The state of one key version. See `docs/key-states.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// Usable.
    Enabled,
    /// Kept, not usable.
    Disabled,
    /// Will be destroyed at `destroy_time` unless restored; not usable.
    DestroyScheduled,
    /// Material wiped; the record remains so old ciphertexts fail clearly.
    Destroyed,
}

macro_rules! str_enum {
    ($ty:ident { $($var:ident => $s:literal),* $(,)? }) => {
        impl $ty {
            /// The wire and storage name.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$var => $s),* }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = strongroom_crypto::algorithm::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($s => Ok($ty::$var),)* _ => Err(strongroom_crypto::algorithm::UnknownName) }
            }
        }
    };
}

str_enum!(KeyState {
    Enabled => "enabled",
    Disabled => "disabled",
    DeletionScheduled => "deletion_scheduled",
    Deleted => "deleted",
    PendingImport => "pending_import",
});
str_enum!(KeyOrigin { Generated => "generated", Imported => "imported" });
str_enum!(VersionOrigin {
    Creation => "creation",
    Rotation => "rotation",
    ScheduledRotation => "scheduled-rotation",
    Import => "import",
});
str_enum!(Protection { Software => "software", External => "external", Hsm => "hsm" });
str_enum!(VersionState {
    Enabled => "enabled",
    Disabled => "disabled",
    DestroyScheduled => "destroy_scheduled",
    Destroyed => "destroyed",
});

/// A key: its settings and lifecycle bookkeeping. Versions are separate records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Immutable id, carried in ciphertexts.
    pub id: KeyId,
    /// The key ring.
    pub ring: RingName,
    /// Name within the ring.
    pub name: KeyName,
    /// Fixed at creation.
    pub purpose: Purpose,
    /// Fixed at creation.
    pub algorithm: Algorithm,
    /// Where the material lives.
    pub protection: Protection,
    /// For protection `external`: the provider key that holds the material. Fixed at
    /// creation.
    pub external: Option<ExternalKey>,
    /// Generated here, or imported by its owner.
    pub origin: KeyOrigin,
    /// Whether material may ever be exported. Default false; can only go from true to false.
    pub exportable: bool,
    /// Free text.
    pub description: String,
    /// Labels.
    pub labels: Labels,
    /// Enabled or disabled as a whole.
    pub state: KeyState,
    /// The version new encryptions, signatures and MACs use. `None` only when every version
    /// is destroyed or scheduled for destruction.
    pub primary_version: Option<u32>,
    /// How many versions have been created (the next one is `version_count + 1`).
    pub version_count: u32,
    /// Automatic rotation period, in seconds.
    pub rotation_period_secs: Option<i64>,
    /// When the scheduler next rotates the key.
    pub next_rotation_time: Option<Timestamp>,
    /// When a scheduled deletion happens (state `DeletionScheduled`), or happened (`Deleted`).
    pub deletion_time: Option<Timestamp>,
    /// When imported material expires (the scheduler then deletes it); `None` for material
    /// that does not expire, and for keys without imported material.
    pub material_expires_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Bumped by every update; updates name the revision they read (optimistic concurrency).
    pub revision: i64,
}

/// The provider key an external key is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalKey {
    /// The provider's configured name.
    pub provider: String,
    /// The provider's name for the key.
    pub key: String,
}

/// How a version came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionOrigin {
    /// The key's first version, made with the key.
    Creation,
    /// Made by a request (a manual or on-demand rotation).
    Rotation,
    /// Made by the scheduler (automatic rotation).
    ScheduledRotation,
    /// The owner's imported material.
    Import,
}

/// One immutable version of a key. Only its state and the destruction bookkeeping change.
#[derive(Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The key.
    pub key_id: KeyId,
    /// 1, 2, 3, …
    pub version: u32,
    /// Lifecycle state.
    pub state: VersionState,
    /// How it came to be.
    pub origin: VersionOrigin,
    /// The key material sealed under the root key; `None` once destroyed.
    pub sealed_material: Option<Vec<u8>>,
    /// SubjectPublicKeyInfo DER for asymmetric keys.
    pub public_key: Option<Vec<u8>>,
    /// Creation time.
    pub created_at: Timestamp,
    /// When a scheduled destruction happens.
    pub destroy_time: Option<Timestamp>,
    /// When the material was wiped.
    pub destroyed_at: Option<Timestamp>,
}

impl fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionRecord")
            .field("key_id", &self.key_id)
            .field("version", &self.version)
            .field("state", &self.state)
            .field(
                "sealed_material",
                &self
                    .sealed_material
                    .as_ref()
                    .map(|m| format!("[sealed {} bytes]", m.len())),
            )
            .field("created_at", &self.created_at)
            .field("destroy_time", &self.destroy_time)
            .field("destroyed_at", &self.destroyed_at)
            .finish()
    }
}

/// An alias: a stable, re-pointable name for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    /// Unique name.
    pub name: AliasName,
    /// The key it points to.
    pub key_id: KeyId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last re-point.
    pub updated_at: Timestamp,
}

name_type!(
    /// A principal's name (a user or a workload).
    PrincipalName, 128, "@.", "principal"
);

/// A user or workload that tokens act as, and that policies name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRecord {
    /// Unique name.
    pub name: PrincipalName,
    /// `user` or `workload`.
    pub kind: String,
    /// Roles (Cedar `Strongroom::Role` parents).
    pub roles: Vec<String>,
    /// Labels (Cedar tags).
    pub labels: Labels,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// When disabled; a disabled principal's tokens stop working.
    pub disabled_at: Option<Timestamp>,
    /// Per-class request quotas (requests per second) overriding the server's defaults.
    pub rate_limits: BTreeMap<String, u32>,
    /// SHA-256 fingerprints (lower-case hex) of client certificates that authenticate as this
    /// principal over mutual TLS. Unique across principals.
    pub tls_certs: Vec<String>,
}

/// One claim-to-principal mapping rule of a trusted issuer: when every listed claim of a
/// presented JWT matches (exactly, or by prefix when the pattern ends in `*`), the exchanged
/// token acts as `principal`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimRule {
    /// Claim name → pattern.
    pub claims: BTreeMap<String, String>,
    /// The principal the exchanged token acts as (must exist).
    pub principal: String,
}

/// A trusted OIDC issuer whose JWTs can be exchanged for Strongroom tokens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssuerRecord {
    /// Unique local name.
    pub name: String,
    /// The `iss` value tokens must carry.
    pub issuer: String,
    /// Accepted `aud` values (a token must carry one of them).
    pub audiences: Vec<String>,
    /// A JWKS document given inline (JSON text), if any.
    pub jwks: Option<String>,
    /// Where to fetch the JWKS from, if not inline.
    pub jwks_uri: Option<String>,
    /// Mapping rules, tried in order.
    pub rules: Vec<ClaimRule>,
    /// Longest lifetime of an exchanged token, in seconds.
    pub max_ttl_secs: i64,
    /// Creation time (unix seconds).
    pub created_at: i64,
    /// Last change (unix seconds).
    pub updated_at: i64,
}

/// One member of a key set: a key of a configured provider (`software` is Strongroom's own
/// keys, named `<ring>/<key>`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeySetMember {
    /// The provider's configured name.
    pub provider: String,
    /// The provider's name for the key.
    pub key: String,
}

/// A key set: an ordered list of member keys across providers. A data key generated under
/// it is wrapped by every member; any one member can unwrap it (`docs/key-sets.md`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeySetRecord {
    /// Unique name.
    pub name: String,
    /// Members, in preference order.
    pub members: Vec<KeySetMember>,
    /// Former members: they still open data keys they wrapped (so old envelopes open and can
    /// be re-wrapped) but wrap nothing new, until forgotten.
    #[serde(default)]
    pub retired: Vec<KeySetMember>,
    /// Free text.
    pub description: String,
    /// Labels (for policies).
    pub labels: BTreeMap<String, String>,
    /// Creation time (unix seconds).
    pub created_at: i64,
    /// Last change (unix seconds).
    pub updated_at: i64,
}

/// The parameters of one key material import (AWS GetParametersForImport): a fresh RSA
/// wrapping key pair and a single-use token, valid for a limited time.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportTokenRecord {
    /// Public id.
    pub id: String,
    /// The key the material is for.
    pub key_id: KeyId,
    /// SHA-256 of the import token.
    pub token_hash: Vec<u8>,
    /// How the material is wrapped (`rsaes-oaep-sha256`, `rsa-aes-key-wrap-sha256`).
    pub wrapping: String,
    /// The wrapping key's algorithm (an RSA-OAEP algorithm).
    pub wrapping_algorithm: Algorithm,
    /// The wrapping private key, sealed under the root key.
    pub sealed_private: Vec<u8>,
    /// Until when the token may be used.
    pub expires_at: Timestamp,
    /// When it was used (single use).
    pub used_at: Option<Timestamp>,
}

impl fmt::Debug for ImportTokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportTokenRecord")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("wrapping", &self.wrapping)
            .finish_non_exhaustive()
    }
}

/// A grant: permission for one principal to perform some actions on one key, optionally
/// only with certain encryption contexts (AWS KMS grants).
#[derive(Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// Public id (`srg_` and hex).
    pub id: String,
    /// The key it is on.
    pub key_id: KeyId,
    /// The principal it empowers.
    pub grantee: String,
    /// The principal that may retire it, if any.
    pub retiring_principal: Option<String>,
    /// Strongroom action names (`decrypt`, `encrypt`, …) it allows.
    pub actions: Vec<String>,
    /// The request's encryption context must include these pairs.
    pub context_subset: Option<BTreeMap<String, String>>,
    /// The request's encryption context must be exactly these pairs.
    pub context_equals: Option<BTreeMap<String, String>>,
    /// The caller's name for it (not unique).
    pub name: Option<String>,
    /// SHA-256 of the grant token handed out with it.
    pub token_hash: Vec<u8>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
}

impl fmt::Debug for GrantRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantRecord")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("grantee", &self.grantee)
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

/// A named policy document at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// Unique name.
    pub name: String,
    /// 1, 2, 3, … per name; every change makes a new version.
    pub version: i64,
    /// Cedar source; `None` in history for a deletion.
    pub text: Option<String>,
    /// When this version was written.
    pub created_at: Timestamp,
    /// Who wrote it.
    pub created_by: String,
}

/// An AWS-style access key pair of a principal (for SigV4-signed requests). The secret is
/// needed in full to verify signatures, so it is stored sealed under the root key.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    /// The access key id (public), e.g. `SRAK…`.
    pub id: String,
    /// The principal it authenticates as.
    pub principal: String,
    /// The secret access key, sealed (binding: `access-key\0` + id).
    pub sealed_secret: Vec<u8>,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// When revoked.
    pub revoked_at: Option<Timestamp>,
    /// Session credentials (from a token exchange) expire; long-term pairs do not.
    pub expires_at: Option<Timestamp>,
    /// Session credentials: the SHA-256 of the session token that must accompany every
    /// request signed with this pair (`X-Amz-Security-Token`).
    pub session_token_hash: Option<Vec<u8>>,
}

impl fmt::Debug for AccessKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeyRecord")
            .field("id", &self.id)
            .field("principal", &self.principal)
            .field("revoked_at", &self.revoked_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An API token. Only the SHA-256 of the secret is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id (an accessor), safe to log.
    pub id: String,
    /// SHA-256 of the token secret.
    pub hash: [u8; 32],
    /// Who the token acts as.
    pub principal: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry; `None` never expires (the root token).
    pub expires_at: Option<Timestamp>,
    /// When revoked.
    pub revoked_at: Option<Timestamp>,
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// Which page of a listing to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Return items strictly after this cursor (from a previous page's `next`).
    pub after: Option<String>,
    /// Most items to return (the store caps it).
    pub limit: u32,
}

/// What a store holds, counted for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Keys by (state, protection), as stored (`enabled`, `software`, …).
    pub keys: Vec<(String, String, i64)>,
    /// Versions by state.
    pub versions: Vec<(String, i64)>,
    /// Enabled keys with a rotation period whose rotation is overdue: the next rotation
    /// time passed, or the primary version is older than the period.
    pub rotation_overdue: i64,
    /// The soonest `destroy_time` of a version scheduled for destruction.
    pub next_destruction: Option<Timestamp>,
    /// The soonest deletion time of a key scheduled for deletion.
    pub next_key_deletion: Option<Timestamp>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in listing order.
    pub items: Vec<T>,
    /// Cursor for the next page, if there may be more.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(RingName::try_new("payments-prod_1").is_ok());
        for bad in [
            "",
            "-x",
            "a b",
            "a/b",
            "../x",
            "%2e",
            "x\0",
            &"a".repeat(64),
        ] {
            assert!(RingName::try_new(bad).is_err(), "{bad:?}");
        }
        assert!(AliasName::try_new("team/payments").is_ok());
        for bad in ["/x", "x/", "a//b", "../a", "a/../b"] {
            assert!(AliasName::try_new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        let t = Timestamp(1_800_000_000);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(t.to_rfc3339(), "2027-01-15T08:00:00Z");
        // The reused text follows the time asked for, back and forth.
        assert_eq!(
            Timestamp(1_800_000_001).to_rfc3339(),
            "2027-01-15T08:00:01Z"
        );
        assert_eq!(t.to_rfc3339(), "2027-01-15T08:00:00Z");
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
    }
}
