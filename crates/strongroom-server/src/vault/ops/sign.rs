//! Transit signatures and HMACs: sign, verify (signatures and HMACs), hmac.

use super::*;

pub(super) const B64URL: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub(super) fn sha2_named(name: &str) -> Option<Sha2> {
    match name {
        "sha2-256" => Some(Sha2::Sha256),
        "sha2-384" => Some(Sha2::Sha384),
        "sha2-512" => Some(Sha2::Sha512),
        _ => None,
    }
}

pub(super) fn sha2_name(h: Sha2) -> &'static str {
    match h {
        Sha2::Sha256 => "sha2-256",
        Sha2::Sha384 => "sha2-384",
        Sha2::Sha512 => "sha2-512",
    }
}

/// HMACs use keys of type `hmac`, whose hash is fixed by their size.
pub(super) fn hmac_hash(
    k: &KeyRecord,
    p: &mut Params,
    field: &str,
) -> Result<Algorithm, VaultError> {
    let Algorithm::Hmac(h) = k.algorithm else {
        return Err(VaultError::bad(format!(
            "HMAC with a key of type {} is not supported by this server: use a key of type hmac",
            transit_type(k.algorithm)
        )));
    };
    let want = p.str(field)?.unwrap_or_else(|| sha2_name(h).into());
    if want != sha2_name(h) {
        return Err(VaultError::bad(format!(
            "this hmac key computes {} only (its key_size is {})",
            sha2_name(h),
            h.output_len()
        )));
    }
    Ok(k.algorithm)
}

pub(super) async fn hmac_one(
    c: &Call<'_>,
    k: &KeyRecord,
    alg: Algorithm,
    p: &mut Params,
) -> Result<Value, VaultError> {
    let input = p
        .secret_b64("input")?
        .ok_or_else(|| VaultError::bad("missing input for HMAC"))?;
    let version = version_param(p)?;
    let out = c
        .svc
        .mac(&c.ctx, &key_path(k), version, &input, Some(alg))
        .await?;
    Ok(json!({ "hmac": wrap(out.version, &out.mac) }))
}

/// `hmac/:name(/:algorithm)`.
pub(super) async fn hmac(
    c: &mut Call<'_>,
    name: &str,
    rest: &[&str],
    p: &mut Params,
) -> VaultResult {
    if let [alg] = rest {
        p.set_from_path("algorithm", alg);
    }
    let k = key_or(c, name, "encryption key not found").await?;
    let alg = hmac_hash(&k, p, "algorithm")?;
    match p.batch()? {
        None => Ok(Reply::Data(hmac_one(c, &k, alg, p).await?, vec![])),
        Some(items) => {
            let (results, _, _) = run_batch(c, &k, BatchOp::Hmac(alg), items, &[]).await?;
            Ok(Reply::Data(json!({ "batch_results": results }), vec![]))
        }
    }
}

/// How a request signs: the scheme and whether the input is a digest.
pub(super) struct Signing {
    scheme: SignatureScheme,
    prehashed: bool,
    jws: bool,
}

pub(super) fn signing(k: &KeyRecord, p: &mut Params) -> Result<Signing, VaultError> {
    let named = p.str("hash_algorithm")?;
    let legacy = p.str("algorithm")?;
    let hash_name = named.or(legacy);
    let prehashed = p.bool("prehashed")?.unwrap_or(false);
    let sig_alg = p.str("signature_algorithm")?;
    let marshaling = p
        .str("marshaling_algorithm")?
        .unwrap_or_else(|| "asn1".into());
    let jws = match marshaling.as_str() {
        "asn1" => false,
        "jws" => true,
        other => {
            return Err(VaultError::bad(format!(
                "unsupported marshaling algorithm {other}"
            )));
        }
    };
    let hash = |default: Sha2| -> Result<Sha2, VaultError> {
        match hash_name.as_deref() {
            None => Ok(default),
            Some(n) => sha2_named(n).ok_or_else(|| {
                VaultError::bad(format!(
                    "hash_algorithm {n} is not supported by this server (sha2-256, sha2-384, sha2-512)"
                ))
            }),
        }
    };
    let scheme = match k.algorithm {
        Algorithm::Ed25519 => {
            if prehashed {
                return Err(VaultError::bad(
                    "ed25519 signs messages, not prehashed input",
                ));
            }
            SignatureScheme::Ed25519
        }
        Algorithm::EcdsaP256Sha256 | Algorithm::EcdsaP384Sha384 | Algorithm::EcdsaP521Sha512 => {
            // ECDSA keys sign with their curve's hash (see docs/vault-compatibility.md).
            let own = k.algorithm.signing_hash().unwrap_or(Sha2::Sha256);
            let h = hash(own)?;
            if h != own {
                return Err(VaultError::bad(format!(
                    "{} keys sign with {} on this server",
                    transit_type(k.algorithm),
                    sha2_name(own)
                )));
            }
            SignatureScheme::Ecdsa(h)
        }
        Algorithm::RsaPss(..) | Algorithm::RsaPkcs1(..) => {
            let h = hash(Sha2::Sha256)?;
            match p.str("salt_length")?.as_deref() {
                None | Some("auto" | "hash") => {}
                Some(n) if n.parse::<usize>().ok() == Some(h.output_len()) => {}
                Some(_) => {
                    return Err(VaultError::bad(
                        "salt_length: this server's PSS signatures use a salt as long as the hash (auto or hash)",
                    ));
                }
            }
            match sig_alg.as_deref() {
                None | Some("pss") => SignatureScheme::RsaPss(h),
                Some("pkcs1v15") => SignatureScheme::RsaPkcs1(h),
                Some(other) => {
                    return Err(VaultError::bad(format!(
                        "unsupported rsa signature algorithm {other}"
                    )));
                }
            }
        }
        other => {
            return Err(VaultError::bad(format!(
                "key type {} does not support signing",
                transit_type(other)
            )));
        }
    };
    // Vault marshals only ECDSA signatures differently; the others are the same either way.
    Ok(Signing {
        scheme,
        prehashed,
        jws: jws && matches!(scheme, SignatureScheme::Ecdsa(_)),
    })
}

pub(super) fn sign_data(s: &Signing, input: Plaintext) -> SignData {
    if s.prehashed {
        // Exposed to pass it on: a digest is not the secret message.
        SignData::Digest(input.expose_secret().to_vec())
    } else {
        SignData::Message(input)
    }
}

pub(super) async fn sign_one(
    c: &Call<'_>,
    k: &KeyRecord,
    p: &mut Params,
) -> Result<Value, VaultError> {
    let s = signing(k, p)?;
    let input = p
        .secret_b64("input")?
        .ok_or_else(|| VaultError::bad("missing input to sign"))?;
    let _ = p.b64("context")?;
    let version = version_param(p)?;
    let out = c
        .svc
        .sign(
            &c.ctx,
            &key_path(k),
            version,
            sign_data(&s, input),
            Some(s.scheme),
        )
        .await?;
    let sig = if s.jws {
        let raw = ecdsa::der_to_fixed(&out.signature, ecdsa::field_len(k.algorithm)).ok_or_else(
            || VaultError::from(Error::Internal("unexpected ECDSA signature".into())),
        )?;
        format!("vault:v{}:{}", out.version, B64URL.encode(raw))
    } else {
        wrap(out.version, &out.signature)
    };
    Ok(json!({ "signature": sig, "key_version": out.version }))
}

/// `sign/:name(/:hash_algorithm)`.
pub(super) async fn sign(
    c: &mut Call<'_>,
    name: &str,
    rest: &[&str],
    p: &mut Params,
) -> VaultResult {
    if let [h] = rest {
        p.set_from_path("hash_algorithm", h);
    }
    let k = key_or(c, name, "signing key not found").await?;
    match p.batch()? {
        None => Ok(Reply::Data(sign_one(c, &k, p).await?, vec![])),
        Some(mut items) => {
            inherit(p, &mut items)?;
            let (results, _, _) =
                run_batch(c, &k, BatchOp::Sign, items, &[("key_version", json!(0))]).await?;
            Ok(Reply::Data(json!({ "batch_results": results }), vec![]))
        }
    }
}

/// `verify/:name(/:hash_algorithm)`: a signature, or an HMAC.
pub(super) async fn verify(
    c: &mut Call<'_>,
    name: &str,
    rest: &[&str],
    p: &mut Params,
) -> VaultResult {
    if let [h] = rest {
        p.set_from_path("hash_algorithm", h);
    }
    let by_hmac = p.has("hmac") || p.batch_items_have("hmac");
    let missing = if by_hmac {
        "encryption key not found"
    } else {
        "signature verification key not found"
    };
    let k = key_or(c, name, missing).await?;
    let op = if by_hmac {
        BatchOp::VerifyHmac(hmac_hash(&k, p, "hash_algorithm")?)
    } else {
        BatchOp::Verify
    };
    match p.batch()? {
        None => Ok(Reply::Data(one(c, &k, op, p).await?, vec![])),
        Some(mut items) => {
            inherit(p, &mut items)?;
            let (results, _, _) = run_batch(c, &k, op, items, &[]).await?;
            Ok(Reply::Data(json!({ "batch_results": results }), vec![]))
        }
    }
}

/// Request-level signing options apply to every batch item that does not set its own.
pub(super) fn inherit(p: &mut Params, items: &mut [Params]) -> Result<(), VaultError> {
    for f in [
        "hash_algorithm",
        "algorithm",
        "prehashed",
        "signature_algorithm",
        "marshaling_algorithm",
        "salt_length",
        "key_version",
    ] {
        if let Some(v) = p.str(f)? {
            for item in items.iter_mut() {
                if !item.has(f) {
                    item.set_from_path(f, &v);
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn verify_one(
    c: &Call<'_>,
    k: &KeyRecord,
    p: &mut Params,
) -> Result<Value, VaultError> {
    let sig = p.str("signature")?.ok_or_else(|| {
        VaultError::bad("neither a 'signature' nor an 'hmac' were given to verify")
    })?;
    let s = signing(k, p)?;
    let input = p
        .secret_b64("input")?
        .ok_or_else(|| VaultError::bad("missing input to verify"))?;
    let _ = p.b64("context")?;
    let (version, bytes) = if s.jws {
        let rest = sig
            .strip_prefix("vault:v")
            .ok_or_else(|| VaultError::bad("invalid signature: no prefix"))?;
        let (v, b) = rest
            .split_once(':')
            .ok_or_else(|| VaultError::bad("invalid signature: wrong number of fields"))?;
        let v: u32 = v.parse().map_err(|_| {
            VaultError::bad("invalid signature: version number could not be decoded")
        })?;
        let raw = B64URL
            .decode(b.as_bytes())
            .map_err(|_| VaultError::bad("invalid signature: could not decode base64"))?;
        (v.max(1), ecdsa::fixed_to_der(&raw).unwrap_or_default())
    } else {
        unwrap(&sig, "signature")?
    };
    check_version(k, version, "signature")?;
    let out = c
        .svc
        .verify(
            &c.ctx,
            &key_path(k),
            Some(version),
            sign_data(&s, input),
            &bytes,
            Some(s.scheme),
        )
        .await;
    match out {
        Ok(o) => Ok(json!({ "valid": o.valid })),
        // A signature that is not even well-formed is simply not valid, as Vault answers.
        Err(Error::InvalidArgument { ref field, .. }) if field == "signature" => {
            Ok(json!({ "valid": false }))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn verify_hmac_one(
    c: &Call<'_>,
    k: &KeyRecord,
    alg: Algorithm,
    p: &mut Params,
) -> Result<Value, VaultError> {
    let tag = p.str("hmac")?.ok_or_else(|| {
        VaultError::bad("neither a 'signature' nor an 'hmac' were given to verify")
    })?;
    let input = p
        .secret_b64("input")?
        .ok_or_else(|| VaultError::bad("missing input to verify"))?;
    if !tag.starts_with("vault:v") {
        return Err(VaultError::bad("invalid HMAC to verify: no prefix"));
    }
    let (version, bytes) = unwrap(&tag, "HMAC")?;
    check_version(k, version, "HMAC")?;
    let out = c
        .svc
        .mac_verify(
            &c.ctx,
            &key_path(k),
            Some(version),
            &input,
            &bytes,
            Some(alg),
        )
        .await?;
    Ok(json!({ "valid": out.valid }))
}

/// A signature's or HMAC's version must exist and not be below `min_decryption_version`.
pub(super) fn check_version(k: &KeyRecord, version: u32, what: &str) -> Result<(), VaultError> {
    if version > k.version_count {
        return Err(VaultError::bad(format!(
            "invalid {what}: version is too new"
        )));
    }
    if i64::from(version) < min_decryption(k) {
        return Err(VaultError::bad(
            "ciphertext or signature version is disallowed by policy (too old)",
        ));
    }
    Ok(())
}

/// ECDSA signatures: DER (`asn1`) and fixed-width r‖s (`jws`).
pub(super) mod ecdsa {
    use strongroom_core::Algorithm;

    /// Bytes per coordinate of the key's curve.
    pub(super) fn field_len(a: Algorithm) -> usize {
        match a {
            Algorithm::EcdsaP384Sha384 => 48,
            Algorithm::EcdsaP521Sha512 => 66,
            _ => 32,
        }
    }

    fn der_len(b: &[u8]) -> Option<(usize, &[u8])> {
        let (&first, rest) = b.split_first()?;
        if first < 0x80 {
            return Some((usize::from(first), rest));
        }
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        Some((len, &rest[n..]))
    }

    fn integer(b: &[u8]) -> Option<(&[u8], &[u8])> {
        let (&tag, rest) = b.split_first()?;
        if tag != 0x02 {
            return None;
        }
        let (len, rest) = der_len(rest)?;
        (rest.len() >= len).then(|| (&rest[..len], &rest[len..]))
    }

    /// `SEQUENCE { INTEGER r, INTEGER s }` → r‖s, each left-padded to `n` bytes.
    pub(super) fn der_to_fixed(der: &[u8], n: usize) -> Option<Vec<u8>> {
        let (&tag, rest) = der.split_first()?;
        if tag != 0x30 {
            return None;
        }
        let (len, body) = der_len(rest)?;
        if body.len() != len {
            return None;
        }
        let (r, body) = integer(body)?;
        let (s, body) = integer(body)?;
        if !body.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(2 * n);
        for x in [r, s] {
            let x = match x {
                [0, tail @ ..] => tail,
                x => x,
            };
            if x.len() > n {
                return None;
            }
            out.extend(std::iter::repeat_n(0u8, n - x.len()));
            out.extend_from_slice(x);
        }
        Some(out)
    }

    fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else if len < 0x100 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
    }

    /// r‖s (even length) → DER.
    pub(super) fn fixed_to_der(raw: &[u8]) -> Option<Vec<u8>> {
        if raw.is_empty() || !raw.len().is_multiple_of(2) {
            return None;
        }
        let (r, s) = raw.split_at(raw.len() / 2);
        let mut body = Vec::new();
        for x in [r, s] {
            let start = x
                .iter()
                .position(|&b| b != 0)
                .unwrap_or(x.len().saturating_sub(1));
            let x = &x[start..];
            body.push(0x02);
            let pad = x.first().is_some_and(|&b| b & 0x80 != 0);
            push_len(&mut body, x.len() + usize::from(pad));
            if pad {
                body.push(0);
            }
            body.extend_from_slice(x);
        }
        let mut out = vec![0x30];
        push_len(&mut out, body.len());
        out.extend(body);
        Some(out)
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)] // test code: a panic is a failed test
    mod tests {
        use super::*;

        #[test]
        fn der_and_fixed_round_trip() {
            // r with its high bit set (DER pads it), s with leading zeros (DER strips them).
            let mut raw = vec![0x80; 32];
            raw.extend([0u8, 0, 0x01].iter().chain([0x7f; 29].iter()));
            let der = fixed_to_der(&raw).unwrap();
            assert_eq!(&der[..4], &[0x30, 0x43, 0x02, 0x21]);
            assert_eq!(der_to_fixed(&der, 32).unwrap(), raw);
            // P-521: 66-byte coordinates need a two-byte DER length.
            let raw521 = vec![0x01; 132];
            let der521 = fixed_to_der(&raw521).unwrap();
            assert_eq!(&der521[..2], &[0x30, 0x81]);
            assert_eq!(der_to_fixed(&der521, 66).unwrap(), raw521);
            for bad in [&[][..], &[0x30, 0x01, 0x02][..], &[0x31, 0x00][..]] {
                assert_eq!(der_to_fixed(bad, 32), None);
            }
            assert_eq!(fixed_to_der(&[1, 2, 3]), None);
        }
    }
}
