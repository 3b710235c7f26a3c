//! Key generation and the operations of each algorithm, over aws-lc-rs.
//!
//! Asymmetric material is a PKCS#8 v1 DER document; AES and HMAC material is raw bytes.
//! Public keys are X.509 SubjectPublicKeyInfo DER.

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, ParsedPublicKey,
    PqdsaKeyPair, RsaKeyPair, VerificationAlgorithm,
};
use aws_lc_rs::{digest, hmac};

use crate::algorithm::{Algorithm, RsaBits, Sha2};
use crate::secret::{KeyMaterial, Plaintext};
use crate::{Error, ciphertext, rand};

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub enum SignInput<'a> {
    /// The message; it is hashed with the algorithm's hash.
    Message(&'a [u8]),
    /// A digest the caller computed with the algorithm's hash.
    Digest(&'a [u8]),
}

fn rsa_size(bits: RsaBits) -> KeySize {
    match bits {
        RsaBits::B2048 => KeySize::Rsa2048,
        RsaBits::B3072 => KeySize::Rsa3072,
        RsaBits::B4096 => KeySize::Rsa4096,
    }
}

fn ecdsa_signing(alg: Algorithm) -> Option<&'static EcdsaSigningAlgorithm> {
    match alg {
        Algorithm::EcdsaP256Sha256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        Algorithm::EcdsaP384Sha384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        Algorithm::EcdsaP521Sha512 => Some(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
        Algorithm::EcdsaSecp256k1Sha256 => Some(&signature::ECDSA_P256K1_SHA256_ASN1_SIGNING),
        _ => None,
    }
}

fn pkcs8(
    doc: Result<Pkcs8V1Der<'static>, aws_lc_rs::error::Unspecified>,
) -> Result<KeyMaterial, Error> {
    let doc = doc.map_err(|_| Error::Internal("pkcs8 encoding"))?;
    Ok(KeyMaterial::copy_from(doc.as_ref()))
}

/// Generates fresh key material for `alg`.
pub fn generate(alg: Algorithm) -> Result<KeyMaterial, Error> {
    match alg {
        Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 => {
            Ok(KeyMaterial::new(rand::bytes(ciphertext::KEY_LEN)?))
        }
        Algorithm::Hmac(h) => Ok(KeyMaterial::new(rand::bytes(h.output_len())?)),
        Algorithm::Hmac224 => Ok(KeyMaterial::new(rand::bytes(HMAC_224_KEY_LEN)?)),
        Algorithm::RsaOaep(bits) => {
            let k = PrivateDecryptingKey::generate(rsa_size(bits))
                .map_err(|_| Error::Internal("rsa keygen"))?;
            pkcs8(k.as_der())
        }
        Algorithm::RsaPss(bits, _) | Algorithm::RsaPkcs1(bits, _) => {
            let k =
                RsaKeyPair::generate(rsa_size(bits)).map_err(|_| Error::Internal("rsa keygen"))?;
            pkcs8(k.as_der())
        }
        Algorithm::EcdsaP256Sha256
        | Algorithm::EcdsaP384Sha384
        | Algorithm::EcdsaP521Sha512
        | Algorithm::EcdsaSecp256k1Sha256 => {
            let sa = ecdsa_signing(alg).ok_or(Error::Internal("ecdsa algorithm"))?;
            let k = EcdsaKeyPair::generate(sa).map_err(|_| Error::Internal("ecdsa keygen"))?;
            let doc = k
                .to_pkcs8v1()
                .map_err(|_| Error::Internal("pkcs8 encoding"))?;
            Ok(KeyMaterial::copy_from(doc.as_ref()))
        }
        Algorithm::Ed25519 => {
            let k = Ed25519KeyPair::generate().map_err(|_| Error::Internal("ed25519 keygen"))?;
            let doc = k
                .to_pkcs8v1()
                .map_err(|_| Error::Internal("pkcs8 encoding"))?;
            Ok(KeyMaterial::copy_from(doc.as_ref()))
        }
        Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87 => {
            let sa = mldsa_signing(alg).ok_or(Error::Internal("ml-dsa algorithm"))?;
            let k = PqdsaKeyPair::generate(sa).map_err(|_| Error::Internal("ml-dsa keygen"))?;
            let doc = k
                .to_pkcs8v1()
                .map_err(|_| Error::Internal("pkcs8 encoding"))?;
            Ok(KeyMaterial::copy_from(doc.as_ref()))
        }
        Algorithm::EcdhP256 | Algorithm::EcdhP384 | Algorithm::EcdhP521 => {
            let a = ecdh(alg).ok_or(Error::Internal("ecdh algorithm"))?;
            let k =
                agreement::PrivateKey::generate(a).map_err(|_| Error::Internal("ecdh keygen"))?;
            let doc: Pkcs8V1Der<'static> =
                k.as_der().map_err(|_| Error::Internal("pkcs8 encoding"))?;
            Ok(KeyMaterial::copy_from(doc.as_ref()))
        }
    }
}

fn mldsa_signing(alg: Algorithm) -> Option<&'static signature::PqdsaSigningAlgorithm> {
    match alg {
        Algorithm::MlDsa44 => Some(&signature::ML_DSA_44_SIGNING),
        Algorithm::MlDsa65 => Some(&signature::ML_DSA_65_SIGNING),
        Algorithm::MlDsa87 => Some(&signature::ML_DSA_87_SIGNING),
        _ => None,
    }
}

fn ecdh(alg: Algorithm) -> Option<&'static agreement::Algorithm> {
    match alg {
        Algorithm::EcdhP256 => Some(&agreement::ECDH_P256),
        Algorithm::EcdhP384 => Some(&agreement::ECDH_P384),
        Algorithm::EcdhP521 => Some(&agreement::ECDH_P521),
        _ => None,
    }
}

/// The DER of a named-curve SubjectPublicKeyInfo up to the uncompressed point's `04`
/// (RFC 5480: id-ecPublicKey with the curve's OID).
fn spki_prefix(alg: Algorithm) -> Option<&'static [u8]> {
    const P256: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    const P384: &[u8] = &[
        0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05,
        0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
    ];
    const P521: &[u8] = &[
        0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
        0x05, 0x2b, 0x81, 0x04, 0x00, 0x23, 0x03, 0x81, 0x86, 0x00,
    ];
    match alg {
        Algorithm::EcdhP256 => Some(P256),
        Algorithm::EcdhP384 => Some(P384),
        Algorithm::EcdhP521 => Some(P521),
        _ => None,
    }
}

fn ecdh_field_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::EcdhP384 => 48,
        Algorithm::EcdhP521 => 66,
        _ => 32,
    }
}

fn ecdh_private(alg: Algorithm, material: &KeyMaterial) -> Result<agreement::PrivateKey, Error> {
    let a = ecdh(alg).ok_or(Error::WrongAlgorithm)?;
    // Exposed to load the private key into aws-lc.
    agreement::PrivateKey::from_private_key_der(a, material.expose_secret())
        .map_err(|_| Error::InvalidKeyMaterial)
}

/// ECDH: the raw shared secret of a key-agreement key and another party's public key
/// (SubjectPublicKeyInfo DER or an uncompressed point, on the key's curve). A public key that
/// is malformed, on another curve or not on the curve at all is `InvalidPublicKey`.
pub fn derive_shared_secret(
    alg: Algorithm,
    material: &KeyMaterial,
    peer_public_key: &[u8],
) -> Result<Plaintext, Error> {
    let a = ecdh(alg).ok_or(Error::WrongAlgorithm)?;
    // Only the named-curve SubjectPublicKeyInfo with an uncompressed point: explicit curve
    // parameters (which let a peer name a weak curve) and other encodings are refused
    // before aws-lc checks that the point is on the curve.
    let prefix = spki_prefix(alg).ok_or(Error::WrongAlgorithm)?;
    let point_len = 1 + 2 * ecdh_field_len(alg);
    if peer_public_key.len() != prefix.len() + point_len || !peer_public_key.starts_with(prefix) {
        return Err(Error::InvalidPublicKey);
    }
    let k = ecdh_private(alg, material)?;
    agreement::agree(
        &k,
        agreement::UnparsedPublicKey::new(a, peer_public_key),
        Error::InvalidPublicKey,
        |s| Ok(Plaintext::copy_from(s)),
    )
}

/// Key length of an HMAC-SHA-224 key: the hash output, 28 bytes.
pub const HMAC_224_KEY_LEN: usize = 28;

/// Checks that `material` is usable key material for `alg` (used when unsealing, so a
/// corrupted or mismatched record is caught before use).
pub fn validate(alg: Algorithm, material: &KeyMaterial) -> Result<(), Error> {
    match alg {
        Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 => (material.len()
            == ciphertext::KEY_LEN)
            .then_some(())
            .ok_or(Error::InvalidKeyMaterial),
        Algorithm::Hmac(h) => (material.len() == h.output_len())
            .then_some(())
            .ok_or(Error::InvalidKeyMaterial),
        Algorithm::Hmac224 => (material.len() == HMAC_224_KEY_LEN)
            .then_some(())
            .ok_or(Error::InvalidKeyMaterial),
        _ => public_key_der(alg, material).map(|_| ()),
    }
}

/// The SubjectPublicKeyInfo DER of an asymmetric key.
pub fn public_key_der(alg: Algorithm, material: &KeyMaterial) -> Result<Vec<u8>, Error> {
    // Exposed to parse the private key inside aws-lc; only the public half leaves.
    let der = material.expose_secret();
    let bad = |_| Error::InvalidKeyMaterial;
    let spki = match alg {
        Algorithm::RsaOaep(bits) => {
            let k = PrivateDecryptingKey::from_pkcs8(der).map_err(|_| Error::InvalidKeyMaterial)?;
            if k.key_size_bits() != bits.bits() as usize {
                return Err(Error::InvalidKeyMaterial);
            }
            k.public_key().as_der().map_err(bad)?.as_ref().to_vec()
        }
        Algorithm::RsaPss(bits, _) | Algorithm::RsaPkcs1(bits, _) => {
            let k = RsaKeyPair::from_pkcs8(der).map_err(|_| Error::InvalidKeyMaterial)?;
            if k.public_modulus_len() * 8 != bits.bits() as usize {
                return Err(Error::InvalidKeyMaterial);
            }
            k.public_key().as_der().map_err(bad)?.as_ref().to_vec()
        }
        Algorithm::EcdsaP256Sha256
        | Algorithm::EcdsaP384Sha384
        | Algorithm::EcdsaP521Sha512
        | Algorithm::EcdsaSecp256k1Sha256 => {
            let sa = ecdsa_signing(alg).ok_or(Error::Internal("ecdsa algorithm"))?;
            let k = EcdsaKeyPair::from_pkcs8(sa, der).map_err(|_| Error::InvalidKeyMaterial)?;
            k.public_key().as_der().map_err(bad)?.as_ref().to_vec()
        }
        Algorithm::Ed25519 => {
            let k = Ed25519KeyPair::from_pkcs8(der).map_err(|_| Error::InvalidKeyMaterial)?;
            k.public_key().as_der().map_err(bad)?.as_ref().to_vec()
        }
        Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87 => {
            let sa = mldsa_signing(alg).ok_or(Error::Internal("ml-dsa algorithm"))?;
            let k = PqdsaKeyPair::from_pkcs8(sa, der).map_err(|_| Error::InvalidKeyMaterial)?;
            k.public_key().as_der().map_err(bad)?.as_ref().to_vec()
        }
        Algorithm::EcdhP256 | Algorithm::EcdhP384 | Algorithm::EcdhP521 => {
            let k = ecdh_private(alg, material)?;
            let pk = k
                .compute_public_key()
                .map_err(|_| Error::InvalidKeyMaterial)?;
            let der: PublicKeyX509Der<'static> =
                pk.as_der().map_err(|_| Error::InvalidKeyMaterial)?;
            der.as_ref().to_vec()
        }
        Algorithm::Aes256Gcm
        | Algorithm::ChaCha20Poly1305
        | Algorithm::Hmac(_)
        | Algorithm::Hmac224 => return Err(Error::WrongAlgorithm),
    };
    Ok(spki)
}

fn digest_of(hash: Sha2, input: SignInput<'_>) -> Result<digest::Digest, Error> {
    match input {
        SignInput::Message(m) => Ok(digest::digest(hash.digest_algorithm(), m)),
        SignInput::Digest(d) => {
            if d.len() != hash.output_len() {
                return Err(Error::DigestLength {
                    expected: hash.output_len(),
                });
            }
            digest::Digest::import_less_safe(d, hash.digest_algorithm())
                .map_err(|_| Error::Internal("digest import"))
        }
    }
}

/// The digest `alg` signs for `input` (its message hashed with the algorithm's hash, or the
/// caller's digest checked for length), for signing elsewhere (a key provider). `None` for
/// algorithms that sign messages only (Ed25519, ML-DSA) or do not sign.
pub fn signing_digest(alg: Algorithm, input: SignInput<'_>) -> Result<Option<Vec<u8>>, Error> {
    match alg {
        Algorithm::RsaPss(_, h) | Algorithm::RsaPkcs1(_, h) => {
            Ok(Some(digest_of(h, input)?.as_ref().to_vec()))
        }
        Algorithm::EcdsaP256Sha256
        | Algorithm::EcdsaP384Sha384
        | Algorithm::EcdsaP521Sha512
        | Algorithm::EcdsaSecp256k1Sha256 => {
            let h = alg.signing_hash().ok_or(Error::Internal("ecdsa hash"))?;
            Ok(Some(digest_of(h, input)?.as_ref().to_vec()))
        }
        _ => Ok(None),
    }
}

/// Signs with a signing key. ECDSA signatures are DER; RSA signatures are as long as the
/// modulus; Ed25519 signatures are 64 bytes and Ed25519 refuses digests.
pub fn sign(
    alg: Algorithm,
    material: &KeyMaterial,
    input: SignInput<'_>,
) -> Result<Vec<u8>, Error> {
    // Exposed to load the private key into aws-lc for this one signature.
    let der = material.expose_secret();
    match alg {
        Algorithm::RsaPss(_, h) | Algorithm::RsaPkcs1(_, h) => {
            let k = RsaKeyPair::from_pkcs8(der).map_err(|_| Error::InvalidKeyMaterial)?;
            let enc: &'static dyn signature::RsaEncoding = match (alg, h) {
                (Algorithm::RsaPss(..), Sha2::Sha256) => &signature::RSA_PSS_SHA256,
                (Algorithm::RsaPss(..), Sha2::Sha384) => &signature::RSA_PSS_SHA384,
                (Algorithm::RsaPss(..), Sha2::Sha512) => &signature::RSA_PSS_SHA512,
                (_, Sha2::Sha256) => &signature::RSA_PKCS1_SHA256,
                (_, Sha2::Sha384) => &signature::RSA_PKCS1_SHA384,
                (_, Sha2::Sha512) => &signature::RSA_PKCS1_SHA512,
            };
            let mut sig = vec![0u8; k.public_modulus_len()];
            let d = digest_of(h, input)?;
            k.sign_digest(enc, &d, &mut sig)
                .map_err(|_| Error::Internal("rsa sign"))?;
            Ok(sig)
        }
        Algorithm::EcdsaP256Sha256
        | Algorithm::EcdsaP384Sha384
        | Algorithm::EcdsaP521Sha512
        | Algorithm::EcdsaSecp256k1Sha256 => {
            let sa = ecdsa_signing(alg).ok_or(Error::Internal("ecdsa algorithm"))?;
            let h = alg.signing_hash().ok_or(Error::Internal("ecdsa hash"))?;
            let k = EcdsaKeyPair::from_pkcs8(sa, der).map_err(|_| Error::InvalidKeyMaterial)?;
            let d = digest_of(h, input)?;
            let sig = k
                .sign_digest(&d)
                .map_err(|_| Error::Internal("ecdsa sign"))?;
            Ok(sig.as_ref().to_vec())
        }
        Algorithm::Ed25519 => {
            let SignInput::Message(m) = input else {
                return Err(Error::DigestNotSupported);
            };
            let k = Ed25519KeyPair::from_pkcs8(der).map_err(|_| Error::InvalidKeyMaterial)?;
            Ok(k.sign(m).as_ref().to_vec())
        }
        Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87 => {
            let SignInput::Message(m) = input else {
                return Err(Error::DigestNotSupported);
            };
            let sa = mldsa_signing(alg).ok_or(Error::Internal("ml-dsa algorithm"))?;
            let k = PqdsaKeyPair::from_pkcs8(sa, der).map_err(|_| Error::InvalidKeyMaterial)?;
            let mut sig = vec![0u8; sa.signature_len()];
            let n = k
                .sign(m, &mut sig)
                .map_err(|_| Error::Internal("ml-dsa sign"))?;
            sig.truncate(n);
            Ok(sig)
        }
        _ => Err(Error::WrongAlgorithm),
    }
}

fn verification_algorithm(alg: Algorithm) -> Result<&'static dyn VerificationAlgorithm, Error> {
    Ok(match alg {
        Algorithm::RsaPss(_, Sha2::Sha256) => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::RsaPss(_, Sha2::Sha384) => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::RsaPss(_, Sha2::Sha512) => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::RsaPkcs1(_, Sha2::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RsaPkcs1(_, Sha2::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RsaPkcs1(_, Sha2::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        Algorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
        Algorithm::EcdsaP521Sha512 => &signature::ECDSA_P521_SHA512_ASN1,
        Algorithm::EcdsaSecp256k1Sha256 => &signature::ECDSA_P256K1_SHA256_ASN1,
        Algorithm::Ed25519 => &signature::ED25519,
        Algorithm::MlDsa44 => &signature::ML_DSA_44,
        Algorithm::MlDsa65 => &signature::ML_DSA_65,
        Algorithm::MlDsa87 => &signature::ML_DSA_87,
        _ => return Err(Error::WrongAlgorithm),
    })
}

/// Verifies a signature against a SubjectPublicKeyInfo. `Ok(false)` means the signature is
/// not valid; `Err` means the request itself was wrong (digest length, algorithm).
pub fn verify(
    alg: Algorithm,
    public_key_der: &[u8],
    input: SignInput<'_>,
    sig: &[u8],
) -> Result<bool, Error> {
    let va = verification_algorithm(alg)?;
    let pk = ParsedPublicKey::new(va, public_key_der).map_err(|_| Error::InvalidKeyMaterial)?;
    match (alg, input) {
        (
            Algorithm::Ed25519 | Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87,
            SignInput::Digest(_),
        ) => Err(Error::DigestNotSupported),
        (
            Algorithm::Ed25519 | Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87,
            SignInput::Message(m),
        ) => Ok(pk.verify_sig(m, sig).is_ok()),
        (_, input) => {
            let h = alg.signing_hash().ok_or(Error::WrongAlgorithm)?;
            let d = digest_of(h, input)?;
            Ok(pk.verify_digest_sig(&d, sig).is_ok())
        }
    }
}

fn hmac_algorithm(alg: Algorithm) -> Result<hmac::Algorithm, Error> {
    match alg {
        Algorithm::Hmac224 => Ok(hmac::HMAC_SHA224),
        Algorithm::Hmac(Sha2::Sha256) => Ok(hmac::HMAC_SHA256),
        Algorithm::Hmac(Sha2::Sha384) => Ok(hmac::HMAC_SHA384),
        Algorithm::Hmac(Sha2::Sha512) => Ok(hmac::HMAC_SHA512),
        _ => Err(Error::WrongAlgorithm),
    }
}

/// Computes an HMAC tag.
pub fn mac(alg: Algorithm, material: &KeyMaterial, message: &[u8]) -> Result<Vec<u8>, Error> {
    // Exposed to key the HMAC inside aws-lc.
    let k = hmac::Key::new(hmac_algorithm(alg)?, material.expose_secret());
    Ok(hmac::sign(&k, message).as_ref().to_vec())
}

/// Verifies an HMAC tag in constant time.
pub fn mac_verify(
    alg: Algorithm,
    material: &KeyMaterial,
    message: &[u8],
    tag: &[u8],
) -> Result<bool, Error> {
    // Exposed to key the HMAC inside aws-lc, which compares the tags in constant time.
    let k = hmac::Key::new(hmac_algorithm(alg)?, material.expose_secret());
    Ok(hmac::verify(&k, message, tag).is_ok())
}

/// Decrypts an RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) ciphertext. Every failure is
/// the same [`Error::InvalidCiphertext`]: no padding oracle.
pub fn rsa_oaep_decrypt(
    alg: Algorithm,
    material: &KeyMaterial,
    ct: &[u8],
) -> Result<Plaintext, Error> {
    if !matches!(alg, Algorithm::RsaOaep(_)) {
        return Err(Error::WrongAlgorithm);
    }
    // Exposed to load the private key into aws-lc for this one decryption.
    let k = PrivateDecryptingKey::from_pkcs8(material.expose_secret())
        .map_err(|_| Error::InvalidKeyMaterial)?;
    let k = OaepPrivateDecryptingKey::new(k).map_err(|_| Error::InvalidKeyMaterial)?;
    let mut out = vec![0u8; k.min_output_size()];
    let res = match k.decrypt(&OAEP_SHA256_MGF1SHA256, ct, &mut out, None) {
        Ok(pt) => Ok(Plaintext::copy_from(pt)),
        Err(_) => Err(Error::InvalidCiphertext),
    };
    zeroize::Zeroize::zeroize(&mut out);
    res
}

/// Encrypts to an RSA-OAEP public key (SPKI DER). Clients do this; Strongroom offers it for
/// tests and the CLI.
pub fn rsa_oaep_encrypt(public_key_der: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let pk =
        PublicEncryptingKey::from_der(public_key_der).map_err(|_| Error::InvalidKeyMaterial)?;
    let pk = OaepPublicEncryptingKey::new(pk).map_err(|_| Error::InvalidKeyMaterial)?;
    if plaintext.len() > pk.max_plaintext_size(&OAEP_SHA256_MGF1SHA256) {
        return Err(Error::PlaintextTooLong);
    }
    let mut out = vec![0u8; pk.ciphertext_size()];
    let ct = pk
        .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
        .map_err(|_| Error::Internal("rsa-oaep encrypt"))?;
    Ok(ct.to_vec())
}

/// Encodes DER as PEM with the given label (`PUBLIC KEY`).
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Invariant: base64 output is ASCII, so any byte chunk is valid UTF-8.
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_validates_and_works() {
        for alg in Algorithm::all() {
            // RSA-4096 generation is slow; one 4096 check is enough.
            if matches!(alg, Algorithm::RsaPss(RsaBits::B4096, h) | Algorithm::RsaPkcs1(RsaBits::B4096, h) if h != Sha2::Sha512)
            {
                continue;
            }
            let m = generate(alg).unwrap();
            validate(alg, &m).unwrap();
            match alg.purpose() {
                crate::Purpose::SignVerify => {
                    let pk = public_key_der(alg, &m).unwrap();
                    let sig = sign(alg, &m, SignInput::Message(b"msg")).unwrap();
                    assert!(
                        verify(alg, &pk, SignInput::Message(b"msg"), &sig).unwrap(),
                        "{alg}"
                    );
                    assert!(
                        !verify(alg, &pk, SignInput::Message(b"msh"), &sig).unwrap(),
                        "{alg}"
                    );
                    if let Some(h) = alg.signing_hash() {
                        let d = digest::digest(h.digest_algorithm(), b"msg");
                        let sig2 = sign(alg, &m, SignInput::Digest(d.as_ref())).unwrap();
                        assert!(verify(alg, &pk, SignInput::Message(b"msg"), &sig2).unwrap());
                        assert!(verify(alg, &pk, SignInput::Digest(d.as_ref()), &sig).unwrap());
                        assert!(matches!(
                            sign(alg, &m, SignInput::Digest(&d.as_ref()[1..])),
                            Err(Error::DigestLength { .. })
                        ));
                    } else {
                        assert!(matches!(
                            sign(alg, &m, SignInput::Digest(&[0; 32])),
                            Err(Error::DigestNotSupported)
                        ));
                    }
                }
                crate::Purpose::AsymmetricDecrypt => {
                    let pk = public_key_der(alg, &m).unwrap();
                    let ct = rsa_oaep_encrypt(&pk, b"secret").unwrap();
                    assert_eq!(
                        rsa_oaep_decrypt(alg, &m, &ct).unwrap().expose_secret(),
                        b"secret"
                    );
                    let mut bad = ct.clone();
                    bad[5] ^= 1;
                    assert!(matches!(
                        rsa_oaep_decrypt(alg, &m, &bad),
                        Err(Error::InvalidCiphertext)
                    ));
                    assert!(matches!(
                        rsa_oaep_decrypt(alg, &m, &ct[1..]),
                        Err(Error::InvalidCiphertext)
                    ));
                }
                crate::Purpose::KeyAgreement => {
                    let other = generate(alg).unwrap();
                    let (pk, pk_other) = (
                        public_key_der(alg, &m).unwrap(),
                        public_key_der(alg, &other).unwrap(),
                    );
                    let ab = derive_shared_secret(alg, &m, &pk_other).unwrap();
                    let ba = derive_shared_secret(alg, &other, &pk).unwrap();
                    assert_eq!(ab.expose_secret(), ba.expose_secret(), "{alg}");
                    assert!(matches!(
                        derive_shared_secret(alg, &m, &pk[1..]),
                        Err(Error::InvalidPublicKey)
                    ));
                }
                crate::Purpose::Mac => {
                    let t = mac(alg, &m, b"msg").unwrap();
                    assert!(mac_verify(alg, &m, b"msg", &t).unwrap());
                    assert!(!mac_verify(alg, &m, b"msh", &t).unwrap());
                    assert!(!mac_verify(alg, &m, b"msg", &t[1..]).unwrap());
                }
                crate::Purpose::EncryptDecrypt => {
                    assert!(public_key_der(alg, &m).is_err());
                }
            }
        }
    }

    #[test]
    fn mismatched_material_is_rejected() {
        let ec = generate(Algorithm::EcdsaP256Sha256).unwrap();
        assert!(validate(Algorithm::EcdsaP384Sha384, &ec).is_err());
        assert!(validate(Algorithm::Ed25519, &ec).is_err());
        assert!(validate(Algorithm::Aes256Gcm, &ec).is_err());
        let rsa = generate(Algorithm::RsaPss(RsaBits::B2048, Sha2::Sha256)).unwrap();
        assert!(validate(Algorithm::RsaPss(RsaBits::B3072, Sha2::Sha256), &rsa).is_err());
    }

    #[test]
    fn pem_wraps_at_64() {
        let p = pem("PUBLIC KEY", &[0u8; 100]);
        assert!(p.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(p.ends_with("-----END PUBLIC KEY-----\n"));
        assert!(p.lines().all(|l| l.len() <= 64));
    }
}
