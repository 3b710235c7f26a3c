//! Transit encryption: encrypt, decrypt, rewrap, data keys, random bytes, hashing.

use super::*;

/// Encryption-context keys Transit's `context` and `associated_data` are bound under.
pub(super) const CONTEXT_PAIR: &str = "vault-transit/context";

pub(super) const AAD_PAIR: &str = "vault-transit/associated-data";

pub(super) const MISSING_CONTEXT: &str = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

/// The encryption context a Transit request binds: `context` for derived keys (ignored,
/// as Vault ignores it, for others) and `associated_data`.
pub(super) fn context_of(k: &KeyRecord, p: &mut Params) -> Result<EncryptionContext, VaultError> {
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

pub(super) fn no_nonce(p: &mut Params) -> Result<(), VaultError> {
    match p.str("nonce")? {
        Some(_) => Err(VaultError::bad("nonce provided when not allowed")),
        None => Ok(()),
    }
}

/// Encryption uses the key's primary version; `key_version` may name it, not another.
pub(super) fn check_key_version(k: &KeyRecord, p: &mut Params) -> Result<(), VaultError> {
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

pub(super) fn encrypt_unsupported(k: &KeyRecord) -> Option<VaultError> {
    (k.algorithm.purpose() != Purpose::EncryptDecrypt).then(|| {
        VaultError::bad(format!(
            "message encryption not supported for key type {}",
            transit_type(k.algorithm)
        ))
    })
}

pub(super) async fn encrypt_one(
    c: &Call<'_>,
    k: &KeyRecord,
    p: &mut Params,
) -> Result<Value, VaultError> {
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

pub(super) async fn encrypt(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
    let k = match find_key(c, name).await? {
        Some(k) => k,
        // Upsert, as Vault does: encrypting to a missing key creates it (with `type`, and
        // derived when a context is given), if the caller may create keys.
        None => {
            let derived = p.has("context") || p.batch_items_have("context");
            let mut n = new_key_params(p)?;
            n.derived = derived && n.algorithm.purpose() == Purpose::EncryptDecrypt;
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

pub(super) async fn decrypt_one(
    c: &Call<'_>,
    k: &KeyRecord,
    p: &mut Params,
) -> Result<Value, VaultError> {
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

pub(super) async fn decrypt(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
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

pub(super) async fn rewrap_one(
    c: &Call<'_>,
    k: &KeyRecord,
    p: &mut Params,
) -> Result<Value, VaultError> {
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

pub(super) async fn rewrap(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
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

pub(super) async fn datakey(
    c: &mut Call<'_>,
    kind: &str,
    name: &str,
    p: &mut Params,
) -> VaultResult {
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

pub(super) async fn random(c: &mut Call<'_>, rest: &[&str], p: &mut Params) -> VaultResult {
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

/// `hash(/:algorithm)`.
pub(super) async fn hash(c: &mut Call<'_>, rest: &[&str], p: &mut Params) -> VaultResult {
    if let [alg] = rest {
        p.set_from_path("algorithm", alg);
    }
    let input = p
        .secret_b64("input")?
        .ok_or_else(|| VaultError::bad("missing input to hash"))?;
    let alg = p.str("algorithm")?.unwrap_or_else(|| "sha2-256".into());
    let f = strongroom_crypto::hash::HashFunction::from_name(&alg)
        .ok_or_else(|| VaultError::bad(format!("unsupported algorithm {alg}")))?;
    let format = p.str("format")?.unwrap_or_else(|| "hex".into());
    let sum = c.svc.hash(&c.ctx, f, &input).await?;
    let sum = match format.as_str() {
        "hex" => sum.iter().map(|b| format!("{b:02x}")).collect(),
        "base64" => B64.encode(&sum),
        other => {
            return Err(VaultError::bad(format!(
                "unsupported encoding format {other}; must be \"hex\" or \"base64\""
            )));
        }
    };
    Ok(Reply::Data(json!({ "sum": sum }), vec![]))
}
