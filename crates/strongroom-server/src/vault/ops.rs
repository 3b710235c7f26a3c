//! The Transit endpoints. Each converts Vault's parameters, calls `KeyService` and builds
//! Vault's `data`. Transit settings that Strongroom keys do not have natively are labels on
//! the key (`transit-derived`, `transit-deletion-allowed`, `transit-min-decryption-version`,
//! `transit-min-encryption-version`); `min_decryption_version` is enforced by disabling the
//! versions below it, so every protocol honours it.

use axum::http::{Method, StatusCode};
use base64::Engine;
use serde_json::{Map, Value, json};
use strongroom_core::types::{
    CreateKeyInput, CreateKeyRingInput, DecryptInput, EncryptInput, GenerateDataKeyInput,
    KeyFilter, KeyRef, ReEncryptInput, UpdateKeyInput,
};
use strongroom_core::{
    Algorithm, EncryptionContext, Error, KeyName, KeyOrigin, KeyRecord, KeyState, Labels,
    PageRequest, Plaintext, Purpose, Sha2, VersionState,
};
use strongroom_crypto::RsaBits;

use super::params::Params;
use super::{
    Call, MAX_BATCH, Reply, VaultError, VaultResult, unsupported_operation, unsupported_path,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const DERIVED: &str = "transit-derived";
const DELETION_ALLOWED: &str = "transit-deletion-allowed";
const MIN_DECRYPTION: &str = "transit-min-decryption-version";
const MIN_ENCRYPTION: &str = "transit-min-encryption-version";
/// Encryption-context keys Transit's `context` and `associated_data` are bound under.
const CONTEXT_PAIR: &str = "vault-transit/context";
const AAD_PAIR: &str = "vault-transit/associated-data";
/// Vault's minimum automatic rotation period is 1 hour; Strongroom's is 1 day.
const MIN_ROTATE_SECS: i64 = 86400;
/// How long a Transit DELETE leaves before the key is gone (Strongroom never deletes at once).
const DELETE_WINDOW_SECS: i64 = 86400;

const MISSING_CONTEXT: &str = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

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
        ["keys", _, "trim"] if post => Err(VaultError::bad(
            "trim is not supported by this server: destroy old versions through the native API (they are destroyed after a window)",
        )),
        ["keys", _, "config" | "rotate" | "trim"] => Err(unsupported_operation()),
        ["encrypt", name] if post => encrypt(c, name, p).await,
        ["decrypt", name] if post => decrypt(c, name, p).await,
        ["rewrap", name] if post => rewrap(c, name, p).await,
        ["datakey", kind, name] if post => datakey(c, kind, name, p).await,
        ["random", rest @ ..] if post && rest.len() <= 2 => random(c, rest, p).await,
        ["encrypt" | "decrypt" | "rewrap", _] | ["datakey", _, _] | ["random", ..] => {
            Err(unsupported_operation())
        }
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

// ---- keys ----

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

fn algorithm_for(kind: &str, key_size: Option<i64>) -> Result<Algorithm, VaultError> {
    let rsa = |b| Ok(Algorithm::RsaPss(b, Sha2::Sha256));
    match kind {
        "aes256-gcm96" => Ok(Algorithm::Aes256Gcm),
        "rsa-2048" => rsa(RsaBits::B2048),
        "rsa-3072" => rsa(RsaBits::B3072),
        "rsa-4096" => rsa(RsaBits::B4096),
        "ecdsa-p256" => Ok(Algorithm::EcdsaP256Sha256),
        "ecdsa-p384" => Ok(Algorithm::EcdsaP384Sha384),
        "ecdsa-p521" => Ok(Algorithm::EcdsaP521Sha512),
        "ed25519" => Ok(Algorithm::Ed25519),
        "hmac" => match key_size {
            None | Some(32) => Ok(Algorithm::Hmac(Sha2::Sha256)),
            Some(48) => Ok(Algorithm::Hmac(Sha2::Sha384)),
            Some(64) => Ok(Algorithm::Hmac(Sha2::Sha512)),
            Some(_) => Err(VaultError::bad(
                "key_size: this server's hmac keys are 32, 48 or 64 bytes (HMAC-SHA-256, -384, -512)",
            )),
        },
        "aes128-gcm96" | "chacha20-poly1305" | "xchacha20-poly1305" | "managed_key"
        | "aes128-cmac" | "aes192-cmac" | "aes256-cmac" => Err(VaultError::bad(format!(
            "key type {kind} is not supported by this server"
        ))),
        other => Err(VaultError::bad(format!("unknown key type {other}"))),
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

async fn ensure_ring(c: &Call<'_>) -> Result<(), VaultError> {
    match c
        .svc
        .create_key_ring(
            &c.ctx,
            CreateKeyRingInput {
                name: c.opts.key_ring.clone(),
                description: "keys created through the Vault Transit API".into(),
                labels: Labels::new(),
            },
        )
        .await
    {
        Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

struct NewKey {
    algorithm: Algorithm,
    derived: bool,
    exportable: bool,
    rotate_secs: Option<i64>,
}

fn new_key_params(p: &mut Params) -> Result<NewKey, VaultError> {
    let kind = p.str("type")?.unwrap_or_else(|| "aes256-gcm96".into());
    let key_size = p.int("key_size")?;
    let algorithm = algorithm_for(&kind, key_size)?;
    let derived = p.bool("derived")?.unwrap_or(false);
    if p.bool("convergent_encryption")?.unwrap_or(false) {
        return Err(VaultError::bad(
            "convergent encryption is not supported by this server",
        ));
    }
    if derived && algorithm != Algorithm::Aes256Gcm {
        return Err(VaultError::bad(format!(
            "key derivation and convergent encryption not supported for keys of type {kind}"
        )));
    }
    if p.bool("allow_plaintext_backup")?.unwrap_or(false) {
        return Err(VaultError::bad(
            "allow_plaintext_backup is not supported by this server (backups are `strongroom operator backup`)",
        ));
    }
    let exportable = p.bool("exportable")?.unwrap_or(false);
    let rotate_secs = rotate_period(p)?;
    Ok(NewKey {
        algorithm,
        derived,
        exportable,
        rotate_secs,
    })
}

fn rotate_period(p: &mut Params) -> Result<Option<i64>, VaultError> {
    match p.duration("auto_rotate_period")? {
        None => Ok(None),
        Some(0) => Ok(Some(0)),
        Some(s) if s >= MIN_ROTATE_SECS => Ok(Some(s)),
        Some(_) => Err(VaultError::bad(
            "auto_rotate_period must be 0 (off) or at least 24h on this server",
        )),
    }
}

async fn create(c: &Call<'_>, name: &str, n: NewKey) -> Result<KeyRecord, VaultError> {
    let mut labels = Labels::new();
    if n.derived {
        labels.insert(DERIVED.into(), "true".into());
    }
    let input = || CreateKeyInput {
        ring: c.opts.key_ring.clone(),
        name: None,
        purpose: Some(n.algorithm.purpose()),
        algorithm: Some(n.algorithm),
        description: "created through the Vault Transit API".into(),
        labels: labels.clone(),
        exportable: n.exportable,
        rotation_period_secs: n.rotate_secs.filter(|s| *s > 0),
        next_rotation_time: None,
    };
    let name = key_name(name)?;
    let with_name = || CreateKeyInput {
        name: Some(name.clone()),
        ..input()
    };
    match c.svc.create_key(&c.ctx, with_name()).await {
        Err(Error::NotFound {
            kind: "key ring", ..
        }) => {
            ensure_ring(c).await?;
            Ok(c.svc.create_key(&c.ctx, with_name()).await?.0)
        }
        other => Ok(other?.0),
    }
}

async fn create_key(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
    let n = new_key_params(p)?;
    if let Some(k) = find_key(c, name).await? {
        // Unchanged, and without a warning, as OpenBao answers.
        return Ok(Reply::Data(key_info(c, &k).await?, vec![]));
    }
    let k = create(c, name, n).await?;
    Ok(Reply::Data(key_info(c, &k).await?, vec![]))
}

/// All versions of a key (paged through).
async fn versions(
    c: &Call<'_>,
    key: &KeyRef,
) -> Result<Vec<strongroom_core::types::VersionInfo>, VaultError> {
    let mut out = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 1000,
    };
    loop {
        let (_, p) = c.svc.list_versions(&c.ctx, key, &page).await?;
        out.extend(p.items);
        match p.next {
            Some(n) => page.after = Some(n),
            None => return Ok(out),
        }
    }
}

/// Vault's key description (`GET keys/:name`).
async fn key_info(c: &Call<'_>, k: &KeyRecord) -> Result<Value, VaultError> {
    let r = KeyRef::Path(k.ring.clone(), k.name.clone());
    let min_dec = min_decryption(k);
    let mut keys = Map::new();
    for v in versions(c, &r).await? {
        if i64::from(v.version) < min_dec || v.state == VersionState::Destroyed {
            continue;
        }
        let entry = if k.algorithm.is_asymmetric() {
            let pk = c.svc.get_public_key(&c.ctx, &r, Some(v.version)).await?;
            json!({
                "name": transit_type(k.algorithm),
                "public_key": public_key_text(k.algorithm, &pk.der),
                "certificate_chain": "",
                "creation_time": v.created_at.to_rfc3339(),
            })
        } else {
            json!(v.created_at.0)
        };
        keys.insert(v.version.to_string(), entry);
    }
    let purpose = k.algorithm.purpose();
    let mut data = json!({
        "name": k.name.as_str(),
        "type": transit_type(k.algorithm),
        "derived": derived(k),
        "deletion_allowed": label_is(k, DELETION_ALLOWED),
        "exportable": k.exportable,
        "allow_plaintext_backup": false,
        "latest_version": k.version_count,
        "min_available_version": 0,
        "min_decryption_version": min_dec,
        "min_encryption_version": min_encryption(k),
        "supports_encryption": purpose == Purpose::EncryptDecrypt,
        "supports_decryption": purpose == Purpose::EncryptDecrypt,
        "supports_derivation": k.algorithm == Algorithm::Aes256Gcm,
        "supports_signing": purpose == Purpose::SignVerify,
        "auto_rotate_period": k.rotation_period_secs.unwrap_or(0),
        "imported_key": k.origin == KeyOrigin::Imported,
    });
    if let Value::Object(d) = &mut data {
        if purpose != Purpose::Mac {
            d.insert("keys".into(), Value::Object(keys));
        }
        if derived(k) {
            d.insert("kdf".into(), json!("hkdf_sha256"));
            d.insert("convergent_encryption".into(), json!(false));
        }
        if let Algorithm::Hmac(h) = k.algorithm {
            d.insert("key_size".into(), json!(h.output_len()));
        }
    }
    Ok(data)
}

/// Ed25519 public keys are the raw 32 bytes in base64; others PEM, as Vault shows them.
fn public_key_text(a: Algorithm, der: &[u8]) -> String {
    if a == Algorithm::Ed25519 && der.len() >= 32 {
        return B64.encode(&der[der.len() - 32..]);
    }
    let b = B64.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

async fn read_key(c: &mut Call<'_>, name: &str) -> VaultResult {
    match find_key(c, name).await? {
        Some(k) => Ok(Reply::Data(key_info(c, &k).await?, vec![])),
        None => Err(VaultError::none()),
    }
}

async fn list_keys(c: &mut Call<'_>) -> VaultResult {
    let mut names = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 1000,
    };
    loop {
        let p = match c
            .svc
            .list_keys(&c.ctx, &c.opts.key_ring, &KeyFilter::default(), &page)
            .await
        {
            Ok(p) => p,
            // No Transit key was ever made: nothing to list.
            Err(Error::NotFound { .. }) => return Err(VaultError::none()),
            Err(e) => return Err(e.into()),
        };
        names.extend(
            p.items
                .iter()
                .filter(|k| !matches!(k.state, KeyState::DeletionScheduled | KeyState::Deleted))
                .map(|k| k.name.to_string()),
        );
        match p.next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    if names.is_empty() {
        return Err(VaultError::none());
    }
    Ok(Reply::Data(json!({ "keys": names }), vec![]))
}

async fn delete_key(c: &mut Call<'_>, name: &str) -> VaultResult {
    let Some(k) = find_key(c, name).await? else {
        let mut e = VaultError::bad(format!(
            "error deleting policy {name}: could not delete key; not found"
        ));
        e.audited = true;
        return Err(e);
    };
    if !label_is(&k, DELETION_ALLOWED) {
        let mut e = VaultError::bad(format!(
            "error deleting policy {name}: deletion is not allowed for this key"
        ));
        e.audited = true;
        return Err(e);
    }
    c.svc
        .schedule_key_deletion(&c.ctx, &key_ref(c, name)?, Some(DELETE_WINDOW_SECS))
        .await?;
    Ok(Reply::NoContent)
}

async fn configure(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
    let min_dec = p.int("min_decryption_version")?;
    let min_enc = p.int("min_encryption_version")?;
    let deletion_allowed = p.bool("deletion_allowed")?;
    let exportable = p.bool("exportable")?;
    let backup = p.bool("allow_plaintext_backup")?;
    let rotate = rotate_period(p)?;
    let k = key_or(
        c,
        name,
        &format!("no existing key named {name} could be found"),
    )
    .await?;
    let latest = i64::from(k.version_count);
    let min_dec = min_dec.map(|v| v.max(1));
    let new_dec = min_dec.unwrap_or_else(|| min_decryption(&k));
    let new_enc = min_enc.unwrap_or_else(|| min_encryption(&k));
    if new_dec > latest {
        return Err(VaultError::bad(
            "cannot set min decryption version higher than the latest version",
        ));
    }
    if new_enc < 0 || new_enc > latest || (new_enc != 0 && new_enc < new_dec) {
        return Err(VaultError::bad(
            "min encryption version must be 0, or between the min decryption version and the latest version",
        ));
    }
    if backup == Some(true) {
        return Err(VaultError::bad(
            "allow_plaintext_backup is not supported by this server",
        ));
    }
    let exportable = match (exportable, k.exportable) {
        (Some(true), false) => {
            return Err(VaultError::bad(
                "this server never makes an existing key exportable: create the key with exportable=true",
            ));
        }
        (Some(false), true) => {
            return Err(VaultError::bad(
                "exportable cannot be disabled once enabled",
            ));
        }
        _ => None,
    };
    let r = key_ref(c, name)?;
    // min_decryption_version is the versions' own state: below it, disabled; raising it
    // disables, lowering it enables again those it had disabled.
    let old_dec = min_decryption(&k);
    if new_dec != old_dec {
        for v in versions(c, &r).await? {
            let n = i64::from(v.version);
            if n < new_dec && v.state == VersionState::Enabled {
                c.svc.disable_version(&c.ctx, &r, v.version).await?;
            } else if n >= new_dec && n < old_dec && v.state == VersionState::Disabled {
                c.svc.enable_version(&c.ctx, &r, v.version).await?;
            }
        }
    }
    let mut set = Labels::new();
    set.insert(MIN_DECRYPTION.into(), new_dec.to_string());
    set.insert(MIN_ENCRYPTION.into(), new_enc.to_string());
    if let Some(d) = deletion_allowed {
        set.insert(DELETION_ALLOWED.into(), d.to_string());
    }
    let k = c
        .svc
        .update_key(
            &c.ctx,
            &r,
            UpdateKeyInput {
                set_labels: set,
                rotation_period_secs: rotate.map(|s| (s > 0).then_some(s)),
                exportable,
                ..Default::default()
            },
        )
        .await?;
    Ok(Reply::Data(key_info(c, &k).await?, vec![]))
}

async fn rotate(c: &mut Call<'_>, name: &str) -> VaultResult {
    key_or(c, name, "key not found").await?;
    let (k, _) = c
        .svc
        .create_version(&c.ctx, &key_ref(c, name)?, true)
        .await?;
    Ok(Reply::Data(key_info(c, &k).await?, vec![]))
}

// ---- encryption ----

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

/// The encryption context a Transit request binds: `context` for derived keys (ignored,
/// as Vault ignores it, for others) and `associated_data`.
fn context_of(k: &KeyRecord, p: &mut Params) -> Result<EncryptionContext, VaultError> {
    let context = p.b64("context")?;
    let aad = p.b64("associated_data")?;
    let mut pairs = std::collections::BTreeMap::new();
    if derived(k) {
        let ctx = context
            .filter(|c| !c.is_empty())
            .ok_or_else(|| VaultError::bad(MISSING_CONTEXT))?;
        pairs.insert(CONTEXT_PAIR.to_string(), B64.encode(ctx));
    }
    if let Some(a) = aad {
        pairs.insert(AAD_PAIR.to_string(), B64.encode(a));
    }
    EncryptionContext::try_new(pairs).map_err(|e| VaultError::bad(e.to_string()))
}

fn no_nonce(p: &mut Params) -> Result<(), VaultError> {
    match p.str("nonce")? {
        Some(_) => Err(VaultError::bad("nonce provided when not allowed")),
        None => Ok(()),
    }
}

/// Encryption uses the key's primary version; `key_version` may name it, not another.
fn check_key_version(k: &KeyRecord, p: &mut Params) -> Result<(), VaultError> {
    let Some(v) = p.int("key_version")?.filter(|v| *v != 0) else {
        return Ok(());
    };
    if v > i64::from(k.version_count) {
        return Err(VaultError::bad(
            "requested version for encryption is higher than the latest key version",
        ));
    }
    if v < min_encryption(k) {
        return Err(VaultError::bad(
            "requested version for encryption is less than the minimum encryption key version",
        ));
    }
    if k.primary_version != u32::try_from(v).ok() {
        return Err(VaultError::bad(
            "this server encrypts with the key's current version only; omit key_version or give the latest",
        ));
    }
    Ok(())
}

fn encrypt_unsupported(k: &KeyRecord) -> Option<VaultError> {
    (k.algorithm.purpose() != Purpose::EncryptDecrypt).then(|| {
        VaultError::bad(format!(
            "message encryption not supported for key type {}",
            transit_type(k.algorithm)
        ))
    })
}

async fn encrypt_one(c: &Call<'_>, k: &KeyRecord, p: &mut Params) -> Result<Value, VaultError> {
    no_nonce(p)?;
    let plaintext = p
        .secret_b64("plaintext")?
        .ok_or_else(|| VaultError::bad("missing plaintext to encrypt"))?;
    let context = context_of(k, p)?;
    check_key_version(k, p)?;
    if let Some(e) = encrypt_unsupported(k) {
        return Err(e);
    }
    let out = c
        .svc
        .encrypt(
            &c.ctx,
            EncryptInput {
                key: KeyRef::Path(k.ring.clone(), k.name.clone()),
                plaintext,
                context,
            },
        )
        .await?;
    Ok(json!({
        "ciphertext": wrap(out.version, &out.ciphertext),
        "key_version": out.version,
    }))
}

/// The operations that take `batch_input`.
#[derive(Debug, Clone, Copy)]
enum BatchOp {
    Encrypt,
    Decrypt,
    Rewrap,
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

async fn encrypt(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
    let k = match find_key(c, name).await? {
        Some(k) => k,
        // Upsert, as Vault does: encrypting to a missing key creates it (with `type`, and
        // derived when a context is given), if the caller may create keys.
        None => {
            let derived = p.has("context") || p.batch_items_have("context");
            let mut n = new_key_params(p)?;
            n.derived = derived && n.algorithm == Algorithm::Aes256Gcm;
            if n.algorithm.purpose() != Purpose::EncryptDecrypt {
                return Err(VaultError::bad(format!(
                    "key type {} not supported for upsert on encrypt",
                    transit_type(n.algorithm)
                )));
            }
            create(c, name, n).await?
        }
    };
    let partial = p.int("partial_failure_response_code")?;
    let _ = (p.str("type")?, p.bool("convergent_encryption")?);
    match p.batch()? {
        None => Ok(Reply::Data(encrypt_one(c, &k, p).await?, vec![])),
        Some(items) => {
            let (results, failed, ok) = run_batch(c, &k, BatchOp::Encrypt, items, &[]).await?;
            Ok(batch_reply(results, failed, ok, partial))
        }
    }
}

async fn decrypt_one(c: &Call<'_>, k: &KeyRecord, p: &mut Params) -> Result<Value, VaultError> {
    no_nonce(p)?;
    let ct = p
        .str("ciphertext")?
        .ok_or_else(|| VaultError::bad("missing ciphertext to decrypt"))?;
    let (version, bytes) = unwrap(&ct, "ciphertext")?;
    let context = context_of(k, p)?;
    if i64::from(version) > i64::from(k.version_count) {
        return Err(VaultError::bad("invalid ciphertext: version is too new"));
    }
    if i64::from(version) < min_decryption(k) {
        return Err(VaultError::bad(
            "ciphertext or signature version is disallowed by policy (too old)",
        ));
    }
    let header = strongroom_crypto::ciphertext::parse_header(&bytes)
        .map_err(|_| VaultError::bad("invalid ciphertext length"))?;
    if header.version != version || header.key_id != k.id {
        return Err(VaultError::bad(
            "invalid ciphertext: it was not made by this key and version",
        ));
    }
    let out = c
        .svc
        .decrypt(
            &c.ctx,
            DecryptInput {
                ciphertext: bytes,
                context,
                key: Some(KeyRef::Path(k.ring.clone(), k.name.clone())),
            },
        )
        .await
        .map_err(|e| match &e {
            Error::InvalidState { .. } => VaultError::core_as(
                &e,
                "ciphertext or signature version is disallowed by policy (disabled)",
            ),
            _ => VaultError::from(&e),
        })?;
    // Exposed to return it, base64 as Vault does.
    Ok(json!({ "plaintext": B64.encode(out.plaintext.expose_secret()) }))
}

async fn decrypt(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
    let k = key_or(c, name, "encryption key not found").await?;
    if let Some(e) = encrypt_unsupported(&k) {
        return Err(e);
    }
    let partial = p.int("partial_failure_response_code")?;
    match p.batch()? {
        None => Ok(Reply::Data(decrypt_one(c, &k, p).await?, vec![])),
        Some(items) => {
            let (results, failed, ok) =
                run_batch(c, &k, BatchOp::Decrypt, items, &[("plaintext", json!(""))]).await?;
            Ok(batch_reply(results, failed, ok, partial))
        }
    }
}

async fn rewrap_one(c: &Call<'_>, k: &KeyRecord, p: &mut Params) -> Result<Value, VaultError> {
    no_nonce(p)?;
    let ct = p
        .str("ciphertext")?
        .ok_or_else(|| VaultError::bad("missing ciphertext to rewrap"))?;
    let (version, bytes) = unwrap(&ct, "ciphertext")?;
    let context = context_of(k, p)?;
    check_key_version(k, p)?;
    if i64::from(version) < min_decryption(k) {
        return Err(VaultError::bad(
            "ciphertext or signature version is disallowed by policy (too old)",
        ));
    }
    let r = KeyRef::Path(k.ring.clone(), k.name.clone());
    let out = c
        .svc
        .re_encrypt(
            &c.ctx,
            ReEncryptInput {
                ciphertext: bytes,
                source_context: context.clone(),
                source: Some(r.clone()),
                destination: Some(r),
                destination_context: context,
            },
        )
        .await?;
    Ok(json!({
        "ciphertext": wrap(out.output.version, &out.output.ciphertext),
        "key_version": out.output.version,
    }))
}

async fn rewrap(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
    let k = key_or(c, name, "encryption key not found").await?;
    if let Some(e) = encrypt_unsupported(&k) {
        return Err(e);
    }
    match p.batch()? {
        None => Ok(Reply::Data(rewrap_one(c, &k, p).await?, vec![])),
        Some(items) => {
            // Rewrap batches answer 200 whatever the items did, as Vault's do.
            let (results, _, _) = run_batch(c, &k, BatchOp::Rewrap, items, &[]).await?;
            Ok(Reply::Data(json!({ "batch_results": results }), vec![]))
        }
    }
}

async fn datakey(c: &mut Call<'_>, kind: &str, name: &str, p: &mut Params) -> VaultResult {
    let include_plaintext = match kind {
        "plaintext" => true,
        "wrapped" => false,
        _ => {
            return Err(VaultError::bad(
                "Invalid path, must be 'plaintext' or 'wrapped'",
            ));
        }
    };
    let bits = p.int("bits")?.unwrap_or(256);
    if ![128, 256, 512].contains(&bits) {
        return Err(VaultError::bad(
            "invalid bits length; must be 128, 256, or 512",
        ));
    }
    no_nonce(p)?;
    let k = key_or(c, name, "encryption key not found").await?;
    let context = context_of(&k, p)?;
    check_key_version(&k, p)?;
    if let Some(e) = encrypt_unsupported(&k) {
        return Err(e);
    }
    let out = c
        .svc
        .generate_data_key(
            &c.ctx,
            GenerateDataKeyInput {
                key: KeyRef::Path(k.ring.clone(), k.name.clone()),
                length: (bits / 8) as usize,
                context,
                include_plaintext,
            },
        )
        .await?;
    let mut data = json!({
        "ciphertext": wrap(out.wrapped.version, &out.wrapped.ciphertext),
        "key_version": out.wrapped.version,
    });
    if let (Some(pt), Value::Object(d)) = (&out.plaintext, &mut data) {
        // Exposed to return it: the caller asked for the plaintext data key.
        d.insert("plaintext".into(), json!(B64.encode(pt.expose_secret())));
    }
    Ok(Reply::Data(data, vec![]))
}

async fn random(c: &mut Call<'_>, rest: &[&str], p: &mut Params) -> VaultResult {
    // `random/:source/:bytes`, `random/:bytes` or `random/:source`.
    let mut source = None;
    for s in rest {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            p.set_from_path("bytes", s);
        } else {
            source = Some(s.to_string());
        }
    }
    let source = match source {
        Some(s) => Some(s),
        None => p.str("source")?,
    };
    if let Some(s) = &source
        && !["platform", "seal", "all"].contains(&s.as_str())
    {
        return Err(VaultError::bad(format!("unsupported entropy source {s:?}")));
    }
    let n = p.int("bytes")?.unwrap_or(32);
    let format = p.str("format")?.unwrap_or_else(|| "base64".into());
    if format != "base64" && format != "hex" {
        return Err(VaultError::bad(format!(
            "unsupported encoding format {format}; must be \"base64\" or \"hex\""
        )));
    }
    let len = usize::try_from(n)
        .ok()
        .filter(|n| (1..=strongroom_core::types::MAX_RANDOM).contains(n))
        .ok_or_else(|| {
            VaultError::bad(format!(
                "bytes: must be between 1 and {} on this server",
                strongroom_core::types::MAX_RANDOM
            ))
        })?;
    let bytes: Plaintext = c.svc.generate_random(&c.ctx, len).await?;
    // Exposed to return it: random bytes are the answer.
    let text = match format.as_str() {
        "hex" => bytes
            .expose_secret()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        _ => B64.encode(bytes.expose_secret()),
    };
    Ok(Reply::Data(json!({ "random_bytes": text }), vec![]))
}
