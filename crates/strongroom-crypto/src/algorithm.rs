//! The algorithms a key can have, and the purpose each one serves.
//!
//! Names are part of the API contract (they appear in requests, responses and the store), so
//! they are spelled out here once and never derived from Rust identifiers.

use std::fmt;
use std::str::FromStr;

/// What a key may be used for. Fixed when the key is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Symmetric encrypt/decrypt, data keys and re-encrypt.
    EncryptDecrypt,
    /// RSA-OAEP: callers encrypt with the public key, Strongroom decrypts.
    AsymmetricDecrypt,
    /// Asymmetric signatures.
    SignVerify,
    /// HMAC generation and verification.
    Mac,
    /// Elliptic-curve Diffie-Hellman: derive a shared secret with another party's public key.
    KeyAgreement,
}

impl Purpose {
    /// All purposes, in documentation order.
    pub const ALL: [Purpose; 5] = [
        Purpose::EncryptDecrypt,
        Purpose::AsymmetricDecrypt,
        Purpose::SignVerify,
        Purpose::Mac,
        Purpose::KeyAgreement,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::EncryptDecrypt => "encrypt-decrypt",
            Purpose::AsymmetricDecrypt => "asymmetric-decrypt",
            Purpose::SignVerify => "sign-verify",
            Purpose::Mac => "mac",
            Purpose::KeyAgreement => "key-agreement",
        }
    }

    /// The algorithm a key of this purpose gets when none is named.
    pub fn default_algorithm(self) -> Algorithm {
        match self {
            Purpose::EncryptDecrypt => Algorithm::Aes256Gcm,
            Purpose::AsymmetricDecrypt => Algorithm::RsaOaep(RsaBits::B3072),
            Purpose::SignVerify => Algorithm::EcdsaP256Sha256,
            Purpose::Mac => Algorithm::Hmac(Sha2::Sha256),
            Purpose::KeyAgreement => Algorithm::EcdhP256,
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Purpose {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(UnknownName)
    }
}

/// A name that is not one of the documented values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown name")]
pub struct UnknownName;

/// RSA modulus sizes Strongroom generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsaBits {
    /// 2048-bit modulus.
    B2048,
    /// 3072-bit modulus.
    B3072,
    /// 4096-bit modulus.
    B4096,
}

impl RsaBits {
    /// All sizes.
    pub const ALL: [RsaBits; 3] = [RsaBits::B2048, RsaBits::B3072, RsaBits::B4096];

    /// Modulus size in bits.
    pub fn bits(self) -> u32 {
        match self {
            RsaBits::B2048 => 2048,
            RsaBits::B3072 => 3072,
            RsaBits::B4096 => 4096,
        }
    }
}

/// SHA-2 family hashes used by signatures and MACs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sha2 {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Sha2 {
    /// All hashes.
    pub const ALL: [Sha2; 3] = [Sha2::Sha256, Sha2::Sha384, Sha2::Sha512];

    /// The name used inside algorithm names (`sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Sha2::Sha256 => "sha256",
            Sha2::Sha384 => "sha384",
            Sha2::Sha512 => "sha512",
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Sha2::Sha256 => 32,
            Sha2::Sha384 => 48,
            Sha2::Sha512 => 64,
        }
    }

    pub(crate) fn digest_algorithm(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            Sha2::Sha256 => &aws_lc_rs::digest::SHA256,
            Sha2::Sha384 => &aws_lc_rs::digest::SHA384,
            Sha2::Sha512 => &aws_lc_rs::digest::SHA512,
        }
    }
}

/// A signature scheme without a key size: what a sign or verify request may ask for of a
/// key whose material serves several (see [`Algorithm::signing_variants`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// RSASSA-PSS with this hash.
    RsaPss(Sha2),
    /// RSASSA-PKCS1-v1_5 with this hash.
    RsaPkcs1(Sha2),
    /// ECDSA with this hash (the curve is the key's).
    Ecdsa(Sha2),
    /// Pure Ed25519.
    Ed25519,
    /// Pure ML-DSA (FIPS 204), with an empty context string.
    MlDsa,
}

/// A key's algorithm. Every version of a key has the same algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// AES-256-GCM with a per-message key (see `docs/formats/ciphertext-v1.md`).
    Aes256Gcm,
    /// RSA-OAEP with SHA-256 and MGF1-SHA-256.
    RsaOaep(RsaBits),
    /// RSASSA-PSS, salt length equal to the hash length, MGF1 with the same hash.
    RsaPss(RsaBits, Sha2),
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(RsaBits, Sha2),
    /// ECDSA on NIST P-256 with SHA-256; DER-encoded signatures.
    EcdsaP256Sha256,
    /// ECDSA on NIST P-384 with SHA-384; DER-encoded signatures.
    EcdsaP384Sha384,
    /// ECDSA on NIST P-521 with SHA-512; DER-encoded signatures.
    EcdsaP521Sha512,
    /// ECDSA on secp256k1 with SHA-256; DER-encoded signatures.
    EcdsaSecp256k1Sha256,
    /// Ed25519 (pure; signs messages only, never digests).
    Ed25519,
    /// ML-DSA-44 (FIPS 204; pure, messages only).
    MlDsa44,
    /// ML-DSA-65.
    MlDsa65,
    /// ML-DSA-87.
    MlDsa87,
    /// ChaCha20-Poly1305 with a 32-byte key (ciphertext v1, suite 2).
    ChaCha20Poly1305,
    /// HMAC with a key as long as the hash output.
    Hmac(Sha2),
    /// HMAC-SHA-224 with a 28-byte key. Kept apart from [`Algorithm::Hmac`] because SHA-224
    /// serves no other algorithm here.
    Hmac224,
    /// ECDH on NIST P-256 (the raw shared secret, no KDF).
    EcdhP256,
    /// ECDH on NIST P-384.
    EcdhP384,
    /// ECDH on NIST P-521.
    EcdhP521,
}

impl Algorithm {
    /// Every algorithm, in documentation order.
    pub fn all() -> Vec<Algorithm> {
        let mut v = vec![Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305];
        v.extend(RsaBits::ALL.map(Algorithm::RsaOaep));
        for bits in RsaBits::ALL {
            v.extend(Sha2::ALL.map(|h| Algorithm::RsaPss(bits, h)));
        }
        for bits in RsaBits::ALL {
            v.extend(Sha2::ALL.map(|h| Algorithm::RsaPkcs1(bits, h)));
        }
        v.extend([
            Algorithm::EcdsaP256Sha256,
            Algorithm::EcdsaP384Sha384,
            Algorithm::EcdsaP521Sha512,
            Algorithm::EcdsaSecp256k1Sha256,
            Algorithm::Ed25519,
            Algorithm::MlDsa44,
            Algorithm::MlDsa65,
            Algorithm::MlDsa87,
        ]);
        v.push(Algorithm::Hmac224);
        v.extend(Sha2::ALL.map(Algorithm::Hmac));
        v.extend([
            Algorithm::EcdhP256,
            Algorithm::EcdhP384,
            Algorithm::EcdhP521,
        ]);
        v
    }

    /// The purpose this algorithm serves.
    pub fn purpose(self) -> Purpose {
        match self {
            Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 => Purpose::EncryptDecrypt,
            Algorithm::RsaOaep(_) => Purpose::AsymmetricDecrypt,
            Algorithm::RsaPss(..)
            | Algorithm::RsaPkcs1(..)
            | Algorithm::EcdsaP256Sha256
            | Algorithm::EcdsaP384Sha384
            | Algorithm::EcdsaP521Sha512
            | Algorithm::EcdsaSecp256k1Sha256
            | Algorithm::Ed25519
            | Algorithm::MlDsa44
            | Algorithm::MlDsa65
            | Algorithm::MlDsa87 => Purpose::SignVerify,
            Algorithm::Hmac(_) | Algorithm::Hmac224 => Purpose::Mac,
            Algorithm::EcdhP256 | Algorithm::EcdhP384 | Algorithm::EcdhP521 => {
                Purpose::KeyAgreement
            }
        }
    }

    /// Whether versions of this algorithm have a public key.
    pub fn is_asymmetric(self) -> bool {
        matches!(
            self.purpose(),
            Purpose::AsymmetricDecrypt | Purpose::SignVerify | Purpose::KeyAgreement
        )
    }

    /// The hash a signing algorithm applies to messages, or `None` (Ed25519 and non-signing
    /// algorithms). A digest given to `sign` must be this long.
    pub fn signing_hash(self) -> Option<Sha2> {
        match self {
            Algorithm::RsaPss(_, h) | Algorithm::RsaPkcs1(_, h) => Some(h),
            Algorithm::EcdsaP256Sha256 | Algorithm::EcdsaSecp256k1Sha256 => Some(Sha2::Sha256),
            Algorithm::EcdsaP384Sha384 => Some(Sha2::Sha384),
            Algorithm::EcdsaP521Sha512 => Some(Sha2::Sha512),
            _ => None,
        }
    }

    /// The signing algorithms a key of this algorithm can sign and verify with: one RSA key
    /// serves every padding (PSS, PKCS#1 v1.5) and hash of its size; other keys only their
    /// own algorithm. Empty for keys that do not sign.
    pub fn signing_variants(self) -> Vec<Algorithm> {
        match self {
            Algorithm::RsaPss(b, _) | Algorithm::RsaPkcs1(b, _) => Sha2::ALL
                .into_iter()
                .map(|h| Algorithm::RsaPss(b, h))
                .chain(Sha2::ALL.into_iter().map(|h| Algorithm::RsaPkcs1(b, h)))
                .collect(),
            a if a.purpose() == Purpose::SignVerify => vec![a],
            _ => Vec::new(),
        }
    }

    /// The signature scheme of a signing algorithm.
    pub fn scheme(self) -> Option<SignatureScheme> {
        match self {
            Algorithm::RsaPss(_, h) => Some(SignatureScheme::RsaPss(h)),
            Algorithm::RsaPkcs1(_, h) => Some(SignatureScheme::RsaPkcs1(h)),
            Algorithm::EcdsaP256Sha256 | Algorithm::EcdsaSecp256k1Sha256 => {
                Some(SignatureScheme::Ecdsa(Sha2::Sha256))
            }
            Algorithm::EcdsaP384Sha384 => Some(SignatureScheme::Ecdsa(Sha2::Sha384)),
            Algorithm::EcdsaP521Sha512 => Some(SignatureScheme::Ecdsa(Sha2::Sha512)),
            Algorithm::Ed25519 => Some(SignatureScheme::Ed25519),
            Algorithm::MlDsa44 | Algorithm::MlDsa65 | Algorithm::MlDsa87 => {
                Some(SignatureScheme::MlDsa)
            }
            _ => None,
        }
    }

    /// The signing variant of this key's algorithm that uses `scheme`, if it has one.
    pub fn with_scheme(self, scheme: SignatureScheme) -> Option<Algorithm> {
        self.signing_variants()
            .into_iter()
            .find(|a| a.scheme() == Some(scheme))
    }

    /// The wire name, e.g. `rsa-pss-3072-sha256`.
    pub fn name(self) -> String {
        match self {
            Algorithm::Aes256Gcm => "aes-256-gcm".into(),
            Algorithm::ChaCha20Poly1305 => "chacha20-poly1305".into(),
            Algorithm::RsaOaep(b) => format!("rsa-oaep-{}-sha256", b.bits()),
            Algorithm::RsaPss(b, h) => format!("rsa-pss-{}-{}", b.bits(), h.as_str()),
            Algorithm::RsaPkcs1(b, h) => format!("rsa-pkcs1-{}-{}", b.bits(), h.as_str()),
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256".into(),
            Algorithm::EcdsaP384Sha384 => "ecdsa-p384-sha384".into(),
            Algorithm::EcdsaP521Sha512 => "ecdsa-p521-sha512".into(),
            Algorithm::EcdsaSecp256k1Sha256 => "ecdsa-secp256k1-sha256".into(),
            Algorithm::Ed25519 => "ed25519".into(),
            Algorithm::MlDsa44 => "ml-dsa-44".into(),
            Algorithm::MlDsa65 => "ml-dsa-65".into(),
            Algorithm::MlDsa87 => "ml-dsa-87".into(),
            Algorithm::Hmac(h) => format!("hmac-{}", h.as_str()),
            Algorithm::Hmac224 => "hmac-sha224".into(),
            Algorithm::EcdhP256 => "ecdh-p256".into(),
            Algorithm::EcdhP384 => "ecdh-p384".into(),
            Algorithm::EcdhP521 => "ecdh-p521".into(),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Algorithm {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::all()
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or(UnknownName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let all = Algorithm::all();
        assert_eq!(all.len(), 2 + 3 + 9 + 9 + 5 + 3 + 1 + 3 + 3);
        let mut names: Vec<String> = all.iter().map(|a| a.name()).collect();
        for (a, n) in all.iter().zip(&names) {
            assert_eq!(n.parse::<Algorithm>(), Ok(*a));
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!("AES-256-GCM".parse::<Algorithm>(), Err(UnknownName));
    }

    #[test]
    fn signing_variants_share_key_material() {
        let v = Algorithm::RsaPkcs1(RsaBits::B3072, Sha2::Sha384).signing_variants();
        assert_eq!(v.len(), 6);
        assert!(v.contains(&Algorithm::RsaPss(RsaBits::B3072, Sha2::Sha256)));
        assert!(!v.contains(&Algorithm::RsaPss(RsaBits::B2048, Sha2::Sha256)));
        assert_eq!(
            Algorithm::Ed25519.signing_variants(),
            vec![Algorithm::Ed25519]
        );
        assert!(Algorithm::Aes256Gcm.signing_variants().is_empty());
        let rsa = Algorithm::RsaPss(RsaBits::B4096, Sha2::Sha256);
        assert_eq!(
            rsa.with_scheme(SignatureScheme::RsaPkcs1(Sha2::Sha512)),
            Some(Algorithm::RsaPkcs1(RsaBits::B4096, Sha2::Sha512))
        );
        assert_eq!(rsa.with_scheme(SignatureScheme::Ed25519), None);
        assert_eq!(
            Algorithm::EcdsaP256Sha256.with_scheme(SignatureScheme::Ecdsa(Sha2::Sha384)),
            None
        );
        for a in Algorithm::all() {
            if let Some(s) = a.scheme() {
                assert_eq!(a.with_scheme(s), Some(a), "{a}");
            }
        }
        assert!(Algorithm::Hmac(Sha2::Sha256).signing_variants().is_empty());
    }

    #[test]
    fn default_algorithms_serve_their_purpose() {
        for p in Purpose::ALL {
            assert_eq!(p.default_algorithm().purpose(), p);
            assert_eq!(p.as_str().parse::<Purpose>(), Ok(p));
        }
    }
}
