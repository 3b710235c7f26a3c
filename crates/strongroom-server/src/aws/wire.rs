//! AWS KMS wire types (JSON 1.1, PascalCase, blobs as standard base64, times as epoch
//! seconds). Names follow the AWS KMS API reference. Core never sees these.
//!
//! Requests refuse unknown fields: a parameter this server does not understand is an error
//! naming it, never silently ignored.

use serde::{Deserialize, Serialize};

pub(crate) use crate::json::{B64Bytes, SecretB64, SecretText, StrictMap};

// ---- shared ----

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct Tag {
    pub(crate) tag_key: String,
    pub(crate) tag_value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct TagResourceRequest {
    pub(crate) key_id: String,
    pub(crate) tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct UntagResourceRequest {
    pub(crate) key_id: String,
    pub(crate) tag_keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ListResourceTagsRequest {
    pub(crate) key_id: String,
    pub(crate) limit: Option<i64>,
    pub(crate) marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListResourceTagsResponse {
    pub(crate) tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_marker: Option<String>,
    pub(crate) truncated: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    pub(crate) aws_account_id: String,
    pub(crate) key_id: String,
    pub(crate) arn: String,
    pub(crate) creation_date: i64,
    pub(crate) enabled: bool,
    pub(crate) description: String,
    pub(crate) key_usage: &'static str,
    pub(crate) key_state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deletion_date: Option<i64>,
    pub(crate) origin: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expiration_model: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) valid_to: Option<i64>,
    pub(crate) key_manager: &'static str,
    pub(crate) customer_master_key_spec: &'static str,
    pub(crate) key_spec: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) encryption_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signing_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mac_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_agreement_algorithms: Option<Vec<&'static str>>,
    pub(crate) multi_region: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyMetadataResponse {
    pub(crate) key_metadata: KeyMetadata,
}

/// A response with no fields (`{}`), as AWS sends for EnableKey and the like.
#[derive(Debug, Serialize)]
pub(crate) struct Empty {}

// ---- keys ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct CreateKeyRequest {
    pub(crate) policy: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) key_usage: Option<String>,
    pub(crate) customer_master_key_spec: Option<String>,
    pub(crate) key_spec: Option<String>,
    pub(crate) origin: Option<String>,
    pub(crate) custom_key_store_id: Option<String>,
    // Accepted and without effect: there are no key policies to lock anyone out of.
    #[allow(dead_code)]
    pub(crate) bypass_policy_lockout_safety_check: Option<bool>,
    pub(crate) tags: Option<Vec<Tag>>,
    pub(crate) multi_region: Option<bool>,
    pub(crate) xks_key_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct KeyIdRequest {
    pub(crate) key_id: String,
    pub(crate) grant_tokens: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct KeyIdOnly {
    pub(crate) key_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct UpdateKeyDescriptionRequest {
    pub(crate) key_id: String,
    pub(crate) description: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ListRequest {
    pub(crate) limit: Option<i64>,
    pub(crate) marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyListEntry {
    pub(crate) key_id: String,
    pub(crate) key_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListKeysResponse {
    pub(crate) keys: Vec<KeyListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_marker: Option<String>,
    pub(crate) truncated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ScheduleKeyDeletionRequest {
    pub(crate) key_id: String,
    pub(crate) pending_window_in_days: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ScheduleKeyDeletionResponse {
    pub(crate) key_id: String,
    pub(crate) deletion_date: i64,
    pub(crate) key_state: &'static str,
    pub(crate) pending_window_in_days: i64,
}

// ---- importing key material ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct GetParametersForImportRequest {
    pub(crate) key_id: String,
    pub(crate) wrapping_algorithm: String,
    pub(crate) wrapping_key_spec: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetParametersForImportResponse {
    pub(crate) key_id: String,
    pub(crate) import_token: B64Bytes,
    pub(crate) public_key: B64Bytes,
    pub(crate) parameters_valid_to: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ImportKeyMaterialRequest {
    pub(crate) key_id: String,
    pub(crate) import_token: SecretB64,
    pub(crate) encrypted_key_material: B64Bytes,
    pub(crate) valid_to: Option<serde_json::Value>,
    pub(crate) expiration_model: Option<String>,
    pub(crate) import_type: Option<String>,
    pub(crate) key_material_description: Option<String>,
    pub(crate) key_material_id: Option<String>,
}

// ---- key policies ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct GetKeyPolicyRequest {
    pub(crate) key_id: String,
    pub(crate) policy_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetKeyPolicyResponse {
    pub(crate) policy: String,
    pub(crate) policy_name: &'static str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct PutKeyPolicyRequest {
    pub(crate) key_id: String,
    pub(crate) policy_name: Option<String>,
    pub(crate) policy: String,
    // Accepted and without effect: Strongroom's shipped roles keep administrators in.
    #[allow(dead_code)]
    pub(crate) bypass_policy_lockout_safety_check: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ListKeyPoliciesRequest {
    pub(crate) key_id: String,
    pub(crate) limit: Option<i64>,
    pub(crate) marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListKeyPoliciesResponse {
    pub(crate) policy_names: Vec<&'static str>,
    pub(crate) truncated: bool,
}

// ---- grants ----

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct GrantConstraints {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) encryption_context_subset: Option<StrictMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) encryption_context_equals: Option<StrictMap>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct CreateGrantRequest {
    pub(crate) key_id: String,
    pub(crate) grantee_principal: String,
    pub(crate) retiring_principal: Option<String>,
    pub(crate) operations: Vec<String>,
    pub(crate) constraints: Option<GrantConstraints>,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) name: Option<String>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateGrantResponse {
    pub(crate) grant_token: String,
    pub(crate) grant_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ListGrantsRequest {
    pub(crate) key_id: String,
    pub(crate) limit: Option<i64>,
    pub(crate) marker: Option<String>,
    pub(crate) grant_id: Option<String>,
    pub(crate) grantee_principal: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ListRetirableGrantsRequest {
    pub(crate) retiring_principal: String,
    pub(crate) limit: Option<i64>,
    pub(crate) marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GrantListEntry {
    pub(crate) key_id: String,
    pub(crate) grant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    pub(crate) creation_date: i64,
    pub(crate) grantee_principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retiring_principal: Option<String>,
    pub(crate) issuing_account: String,
    pub(crate) operations: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) constraints: Option<GrantConstraints>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListGrantsResponse {
    pub(crate) grants: Vec<GrantListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_marker: Option<String>,
    pub(crate) truncated: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct RetireGrantRequest {
    pub(crate) grant_token: Option<SecretText>,
    pub(crate) key_id: Option<String>,
    pub(crate) grant_id: Option<String>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct RevokeGrantRequest {
    pub(crate) key_id: String,
    pub(crate) grant_id: String,
    pub(crate) dry_run: Option<bool>,
}

// ---- rotation ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct EnableKeyRotationRequest {
    pub(crate) key_id: String,
    pub(crate) rotation_period_in_days: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyRotationStatus {
    pub(crate) key_rotation_enabled: bool,
    pub(crate) key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rotation_period_in_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_rotation_date: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ListKeyRotationsRequest {
    pub(crate) key_id: String,
    pub(crate) limit: Option<i64>,
    pub(crate) marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyRotation {
    pub(crate) key_id: String,
    pub(crate) rotation_date: i64,
    pub(crate) rotation_type: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListKeyRotationsResponse {
    pub(crate) rotations: Vec<KeyRotation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_marker: Option<String>,
    pub(crate) truncated: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyIdResponse {
    pub(crate) key_id: String,
}

// ---- aliases ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct AliasRequest {
    pub(crate) alias_name: String,
    pub(crate) target_key_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct DeleteAliasRequest {
    pub(crate) alias_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ListAliasesRequest {
    pub(crate) key_id: Option<String>,
    pub(crate) limit: Option<i64>,
    pub(crate) marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AliasListEntry {
    pub(crate) alias_name: String,
    pub(crate) alias_arn: String,
    pub(crate) target_key_id: String,
    pub(crate) creation_date: i64,
    pub(crate) last_updated_date: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListAliasesResponse {
    pub(crate) aliases: Vec<AliasListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_marker: Option<String>,
    pub(crate) truncated: bool,
}

// ---- cryptography ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct EncryptRequest {
    pub(crate) key_id: String,
    pub(crate) plaintext: SecretB64,
    pub(crate) encryption_context: Option<StrictMap>,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) encryption_algorithm: Option<String>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EncryptResponse {
    pub(crate) ciphertext_blob: B64Bytes,
    pub(crate) key_id: String,
    pub(crate) encryption_algorithm: &'static str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct DecryptRequest {
    pub(crate) ciphertext_blob: B64Bytes,
    pub(crate) encryption_context: Option<StrictMap>,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) key_id: Option<String>,
    pub(crate) encryption_algorithm: Option<String>,
    pub(crate) recipient: Option<serde_json::Value>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DecryptResponse {
    pub(crate) key_id: String,
    pub(crate) plaintext: SecretB64,
    pub(crate) encryption_algorithm: &'static str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ReEncryptRequest {
    pub(crate) ciphertext_blob: B64Bytes,
    pub(crate) source_encryption_context: Option<StrictMap>,
    pub(crate) source_key_id: Option<String>,
    pub(crate) destination_key_id: String,
    pub(crate) destination_encryption_context: Option<StrictMap>,
    pub(crate) source_encryption_algorithm: Option<String>,
    pub(crate) destination_encryption_algorithm: Option<String>,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReEncryptResponse {
    pub(crate) ciphertext_blob: B64Bytes,
    pub(crate) source_key_id: String,
    pub(crate) key_id: String,
    pub(crate) source_encryption_algorithm: &'static str,
    pub(crate) destination_encryption_algorithm: &'static str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct GenerateDataKeyRequest {
    pub(crate) key_id: String,
    pub(crate) encryption_context: Option<StrictMap>,
    pub(crate) number_of_bytes: Option<i64>,
    pub(crate) key_spec: Option<String>,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) recipient: Option<serde_json::Value>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GenerateDataKeyResponse {
    pub(crate) ciphertext_blob: B64Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) plaintext: Option<SecretB64>,
    pub(crate) key_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct GenerateDataKeyPairRequest {
    pub(crate) key_id: String,
    pub(crate) encryption_context: Option<StrictMap>,
    pub(crate) key_pair_spec: String,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) recipient: Option<serde_json::Value>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GenerateDataKeyPairResponse {
    pub(crate) private_key_ciphertext_blob: B64Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) private_key_plaintext: Option<SecretB64>,
    pub(crate) public_key: B64Bytes,
    pub(crate) key_id: String,
    pub(crate) key_pair_spec: &'static str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct GenerateRandomRequest {
    pub(crate) number_of_bytes: Option<i64>,
    pub(crate) custom_key_store_id: Option<String>,
    pub(crate) recipient: Option<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GenerateRandomResponse {
    pub(crate) plaintext: SecretB64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct SignRequest {
    pub(crate) key_id: String,
    pub(crate) message: SecretB64,
    pub(crate) message_type: Option<String>,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) signing_algorithm: String,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SignResponse {
    pub(crate) key_id: String,
    pub(crate) signature: B64Bytes,
    pub(crate) signing_algorithm: &'static str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    pub(crate) key_id: String,
    pub(crate) message: SecretB64,
    pub(crate) message_type: Option<String>,
    pub(crate) signature: B64Bytes,
    pub(crate) signing_algorithm: String,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct VerifyResponse {
    pub(crate) key_id: String,
    pub(crate) signature_valid: bool,
    pub(crate) signing_algorithm: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetPublicKeyResponse {
    pub(crate) key_id: String,
    pub(crate) public_key: B64Bytes,
    pub(crate) customer_master_key_spec: &'static str,
    pub(crate) key_spec: &'static str,
    pub(crate) key_usage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) encryption_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signing_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_agreement_algorithms: Option<Vec<&'static str>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct DeriveSharedSecretRequest {
    pub(crate) key_id: String,
    pub(crate) key_agreement_algorithm: String,
    pub(crate) public_key: B64Bytes,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) dry_run: Option<bool>,
    pub(crate) recipient: Option<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeriveSharedSecretResponse {
    pub(crate) key_id: String,
    pub(crate) shared_secret: SecretB64,
    pub(crate) key_agreement_algorithm: &'static str,
    pub(crate) key_origin: &'static str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct GenerateMacRequest {
    pub(crate) key_id: String,
    pub(crate) message: SecretB64,
    pub(crate) mac_algorithm: String,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GenerateMacResponse {
    pub(crate) mac: B64Bytes,
    pub(crate) mac_algorithm: &'static str,
    pub(crate) key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct VerifyMacRequest {
    pub(crate) key_id: String,
    pub(crate) message: SecretB64,
    pub(crate) mac_algorithm: String,
    pub(crate) mac: B64Bytes,
    pub(crate) grant_tokens: Option<Vec<String>>,
    pub(crate) dry_run: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct VerifyMacResponse {
    pub(crate) key_id: String,
    pub(crate) mac_valid: bool,
    pub(crate) mac_algorithm: &'static str,
}
