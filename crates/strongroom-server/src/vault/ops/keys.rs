//! Transit key management: create, read, list, delete, configure, rotate.

use super::*;

/// Vault's minimum automatic rotation period is 1 hour; Strongroom's is 1 day.
pub(super) const MIN_ROTATE_SECS: i64 = 86400;

/// How long a Transit DELETE leaves before the key is gone (Strongroom never deletes at once).
/// How long trimmed versions wait before they are destroyed.
pub(super) const TRIM_WINDOW_SECS: i64 = 86400;

pub(super) const DELETE_WINDOW_SECS: i64 = 86400;

pub(super) fn algorithm_for(kind: &str, key_size: Option<i64>) -> Result<Algorithm, VaultError> {
    let rsa = |b| Ok(Algorithm::RsaPss(b, Sha2::Sha256));
    match kind {
        "aes256-gcm96" => Ok(Algorithm::Aes256Gcm),
        "chacha20-poly1305" => Ok(Algorithm::ChaCha20Poly1305),
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
        "aes128-gcm96" | "xchacha20-poly1305" | "managed_key" | "aes128-cmac" | "aes192-cmac"
        | "aes256-cmac" => Err(VaultError::bad(format!(
            "key type {kind} is not supported by this server"
        ))),
        other => Err(VaultError::bad(format!("unknown key type {other}"))),
    }
}

pub(super) async fn ensure_ring(c: &Call<'_>) -> Result<(), VaultError> {
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

/// What a new Transit key is made with.
pub(super) struct NewKey {
    pub(super) algorithm: Algorithm,
    pub(super) derived: bool,
    pub(super) exportable: bool,
    pub(super) rotate_secs: Option<i64>,
}

pub(super) fn new_key_params(p: &mut Params) -> Result<NewKey, VaultError> {
    let kind = p.str("type")?.unwrap_or_else(|| "aes256-gcm96".into());
    let key_size = p.int("key_size")?;
    let algorithm = algorithm_for(&kind, key_size)?;
    let derived = p.bool("derived")?.unwrap_or(false);
    if p.bool("convergent_encryption")?.unwrap_or(false) {
        return Err(VaultError::bad(
            "convergent encryption is not supported by this server",
        ));
    }
    if derived && algorithm.purpose() != Purpose::EncryptDecrypt {
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

pub(super) fn rotate_period(p: &mut Params) -> Result<Option<i64>, VaultError> {
    match p.duration("auto_rotate_period")? {
        None => Ok(None),
        Some(0) => Ok(Some(0)),
        Some(s) if s >= MIN_ROTATE_SECS => Ok(Some(s)),
        Some(_) => Err(VaultError::bad(
            "auto_rotate_period must be 0 (off) or at least 24h on this server",
        )),
    }
}

pub(super) async fn create(c: &Call<'_>, name: &str, n: NewKey) -> Result<KeyRecord, VaultError> {
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
        external: None,
        hsm: None,
    };
    let name = key_name(name)?;
    let with_name = || CreateKeyInput {
        name: Some(name.clone()),
        ..input()
    };
    let made = match c.svc.create_key(&c.ctx, with_name()).await {
        Err(Error::NotFound {
            kind: "key ring", ..
        }) => {
            ensure_ring(c).await?;
            c.svc.create_key(&c.ctx, with_name()).await
        }
        other => other,
    };
    match made {
        Ok((k, _)) => Ok(k),
        // Another request made it meanwhile (concurrent upserts): use that one.
        Err(Error::AlreadyExists { .. }) => match find_key(c, name.as_str()).await? {
            Some(k) => Ok(k),
            None => Err(VaultError::bad(format!(
                "key {name} exists but cannot be used"
            ))),
        },
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn create_key(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
    let n = new_key_params(p)?;
    if let Some(k) = find_key(c, name).await? {
        // Unchanged, and without a warning, as OpenBao answers.
        return Ok(Reply::Data(key_info(c, &k).await?, vec![]));
    }
    let k = create(c, name, n).await?;
    Ok(Reply::Data(key_info(c, &k).await?, vec![]))
}

/// All versions of a key (paged through).
pub(super) async fn versions(
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
pub(super) async fn key_info(c: &Call<'_>, k: &KeyRecord) -> Result<Value, VaultError> {
    let r = KeyRef::Path(k.ring.clone(), k.name.clone());
    let min_dec = min_decryption(k);
    let mut keys = Map::new();
    for v in versions(c, &r).await? {
        if i64::from(v.version) < min_dec
            || i64::from(v.version) < min_available(k)
            || matches!(
                v.state,
                VersionState::Destroyed | VersionState::DestroyScheduled
            )
        {
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
        "min_available_version": min_available(k),
        "min_decryption_version": min_dec,
        "min_encryption_version": min_encryption(k),
        "supports_encryption": purpose == Purpose::EncryptDecrypt,
        "supports_decryption": purpose == Purpose::EncryptDecrypt,
        "supports_derivation": purpose == Purpose::EncryptDecrypt,
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
pub(super) fn public_key_text(a: Algorithm, der: &[u8]) -> String {
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

pub(super) async fn read_key(c: &mut Call<'_>, name: &str) -> VaultResult {
    match find_key(c, name).await? {
        Some(k) => Ok(Reply::Data(key_info(c, &k).await?, vec![])),
        None => Err(VaultError::none()),
    }
}

pub(super) async fn list_keys(c: &mut Call<'_>) -> VaultResult {
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

pub(super) async fn delete_key(c: &mut Call<'_>, name: &str) -> VaultResult {
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

pub(super) async fn configure(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
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

pub(super) async fn rotate(c: &mut Call<'_>, name: &str) -> VaultResult {
    key_or(c, name, "key not found").await?;
    let (k, _) = c
        .svc
        .create_version(&c.ctx, &key_ref(c, name)?, true)
        .await?;
    Ok(Reply::Data(key_info(c, &k).await?, vec![]))
}

/// `GET export/:key_type/:name(/:version)`: key material of a key created exportable
/// (`encryption-key`, `signing-key`, `hmac-key`), or its public keys (`public-key`).
pub(super) async fn export(
    c: &mut Call<'_>,
    kind: &str,
    name: &str,
    version: Option<&str>,
) -> VaultResult {
    let fits = |k: &KeyRecord| match kind {
        "encryption-key" => k.algorithm.purpose() == Purpose::EncryptDecrypt,
        "signing-key" | "public-key" => k.algorithm.purpose() == Purpose::SignVerify,
        "hmac-key" => k.algorithm.purpose() == Purpose::Mac,
        _ => false,
    };
    if !["encryption-key", "signing-key", "hmac-key", "public-key"].contains(&kind) {
        return Err(VaultError::bad(format!("invalid export type: {kind}")));
    }
    let k = key_or(c, name, "no such key").await?;
    if !fits(&k) {
        return Err(VaultError::bad(format!(
            "key of type {} has no {kind} to export",
            transit_type(k.algorithm)
        )));
    }
    let version = match version {
        None => None,
        Some("latest") => k.primary_version,
        Some(v) => Some(
            v.parse::<u32>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| VaultError::bad("version: must be a version number or latest"))?,
        ),
    };
    let r = key_path(&k);
    let mut keys = Map::new();
    if kind == "public-key" {
        let wanted: Vec<u32> = match version {
            Some(v) => vec![v],
            None => versions(c, &r)
                .await?
                .into_iter()
                .filter(|v| v.state == VersionState::Enabled)
                .map(|v| v.version)
                .collect(),
        };
        for n in wanted {
            let pk = c.svc.get_public_key(&c.ctx, &r, Some(n)).await?;
            keys.insert(n.to_string(), json!(public_key_text(k.algorithm, &pk.der)));
        }
    } else {
        let out = c
            .svc
            .export_key(&c.ctx, &r, version)
            .await
            .map_err(|e| match &e {
                Error::InvalidState {
                    state: "not exportable",
                    ..
                } => VaultError::core_as(&e, "private key material is not exportable"),
                _ => VaultError::from(&e),
            })?;
        for (n, m) in &out.versions {
            keys.insert(n.to_string(), json!(exported_text(out.algorithm, m)?));
        }
    }
    Ok(Reply::Data(
        json!({ "name": k.name.as_str(), "type": transit_type(k.algorithm), "keys": keys }),
        vec![],
    ))
}

/// Material as Transit exports it: raw base64 for symmetric and HMAC keys, Go's 64-byte
/// seed‖public form for ed25519, and PKCS#8 PEM for ECDSA and RSA.
fn exported_text(a: Algorithm, m: &strongroom_crypto::KeyMaterial) -> Result<String, VaultError> {
    let internal = || VaultError::from(Error::Internal("unexpected private key encoding".into()));
    match a {
        Algorithm::Aes256Gcm
        | Algorithm::ChaCha20Poly1305
        | Algorithm::Hmac(_)
        | Algorithm::Hmac224 => {
            // Exposed to export it: the caller is allowed the material.
            Ok(B64.encode(m.expose_secret()))
        }
        Algorithm::Ed25519 => {
            // Exposed to export it.
            let seed = pkcs8_private_octets(m.expose_secret())
                .and_then(|inner| inner.strip_prefix(&[0x04, 0x20][..]))
                .filter(|s| s.len() == 32)
                .ok_or_else(internal)?;
            let public = strongroom_crypto::keys::public_key_der(a, m).map_err(|_| internal())?;
            let mut both = seed.to_vec();
            both.extend_from_slice(&public[public.len().saturating_sub(32)..]);
            let both = strongroom_crypto::KeyMaterial::new(both);
            // Exposed to export it.
            Ok(B64.encode(both.expose_secret()))
        }
        _ => {
            // Exposed to export it, as PKCS#8 PEM.
            let mut b = B64.encode(m.expose_secret());
            let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
            for chunk in b.as_bytes().chunks(64) {
                pem.push_str(&String::from_utf8_lossy(chunk));
                pem.push('\n');
            }
            pem.push_str("-----END PRIVATE KEY-----\n");
            zeroize::Zeroize::zeroize(&mut b);
            Ok(pem)
        }
    }
}

/// The `privateKey` OCTET STRING's contents of a PKCS#8 document.
fn pkcs8_private_octets(der: &[u8]) -> Option<&[u8]> {
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = b.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 2 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, &x| (a << 8) | usize::from(x));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    let (0x30, body, _) = tlv(der)? else {
        return None;
    };
    let (0x02, _, body) = tlv(body)? else {
        return None;
    };
    let (0x30, _, body) = tlv(body)? else {
        return None;
    };
    let (0x04, octets, _) = tlv(body)? else {
        return None;
    };
    Some(octets)
}

/// `POST keys/:name/trim`: versions below `min_available_version` are destroyed — after
/// Strongroom's one-day window, during which the native API can still restore them.
pub(super) async fn trim(c: &mut Call<'_>, name: &str, p: &mut Params) -> VaultResult {
    let min = p
        .int("min_available_version")?
        .ok_or_else(|| VaultError::bad("missing min_available_version"))?;
    let k = key_or(c, name, "invalid key name").await?;
    let (dec, enc) = (min_decryption(&k), min_encryption(&k));
    // Vault's checks, in Vault's order.
    let refusal = if enc == 0 {
        Some("minimum available version cannot be set when minimum encryption version is not set")
    } else if min > enc {
        Some("minimum available version cannot be greater than minimum encryption version")
    } else if min > dec {
        Some("minimum available version cannot be greater than minimum decryption version")
    } else if min <= 0 {
        Some("minimum available version should be positive")
    } else if min < min_available(&k) {
        Some("minimum available version cannot be decremented")
    } else {
        None
    };
    if let Some(r) = refusal {
        return Err(VaultError::bad(r));
    }
    let r = key_path(&k);
    for v in versions(c, &r).await? {
        let live = !matches!(
            v.state,
            VersionState::DestroyScheduled | VersionState::Destroyed
        );
        if i64::from(v.version) < min && live {
            c.svc
                .schedule_version_destruction(&c.ctx, &r, v.version, Some(TRIM_WINDOW_SECS))
                .await?;
        }
    }
    let mut set = Labels::new();
    set.insert(MIN_AVAILABLE.into(), min.to_string());
    let k = c
        .svc
        .update_key(
            &c.ctx,
            &r,
            UpdateKeyInput {
                set_labels: set,
                ..Default::default()
            },
        )
        .await?;
    Ok(Reply::Data(key_info(c, &k).await?, vec![]))
}
