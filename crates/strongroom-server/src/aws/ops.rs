//! The AWS KMS operations: request → `KeyService` call → response, in AWS's names.

use axum::response::Response;
use strongroom_core::types::*;
use strongroom_core::{
    Algorithm, AliasName, BearerToken, EncryptionContext, Error, GrantInfo, GrantInput, GrantRef,
    KeyOrigin, KeyRecord, KeyState, Labels, PageRequest, PrincipalName, Purpose, Sha2,
    SignatureScheme, Timestamp, VersionOrigin,
};
use strongroom_crypto::RsaBits;
use strongroom_crypto::import::ImportWrapping;

use super::wire::*;
use super::{AwsError, Call, ok, parse};

type AwsResult = Result<Response, AwsError>;

/// AWS KMS operations this server does not implement (yet): they answer
/// `UnsupportedOperationException` rather than `UnknownOperationException`, so a client
/// learns that the name is right and the feature is missing. Kept in step with
/// `docs/aws-compatibility.md`.
const NOT_YET: &[&str] = &[
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "DeleteCustomKeyStore",
    "DescribeCustomKeyStores",
    "DisconnectCustomKeyStore",
    "ReplicateKey",
    "UpdateCustomKeyStore",
    "UpdatePrimaryRegion",
];

/// Runs the operation `op` on `body`.
pub(crate) async fn dispatch(c: &Call<'_>, op: &str, body: &[u8]) -> AwsResult {
    match op {
        "CreateKey" => create_key(c, parse(body)?).await,
        "DescribeKey" => describe_key(c, parse(body)?).await,
        "ListKeys" => list_keys(c, parse(body)?).await,
        "EnableKey" => set_enabled(c, parse(body)?, true).await,
        "DisableKey" => set_enabled(c, parse(body)?, false).await,
        "UpdateKeyDescription" => update_description(c, parse(body)?).await,
        "ScheduleKeyDeletion" => schedule_deletion(c, parse(body)?).await,
        "CancelKeyDeletion" => cancel_deletion(c, parse(body)?).await,
        "TagResource" => tag_resource(c, parse(body)?).await,
        "UntagResource" => untag_resource(c, parse(body)?).await,
        "ListResourceTags" => list_tags(c, parse(body)?).await,
        "EnableKeyRotation" => enable_rotation(c, parse(body)?).await,
        "DisableKeyRotation" => disable_rotation(c, parse(body)?).await,
        "GetKeyRotationStatus" => rotation_status(c, parse(body)?).await,
        "RotateKeyOnDemand" => rotate_on_demand(c, parse(body)?).await,
        "ListKeyRotations" => list_rotations(c, parse(body)?).await,
        "GetParametersForImport" => get_parameters_for_import(c, parse(body)?).await,
        "ImportKeyMaterial" => import_key_material(c, parse(body)?).await,
        "DeleteImportedKeyMaterial" => delete_imported_key_material(c, parse(body)?).await,
        "GetKeyPolicy" => get_key_policy(c, parse(body)?).await,
        "PutKeyPolicy" => put_key_policy(c, parse(body)?).await,
        "ListKeyPolicies" => list_key_policies(c, parse(body)?).await,
        "CreateGrant" => create_grant(c, parse(body)?).await,
        "ListGrants" => list_grants(c, parse(body)?).await,
        "ListRetirableGrants" => list_retirable_grants(c, parse(body)?).await,
        "RetireGrant" => retire_grant(c, parse(body)?).await,
        "RevokeGrant" => revoke_grant(c, parse(body)?).await,
        "CreateAlias" => put_alias(c, parse(body)?, false).await,
        "UpdateAlias" => put_alias(c, parse(body)?, true).await,
        "DeleteAlias" => delete_alias(c, parse(body)?).await,
        "ListAliases" => list_aliases(c, parse(body)?).await,
        "Encrypt" => encrypt(c, parse(body)?).await,
        "Decrypt" => decrypt(c, parse(body)?).await,
        "ReEncrypt" => re_encrypt(c, parse(body)?).await,
        "GenerateDataKey" => generate_data_key(c, parse(body)?, true).await,
        "GenerateDataKeyWithoutPlaintext" => generate_data_key(c, parse(body)?, false).await,
        "GenerateDataKeyPair" => generate_data_key_pair(c, parse(body)?, true).await,
        "GenerateDataKeyPairWithoutPlaintext" => {
            generate_data_key_pair(c, parse(body)?, false).await
        }
        "GenerateRandom" => generate_random(c, parse(body)?).await,
        "Sign" => sign(c, parse(body)?).await,
        "Verify" => verify(c, parse(body)?).await,
        "GetPublicKey" => public_key(c, parse(body)?).await,
        "GenerateMac" => generate_mac(c, parse(body)?).await,
        "DeriveSharedSecret" => derive_shared_secret(c, parse(body)?).await,
        "VerifyMac" => verify_mac(c, parse(body)?).await,
        op if NOT_YET.contains(&op) => Err(AwsError::unsupported(format!(
            "{op} is not supported by this server yet; see docs/aws-compatibility.md"
        ))),
        _ => Err(AwsError::request(
            "UnknownOperationException",
            "unknown operation; see docs/aws-compatibility.md",
        )),
    }
}

// ---- names: key ids, ARNs, specs, algorithms ----

impl Call<'_> {
    fn arn(&self, key: &KeyRecord) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.opts.region, self.opts.account_id, key.id
        )
    }

    fn alias_arn(&self, alias: &AliasName) -> String {
        format!(
            "arn:aws:kms:{}:{}:alias/{alias}",
            self.opts.region, self.opts.account_id
        )
    }

    /// A key as AWS names it: key id, key ARN, `alias/<name>`, alias ARN, and (a Strongroom
    /// extension) a native `<key ring>/<key>` path.
    fn key_ref(&self, field: &str, s: &str) -> Result<KeyRef, AwsError> {
        if s.is_empty() || s.len() > 2048 {
            return Err(AwsError::validation(format!(
                "{field}: must be 1 to 2048 characters"
            )));
        }
        let local = if let Some(rest) = s.strip_prefix("arn:") {
            let prefix = format!("aws:kms:{}:{}:", self.opts.region, self.opts.account_id);
            match rest.strip_prefix(&prefix) {
                Some(r) if r.starts_with("key/") || r.starts_with("alias/") => {
                    r.strip_prefix("key/").unwrap_or(r)
                }
                _ => {
                    return Err(AwsError::request(
                        "NotFoundException",
                        format!(
                            "{field}: the ARN does not name a key or alias in this server's region and account"
                        ),
                    ));
                }
            }
        } else {
            s
        };
        KeyRef::parse(local, field).map_err(|e| AwsError::validation(e.to_string()))
    }

    /// `alias/<name>` → the alias name (AWS's reserved `alias/aws/` prefix refused).
    fn alias_name(&self, s: &str) -> Result<AliasName, AwsError> {
        let name = s
            .strip_prefix("alias/")
            .ok_or_else(|| AwsError::validation("AliasName: must begin with alias/"))?;
        if name.starts_with("aws/") {
            return Err(AwsError::validation(
                "AliasName: alias/aws/ is reserved for AWS managed keys",
            ));
        }
        AliasName::try_new(name).map_err(|e| AwsError::validation(format!("AliasName: {e}")))
    }
}

fn context(m: Option<StrictMap>, field: &str) -> Result<EncryptionContext, AwsError> {
    EncryptionContext::try_new(m.map(|m| m.0).unwrap_or_default())
        .map_err(|e| AwsError::validation(format!("{field}: {e}")))
}

fn blob_len(field: &str, len: usize, max: usize) -> Result<(), AwsError> {
    if len == 0 || len > max {
        return Err(AwsError::validation(format!(
            "{field}: must be 1 to {max} bytes"
        )));
    }
    Ok(())
}

/// A timestamp as AWS's JSON protocol sends it: seconds since the epoch, a number that may
/// have a fraction (dropped: Strongroom keeps whole seconds).
fn epoch_seconds(field: &str, v: &serde_json::Value) -> Result<Timestamp, AwsError> {
    let bad = || AwsError::validation(format!("{field}: must be a timestamp (epoch seconds)"));
    if let Some(i) = v.as_i64() {
        return Ok(Timestamp(i));
    }
    match v.as_f64() {
        // Bounded well inside i64 so the conversion cannot saturate.
        Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Timestamp(f.floor() as i64)),
        _ => Err(bad()),
    }
}

/// Grant tokens let AWS clients use a grant before it has propagated. Strongroom's grants
/// take effect at once, so the tokens are checked for shape and otherwise not needed.
fn no_grants(g: Option<Vec<String>>) -> Result<(), AwsError> {
    let g = g.unwrap_or_default();
    if g.len() > 10 || g.iter().any(|t| t.is_empty() || t.len() > 8192) {
        return Err(AwsError::validation(
            "GrantTokens: at most 10 tokens of 1 to 8192 characters",
        ));
    }
    Ok(())
}

fn no_dry_run(d: Option<bool>) -> Result<(), AwsError> {
    if d == Some(true) {
        return Err(AwsError::unsupported(
            "DryRun is not supported by this server yet",
        ));
    }
    Ok(())
}

fn rsa_spec(b: RsaBits) -> &'static str {
    match b {
        RsaBits::B2048 => "RSA_2048",
        RsaBits::B3072 => "RSA_3072",
        RsaBits::B4096 => "RSA_4096",
    }
}

fn key_spec(a: Algorithm) -> &'static str {
    match a {
        // A ChaCha20-Poly1305 key (made through another API) encrypts through this one as a
        // symmetric key; AWS has no other name for it.
        Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 => "SYMMETRIC_DEFAULT",
        Algorithm::RsaOaep(b) | Algorithm::RsaPss(b, _) | Algorithm::RsaPkcs1(b, _) => rsa_spec(b),
        Algorithm::EcdsaP256Sha256 => "ECC_NIST_P256",
        Algorithm::EcdsaP384Sha384 => "ECC_NIST_P384",
        Algorithm::EcdsaP521Sha512 => "ECC_NIST_P521",
        Algorithm::EcdsaSecp256k1Sha256 => "ECC_SECG_P256K1",
        Algorithm::Ed25519 => "ECC_NIST_EDWARDS25519",
        Algorithm::MlDsa44 => "ML_DSA_44",
        Algorithm::MlDsa65 => "ML_DSA_65",
        Algorithm::MlDsa87 => "ML_DSA_87",
        Algorithm::Hmac224 => "HMAC_224",
        Algorithm::Hmac(Sha2::Sha256) => "HMAC_256",
        Algorithm::Hmac(Sha2::Sha384) => "HMAC_384",
        Algorithm::Hmac(Sha2::Sha512) => "HMAC_512",
        Algorithm::EcdhP256 => "ECC_NIST_P256",
        Algorithm::EcdhP384 => "ECC_NIST_P384",
        Algorithm::EcdhP521 => "ECC_NIST_P521",
    }
}

fn key_usage(p: Purpose) -> &'static str {
    match p {
        Purpose::EncryptDecrypt | Purpose::AsymmetricDecrypt => "ENCRYPT_DECRYPT",
        Purpose::SignVerify => "SIGN_VERIFY",
        Purpose::Mac => "GENERATE_VERIFY_MAC",
        Purpose::KeyAgreement => "KEY_AGREEMENT",
    }
}

fn signing_name(s: SignatureScheme) -> &'static str {
    match s {
        SignatureScheme::RsaPss(Sha2::Sha256) => "RSASSA_PSS_SHA_256",
        SignatureScheme::RsaPss(Sha2::Sha384) => "RSASSA_PSS_SHA_384",
        SignatureScheme::RsaPss(Sha2::Sha512) => "RSASSA_PSS_SHA_512",
        SignatureScheme::RsaPkcs1(Sha2::Sha256) => "RSASSA_PKCS1_V1_5_SHA_256",
        SignatureScheme::RsaPkcs1(Sha2::Sha384) => "RSASSA_PKCS1_V1_5_SHA_384",
        SignatureScheme::RsaPkcs1(Sha2::Sha512) => "RSASSA_PKCS1_V1_5_SHA_512",
        SignatureScheme::Ecdsa(Sha2::Sha256) => "ECDSA_SHA_256",
        SignatureScheme::Ecdsa(Sha2::Sha384) => "ECDSA_SHA_384",
        SignatureScheme::Ecdsa(Sha2::Sha512) => "ECDSA_SHA_512",
        SignatureScheme::Ed25519 => "ED25519_SHA_512",
        SignatureScheme::MlDsa => "ML_DSA_SHAKE_256",
    }
}

fn signing_scheme(name: &str) -> Result<SignatureScheme, AwsError> {
    let all = [Sha2::Sha256, Sha2::Sha384, Sha2::Sha512]
        .into_iter()
        .flat_map(|h| {
            [
                SignatureScheme::RsaPss(h),
                SignatureScheme::RsaPkcs1(h),
                SignatureScheme::Ecdsa(h),
            ]
        })
        .chain([SignatureScheme::Ed25519, SignatureScheme::MlDsa]);
    for s in all {
        if signing_name(s) == name {
            return Ok(s);
        }
    }
    if name == "ED25519_PH_SHA_512" || name == "SM2DSA" {
        return Err(AwsError::unsupported(format!(
            "SigningAlgorithm {name} is not supported by this server yet"
        )));
    }
    Err(AwsError::validation(
        "SigningAlgorithm: not a signing algorithm AWS KMS defines",
    ))
}

/// The MAC algorithm names AWS KMS gives each HMAC algorithm, in both directions.
const MAC_NAMES: [(Algorithm, &str); 4] = [
    (Algorithm::Hmac224, "HMAC_SHA_224"),
    (Algorithm::Hmac(Sha2::Sha256), "HMAC_SHA_256"),
    (Algorithm::Hmac(Sha2::Sha384), "HMAC_SHA_384"),
    (Algorithm::Hmac(Sha2::Sha512), "HMAC_SHA_512"),
];

/// The AWS name of a MAC algorithm; `None` for algorithms that do not MAC.
fn mac_name(a: Algorithm) -> Option<&'static str> {
    MAC_NAMES.iter().find(|(m, _)| *m == a).map(|(_, n)| *n)
}

/// The MAC algorithm a request names, with its name as responses spell it.
fn parse_mac_algorithm(name: &str) -> Result<(Algorithm, &'static str), AwsError> {
    MAC_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .copied()
        .ok_or_else(|| AwsError::validation("MacAlgorithm: not a MAC algorithm AWS KMS defines"))
}

/// Encryption, signing, MAC and key agreement algorithms a key offers, as DescribeKey lists
/// them.
struct Algorithms {
    encryption: Option<Vec<&'static str>>,
    signing: Option<Vec<&'static str>>,
    mac: Option<Vec<&'static str>>,
    key_agreement: Option<Vec<&'static str>>,
}

fn algorithms(a: Algorithm) -> Algorithms {
    let mut out = Algorithms {
        encryption: None,
        signing: None,
        mac: None,
        key_agreement: None,
    };
    match a {
        Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 => {
            out.encryption = Some(vec!["SYMMETRIC_DEFAULT"])
        }
        Algorithm::RsaOaep(_) => out.encryption = Some(vec!["RSAES_OAEP_SHA_256"]),
        Algorithm::Hmac(_) | Algorithm::Hmac224 => out.mac = mac_name(a).map(|n| vec![n]),
        Algorithm::EcdhP256 | Algorithm::EcdhP384 | Algorithm::EcdhP521 => {
            out.key_agreement = Some(vec!["ECDH"])
        }
        a => {
            out.signing = Some(
                a.signing_variants()
                    .into_iter()
                    .filter_map(Algorithm::scheme)
                    .map(signing_name)
                    .collect(),
            )
        }
    }
    out
}

/// CreateKey's KeySpec and KeyUsage → a Strongroom algorithm.
fn algorithm_for(spec: &str, usage: Option<&str>) -> Result<Algorithm, AwsError> {
    let not_yet = |what: &str| {
        AwsError::unsupported(format!(
            "{what} is not supported by this server yet; see docs/aws-compatibility.md"
        ))
    };
    let usage = match usage {
        None | Some("ENCRYPT_DECRYPT") => "ENCRYPT_DECRYPT",
        Some(u @ ("SIGN_VERIFY" | "GENERATE_VERIFY_MAC" | "KEY_AGREEMENT")) => u,
        Some(_) => {
            return Err(AwsError::validation(
                "KeyUsage: must be ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC or KEY_AGREEMENT",
            ));
        }
    };
    let rsa = |b| match usage {
        "ENCRYPT_DECRYPT" => Ok(Algorithm::RsaOaep(b)),
        "SIGN_VERIFY" => Ok(Algorithm::RsaPss(b, Sha2::Sha256)),
        _ => Err(()),
    };
    let sign_only = |a| {
        if usage == "SIGN_VERIFY" {
            Ok(a)
        } else {
            Err(())
        }
    };
    // NIST curves sign, or agree on keys.
    let ec = |sign, agree| match usage {
        "SIGN_VERIFY" => Ok(sign),
        "KEY_AGREEMENT" => Ok(agree),
        _ => Err(()),
    };
    let mac_only = |a| {
        if usage == "GENERATE_VERIFY_MAC" {
            Ok(a)
        } else {
            Err(())
        }
    };
    let res = match spec {
        "SYMMETRIC_DEFAULT" if usage == "ENCRYPT_DECRYPT" => Ok(Algorithm::Aes256Gcm),
        "SYMMETRIC_DEFAULT" => Err(()),
        "RSA_2048" => rsa(RsaBits::B2048),
        "RSA_3072" => rsa(RsaBits::B3072),
        "RSA_4096" => rsa(RsaBits::B4096),
        "ECC_NIST_P256" => ec(Algorithm::EcdsaP256Sha256, Algorithm::EcdhP256),
        "ECC_NIST_P384" => ec(Algorithm::EcdsaP384Sha384, Algorithm::EcdhP384),
        "ECC_NIST_P521" => ec(Algorithm::EcdsaP521Sha512, Algorithm::EcdhP521),
        "ECC_SECG_P256K1" => sign_only(Algorithm::EcdsaSecp256k1Sha256),
        "ECC_NIST_EDWARDS25519" => sign_only(Algorithm::Ed25519),
        "ML_DSA_44" => sign_only(Algorithm::MlDsa44),
        "ML_DSA_65" => sign_only(Algorithm::MlDsa65),
        "ML_DSA_87" => sign_only(Algorithm::MlDsa87),
        "HMAC_224" => mac_only(Algorithm::Hmac224),
        "HMAC_256" => mac_only(Algorithm::Hmac(Sha2::Sha256)),
        "HMAC_384" => mac_only(Algorithm::Hmac(Sha2::Sha384)),
        "HMAC_512" => mac_only(Algorithm::Hmac(Sha2::Sha512)),
        "SM2" => {
            return Err(not_yet(&format!("KeySpec {spec}")));
        }
        _ => {
            return Err(AwsError::validation(
                "KeySpec: not a key spec AWS KMS defines",
            ));
        }
    };
    res.map_err(|()| {
        AwsError::validation(format!("KeyUsage {usage} is not valid for KeySpec {spec}"))
    })
}

fn metadata(c: &Call<'_>, k: &KeyRecord) -> KeyMetadata {
    let algs = algorithms(k.algorithm);
    let spec = key_spec(k.algorithm);
    KeyMetadata {
        aws_account_id: c.opts.account_id.clone(),
        key_id: k.id.to_string(),
        arn: c.arn(k),
        creation_date: k.created_at.0,
        enabled: k.state == KeyState::Enabled,
        description: k.description.clone(),
        key_usage: key_usage(k.purpose),
        key_state: match k.state {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::DeletionScheduled => "PendingDeletion",
            KeyState::PendingImport => "PendingImport",
            // Never shown: a deleted key is NotFoundException here (see `live`).
            KeyState::Deleted => "PendingDeletion",
        },
        deletion_date: k.deletion_time.map(|t| t.0),
        origin: match k.origin {
            KeyOrigin::Generated => "AWS_KMS",
            KeyOrigin::Imported => "EXTERNAL",
        },
        expiration_model: (k.origin == KeyOrigin::Imported).then_some(
            match k.material_expires_at {
                Some(_) => "KEY_MATERIAL_EXPIRES",
                None => "KEY_MATERIAL_DOES_NOT_EXPIRE",
            },
        ),
        valid_to: k.material_expires_at.map(|t| t.0),
        key_manager: "CUSTOMER",
        customer_master_key_spec: spec,
        key_spec: spec,
        encryption_algorithms: algs.encryption,
        signing_algorithms: algs.signing,
        mac_algorithms: algs.mac,
        key_agreement_algorithms: algs.key_agreement,
        multi_region: false,
    }
}

/// AWS pages: `Limit` 1 to 1000 (default 100), `Marker` from the previous page.
fn page(limit: Option<i64>, marker: Option<String>) -> Result<PageRequest, AwsError> {
    let limit = match limit {
        None => 100,
        Some(n @ 1..=1000) => n as u32,
        Some(_) => return Err(AwsError::validation("Limit: must be between 1 and 1000")),
    };
    Ok(PageRequest {
        after: marker,
        limit,
    })
}

/// A page cursor the caller did not get from us is AWS's `InvalidMarkerException`.
fn marker_error(e: Error) -> AwsError {
    match e {
        Error::InvalidArgument { ref field, .. } if field == "page_token" => {
            AwsError::Core(e).relabel("InvalidMarkerException")
        }
        e => AwsError::Core(e),
    }
}

// ---- keys ----

async fn create_key(c: &Call<'_>, req: CreateKeyRequest) -> AwsResult {
    let CreateKeyRequest {
        policy,
        description,
        key_usage,
        customer_master_key_spec,
        key_spec,
        origin,
        custom_key_store_id,
        bypass_policy_lockout_safety_check: _,
        tags,
        multi_region,
        xks_key_id,
    } = req;
    // A policy that cannot be translated refuses the whole request before the key exists.
    if let Some(p) = &policy {
        translated_policy(p, "aws/placeholder", &c.opts.account_id)?;
    }
    if custom_key_store_id.is_some() || xks_key_id.is_some() {
        return Err(AwsError::unsupported(
            "custom key stores are not supported by this server",
        ));
    }
    if multi_region == Some(true) {
        return Err(AwsError::unsupported(
            "multi-Region keys are not supported by this server",
        ));
    }
    let imported = match origin.as_deref() {
        None | Some("AWS_KMS") => false,
        Some("EXTERNAL") => true,
        Some("AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE") => {
            return Err(AwsError::unsupported(
                "custom key stores are not supported by this server",
            ));
        }
        Some(_) => {
            return Err(AwsError::validation(
                "Origin: not an origin AWS KMS defines",
            ));
        }
    };
    let spec = match (key_spec, customer_master_key_spec) {
        (Some(_), Some(_)) => {
            return Err(AwsError::validation(
                "give KeySpec or CustomerMasterKeySpec, not both",
            ));
        }
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => "SYMMETRIC_DEFAULT".into(),
    };
    let algorithm = algorithm_for(&spec, key_usage.as_deref())?;
    let labels = tags_to_labels(tags.unwrap_or_default())?;
    let description = description.unwrap_or_default();
    let input = || CreateKeyInput {
        ring: c.opts.key_ring.clone(),
        name: None,
        purpose: Some(algorithm.purpose()),
        algorithm: Some(algorithm),
        description: description.clone(),
        labels: labels.clone(),
        exportable: false,
        rotation_period_secs: None,
        next_rotation_time: None,
        external: None,
        hsm: None,
    };
    let create = || async {
        if imported {
            c.svc
                .create_key_for_import(&c.ctx, input())
                .await
                .map(|k| (k, None))
        } else {
            c.svc
                .create_key(&c.ctx, input())
                .await
                .map(|(k, v)| (k, Some(v)))
        }
    };
    let created = match create().await {
        // The AWS key ring is made the first time it is needed.
        Err(Error::NotFound {
            kind: "key ring", ..
        }) => {
            match c
                .svc
                .create_key_ring(
                    &c.ctx,
                    CreateKeyRingInput {
                        name: c.opts.key_ring.clone(),
                        description: "keys created through the AWS KMS API".into(),
                        labels: Labels::new(),
                    },
                )
                .await
            {
                Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            create().await
        }
        other => other,
    };
    let (k, _) = created.map_err(tag_error)?;
    if let Some(p) = &policy {
        let cedar = translated_policy(p, &format!("{}/{}", k.ring, k.name), &c.opts.account_id)?;
        c.svc
            .put_policy(&c.ctx, &key_policy_name(&k), &cedar, None)
            .await?;
    }
    ok(&KeyMetadataResponse {
        key_metadata: metadata(c, &k),
    })
}

// ---- importing key material ----

async fn get_parameters_for_import(c: &Call<'_>, req: GetParametersForImportRequest) -> AwsResult {
    let GetParametersForImportRequest {
        key_id,
        wrapping_algorithm,
        wrapping_key_spec,
    } = req;
    let wrapping = match wrapping_algorithm.as_str() {
        "RSAES_OAEP_SHA_256" => ImportWrapping::RsaOaepSha256,
        "RSA_AES_KEY_WRAP_SHA_256" => ImportWrapping::RsaAesKeyWrapSha256,
        "RSAES_OAEP_SHA_1" | "RSAES_PKCS1_V1_5" | "RSA_AES_KEY_WRAP_SHA_1" | "SM2PKE" => {
            return Err(AwsError::unsupported(format!(
                "WrappingAlgorithm {wrapping_algorithm} is not supported by this server; use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256"
            )));
        }
        _ => {
            return Err(AwsError::validation(
                "WrappingAlgorithm: not a wrapping algorithm AWS KMS defines",
            ));
        }
    };
    let bits = match wrapping_key_spec.as_str() {
        "RSA_2048" => RsaBits::B2048,
        "RSA_3072" => RsaBits::B3072,
        "RSA_4096" => RsaBits::B4096,
        "SM2" => {
            return Err(AwsError::unsupported(
                "WrappingKeySpec SM2 is not supported",
            ));
        }
        _ => {
            return Err(AwsError::validation(
                "WrappingKeySpec: must be RSA_2048, RSA_3072 or RSA_4096",
            ));
        }
    };
    let p = c
        .svc
        .get_import_parameters(&c.ctx, &c.key_ref("KeyId", &key_id)?, wrapping, bits)
        .await
        .map_err(import_error)?;
    ok(&GetParametersForImportResponse {
        key_id: arn_of(c, &p.key),
        // Exposed to hand the token to the caller, once.
        import_token: B64Bytes(p.token.expose_secret().as_bytes().to_vec()),
        public_key: B64Bytes(p.public_key),
        parameters_valid_to: p.expires_at.0,
    })
}

async fn import_key_material(c: &Call<'_>, req: ImportKeyMaterialRequest) -> AwsResult {
    let ImportKeyMaterialRequest {
        key_id,
        import_token,
        encrypted_key_material,
        valid_to,
        expiration_model,
        import_type,
        key_material_description,
        key_material_id,
    } = req;
    // KEY_MATERIAL_EXPIRES is AWS's default, and needs ValidTo.
    let expires_at = match (expiration_model.as_deref(), valid_to) {
        (None | Some("KEY_MATERIAL_EXPIRES"), Some(t)) => Some(epoch_seconds("ValidTo", &t)?),
        (None | Some("KEY_MATERIAL_EXPIRES"), None) => {
            return Err(AwsError::validation(
                "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES (the default)",
            ));
        }
        (Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), None) => None,
        (Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), Some(_)) => {
            return Err(AwsError::validation(
                "ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE",
            ));
        }
        (Some(_), _) => {
            return Err(AwsError::validation(
                "ExpirationModel: must be KEY_MATERIAL_EXPIRES or KEY_MATERIAL_DOES_NOT_EXPIRE",
            ));
        }
    };
    if import_type
        .as_deref()
        .is_some_and(|t| t != "EXISTING_KEY_MATERIAL")
        || key_material_description.is_some()
        || key_material_id.is_some()
    {
        return Err(AwsError::unsupported(
            "importing new key material for rotation (ImportType NEW_KEY_MATERIAL, KeyMaterialId, KeyMaterialDescription) is not supported by this server",
        ));
    }
    // Exposed to hand the token (our own text, base64-wrapped by AWS's wire) to core.
    let token =
        BearerToken::new(String::from_utf8_lossy(import_token.0.expose_secret()).into_owned());
    c.svc
        .import_key_material(
            &c.ctx,
            &c.key_ref("KeyId", &key_id)?,
            &token,
            &encrypted_key_material.0,
            expires_at,
        )
        .await
        .map_err(import_error)?;
    ok(&Empty {})
}

async fn delete_imported_key_material(c: &Call<'_>, req: KeyIdOnly) -> AwsResult {
    let KeyIdOnly { key_id } = req;
    c.svc
        .delete_imported_key_material(&c.ctx, &c.key_ref("KeyId", &key_id)?)
        .await
        .map_err(import_error)?;
    ok(&Empty {})
}

/// Import's refusals in AWS's names.
fn import_error(e: Error) -> AwsError {
    match e {
        Error::InvalidArgument {
            ref field,
            ref reason,
        } if field == "import_token" => {
            let kind = if reason.contains("expired") {
                "ExpiredImportTokenException"
            } else {
                "InvalidImportTokenException"
            };
            AwsError::Core(e).relabel(kind)
        }
        Error::InvalidArgument { ref field, .. } if field == "key_material" => {
            AwsError::Core(e).relabel("IncorrectKeyMaterialException")
        }
        // A key not created for import: AWS's UnsupportedOperationException.
        Error::InvalidState {
            state: "generated", ..
        } => AwsError::Core(e).relabel("UnsupportedOperationException"),
        e => AwsError::Core(e),
    }
}

// ---- key policies ----

/// The Strongroom policy document that holds a key's translated AWS key policy.
fn key_policy_name(k: &KeyRecord) -> String {
    format!("aws-key-{}", k.id)
}

fn translated_policy(json: &str, key_path: &str, account: &str) -> Result<String, AwsError> {
    let cedar = super::policy::translate(json, key_path, account)
        .map_err(|e| AwsError::request("MalformedPolicyDocumentException", e.0))?;
    strongroom_core::KeyService::validate_policy_text("aws-key-check", &cedar).map_err(|e| {
        AwsError::request(
            "MalformedPolicyDocumentException",
            format!("the translated policy does not validate: {e}"),
        )
    })?;
    Ok(cedar)
}

fn default_policy_name(name: Option<String>) -> Result<(), AwsError> {
    match name.as_deref() {
        None | Some("default") => Ok(()),
        Some(_) => Err(AwsError::validation(
            "PolicyName: the only key policy name is default",
        )),
    }
}

async fn get_key_policy(c: &Call<'_>, req: GetKeyPolicyRequest) -> AwsResult {
    let GetKeyPolicyRequest {
        key_id,
        policy_name,
    } = req;
    default_policy_name(policy_name)?;
    let k = live(c.svc.get_key(&c.ctx, &c.key_ref("KeyId", &key_id)?).await?)?;
    let policy = match c.svc.get_policy(&c.ctx, &key_policy_name(&k)).await {
        Ok(p) => p
            .text
            .as_deref()
            .and_then(super::policy::original)
            .ok_or_else(|| {
                AwsError::Core(Error::Internal(
                    "a key policy document without its original".into(),
                ))
            })?,
        Err(Error::NotFound { .. }) => super::policy::default_policy(&c.opts.account_id),
        Err(e) => return Err(e.into()),
    };
    ok(&GetKeyPolicyResponse {
        policy,
        policy_name: "default",
    })
}

async fn put_key_policy(c: &Call<'_>, req: PutKeyPolicyRequest) -> AwsResult {
    let PutKeyPolicyRequest {
        key_id,
        policy_name,
        policy,
        bypass_policy_lockout_safety_check: _,
    } = req;
    default_policy_name(policy_name)?;
    let k = live(c.svc.get_key(&c.ctx, &c.key_ref("KeyId", &key_id)?).await?)?;
    let cedar = translated_policy(
        &policy,
        &format!("{}/{}", k.ring, k.name),
        &c.opts.account_id,
    )?;
    let name = key_policy_name(&k);
    // Replacing needs the version being replaced (policy documents are compare-and-swap).
    let current = match c.svc.get_policy(&c.ctx, &name).await {
        Ok(p) => Some(p.version),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    c.svc.put_policy(&c.ctx, &name, &cedar, current).await?;
    ok(&Empty {})
}

async fn list_key_policies(c: &Call<'_>, req: ListKeyPoliciesRequest) -> AwsResult {
    let ListKeyPoliciesRequest {
        key_id,
        limit,
        marker,
    } = req;
    page(limit, None)?;
    if marker.is_some() {
        return Err(AwsError::request(
            "InvalidMarkerException",
            "Marker: there is only one page",
        ));
    }
    live(c.svc.get_key(&c.ctx, &c.key_ref("KeyId", &key_id)?).await?)?;
    ok(&ListKeyPoliciesResponse {
        policy_names: vec!["default"],
        truncated: false,
    })
}

/// Tags are Strongroom labels, whose rules are narrower than AWS's: a tag they cannot hold
/// is AWS's `TagException`, naming the rule.
fn tag_error(e: Error) -> AwsError {
    match e {
        Error::InvalidArgument { field, reason } if field == "labels" => AwsError::Audited {
            kind: "TagException",
            message: format!("Tags: {reason} (tags are stored as Strongroom labels)"),
        },
        e => AwsError::Core(e),
    }
}

/// Tags as labels, refusing a key given twice (AWS: `TagException`).
fn tags_to_labels(tags: Vec<Tag>) -> Result<Labels, AwsError> {
    let mut labels = Labels::new();
    for t in tags {
        if labels.insert(t.tag_key, t.tag_value).is_some() {
            return Err(AwsError::request(
                "TagException",
                "Tags: a TagKey is given twice",
            ));
        }
    }
    Ok(labels)
}

async fn tag_resource(c: &Call<'_>, req: TagResourceRequest) -> AwsResult {
    let TagResourceRequest { key_id, tags } = req;
    let set_labels = tags_to_labels(tags)?;
    c.svc
        .update_key(
            &c.ctx,
            &c.key_ref("KeyId", &key_id)?,
            UpdateKeyInput {
                set_labels,
                ..UpdateKeyInput::default()
            },
        )
        .await
        .map_err(tag_error)?;
    ok(&Empty {})
}

async fn untag_resource(c: &Call<'_>, req: UntagResourceRequest) -> AwsResult {
    let UntagResourceRequest { key_id, tag_keys } = req;
    c.svc
        .update_key(
            &c.ctx,
            &c.key_ref("KeyId", &key_id)?,
            UpdateKeyInput {
                remove_labels: tag_keys,
                ..UpdateKeyInput::default()
            },
        )
        .await?;
    ok(&Empty {})
}

async fn list_tags(c: &Call<'_>, req: ListResourceTagsRequest) -> AwsResult {
    let ListResourceTagsRequest {
        key_id,
        limit,
        marker,
    } = req;
    let p = page(limit, marker)?;
    let k = live(c.svc.get_key(&c.ctx, &c.key_ref("KeyId", &key_id)?).await?)?;
    // A key has at most 64 labels: the page is cut here, by tag key.
    let mut rest = k
        .labels
        .into_iter()
        .filter(|(tk, _)| p.after.as_ref().is_none_or(|a| tk > a));
    let tags: Vec<Tag> = rest
        .by_ref()
        .take(p.limit as usize)
        .map(|(tag_key, tag_value)| Tag { tag_key, tag_value })
        .collect();
    let truncated = rest.next().is_some();
    ok(&ListResourceTagsResponse {
        next_marker: truncated
            .then(|| tags.last().map(|t| t.tag_key.clone()))
            .flatten(),
        truncated,
        tags,
    })
}

/// A key read for AWS: a deleted key no longer exists as far as AWS clients are concerned.
fn live(k: KeyRecord) -> Result<KeyRecord, AwsError> {
    if k.state == KeyState::Deleted {
        return Err(AwsError::Audited {
            kind: "NotFoundException",
            message: format!("key {} is deleted", k.id),
        });
    }
    Ok(k)
}

async fn schedule_deletion(c: &Call<'_>, req: ScheduleKeyDeletionRequest) -> AwsResult {
    let ScheduleKeyDeletionRequest {
        key_id,
        pending_window_in_days,
    } = req;
    let days = pending_window_in_days.unwrap_or(30);
    if !(7..=30).contains(&days) {
        return Err(AwsError::validation(
            "PendingWindowInDays: must be between 7 and 30",
        ));
    }
    let k = c
        .svc
        .schedule_key_deletion(&c.ctx, &c.key_ref("KeyId", &key_id)?, Some(days * 86_400))
        .await?;
    ok(&ScheduleKeyDeletionResponse {
        key_id: c.arn(&k),
        deletion_date: k.deletion_time.map(|t| t.0).unwrap_or_default(),
        key_state: "PendingDeletion",
        pending_window_in_days: days,
    })
}

async fn cancel_deletion(c: &Call<'_>, req: KeyIdOnly) -> AwsResult {
    let KeyIdOnly { key_id } = req;
    let k = c
        .svc
        .cancel_key_deletion(&c.ctx, &c.key_ref("KeyId", &key_id)?)
        .await?;
    ok(&KeyIdResponse { key_id: c.arn(&k) })
}

async fn describe_key(c: &Call<'_>, req: KeyIdRequest) -> AwsResult {
    let KeyIdRequest {
        key_id,
        grant_tokens,
    } = req;
    no_grants(grant_tokens)?;
    let k = live(c.svc.get_key(&c.ctx, &c.key_ref("KeyId", &key_id)?).await?)?;
    ok(&KeyMetadataResponse {
        key_metadata: metadata(c, &k),
    })
}

async fn list_keys(c: &Call<'_>, req: ListRequest) -> AwsResult {
    let ListRequest { limit, marker } = req;
    let p = c
        .svc
        .list_all_keys(&c.ctx, &page(limit, marker)?)
        .await
        .map_err(marker_error)?;
    ok(&ListKeysResponse {
        keys: p
            .items
            .iter()
            .map(|k| KeyListEntry {
                key_id: k.id.to_string(),
                key_arn: c.arn(k),
            })
            .collect(),
        truncated: p.next.is_some(),
        next_marker: p.next,
    })
}

async fn set_enabled(c: &Call<'_>, req: KeyIdOnly, enabled: bool) -> AwsResult {
    let KeyIdOnly { key_id } = req;
    c.svc
        .set_key_enabled(&c.ctx, &c.key_ref("KeyId", &key_id)?, enabled)
        .await?;
    ok(&Empty {})
}

async fn update_description(c: &Call<'_>, req: UpdateKeyDescriptionRequest) -> AwsResult {
    let UpdateKeyDescriptionRequest {
        key_id,
        description,
    } = req;
    c.svc
        .update_key(
            &c.ctx,
            &c.key_ref("KeyId", &key_id)?,
            UpdateKeyInput {
                description: Some(description),
                ..UpdateKeyInput::default()
            },
        )
        .await?;
    ok(&Empty {})
}

// ---- grants ----

/// AWS grant operations and the Strongroom actions they allow. GenerateDataKey stands for
/// every data key operation (one Strongroom action), and Decrypt for both decryptions.
const GRANT_OPERATIONS: &[(&str, &[&str])] = &[
    ("Decrypt", &["decrypt", "asymmetric-decrypt"]),
    ("Encrypt", &["encrypt"]),
    ("GenerateDataKey", &["generate-data-key"]),
    ("GenerateDataKeyWithoutPlaintext", &["generate-data-key"]),
    ("GenerateDataKeyPair", &["generate-data-key"]),
    (
        "GenerateDataKeyPairWithoutPlaintext",
        &["generate-data-key"],
    ),
    ("ReEncryptFrom", &["re-encrypt-from"]),
    ("ReEncryptTo", &["re-encrypt-to"]),
    ("Sign", &["sign"]),
    ("Verify", &["verify"]),
    ("GetPublicKey", &["get-public-key"]),
    ("GenerateMac", &["mac"]),
    ("VerifyMac", &["mac-verify"]),
    ("DescribeKey", &["get-key"]),
    ("CreateGrant", &["create-grant"]),
    ("RetireGrant", &["retire-grant"]),
    ("DeriveSharedSecret", &["derive-shared-secret"]),
];

fn grant_actions(ops: &[String]) -> Result<Vec<String>, AwsError> {
    let mut out = Vec::new();
    for op in ops {
        match GRANT_OPERATIONS.iter().find(|(n, _)| n == op) {
            Some((_, actions)) => out.extend(actions.iter().map(|a| a.to_string())),
            None => {
                return Err(AwsError::validation(
                    "Operations: not a grant operation AWS KMS defines",
                ));
            }
        }
    }
    Ok(out)
}

/// The AWS operations a grant's actions stand for (every one they allow).
fn grant_operations(actions: &[String]) -> Vec<&'static str> {
    GRANT_OPERATIONS
        .iter()
        .filter(|(_, acts)| acts.iter().all(|a| actions.iter().any(|x| x == a)))
        .map(|(op, _)| *op)
        .collect()
}

impl Call<'_> {
    /// A principal as AWS names it: `arn:aws:iam::<account>:user/<name>` or `role/<name>`
    /// in this server's account, or (a Strongroom extension) the principal's name.
    fn principal(&self, field: &str, s: &str) -> Result<PrincipalName, AwsError> {
        let name = match s.strip_prefix(&format!("arn:aws:iam::{}:", self.opts.account_id)) {
            Some(rest) => rest
                .strip_prefix("user/")
                .or_else(|| rest.strip_prefix("role/"))
                .ok_or_else(|| {
                    AwsError::validation(format!("{field}: must be a user or role ARN"))
                })?,
            None if s.starts_with("arn:") => {
                return Err(AwsError::validation(format!(
                    "{field}: the ARN names another account or service"
                )));
            }
            None => s,
        };
        PrincipalName::try_new(name)
            .map_err(|_| AwsError::validation(format!("{field}: not a principal name")))
    }

    fn principal_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.opts.account_id)
    }

    fn grant_entry(&self, g: &GrantInfo) -> GrantListEntry {
        let constraints =
            (g.context_subset.is_some() || g.context_equals.is_some()).then(|| GrantConstraints {
                encryption_context_subset: g.context_subset.clone().map(StrictMap),
                encryption_context_equals: g.context_equals.clone().map(StrictMap),
            });
        GrantListEntry {
            key_id: format!(
                "arn:aws:kms:{}:{}:key/{}",
                self.opts.region, self.opts.account_id, g.key_id
            ),
            grant_id: g.id.clone(),
            name: g.name.clone(),
            creation_date: g.created_at.0,
            grantee_principal: self.principal_arn(&g.grantee),
            retiring_principal: g
                .retiring_principal
                .as_deref()
                .map(|p| self.principal_arn(p)),
            issuing_account: format!("arn:aws:iam::{}:root", self.opts.account_id),
            operations: grant_operations(&g.actions),
            constraints,
        }
    }
}

/// A page of grants, by the order they were listed in; the marker is the last grant id.
fn grant_page(
    c: &Call<'_>,
    grants: Vec<GrantInfo>,
    limit: Option<i64>,
    marker: Option<String>,
) -> AwsResult {
    let p = page(limit, marker)?;
    let start = match &p.after {
        None => 0,
        Some(m) => grants
            .iter()
            .position(|g| &g.id == m)
            .map(|i| i + 1)
            .ok_or_else(|| {
                AwsError::request("InvalidMarkerException", "Marker: not from this listing")
            })?,
    };
    let rest = &grants[start.min(grants.len())..];
    let take = rest.len().min(p.limit as usize);
    let truncated = rest.len() > take;
    ok(&ListGrantsResponse {
        grants: rest[..take].iter().map(|g| c.grant_entry(g)).collect(),
        next_marker: truncated.then(|| rest[take - 1].id.clone()),
        truncated,
    })
}

async fn create_grant(c: &Call<'_>, req: CreateGrantRequest) -> AwsResult {
    let CreateGrantRequest {
        key_id,
        grantee_principal,
        retiring_principal,
        operations,
        constraints,
        grant_tokens,
        name,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    let GrantConstraints {
        encryption_context_subset,
        encryption_context_equals,
    } = constraints.unwrap_or_default();
    let input = GrantInput {
        grantee: c.principal("GranteePrincipal", &grantee_principal)?,
        retiring_principal: retiring_principal
            .map(|p| c.principal("RetiringPrincipal", &p))
            .transpose()?,
        actions: grant_actions(&operations)?,
        context_subset: encryption_context_subset.map(|m| m.0),
        context_equals: encryption_context_equals.map(|m| m.0),
        name,
    };
    let g = c
        .svc
        .create_grant(&c.ctx, &c.key_ref("KeyId", &key_id)?, input)
        .await?;
    ok(&CreateGrantResponse {
        // Exposed to hand the token to the caller, once.
        grant_token: g.token.expose_secret().to_string(),
        grant_id: g.info.id,
    })
}

async fn list_grants(c: &Call<'_>, req: ListGrantsRequest) -> AwsResult {
    let ListGrantsRequest {
        key_id,
        limit,
        marker,
        grant_id,
        grantee_principal,
    } = req;
    let grantee = grantee_principal
        .map(|p| c.principal("GranteePrincipal", &p))
        .transpose()?;
    let grants: Vec<GrantInfo> = c
        .svc
        .list_grants(&c.ctx, &c.key_ref("KeyId", &key_id)?)
        .await?
        .into_iter()
        .filter(|g| grant_id.as_ref().is_none_or(|id| &g.id == id))
        .filter(|g| grantee.as_ref().is_none_or(|p| g.grantee == p.as_str()))
        .collect();
    grant_page(c, grants, limit, marker)
}

async fn list_retirable_grants(c: &Call<'_>, req: ListRetirableGrantsRequest) -> AwsResult {
    let ListRetirableGrantsRequest {
        retiring_principal,
        limit,
        marker,
    } = req;
    let p = c.principal("RetiringPrincipal", &retiring_principal)?;
    let grants = c.svc.list_retirable_grants(&c.ctx, &p).await?;
    grant_page(c, grants, limit, marker)
}

async fn retire_grant(c: &Call<'_>, req: RetireGrantRequest) -> AwsResult {
    let RetireGrantRequest {
        grant_token,
        key_id,
        grant_id,
        dry_run,
    } = req;
    no_dry_run(dry_run)?;
    let by = match (grant_token, key_id, grant_id) {
        (Some(t), None, None) => GrantRef::Token(BearerToken::new(t.0.clone())),
        (None, Some(k), Some(id)) => GrantRef::Id(c.key_ref("KeyId", &k)?, id),
        _ => {
            return Err(AwsError::validation(
                "give GrantToken, or KeyId and GrantId",
            ));
        }
    };
    c.svc.retire_grant(&c.ctx, by).await.map_err(grant_error)?;
    ok(&Empty {})
}

async fn revoke_grant(c: &Call<'_>, req: RevokeGrantRequest) -> AwsResult {
    let RevokeGrantRequest {
        key_id,
        grant_id,
        dry_run,
    } = req;
    no_dry_run(dry_run)?;
    c.svc
        .revoke_grant(&c.ctx, &c.key_ref("KeyId", &key_id)?, &grant_id)
        .await
        .map_err(grant_error)?;
    ok(&Empty {})
}

/// A grant id or token that names no grant is AWS's `InvalidGrantIdException` /
/// `InvalidGrantTokenException`.
fn grant_error(e: Error) -> AwsError {
    match e {
        Error::NotFound { kind: "grant", .. } => {
            AwsError::Core(e).relabel("InvalidGrantIdException")
        }
        Error::InvalidArgument { ref field, .. } if field == "grant_id" => {
            AwsError::Core(e).relabel("InvalidGrantIdException")
        }
        e => AwsError::Core(e),
    }
}

// ---- rotation ----

async fn enable_rotation(c: &Call<'_>, req: EnableKeyRotationRequest) -> AwsResult {
    let EnableKeyRotationRequest {
        key_id,
        rotation_period_in_days,
    } = req;
    let days = rotation_period_in_days.unwrap_or(365);
    if !(90..=2560).contains(&days) {
        return Err(AwsError::validation(
            "RotationPeriodInDays: must be between 90 and 2560",
        ));
    }
    let key = c.key_ref("KeyId", &key_id)?;
    let res = c
        .svc
        .update_key(
            &c.ctx,
            &key,
            UpdateKeyInput {
                rotation_period_secs: Some(Some(days * 86_400)),
                ..UpdateKeyInput::default()
            },
        )
        .await;
    match res {
        // AWS rotates symmetric encryption keys only, and says so this way.
        Err(Error::InvalidArgument { field, .. }) if field == "rotation_period" => {
            Err(AwsError::Core(Error::InvalidArgument {
                field: "KeyId".into(),
                reason: "automatic rotation is for symmetric encryption keys only".into(),
            })
            .relabel("UnsupportedOperationException"))
        }
        Err(e) => Err(e.into()),
        Ok(_) => ok(&Empty {}),
    }
}

async fn list_rotations(c: &Call<'_>, req: ListKeyRotationsRequest) -> AwsResult {
    let ListKeyRotationsRequest {
        key_id,
        limit,
        marker,
    } = req;
    let (k, p) = c
        .svc
        .list_versions(&c.ctx, &c.key_ref("KeyId", &key_id)?, &page(limit, marker)?)
        .await
        .map_err(marker_error)?;
    let rotations = p
        .items
        .iter()
        .filter_map(|v| {
            let kind = match v.origin {
                VersionOrigin::Rotation => "ON_DEMAND",
                VersionOrigin::ScheduledRotation => "AUTOMATIC",
                VersionOrigin::Creation | VersionOrigin::Import => return None,
            };
            Some(KeyRotation {
                key_id: c.arn(&k),
                rotation_date: v.created_at.0,
                rotation_type: kind,
            })
        })
        .collect();
    ok(&ListKeyRotationsResponse {
        rotations,
        truncated: p.next.is_some(),
        next_marker: p.next,
    })
}

async fn disable_rotation(c: &Call<'_>, req: KeyIdOnly) -> AwsResult {
    let KeyIdOnly { key_id } = req;
    c.svc
        .update_key(
            &c.ctx,
            &c.key_ref("KeyId", &key_id)?,
            UpdateKeyInput {
                rotation_period_secs: Some(None),
                ..UpdateKeyInput::default()
            },
        )
        .await?;
    ok(&Empty {})
}

async fn rotation_status(c: &Call<'_>, req: KeyIdOnly) -> AwsResult {
    let KeyIdOnly { key_id } = req;
    let k = live(c.svc.get_key(&c.ctx, &c.key_ref("KeyId", &key_id)?).await?)?;
    ok(&KeyRotationStatus {
        key_rotation_enabled: k.rotation_period_secs.is_some(),
        key_id: c.arn(&k),
        rotation_period_in_days: k.rotation_period_secs.map(|s| s / 86_400),
        next_rotation_date: k.next_rotation_time.map(|t: Timestamp| t.0),
    })
}

async fn rotate_on_demand(c: &Call<'_>, req: KeyIdOnly) -> AwsResult {
    let KeyIdOnly { key_id } = req;
    let key = c.key_ref("KeyId", &key_id)?;
    let k = live(c.svc.get_key(&c.ctx, &key).await?)?;
    if k.purpose != Purpose::EncryptDecrypt {
        return Err(AwsError::unsupported(
            "on-demand rotation is for symmetric encryption keys only",
        ));
    }
    if k.origin == KeyOrigin::Imported {
        return Err(AwsError::unsupported(
            "keys with imported material do not rotate on this server",
        ));
    }
    let (k, _) = c.svc.create_version(&c.ctx, &key, true).await?;
    ok(&KeyIdResponse {
        key_id: k.id.to_string(),
    })
}

// ---- aliases ----

async fn put_alias(c: &Call<'_>, req: AliasRequest, update: bool) -> AwsResult {
    let AliasRequest {
        alias_name,
        target_key_id,
    } = req;
    let name = c.alias_name(&alias_name)?;
    let target = c.key_ref("TargetKeyId", &target_key_id)?;
    if matches!(target, KeyRef::Alias(_)) {
        return Err(AwsError::validation(
            "TargetKeyId: must be a key id or key ARN, not an alias",
        ));
    }
    c.svc.put_alias(&c.ctx, &name, &target, update).await?;
    ok(&Empty {})
}

async fn delete_alias(c: &Call<'_>, req: DeleteAliasRequest) -> AwsResult {
    let DeleteAliasRequest { alias_name } = req;
    let name = c.alias_name(&alias_name)?;
    c.svc.delete_alias(&c.ctx, &name).await?;
    ok(&Empty {})
}

async fn list_aliases(c: &Call<'_>, req: ListAliasesRequest) -> AwsResult {
    let ListAliasesRequest {
        key_id,
        limit,
        marker,
    } = req;
    let key = key_id.map(|k| c.key_ref("KeyId", &k)).transpose()?;
    let p = c
        .svc
        .list_aliases(&c.ctx, key.as_ref(), &page(limit, marker)?)
        .await
        .map_err(marker_error)?;
    ok(&ListAliasesResponse {
        aliases: p
            .items
            .iter()
            .map(|a| AliasListEntry {
                alias_name: format!("alias/{}", a.name),
                alias_arn: c.alias_arn(&a.name),
                target_key_id: a.key.id.to_string(),
                creation_date: a.created_at.0,
                last_updated_date: a.updated_at.0,
            })
            .collect(),
        truncated: p.next.is_some(),
        next_marker: p.next,
    })
}

// ---- cryptography ----

/// AWS's limit on Encrypt plaintexts and on messages to sign or MAC.
const MAX_AWS_PLAINTEXT: usize = 4096;
/// AWS's limit on ciphertext blobs.
const MAX_AWS_CIPHERTEXT: usize = 6144;

fn symmetric_only(alg: Option<String>, field: &str) -> Result<(), AwsError> {
    match alg.as_deref() {
        None | Some("SYMMETRIC_DEFAULT") => Ok(()),
        Some("RSAES_OAEP_SHA_256" | "RSAES_OAEP_SHA_1" | "SM2PKE") => {
            Err(AwsError::unsupported(format!(
                "{field}: encrypting with an asymmetric key through this API is not supported by this server yet"
            )))
        }
        Some(_) => Err(AwsError::validation(format!(
            "{field}: not an encryption algorithm AWS KMS defines"
        ))),
    }
}

async fn encrypt(c: &Call<'_>, req: EncryptRequest) -> AwsResult {
    let EncryptRequest {
        key_id,
        plaintext,
        encryption_context,
        grant_tokens,
        encryption_algorithm,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    blob_len("Plaintext", plaintext.0.len(), MAX_AWS_PLAINTEXT)?;
    if encryption_algorithm.as_deref() == Some("RSAES_OAEP_SHA_256") {
        if encryption_context.is_some_and(|m| !m.0.is_empty()) {
            return Err(AwsError::validation(
                "EncryptionContext: asymmetric keys take no encryption context",
            ));
        }
        let out = c
            .svc
            .asymmetric_encrypt(&c.ctx, &c.key_ref("KeyId", &key_id)?, &plaintext.0)
            .await?;
        return ok(&EncryptResponse {
            ciphertext_blob: B64Bytes(out.ciphertext),
            key_id: arn_of(c, &out.key),
            encryption_algorithm: "RSAES_OAEP_SHA_256",
        });
    }
    symmetric_only(encryption_algorithm, "EncryptionAlgorithm")?;
    let out = c
        .svc
        .encrypt(
            &c.ctx,
            EncryptInput {
                key: c.key_ref("KeyId", &key_id)?,
                plaintext: plaintext.0,
                context: context(encryption_context, "EncryptionContext")?,
            },
        )
        .await?;
    ok(&EncryptResponse {
        ciphertext_blob: B64Bytes(out.ciphertext),
        key_id: arn_of(c, &out.key),
        encryption_algorithm: "SYMMETRIC_DEFAULT",
    })
}

fn arn_of(c: &Call<'_>, k: &KeyIdentity) -> String {
    format!(
        "arn:aws:kms:{}:{}:key/{}",
        c.opts.region, c.opts.account_id, k.id
    )
}

async fn decrypt(c: &Call<'_>, req: DecryptRequest) -> AwsResult {
    let DecryptRequest {
        ciphertext_blob,
        encryption_context,
        grant_tokens,
        key_id,
        encryption_algorithm,
        recipient,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    if recipient.is_some() {
        return Err(AwsError::unsupported(
            "Recipient (Nitro Enclaves attestation) is not supported by this server",
        ));
    }
    blob_len(
        "CiphertextBlob",
        ciphertext_blob.0.len(),
        MAX_AWS_CIPHERTEXT,
    )?;
    let key = key_id.map(|k| c.key_ref("KeyId", &k)).transpose()?;
    match encryption_algorithm.as_deref() {
        None | Some("SYMMETRIC_DEFAULT") => {
            let out = c
                .svc
                .decrypt(
                    &c.ctx,
                    DecryptInput {
                        ciphertext: ciphertext_blob.0,
                        context: context(encryption_context, "EncryptionContext")?,
                        key,
                    },
                )
                .await?;
            ok(&DecryptResponse {
                key_id: arn_of(c, &out.key),
                plaintext: SecretB64(out.plaintext),
                encryption_algorithm: "SYMMETRIC_DEFAULT",
            })
        }
        Some("RSAES_OAEP_SHA_256") => {
            let key = key.ok_or_else(|| {
                AwsError::validation("KeyId: required to decrypt with an asymmetric key")
            })?;
            if encryption_context.is_some_and(|m| !m.0.is_empty()) {
                return Err(AwsError::validation(
                    "EncryptionContext: asymmetric keys take no encryption context",
                ));
            }
            let out = c
                .svc
                .asymmetric_decrypt(&c.ctx, &key, None, &ciphertext_blob.0)
                .await?;
            ok(&DecryptResponse {
                key_id: arn_of(c, &out.key),
                plaintext: SecretB64(out.plaintext),
                encryption_algorithm: "RSAES_OAEP_SHA_256",
            })
        }
        Some("RSAES_OAEP_SHA_1" | "SM2PKE") => Err(AwsError::unsupported(
            "EncryptionAlgorithm: only RSAES_OAEP_SHA_256 is supported for RSA keys by this server",
        )),
        Some(_) => Err(AwsError::validation(
            "EncryptionAlgorithm: not an encryption algorithm AWS KMS defines",
        )),
    }
}

async fn re_encrypt(c: &Call<'_>, req: ReEncryptRequest) -> AwsResult {
    let ReEncryptRequest {
        ciphertext_blob,
        source_encryption_context,
        source_key_id,
        destination_key_id,
        destination_encryption_context,
        source_encryption_algorithm,
        destination_encryption_algorithm,
        grant_tokens,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    symmetric_only(source_encryption_algorithm, "SourceEncryptionAlgorithm")?;
    symmetric_only(
        destination_encryption_algorithm,
        "DestinationEncryptionAlgorithm",
    )?;
    blob_len(
        "CiphertextBlob",
        ciphertext_blob.0.len(),
        MAX_AWS_CIPHERTEXT,
    )?;
    let out = c
        .svc
        .re_encrypt(
            &c.ctx,
            ReEncryptInput {
                ciphertext: ciphertext_blob.0,
                source_context: context(source_encryption_context, "SourceEncryptionContext")?,
                source: source_key_id
                    .map(|k| c.key_ref("SourceKeyId", &k))
                    .transpose()?,
                destination: Some(c.key_ref("DestinationKeyId", &destination_key_id)?),
                destination_context: context(
                    destination_encryption_context,
                    "DestinationEncryptionContext",
                )?,
            },
        )
        .await?;
    ok(&ReEncryptResponse {
        ciphertext_blob: B64Bytes(out.output.ciphertext),
        source_key_id: arn_of(c, &out.source_key),
        key_id: arn_of(c, &out.output.key),
        source_encryption_algorithm: "SYMMETRIC_DEFAULT",
        destination_encryption_algorithm: "SYMMETRIC_DEFAULT",
    })
}

async fn generate_data_key(
    c: &Call<'_>,
    req: GenerateDataKeyRequest,
    include_plaintext: bool,
) -> AwsResult {
    let GenerateDataKeyRequest {
        key_id,
        encryption_context,
        number_of_bytes,
        key_spec,
        grant_tokens,
        recipient,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    if recipient.is_some() {
        return Err(AwsError::unsupported(
            "Recipient (Nitro Enclaves attestation) is not supported by this server",
        ));
    }
    let length = match (number_of_bytes, key_spec.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(AwsError::validation(
                "give NumberOfBytes or KeySpec, not both",
            ));
        }
        (None, None) => {
            return Err(AwsError::validation("give NumberOfBytes or KeySpec"));
        }
        (Some(n @ 1..=1024), None) => n as usize,
        (Some(_), None) => {
            return Err(AwsError::validation(
                "NumberOfBytes: must be between 1 and 1024",
            ));
        }
        (None, Some("AES_256")) => 32,
        (None, Some("AES_128")) => 16,
        (None, Some(_)) => return Err(AwsError::validation("KeySpec: must be AES_256 or AES_128")),
    };
    let out = c
        .svc
        .generate_data_key(
            &c.ctx,
            GenerateDataKeyInput {
                key: c.key_ref("KeyId", &key_id)?,
                length,
                context: context(encryption_context, "EncryptionContext")?,
                include_plaintext,
            },
        )
        .await?;
    ok(&GenerateDataKeyResponse {
        ciphertext_blob: B64Bytes(out.wrapped.ciphertext),
        plaintext: out.plaintext.map(SecretB64),
        key_id: arn_of(c, &out.wrapped.key),
    })
}

/// KeyPairSpec → the algorithm whose key type the pair has, and its name.
fn key_pair_spec(spec: &str) -> Result<(Algorithm, &'static str), AwsError> {
    let rsa = |b| Algorithm::RsaPss(b, Sha2::Sha256);
    Ok(match spec {
        "RSA_2048" => (rsa(RsaBits::B2048), "RSA_2048"),
        "RSA_3072" => (rsa(RsaBits::B3072), "RSA_3072"),
        "RSA_4096" => (rsa(RsaBits::B4096), "RSA_4096"),
        "ECC_NIST_P256" => (Algorithm::EcdsaP256Sha256, "ECC_NIST_P256"),
        "ECC_NIST_P384" => (Algorithm::EcdsaP384Sha384, "ECC_NIST_P384"),
        "ECC_NIST_P521" => (Algorithm::EcdsaP521Sha512, "ECC_NIST_P521"),
        "ECC_SECG_P256K1" => (Algorithm::EcdsaSecp256k1Sha256, "ECC_SECG_P256K1"),
        "SM2" | "ECC_NIST_EDWARDS25519" => {
            return Err(AwsError::unsupported(format!(
                "KeyPairSpec {spec} is not supported by this server yet"
            )));
        }
        _ => {
            return Err(AwsError::validation(
                "KeyPairSpec: not a key pair spec AWS KMS defines",
            ));
        }
    })
}

async fn generate_data_key_pair(
    c: &Call<'_>,
    req: GenerateDataKeyPairRequest,
    include_private: bool,
) -> AwsResult {
    let GenerateDataKeyPairRequest {
        key_id,
        encryption_context,
        key_pair_spec: spec,
        grant_tokens,
        recipient,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    if recipient.is_some() {
        return Err(AwsError::unsupported(
            "Recipient (Nitro Enclaves attestation) is not supported by this server",
        ));
    }
    let (pair, name) = key_pair_spec(&spec)?;
    let out = c
        .svc
        .generate_data_key_pair(
            &c.ctx,
            GenerateDataKeyPairInput {
                key: c.key_ref("KeyId", &key_id)?,
                pair,
                context: context(encryption_context, "EncryptionContext")?,
                include_private,
            },
        )
        .await?;
    ok(&GenerateDataKeyPairResponse {
        private_key_ciphertext_blob: B64Bytes(out.wrapped_private.ciphertext),
        private_key_plaintext: out.private_key.map(SecretB64),
        public_key: B64Bytes(out.public_key),
        key_id: arn_of(c, &out.wrapped_private.key),
        key_pair_spec: name,
    })
}

async fn generate_random(c: &Call<'_>, req: GenerateRandomRequest) -> AwsResult {
    let GenerateRandomRequest {
        number_of_bytes,
        custom_key_store_id,
        recipient,
    } = req;
    if custom_key_store_id.is_some() || recipient.is_some() {
        return Err(AwsError::unsupported(
            "CustomKeyStoreId and Recipient are not supported by this server",
        ));
    }
    let n = match number_of_bytes {
        Some(n @ 1..=1024) => n as usize,
        _ => {
            return Err(AwsError::validation(
                "NumberOfBytes: must be between 1 and 1024",
            ));
        }
    };
    let random = c.svc.generate_random(&c.ctx, n).await?;
    ok(&GenerateRandomResponse {
        plaintext: SecretB64(random),
    })
}

fn sign_data(
    message: strongroom_core::Plaintext,
    message_type: Option<String>,
) -> Result<SignData, AwsError> {
    blob_len("Message", message.len(), MAX_AWS_PLAINTEXT)?;
    match message_type.as_deref() {
        None | Some("RAW") => Ok(SignData::Message(message)),
        // Exposed to pass the digest on: a digest is not secret the way a message may be.
        Some("DIGEST") => Ok(SignData::Digest(message.expose_secret().to_vec())),
        Some("EXTERNAL_MU") => Err(AwsError::unsupported(
            "MessageType EXTERNAL_MU (ML-DSA) is not supported by this server",
        )),
        Some(_) => Err(AwsError::validation(
            "MessageType: must be RAW, DIGEST or EXTERNAL_MU",
        )),
    }
}

async fn sign(c: &Call<'_>, req: SignRequest) -> AwsResult {
    let SignRequest {
        key_id,
        message,
        message_type,
        grant_tokens,
        signing_algorithm,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    let scheme = signing_scheme(&signing_algorithm)?;
    let data = sign_data(message.0, message_type)?;
    let out = c
        .svc
        .sign(
            &c.ctx,
            &c.key_ref("KeyId", &key_id)?,
            None,
            data,
            Some(scheme),
        )
        .await
        .map_err(scheme_error)?;
    ok(&SignResponse {
        key_id: arn_of(c, &out.key),
        signature: B64Bytes(out.signature),
        signing_algorithm: signing_name(scheme),
    })
}

/// A signing or MAC algorithm the key's spec does not offer is AWS's
/// `InvalidKeyUsageException`.
fn scheme_error(e: Error) -> AwsError {
    match e {
        Error::InvalidArgument { ref field, .. } if field == "algorithm" => {
            AwsError::Core(e).relabel("InvalidKeyUsageException")
        }
        e => AwsError::Core(e),
    }
}

async fn verify(c: &Call<'_>, req: VerifyRequest) -> AwsResult {
    let VerifyRequest {
        key_id,
        message,
        message_type,
        signature,
        signing_algorithm,
        grant_tokens,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    let scheme = signing_scheme(&signing_algorithm)?;
    let data = sign_data(message.0, message_type)?;
    blob_len("Signature", signature.0.len(), MAX_AWS_CIPHERTEXT)?;
    let out = c
        .svc
        .verify(
            &c.ctx,
            &c.key_ref("KeyId", &key_id)?,
            None,
            data,
            &signature.0,
            Some(scheme),
        )
        .await
        .map_err(scheme_error)?;
    if !out.valid {
        return Err(AwsError::request(
            "KMSInvalidSignatureException",
            "the signature is not valid for this message and key",
        )
        .already_audited());
    }
    ok(&VerifyResponse {
        key_id: arn_of(c, &out.key),
        signature_valid: true,
        signing_algorithm: signing_name(scheme),
    })
}

async fn public_key(c: &Call<'_>, req: KeyIdRequest) -> AwsResult {
    let KeyIdRequest {
        key_id,
        grant_tokens,
    } = req;
    no_grants(grant_tokens)?;
    let out = c
        .svc
        .get_public_key(&c.ctx, &c.key_ref("KeyId", &key_id)?, None)
        .await?;
    let algs = algorithms(out.algorithm);
    let spec = key_spec(out.algorithm);
    ok(&GetPublicKeyResponse {
        key_id: arn_of(c, &out.key),
        public_key: B64Bytes(out.der),
        customer_master_key_spec: spec,
        key_spec: spec,
        key_usage: key_usage(out.algorithm.purpose()),
        encryption_algorithms: algs.encryption,
        signing_algorithms: algs.signing,
        key_agreement_algorithms: algs.key_agreement,
    })
}

async fn derive_shared_secret(c: &Call<'_>, req: DeriveSharedSecretRequest) -> AwsResult {
    let DeriveSharedSecretRequest {
        key_id,
        key_agreement_algorithm,
        public_key,
        grant_tokens,
        dry_run,
        recipient,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    if recipient.is_some() {
        return Err(AwsError::unsupported(
            "Recipient (Nitro Enclaves attestation) is not supported by this server",
        ));
    }
    if key_agreement_algorithm != "ECDH" {
        return Err(AwsError::validation("KeyAgreementAlgorithm: must be ECDH"));
    }
    blob_len("PublicKey", public_key.0.len(), 8192)?;
    let out = c
        .svc
        .derive_shared_secret(&c.ctx, &c.key_ref("KeyId", &key_id)?, None, &public_key.0)
        .await?;
    ok(&DeriveSharedSecretResponse {
        key_id: arn_of(c, &out.key),
        shared_secret: SecretB64(out.secret),
        key_agreement_algorithm: "ECDH",
        key_origin: "AWS_KMS",
    })
}

async fn generate_mac(c: &Call<'_>, req: GenerateMacRequest) -> AwsResult {
    let GenerateMacRequest {
        key_id,
        message,
        mac_algorithm,
        grant_tokens,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    let (want, want_name) = parse_mac_algorithm(&mac_algorithm)?;
    blob_len("Message", message.0.len(), MAX_AWS_PLAINTEXT)?;
    let key = c.key_ref("KeyId", &key_id)?;
    let out = c
        .svc
        .mac(&c.ctx, &key, None, &message.0, Some(want))
        .await
        .map_err(scheme_error)?;
    ok(&GenerateMacResponse {
        mac: B64Bytes(out.mac),
        mac_algorithm: want_name,
        key_id: arn_of(c, &out.key),
    })
}

async fn verify_mac(c: &Call<'_>, req: VerifyMacRequest) -> AwsResult {
    let VerifyMacRequest {
        key_id,
        message,
        mac_algorithm,
        mac,
        grant_tokens,
        dry_run,
    } = req;
    no_grants(grant_tokens)?;
    no_dry_run(dry_run)?;
    let (want, want_name) = parse_mac_algorithm(&mac_algorithm)?;
    blob_len("Message", message.0.len(), MAX_AWS_PLAINTEXT)?;
    blob_len("Mac", mac.0.len(), 6144)?;
    let key = c.key_ref("KeyId", &key_id)?;
    let out = c
        .svc
        .mac_verify(&c.ctx, &key, None, &message.0, &mac.0, Some(want))
        .await
        .map_err(scheme_error)?;
    if !out.valid {
        return Err(AwsError::request(
            "KMSInvalidMacException",
            "the MAC is not valid for this message and key",
        )
        .already_audited());
    }
    ok(&VerifyMacResponse {
        key_id: arn_of(c, &out.key),
        mac_valid: true,
        mac_algorithm: want_name,
    })
}
