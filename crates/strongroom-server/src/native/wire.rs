//! Native API wire types (JSON, snake_case). Core never sees these. Field by field they are
//! documented in `docs/openapi.json`; a change here is an API change.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use strongroom_core::types::{KeyIdentity, TokenInfo, VersionInfo};
use strongroom_core::{AliasInfo, KeyRecord, KeyRingRecord, Timestamp};

pub(crate) use crate::json::{B64Bytes, SecretB64, SecretText, StrictMap};

/// A map of string keys to whole numbers that refuses duplicate keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StrictCounts(pub(crate) BTreeMap<String, u32>);

impl<'de> Deserialize<'de> for StrictCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictCounts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of whole numbers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StrictCounts, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = m.next_entry::<String, u32>()? {
                    if out.insert(k, v).is_some() {
                        return Err(de::Error::custom("has a duplicate key"));
                    }
                }
                Ok(StrictCounts(out))
            }
        }
        d.deserialize_map(V)
    }
}

// ---- requests ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyRingRequest {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) labels: StrictMap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyRequest {
    pub(crate) name: String,
    pub(crate) purpose: Option<String>,
    pub(crate) algorithm: Option<String>,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) labels: StrictMap,
    #[serde(default)]
    pub(crate) exportable: bool,
    pub(crate) rotation_period: Option<String>,
    pub(crate) next_rotation_time: Option<String>,
    /// `software` (default) or `external`.
    pub(crate) protection: Option<String>,
    /// For an external key: the configured provider holding it.
    pub(crate) provider: Option<String>,
    /// For an external key: the provider's name for it.
    pub(crate) provider_key: Option<String>,
}

/// `rotation_period: null` turns rotation off; absent leaves it alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateKeyRequest {
    pub(crate) description: Option<String>,
    pub(crate) labels: Option<StrictMap>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) rotation_period: Option<Option<String>>,
    pub(crate) next_rotation_time: Option<String>,
    pub(crate) exportable: Option<bool>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetPrimaryRequest {
    pub(crate) version: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateVersionRequest {
    pub(crate) make_primary: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestroyVersionRequest {
    pub(crate) window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleDeletionRequest {
    pub(crate) window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAliasRequest {
    pub(crate) name: String,
    pub(crate) key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateAliasRequest {
    pub(crate) key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptRequest {
    pub(crate) key: String,
    pub(crate) plaintext: SecretB64,
    #[serde(default)]
    pub(crate) context: StrictMap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecryptRequest {
    pub(crate) ciphertext: B64Bytes,
    #[serde(default)]
    pub(crate) context: StrictMap,
    pub(crate) key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerateDataKeyRequest {
    pub(crate) key: String,
    pub(crate) length: Option<usize>,
    #[serde(default)]
    pub(crate) context: StrictMap,
    pub(crate) include_plaintext: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReEncryptRequest {
    pub(crate) ciphertext: B64Bytes,
    #[serde(default)]
    pub(crate) source_context: StrictMap,
    pub(crate) destination_key: Option<String>,
    #[serde(default)]
    pub(crate) destination_context: StrictMap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsymmetricDecryptRequest {
    pub(crate) key: String,
    pub(crate) version: Option<u32>,
    pub(crate) ciphertext: B64Bytes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignRequest {
    pub(crate) key: String,
    pub(crate) version: Option<u32>,
    pub(crate) message: Option<SecretB64>,
    pub(crate) digest: Option<B64Bytes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    pub(crate) key: String,
    pub(crate) version: Option<u32>,
    pub(crate) message: Option<SecretB64>,
    pub(crate) digest: Option<B64Bytes>,
    pub(crate) signature: B64Bytes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MacRequest {
    pub(crate) key: String,
    pub(crate) version: Option<u32>,
    pub(crate) message: SecretB64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeriveSharedSecretRequest {
    pub(crate) key: String,
    pub(crate) version: Option<u32>,
    pub(crate) public_key: B64Bytes,
}

#[derive(Serialize)]
pub(crate) struct DeriveSharedSecretResponse {
    pub(crate) key: String,
    pub(crate) version: u32,
    pub(crate) shared_secret: SecretB64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MacVerifyRequest {
    pub(crate) key: String,
    pub(crate) version: Option<u32>,
    pub(crate) message: SecretB64,
    pub(crate) mac: B64Bytes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RandomRequest {
    pub(crate) length: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTokenRequest {
    pub(crate) ttl: Option<String>,
    #[serde(default)]
    pub(crate) description: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAccessKeyRequest {
    #[serde(default)]
    pub(crate) description: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    pub(crate) page_size: Option<u32>,
    pub(crate) page_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListKeysQuery {
    pub(crate) page_size: Option<u32>,
    pub(crate) page_token: Option<String>,
    /// `team:payments,env:prod`
    pub(crate) labels: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) purpose: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListAliasesQuery {
    pub(crate) page_size: Option<u32>,
    pub(crate) page_token: Option<String>,
    pub(crate) key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublicKeyQuery {
    pub(crate) version: Option<u32>,
}

// ---- responses ----

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.to_rfc3339())
}

#[derive(Debug, Serialize)]
pub(crate) struct KeyRingResponse {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) created_at: String,
}

impl From<KeyRingRecord> for KeyRingResponse {
    fn from(r: KeyRingRecord) -> Self {
        let KeyRingRecord {
            name,
            description,
            labels,
            created_at,
        } = r;
        Self {
            name: name.to_string(),
            description,
            labels,
            created_at: created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct KeyResponse {
    pub(crate) id: String,
    pub(crate) path: String,
    pub(crate) key_ring: String,
    pub(crate) name: String,
    pub(crate) purpose: String,
    pub(crate) algorithm: String,
    pub(crate) protection: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) provider_key: Option<String>,
    pub(crate) origin: String,
    pub(crate) exportable: bool,
    pub(crate) description: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) state: String,
    pub(crate) primary_version: Option<u32>,
    pub(crate) version_count: u32,
    pub(crate) rotation_period: Option<String>,
    pub(crate) next_rotation_time: Option<String>,
    pub(crate) deletion_time: Option<String>,
    pub(crate) material_expires_at: Option<String>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl From<KeyRecord> for KeyResponse {
    fn from(k: KeyRecord) -> Self {
        let KeyRecord {
            id,
            ring,
            name,
            purpose,
            algorithm,
            protection,
            external,
            origin,
            exportable,
            description,
            labels,
            state,
            primary_version,
            version_count,
            rotation_period_secs,
            next_rotation_time,
            deletion_time,
            material_expires_at,
            created_at,
            updated_at,
            revision: _,
        } = k;
        let (provider, provider_key) = match external {
            Some(e) => (Some(e.provider), Some(e.key)),
            None => (None, None),
        };
        Self {
            id: id.to_string(),
            path: format!("{ring}/{name}"),
            key_ring: ring.to_string(),
            name: name.to_string(),
            purpose: purpose.to_string(),
            algorithm: algorithm.to_string(),
            protection: protection.to_string(),
            provider,
            provider_key,
            origin: origin.to_string(),
            exportable,
            description,
            labels,
            state: state.to_string(),
            primary_version,
            version_count,
            rotation_period: rotation_period_secs.map(strongroom_core::types::format_duration),
            next_rotation_time: ts(next_rotation_time),
            deletion_time: ts(deletion_time),
            material_expires_at: ts(material_expires_at),
            created_at: created_at.to_rfc3339(),
            updated_at: updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct VersionResponse {
    pub(crate) key: String,
    pub(crate) version: u32,
    pub(crate) state: String,
    pub(crate) origin: String,
    pub(crate) created_at: String,
    pub(crate) destroy_time: Option<String>,
    pub(crate) destroyed_at: Option<String>,
}

impl VersionResponse {
    pub(crate) fn new(key: &str, v: VersionInfo) -> Self {
        let VersionInfo {
            version,
            state,
            origin,
            created_at,
            destroy_time,
            destroyed_at,
        } = v;
        Self {
            key: key.to_string(),
            version,
            state: state.to_string(),
            origin: origin.to_string(),
            created_at: created_at.to_rfc3339(),
            destroy_time: ts(destroy_time),
            destroyed_at: ts(destroyed_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct CreateKeyResponse {
    #[serde(flatten)]
    pub(crate) key: KeyResponse,
    pub(crate) first_version: VersionResponse,
}

#[derive(Debug, Serialize)]
pub(crate) struct ListResponse<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next_page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AliasResponse {
    pub(crate) name: String,
    pub(crate) key: String,
    pub(crate) key_id: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl From<AliasInfo> for AliasResponse {
    fn from(a: AliasInfo) -> Self {
        let AliasInfo {
            name,
            key,
            created_at,
            updated_at,
        } = a;
        Self {
            name: name.to_string(),
            key: key.path(),
            key_id: key.id.to_string(),
            created_at: created_at.to_rfc3339(),
            updated_at: updated_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct EncryptResponse {
    pub(crate) key: String,
    pub(crate) key_id: String,
    pub(crate) version: u32,
    pub(crate) ciphertext: B64Bytes,
}

impl EncryptResponse {
    pub(crate) fn new(key: &KeyIdentity, version: u32, ciphertext: Vec<u8>) -> Self {
        Self {
            key: key.path(),
            key_id: key.id.to_string(),
            version,
            ciphertext: B64Bytes(ciphertext),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct DecryptResponse {
    pub(crate) key: String,
    pub(crate) key_id: String,
    pub(crate) version: u32,
    pub(crate) plaintext: SecretB64,
}

#[derive(Serialize)]
pub(crate) struct GenerateDataKeyResponse {
    pub(crate) key: String,
    pub(crate) key_id: String,
    pub(crate) version: u32,
    pub(crate) ciphertext: B64Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) plaintext: Option<SecretB64>,
}

#[derive(Serialize)]
pub(crate) struct ReEncryptResponse {
    pub(crate) source_key: String,
    pub(crate) source_version: u32,
    pub(crate) key: String,
    pub(crate) key_id: String,
    pub(crate) version: u32,
    pub(crate) ciphertext: B64Bytes,
}

#[derive(Serialize)]
pub(crate) struct PublicKeyResponse {
    pub(crate) key: String,
    pub(crate) version: u32,
    pub(crate) algorithm: String,
    pub(crate) pem: String,
    pub(crate) der: B64Bytes,
}

#[derive(Serialize)]
pub(crate) struct SignResponse {
    pub(crate) key: String,
    pub(crate) version: u32,
    pub(crate) algorithm: String,
    pub(crate) signature: B64Bytes,
}

#[derive(Serialize)]
pub(crate) struct VerifyResponse {
    pub(crate) key: String,
    pub(crate) version: u32,
    pub(crate) valid: bool,
}

#[derive(Serialize)]
pub(crate) struct MacResponse {
    pub(crate) key: String,
    pub(crate) version: u32,
    pub(crate) mac: B64Bytes,
}

#[derive(Serialize)]
pub(crate) struct RandomResponse {
    pub(crate) random: SecretB64,
}

#[derive(Debug, Serialize)]
pub(crate) struct TokenResponse {
    pub(crate) id: String,
    pub(crate) principal: String,
    pub(crate) description: String,
    pub(crate) created_at: String,
    pub(crate) expires_at: Option<String>,
    pub(crate) revoked_at: Option<String>,
}

impl From<TokenInfo> for TokenResponse {
    fn from(t: TokenInfo) -> Self {
        let TokenInfo {
            id,
            principal,
            description,
            created_at,
            expires_at,
            revoked_at,
        } = t;
        Self {
            id,
            principal,
            description,
            created_at: created_at.to_rfc3339(),
            expires_at: ts(expires_at),
            revoked_at: ts(revoked_at),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct NewTokenResponse {
    #[serde(flatten)]
    pub(crate) info: TokenResponse,
    /// The token secret; shown once.
    pub(crate) token: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct AccessKeyResponse {
    pub(crate) access_key_id: String,
    pub(crate) principal: String,
    pub(crate) description: String,
    pub(crate) created_at: String,
    pub(crate) revoked_at: Option<String>,
    pub(crate) expires_at: Option<String>,
}

impl From<strongroom_core::AccessKeyInfo> for AccessKeyResponse {
    fn from(k: strongroom_core::AccessKeyInfo) -> Self {
        let strongroom_core::AccessKeyInfo {
            id,
            principal,
            description,
            created_at,
            revoked_at,
            expires_at,
        } = k;
        Self {
            access_key_id: id,
            principal,
            description,
            created_at: created_at.to_rfc3339(),
            revoked_at: ts(revoked_at),
            expires_at: ts(expires_at),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct AccessKeyList {
    pub(crate) items: Vec<AccessKeyResponse>,
}

#[derive(Serialize)]
pub(crate) struct NewAccessKeyResponse {
    #[serde(flatten)]
    pub(crate) info: AccessKeyResponse,
    /// The secret access key; shown once.
    pub(crate) secret_access_key: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct HealthResponse {
    pub(crate) status: &'static str,
    pub(crate) store: &'static str,
    pub(crate) audit: &'static str,
    pub(crate) version: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct ProviderResponse {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) healthy: bool,
    pub(crate) error: Option<String>,
    pub(crate) probe_ms: u64,
    pub(crate) breaker: &'static str,
}

/// The optional body of enable-key and disable-key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetEnabledRequest {
    /// Also switch a provider-held key's provider key.
    #[serde(default)]
    pub(crate) at_provider: bool,
}

#[derive(Serialize)]
pub(crate) struct ProviderKeyResponse {
    pub(crate) name: String,
    pub(crate) key_type: String,
    pub(crate) enabled: Option<bool>,
    pub(crate) can_encrypt: bool,
    pub(crate) latest_version: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct ProviderVersionResponse {
    pub(crate) version: String,
    pub(crate) state: String,
    pub(crate) primary: bool,
    pub(crate) created_at: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct DriftResponse {
    pub(crate) kind: &'static str,
    pub(crate) detail: String,
}

/// `GET /v1/keyrings/{ring}/keys/{key}/provider`.
#[derive(Serialize)]
pub(crate) struct ProviderViewResponse {
    pub(crate) key: KeyResponse,
    pub(crate) provider: String,
    pub(crate) provider_key: String,
    pub(crate) described: Option<ProviderKeyResponse>,
    pub(crate) describe_error: Option<String>,
    /// The provider's own schedule; `null` with no `rotation_schedule_error`: it does not
    /// rotate the key.
    pub(crate) rotation_period: Option<String>,
    pub(crate) rotation_schedule_error: Option<String>,
    pub(crate) versions: Option<Vec<ProviderVersionResponse>>,
    pub(crate) versions_error: Option<String>,
    pub(crate) drift: Vec<DriftResponse>,
}

impl From<strongroom_core::external::ProviderView> for ProviderViewResponse {
    fn from(v: strongroom_core::external::ProviderView) -> Self {
        let (described, describe_error) = match v.described {
            Ok(d) => (
                Some(ProviderKeyResponse {
                    name: d.name,
                    key_type: d.key_type,
                    enabled: d.enabled,
                    can_encrypt: d.can_encrypt,
                    latest_version: d.latest_version,
                }),
                None,
            ),
            Err(e) => (None, Some(e)),
        };
        let (rotation_period, rotation_schedule_error) = match v.rotation_schedule {
            Ok(p) => (
                p.map(|d| {
                    strongroom_core::types::format_duration(
                        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    )
                }),
                None,
            ),
            Err(e) => (None, Some(e)),
        };
        let (versions, versions_error) = match v.versions {
            Ok(vs) => (
                Some(
                    vs.into_iter()
                        .map(|x| ProviderVersionResponse {
                            state: x.state.as_str().to_string(),
                            version: x.version,
                            primary: x.primary,
                            created_at: x.created_at,
                        })
                        .collect(),
                ),
                None,
            ),
            Err(e) => (None, Some(e)),
        };
        ProviderViewResponse {
            key: KeyResponse::from(v.key),
            provider: v.provider,
            provider_key: v.provider_key,
            described,
            describe_error,
            rotation_period,
            rotation_schedule_error,
            versions,
            versions_error,
            drift: v
                .drift
                .into_iter()
                .map(|d| DriftResponse {
                    kind: d.kind,
                    detail: d.detail,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeySetRequest {
    pub(crate) name: String,
    pub(crate) members: Vec<String>,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) labels: StrictMap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateKeySetRequest {
    pub(crate) members: Vec<String>,
    #[serde(default)]
    pub(crate) forget_retired: bool,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) labels: StrictMap,
}

#[derive(Debug, Serialize)]
pub(crate) struct KeySetMemberResponse {
    pub(crate) member: String,
    pub(crate) provider: String,
    pub(crate) key: String,
    /// `None` when this node has no such provider.
    pub(crate) kind: Option<&'static str>,
    pub(crate) breaker: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct KeySetResponse {
    pub(crate) name: String,
    pub(crate) members: Vec<KeySetMemberResponse>,
    pub(crate) retired: Vec<KeySetMemberResponse>,
    pub(crate) description: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) create_time: String,
    pub(crate) update_time: String,
}

impl From<strongroom_core::keysets::KeySetInfo> for KeySetResponse {
    fn from(s: strongroom_core::keysets::KeySetInfo) -> Self {
        let view = |ms: Vec<strongroom_core::keysets::MemberInfo>| -> Vec<KeySetMemberResponse> {
            ms.into_iter()
                .map(|m| KeySetMemberResponse {
                    member: m.member,
                    provider: m.provider,
                    key: m.key,
                    kind: m.kind,
                    breaker: m.breaker.map(|b| b.as_str()),
                })
                .collect()
        };
        Self {
            members: view(s.members),
            retired: view(s.retired),
            name: s.name,
            description: s.description,
            labels: s.labels,
            create_time: Timestamp(s.created_at).to_rfc3339(),
            update_time: Timestamp(s.updated_at).to_rfc3339(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySetGenerateRequest {
    pub(crate) length: Option<usize>,
    #[serde(default)]
    pub(crate) context: StrictMap,
}

#[derive(Serialize)]
pub(crate) struct MemberWrappedKey {
    pub(crate) member: String,
    pub(crate) ciphertext: B64Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_version: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct KeySetGenerateResponse {
    pub(crate) key_set: String,
    pub(crate) plaintext: SecretB64,
    pub(crate) wrapped: Vec<MemberWrappedKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySetWrapRequest {
    pub(crate) plaintext: SecretB64,
    #[serde(default)]
    pub(crate) context: StrictMap,
}

#[derive(Serialize)]
pub(crate) struct KeySetWrapResponse {
    pub(crate) key_set: String,
    pub(crate) wrapped: Vec<MemberWrappedKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WrappedKeyInput {
    pub(crate) member: String,
    pub(crate) ciphertext: B64Bytes,
    /// Accepted so a generate answer's `wrapped` list can be sent back as it is; unused.
    #[serde(default, rename = "key_version")]
    pub(crate) _key_version: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySetDecryptRequest {
    pub(crate) wrapped: Vec<WrappedKeyInput>,
    #[serde(default)]
    pub(crate) context: StrictMap,
    #[serde(default)]
    pub(crate) prefer: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct FailedMember {
    pub(crate) member: String,
    pub(crate) error: String,
}

#[derive(Serialize)]
pub(crate) struct KeySetDecryptResponse {
    pub(crate) member: String,
    pub(crate) plaintext: SecretB64,
    pub(crate) failed: Vec<FailedMember>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReadyResponse {
    pub(crate) status: &'static str,
    pub(crate) store: &'static str,
    pub(crate) audit: &'static str,
    pub(crate) policies: &'static str,
    pub(crate) sealed: bool,
}

// ---- principals and policies ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePrincipalRequest {
    pub(crate) name: String,
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
    #[serde(default)]
    pub(crate) labels: StrictMap,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) rate_limits: StrictCounts,
    /// SHA-256 fingerprints of client certificates (mutual TLS).
    #[serde(default)]
    pub(crate) tls_certs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdatePrincipalRequest {
    pub(crate) roles: Option<Vec<String>>,
    pub(crate) labels: Option<StrictMap>,
    pub(crate) description: Option<String>,
    pub(crate) disabled: Option<bool>,
    pub(crate) rate_limits: Option<StrictCounts>,
    pub(crate) tls_certs: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PrincipalResponse {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) roles: Vec<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) description: String,
    pub(crate) disabled: bool,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) disabled_at: Option<String>,
    pub(crate) rate_limits: BTreeMap<String, u32>,
    pub(crate) tls_certs: Vec<String>,
}

impl From<strongroom_core::PrincipalRecord> for PrincipalResponse {
    fn from(p: strongroom_core::PrincipalRecord) -> Self {
        let strongroom_core::PrincipalRecord {
            name,
            kind,
            roles,
            labels,
            description,
            created_at,
            updated_at,
            disabled_at,
            rate_limits,
            tls_certs,
        } = p;
        Self {
            name: name.to_string(),
            kind,
            roles,
            labels,
            description,
            disabled: disabled_at.is_some(),
            created_at: created_at.to_rfc3339(),
            updated_at: updated_at.to_rfc3339(),
            disabled_at: ts(disabled_at),
            rate_limits,
            tls_certs,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutPolicyRequest {
    pub(crate) text: String,
    /// The version being replaced; absent to create.
    pub(crate) version: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyQuery {
    /// `true` to list every version.
    pub(crate) history: Option<bool>,
    /// For DELETE: the version being deleted.
    pub(crate) version: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PolicyResponse {
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) text: Option<String>,
    pub(crate) deleted: bool,
    pub(crate) created_at: String,
    pub(crate) created_by: String,
}

impl From<strongroom_core::PolicyRecord> for PolicyResponse {
    fn from(p: strongroom_core::PolicyRecord) -> Self {
        let strongroom_core::PolicyRecord {
            name,
            version,
            text,
            created_at,
            created_by,
        } = p;
        Self {
            name,
            version,
            deleted: text.is_none(),
            text,
            created_at: created_at.to_rfc3339(),
            created_by,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidatePolicyRequest {
    #[serde(default = "default_policy_name")]
    pub(crate) name: String,
    pub(crate) text: String,
}

fn default_policy_name() -> String {
    "policy".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestPolicyRequest {
    pub(crate) principal: String,
    pub(crate) action: String,
    /// A key reference; or `key_ring`; or neither for the service as a whole.
    pub(crate) key: Option<String>,
    pub(crate) key_ring: Option<String>,
    #[serde(default)]
    pub(crate) context: StrictMap,
    pub(crate) source_ip: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TestPolicyResponse {
    pub(crate) allowed: bool,
    pub(crate) decision: &'static str,
    pub(crate) policies: Vec<String>,
    pub(crate) errors: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    pub(crate) after_seq: Option<u64>,
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) principal: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) operation: Option<String>,
    pub(crate) outcome: Option<String>,
    pub(crate) limit: Option<usize>,
    /// `json` (default) or `ndjson` (one event per line, for SIEM export).
    pub(crate) format: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AuditEventsResponse {
    pub(crate) items: Vec<serde_json::Value>,
    pub(crate) next_after_seq: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutIssuerRequest {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    /// Inline JWKS document (a JSON object).
    pub(crate) jwks: Option<serde_json::Value>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) rules: Vec<RuleWire>,
    pub(crate) max_ttl: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleWire {
    pub(crate) claims: BTreeMap<String, String>,
    pub(crate) principal: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct IssuerResponse {
    pub(crate) name: String,
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) jwks: Option<serde_json::Value>,
    pub(crate) jwks_uri: Option<String>,
    pub(crate) rules: Vec<RuleWire>,
    pub(crate) max_ttl: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl From<strongroom_core::IssuerRecord> for IssuerResponse {
    fn from(i: strongroom_core::IssuerRecord) -> Self {
        let strongroom_core::IssuerRecord {
            name,
            issuer,
            audiences,
            jwks,
            jwks_uri,
            rules,
            max_ttl_secs,
            created_at,
            updated_at,
        } = i;
        Self {
            name,
            issuer,
            audiences,
            jwks: jwks.and_then(|j| serde_json::from_str(&j).ok()),
            jwks_uri,
            rules: rules
                .into_iter()
                .map(|r| RuleWire {
                    claims: r.claims,
                    principal: r.principal,
                })
                .collect(),
            max_ttl: strongroom_core::types::format_duration(max_ttl_secs),
            created_at: Timestamp(created_at).to_rfc3339(),
            updated_at: Timestamp(updated_at).to_rfc3339(),
        }
    }
}

/// The JWT is a credential: never held longer than the exchange.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExchangeRequest {
    pub(crate) token: SecretText,
    pub(crate) issuer: Option<String>,
    pub(crate) ttl: Option<String>,
    /// `token` (default) or `aws` (session credentials for the AWS API).
    pub(crate) credential: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct AwsSessionResponse {
    #[serde(flatten)]
    pub(crate) info: AccessKeyResponse,
    /// Shown once.
    pub(crate) secret_access_key: String,
    /// Shown once.
    pub(crate) session_token: String,
}
