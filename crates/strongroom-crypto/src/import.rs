//! Unwrapping key material brought by its owner (bring your own key), as AWS KMS's import
//! defines it: the material encrypted to a fresh RSA wrapping key, either directly with
//! RSA-OAEP-SHA-256, or — for material too long for OAEP — as an RSA-OAEP-SHA-256-wrapped
//! ephemeral AES-256 key followed by the material wrapped under it with AES key wrap with
//! padding (RFC 5649, AES-KWP).

use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};

use crate::{Algorithm, Error, KeyMaterial, keys};

/// How imported material is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportWrapping {
    /// RSA-OAEP with SHA-256 and MGF1-SHA-256 (AWS `RSAES_OAEP_SHA_256`).
    RsaOaepSha256,
    /// RSA-OAEP-SHA-256 of an AES-256 key, then AES-KWP (AWS `RSA_AES_KEY_WRAP_SHA_256`).
    RsaAesKeyWrapSha256,
}

impl ImportWrapping {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportWrapping::RsaOaepSha256 => "rsaes-oaep-sha256",
            ImportWrapping::RsaAesKeyWrapSha256 => "rsa-aes-key-wrap-sha256",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::RsaOaepSha256, Self::RsaAesKeyWrapSha256]
            .into_iter()
            .find(|w| w.as_str() == s)
    }
}

/// AES-KWP unwrap under a 32-byte key-encryption key. Every failure is `InvalidCiphertext`.
pub fn aes_kwp_unwrap(kek: &[u8], ciphertext: &[u8]) -> Result<KeyMaterial, Error> {
    let k = AesKek::new(&AES_256, kek).map_err(|_| Error::InvalidCiphertext)?;
    let mut out = vec![0u8; ciphertext.len()];
    let res = match k.unwrap_with_padding(ciphertext, &mut out) {
        Ok(pt) => Ok(KeyMaterial::copy_from(pt)),
        Err(_) => Err(Error::InvalidCiphertext),
    };
    zeroize::Zeroize::zeroize(&mut out);
    res
}

/// AES-KWP wrap (clients do this; here for tests and tools).
pub fn aes_kwp_wrap(kek: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let k = AesKek::new(&AES_256, kek).map_err(|_| Error::Internal("aes-kwp key"))?;
    let mut out = vec![0u8; plaintext.len() + 15];
    let ct = k
        .wrap_with_padding(plaintext, &mut out)
        .map_err(|_| Error::Internal("aes-kwp wrap"))?;
    Ok(ct.to_vec())
}

/// Unwraps imported material with the RSA-OAEP wrapping key (`wrapping_alg`, its PKCS#8
/// `wrapping_key`). Every failure is `InvalidCiphertext`: no oracle on which step failed.
pub fn unwrap(
    wrapping: ImportWrapping,
    wrapping_alg: Algorithm,
    wrapping_key: &KeyMaterial,
    ciphertext: &[u8],
) -> Result<KeyMaterial, Error> {
    let Algorithm::RsaOaep(bits) = wrapping_alg else {
        return Err(Error::WrongAlgorithm);
    };
    match wrapping {
        ImportWrapping::RsaOaepSha256 => {
            let pt = keys::rsa_oaep_decrypt(wrapping_alg, wrapping_key, ciphertext)?;
            Ok(KeyMaterial::copy_from(pt.expose_secret()))
        }
        ImportWrapping::RsaAesKeyWrapSha256 => {
            let n = bits.bits() as usize / 8;
            if ciphertext.len() <= n {
                return Err(Error::InvalidCiphertext);
            }
            let (wrapped_kek, rest) = ciphertext.split_at(n);
            let kek = keys::rsa_oaep_decrypt(wrapping_alg, wrapping_key, wrapped_kek)?;
            if kek.len() != 32 {
                return Err(Error::InvalidCiphertext);
            }
            // Exposed to unwrap the material with it; dropped (wiped) right after.
            aes_kwp_unwrap(kek.expose_secret(), rest)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RsaBits;

    #[test]
    fn both_wrappings_round_trip_and_refuse_tampering() {
        let alg = Algorithm::RsaOaep(RsaBits::B2048);
        let wk = keys::generate(alg).unwrap();
        let public = keys::public_key_der(alg, &wk).unwrap();
        let material = [7u8; 32];

        let ct = keys::rsa_oaep_encrypt(&public, &material).unwrap();
        let got = unwrap(ImportWrapping::RsaOaepSha256, alg, &wk, &ct).unwrap();
        assert_eq!(got.expose_secret(), material);

        let long = vec![9u8; 1200]; // e.g. an RSA private key, too long for OAEP
        let kek = [5u8; 32];
        let mut ct2 = keys::rsa_oaep_encrypt(&public, &kek).unwrap();
        ct2.extend(aes_kwp_wrap(&kek, &long).unwrap());
        let got = unwrap(ImportWrapping::RsaAesKeyWrapSha256, alg, &wk, &ct2).unwrap();
        assert_eq!(got.expose_secret(), long.as_slice());

        for i in [0, 100, 255, 256, 300, ct2.len() - 1] {
            let mut bad = ct2.clone();
            bad[i] ^= 1;
            assert!(matches!(
                unwrap(ImportWrapping::RsaAesKeyWrapSha256, alg, &wk, &bad),
                Err(Error::InvalidCiphertext)
            ));
        }
        assert!(unwrap(ImportWrapping::RsaAesKeyWrapSha256, alg, &wk, &ct2[..256]).is_err());
        assert!(unwrap(ImportWrapping::RsaOaepSha256, alg, &wk, &ct2).is_err());
        assert_eq!(
            ImportWrapping::parse("rsa-aes-key-wrap-sha256"),
            Some(ImportWrapping::RsaAesKeyWrapSha256)
        );
    }
}
