//! Sealing: how key material is encrypted under the root key before it reaches the store.
//!
//! Specification: `docs/sealing.md`. **Invariant:** the store only ever sees the output of
//! [`RootKey::seal`]; nothing else in Strongroom writes key material anywhere.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use base64::Engine;

use crate::secret::{KeyMaterial, Plaintext};
use crate::{Error, rand};

const SEAL_V1: u8 = 0x01;
const LABEL: &[u8] = b"strongroom/seal/v1";
const FILE_HEADER: &str = "strongroom-root-key-v1";
/// Root key length in bytes.
pub const ROOT_KEY_LEN: usize = 32;

/// The root key. Everything sealed in a data dir is sealed under one of these.
pub struct RootKey {
    kek: LessSafeKey,
    material: KeyMaterial,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey([REDACTED])")
    }
}

/// Why a root key file was refused. Never includes the file's contents.
#[derive(Debug, thiserror::Error)]
pub enum RootKeyFileError {
    /// The first line is not `strongroom-root-key-v1`.
    #[error("not a strongroom root key file (the first line must be `{FILE_HEADER}`)")]
    BadHeader,
    /// The second line is not base64 of 32 bytes.
    #[error("the key line is not base64 of {ROOT_KEY_LEN} bytes")]
    BadKey,
}

impl RootKey {
    /// Generates a new random root key.
    pub fn generate() -> Result<Self, Error> {
        Self::from_material(KeyMaterial::new(rand::bytes(ROOT_KEY_LEN)?))
    }

    /// Builds a root key from 32 bytes of material.
    pub fn from_material(material: KeyMaterial) -> Result<Self, Error> {
        if material.len() != ROOT_KEY_LEN {
            return Err(Error::InvalidKeyMaterial);
        }
        // Exposed to derive the key-encryption key; the derived key lives only in aws-lc.
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, LABEL).extract(material.expose_secret());
        let info = [b"key-encryption-key".as_slice()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| Error::Internal("hkdf expand"))?;
        Ok(Self {
            kek: LessSafeKey::new(UnboundKey::from(okm)),
            material,
        })
    }

    /// Parses the text of a root key file.
    pub fn from_file_text(text: &str) -> Result<Self, RootKeyFileError> {
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(FILE_HEADER) {
            return Err(RootKeyFileError::BadHeader);
        }
        let b64 = lines.next().map(str::trim).unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| RootKeyFileError::BadKey)?;
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(RootKeyFileError::BadKey);
        }
        Self::from_material(KeyMaterial::new(bytes)).map_err(|_| RootKeyFileError::BadKey)
    }

    /// The text of a root key file holding this key. The returned string is secret.
    pub fn to_file_text(&self) -> Plaintext {
        // Exposed to write the root key file, the one place the root key is meant to live.
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.material.expose_secret());
        Plaintext::new(format!("{FILE_HEADER}\n{b64}\n").into_bytes())
    }

    fn aad(binding: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(LABEL.len() + 4 + binding.len());
        aad.extend_from_slice(LABEL);
        // Invariant: bindings are short identifiers, far below u32::MAX.
        aad.extend_from_slice(&(binding.len() as u32).to_be_bytes());
        aad.extend_from_slice(binding);
        aad
    }

    /// Seals `secret`, bound to `binding` (which names what the secret is, e.g. key id,
    /// version and algorithm): unsealing with any other binding fails.
    pub fn seal(&self, binding: &[u8], secret: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce = rand::array::<12>()?;
        let mut body = secret.to_vec();
        self.kek
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(binding)),
                &mut body,
            )
            .map_err(|_| Error::Internal("seal"))?;
        let mut out = Vec::with_capacity(13 + body.len());
        out.push(SEAL_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a sealed blob. Fails with [`Error::Unseal`] if the blob was altered, sealed under
    /// another root key, or sealed for another binding.
    pub fn unseal(&self, binding: &[u8], sealed: &[u8]) -> Result<KeyMaterial, Error> {
        if sealed.len() < 1 + 12 + 16 || sealed[0] != SEAL_V1 {
            return Err(Error::Unseal);
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&sealed[1..13]);
        let mut body = sealed[13..].to_vec();
        let res = match self.kek.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(Self::aad(binding)),
            &mut body,
        ) {
            Ok(pt) => Ok(KeyMaterial::copy_from(pt)),
            Err(_) => Err(Error::Unseal),
        };
        zeroize::Zeroize::zeroize(&mut body);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_binds_to_key_and_binding() {
        let rk = RootKey::generate().unwrap();
        let s = rk.seal(b"key-a/1", b"material").unwrap();
        assert_eq!(
            rk.unseal(b"key-a/1", &s).unwrap().expose_secret(),
            b"material"
        );
        assert!(matches!(rk.unseal(b"key-b/1", &s), Err(Error::Unseal)));
        let other = RootKey::generate().unwrap();
        assert!(matches!(other.unseal(b"key-a/1", &s), Err(Error::Unseal)));
        let mut t = s.clone();
        t[20] ^= 1;
        assert!(matches!(rk.unseal(b"key-a/1", &t), Err(Error::Unseal)));
        assert!(matches!(
            rk.unseal(b"key-a/1", &s[..10]),
            Err(Error::Unseal)
        ));
    }

    #[test]
    fn file_round_trip_and_rejections() {
        let rk = RootKey::generate().unwrap();
        let text = String::from_utf8(rk.to_file_text().expose_secret().to_vec()).unwrap();
        let back = RootKey::from_file_text(&text).unwrap();
        let s = rk.seal(b"b", b"x").unwrap();
        assert_eq!(back.unseal(b"b", &s).unwrap().expose_secret(), b"x");
        assert!(matches!(
            RootKey::from_file_text("hello\n"),
            Err(RootKeyFileError::BadHeader)
        ));
        assert!(matches!(
            RootKey::from_file_text("strongroom-root-key-v1\nAAAA\n"),
            Err(RootKeyFileError::BadKey)
        ));
        assert!(!format!("{rk:?}").contains(text.lines().nth(1).unwrap()));
    }
}
