//! The Transit endpoints. Each converts Vault's parameters, calls `KeyService` and builds
//! Vault's `data`. Transit settings that Strongroom keys do not have natively are labels on
//! the key (`transit-derived`, `transit-deletion-allowed`, `transit-min-decryption-version`,
//! `transit-min-encryption-version`); `min_decryption_version` is enforced by disabling the
//! versions below it, so every protocol honours it.

use axum::http::{Method, StatusCode};
use base64::Engine;
use serde_json::{Map, Value, json};
use strongroom_core::types::SignData;
use strongroom_core::types::{
    CreateKeyInput, CreateKeyRingInput, DecryptInput, EncryptInput, GenerateDataKeyInput,
    KeyFilter, KeyRef, ReEncryptInput, UpdateKeyInput,
};
use strongroom_core::{
    Algorithm, EncryptionContext, Error, KeyName, KeyOrigin, KeyRecord, KeyState, Labels,
    PageRequest, Plaintext, Purpose, Sha2, SignatureScheme, VersionState,
};
use strongroom_crypto::RsaBits;

mod crypto;
mod keys;
mod sign;

use crypto::*;
use keys::*;
use sign::*;

use super::params::Params;
use super::{
    Call, MAX_BATCH, Reply, VaultError, VaultResult, unsupported_operation, unsupported_path,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Labels holding the Transit settings Strongroom keys have no field for.
const DERIVED: &str = "transit-derived";
const DELETION_ALLOWED: &str = "transit-deletion-allowed";
const MIN_DECRYPTION: &str = "transit-min-decryption-version";
const MIN_ENCRYPTION: &str = "transit-min-encryption-version";
const MIN_AVAILABLE: &str = "transit-min-available-version";

/// `/v1/<mount>/…`.
pub(crate) async fn transit(
    c: &mut Call<'_>,
    m: &Method,
    segs: &[&str],
    p: &mut Params,
) -> VaultResult {
    let post = *m == Method::POST;
    let get = *m == Method::GET;
    let list = m.as_str() == "LIST";
    match segs {
        ["keys"] if list => list_keys(c).await,
        ["keys"] => Err(unsupported_operation()),
        ["keys", name] if post => create_key(c, name, p).await,
        ["keys", name] if get => read_key(c, name).await,
        ["keys", name] if *m == Method::DELETE => delete_key(c, name).await,
        ["keys", _] => Err(unsupported_operation()),
        ["keys", name, "config"] if post => configure(c, name, p).await,
        ["keys", name, "rotate"] if post => rotate(c, name).await,
        ["keys", name, "trim"] if post => trim(c, name, p).await,
        ["keys", _, "config" | "rotate" | "trim"] => Err(unsupported_operation()),
        ["encrypt", name] if post => encrypt(c, name, p).await,
        ["decrypt", name] if post => decrypt(c, name, p).await,
        ["rewrap", name] if post => rewrap(c, name, p).await,
        ["datakey", kind, name] if post => datakey(c, kind, name, p).await,
        ["random", rest @ ..] if post && rest.len() <= 2 => random(c, rest, p).await,
        ["hash", rest @ ..] if post && rest.len() <= 1 => hash(c, rest, p).await,
        ["export", kind, name] if get => export(c, kind, name, None).await,
        ["export", kind, name, version] if get => export(c, kind, name, Some(version)).await,
        ["hmac", name, rest @ ..] if post && rest.len() <= 1 => hmac(c, name, rest, p).await,
        ["sign", name, rest @ ..] if post && rest.len() <= 1 => sign(c, name, rest, p).await,
        ["verify", name, rest @ ..] if post && rest.len() <= 1 => verify(c, name, rest, p).await,
        ["encrypt" | "decrypt" | "rewrap", _]
        | ["datakey", _, _]
        | ["random" | "hash", ..]
        | ["export", _, _, ..]
        | ["hmac" | "sign" | "verify", _, ..] => Err(unsupported_operation()),
        _ => Err(unsupported_path()),
    }
}

/// `/v1/sys/mounts…` and `/v1/auth/token/lookup-self`.
pub(crate) async fn sys(c: &mut Call<'_>, m: &Method, path: &str, p: &mut Params) -> VaultResult {
    let mount = format!("{}/", c.opts.mount);
    match path {
        "/v1/auth/token/lookup-self" if *m == Method::GET => lookup_self(c).await,
        "/v1/sys/mounts" if *m == Method::GET => {
            // Authenticated like every other path.
            c.svc.lookup_self(&c.ctx).await?;
            Ok(Reply::Sys(json!({ mount: mount_entry() })))
        }
        _ if path.starts_with("/v1/sys/mounts/") && *m == Method::POST => {
            c.svc.lookup_self(&c.ctx).await?;
            let _ = p.str("type")?;
            let _ = (p.str("description")?, p.str("plugin_name")?);
            let at = path.trim_start_matches("/v1/sys/mounts/").trim_matches('/');
            if at == c.opts.mount {
                Err(VaultError::bad(format!(
                    "path is already in use at {mount}"
                )))
            } else {
                Err(VaultError::bad(format!(
                    "mounting secrets engines is not supported: this server serves Transit at {mount} (--vault-transit-mount)"
                )))
            }
        }
        "/v1/auth/token/lookup-self" | "/v1/sys/mounts" => Err(unsupported_operation()),
        _ => Err(unsupported_path()),
    }
}

fn mount_entry() -> Value {
    json!({
        "type": "transit",
        "description": "Strongroom keys through the Vault Transit API",
        "accessor": "transit_strongroom",
        "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
        "options": null,
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": "",
        "running_sha256": "",
        "deprecation_status": "supported",
        "uuid": "",
    })
}

async fn lookup_self(c: &mut Call<'_>) -> VaultResult {
    let t = c.svc.lookup_self(&c.ctx).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let ttl = t.expires_at.map(|e| (e.0 - now).max(0)).unwrap_or(0);
    let root = t.principal == strongroom_core::ROOT_PRINCIPAL;
    Ok(Reply::Data(
        json!({
            // The token's public id, never the token itself.
            "id": t.id,
            "accessor": t.id,
            "display_name": format!("token-{}", t.principal),
            "entity_id": "",
            "creation_time": t.created_at.0,
            "creation_ttl": t.expires_at.map(|e| e.0 - t.created_at.0).unwrap_or(0),
            "issue_time": t.created_at.to_rfc3339(),
            "expire_time": t.expires_at.map(|e| e.to_rfc3339()),
            "explicit_max_ttl": 0,
            "ttl": ttl,
            "meta": {"principal": t.principal},
            "num_uses": 0,
            "orphan": true,
            "path": "auth/token/create",
            "policies": if root { json!(["root"]) } else { json!(["default"]) },
            "renewable": false,
            "type": "service",
        }),
        vec![],
    ))
}

fn key_name(name: &str) -> Result<KeyName, VaultError> {
    KeyName::try_new(name).map_err(|e| VaultError::bad(format!("invalid key name: {e}")))
}

fn key_ref(c: &Call<'_>, name: &str) -> Result<KeyRef, VaultError> {
    Ok(KeyRef::Path(c.opts.key_ring.clone(), key_name(name)?))
}

/// The Transit type of a Strongroom algorithm (keys made elsewhere show theirs too).
fn transit_type(a: Algorithm) -> String {
    match a {
        Algorithm::Aes256Gcm => "aes256-gcm96".into(),
        Algorithm::ChaCha20Poly1305 => "chacha20-poly1305".into(),
        Algorithm::RsaOaep(b) | Algorithm::RsaPss(b, _) | Algorithm::RsaPkcs1(b, _) => {
            format!("rsa-{}", b.bits())
        }
        Algorithm::EcdsaP256Sha256 => "ecdsa-p256".into(),
        Algorithm::EcdsaP384Sha384 => "ecdsa-p384".into(),
        Algorithm::EcdsaP521Sha512 => "ecdsa-p521".into(),
        Algorithm::Ed25519 => "ed25519".into(),
        Algorithm::Hmac(_) | Algorithm::Hmac224 => "hmac".into(),
        other => format!("strongroom:{other}"),
    }
}

fn label_is(k: &KeyRecord, name: &str) -> bool {
    k.labels.get(name).is_some_and(|v| v == "true")
}

fn label_int(k: &KeyRecord, name: &str, default: i64) -> i64 {
    k.labels
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn derived(k: &KeyRecord) -> bool {
    label_is(k, DERIVED)
}

fn min_decryption(k: &KeyRecord) -> i64 {
    label_int(k, MIN_DECRYPTION, 1)
}

fn min_available(k: &KeyRecord) -> i64 {
    label_int(k, MIN_AVAILABLE, 0)
}

fn min_encryption(k: &KeyRecord) -> i64 {
    label_int(k, MIN_ENCRYPTION, 0)
}

/// A live key of the Transit ring, or `Ok(None)` when there is none by that name (a key
/// scheduled for deletion or deleted counts as gone, as after a Vault DELETE).
async fn find_key(c: &Call<'_>, name: &str) -> Result<Option<KeyRecord>, VaultError> {
    match c.svc.get_key(&c.ctx, &key_ref(c, name)?).await {
        Ok(k) if matches!(k.state, KeyState::DeletionScheduled | KeyState::Deleted) => Ok(None),
        Ok(k) => Ok(Some(k)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn key_or(c: &Call<'_>, name: &str, missing: &str) -> Result<KeyRecord, VaultError> {
    find_key(c, name).await?.ok_or_else(|| {
        let mut e = VaultError::bad(missing);
        e.audited = true;
        e
    })
}

/// `vault:v<N>:<base64>`.
fn wrap(version: u32, bytes: &[u8]) -> String {
    format!("vault:v{version}:{}", B64.encode(bytes))
}

/// The version and bytes of a `vault:v<N>:` string (ciphertexts and signatures alike).
fn unwrap(s: &str, what: &str) -> Result<(u32, Vec<u8>), VaultError> {
    let rest = s
        .strip_prefix("vault:v")
        .ok_or_else(|| VaultError::bad(format!("invalid {what}: no prefix")))?;
    let (v, b) = rest
        .split_once(':')
        .ok_or_else(|| VaultError::bad(format!("invalid {what}: wrong number of fields")))?;
    let v: u32 = v.parse().map_err(|_| {
        VaultError::bad(format!(
            "invalid {what}: version number could not be decoded"
        ))
    })?;
    let bytes = B64
        .decode(b.as_bytes())
        .map_err(|_| VaultError::bad(format!("invalid {what}: could not decode base64")))?;
    Ok((v.max(1), bytes))
}

/// The operations that take `batch_input`.
#[derive(Debug, Clone, Copy)]
enum BatchOp {
    Encrypt,
    Decrypt,
    Rewrap,
    Sign,
    Verify,
    Hmac(Algorithm),
    VerifyHmac(Algorithm),
}

async fn one(
    c: &Call<'_>,
    k: &KeyRecord,
    op: BatchOp,
    p: &mut Params,
) -> Result<Value, VaultError> {
    match op {
        BatchOp::Encrypt => encrypt_one(c, k, p).await,
        BatchOp::Decrypt => decrypt_one(c, k, p).await,
        BatchOp::Rewrap => rewrap_one(c, k, p).await,
        BatchOp::Sign => sign_one(c, k, p).await,
        BatchOp::Verify => verify_one(c, k, p).await,
        BatchOp::Hmac(a) => hmac_one(c, k, a, p).await,
        BatchOp::VerifyHmac(a) => verify_hmac_one(c, k, a, p).await,
    }
}

/// Runs a batch: every item, in order, with `reference` echoed and `error` on failure.
/// Returns the results and whether any item failed (and whether any succeeded).
async fn run_batch(
    c: &Call<'_>,
    k: &KeyRecord,
    op: BatchOp,
    items: Vec<Params>,
    keep_on_error: &[(&str, Value)],
) -> Result<(Vec<Value>, bool, bool), VaultError> {
    if items.is_empty() {
        return Err(VaultError::bad("missing batch input to process"));
    }
    if items.len() > MAX_BATCH {
        return Err(VaultError::bad(format!(
            "batch_input: at most {MAX_BATCH} items"
        )));
    }
    let (mut failed, mut succeeded) = (false, false);
    let mut results = Vec::with_capacity(items.len());
    for mut item in items {
        let reference = item.str("reference")?.unwrap_or_default();
        let mut r = match one(c, k, op, &mut item).await {
            Ok(Value::Object(m)) => {
                succeeded = true;
                m
            }
            Ok(_) => Map::new(),
            Err(e) => {
                failed = true;
                let mut m: Map<String, Value> = keep_on_error
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                m.insert("error".into(), json!(e.message()));
                m
            }
        };
        r.insert("reference".into(), json!(reference));
        results.push(Value::Object(r));
    }
    Ok((results, failed, succeeded))
}

/// Encrypt and decrypt batches answer 400 when an item failed (or
/// `partial_failure_response_code` when some succeeded), still with `batch_results`.
fn batch_reply(
    results: Vec<Value>,
    failed: bool,
    succeeded: bool,
    partial_code: Option<i64>,
) -> Reply {
    let status = match (failed, succeeded, partial_code) {
        (false, _, _) => StatusCode::OK,
        (true, true, Some(code)) => u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST),
        (true, _, _) => StatusCode::BAD_REQUEST,
    };
    Reply::Batch(status, json!({ "batch_results": results }), vec![])
}

fn version_param(p: &mut Params) -> Result<Option<u32>, VaultError> {
    match p.int("key_version")? {
        None | Some(0) => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| VaultError::bad("key_version: must be a version number")),
    }
}

fn key_path(k: &KeyRecord) -> KeyRef {
    KeyRef::Path(k.ring.clone(), k.name.clone())
}
