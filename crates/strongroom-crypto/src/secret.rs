//! Types that hold secrets: key material and plaintext.
//!
//! **Invariant:** none of these types implements `Clone`, `PartialEq`, `Serialize` or a
//! `Debug` that shows bytes. Their buffers are zeroized on drop. Reading the bytes takes an
//! explicit `expose_secret()` call, so every place that touches a secret is greppable.

use std::fmt;

use zeroize::Zeroize;

macro_rules! secret_bytes {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name(Box<[u8]>);

        impl $name {
            /// Takes ownership of `bytes`; the buffer is zeroized when this value drops.
            pub fn new(bytes: Vec<u8>) -> Self {
                Self(bytes.into_boxed_slice())
            }

            /// Copies `bytes` into a new secret. The caller stays responsible for its own copy.
            pub fn copy_from(bytes: &[u8]) -> Self {
                Self(bytes.to_vec().into_boxed_slice())
            }

            /// The secret bytes. Every caller must say, in a comment, why it needs them.
            pub fn expose_secret(&self) -> &[u8] {
                &self.0
            }

            /// The secret bytes, to fill in place (decrypting straight into them). Every
            /// caller must say, in a comment, why it needs them.
            pub fn expose_secret_mut(&mut self) -> &mut [u8] {
                &mut self.0
            }

            /// Length in bytes (not secret).
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// Whether the secret is empty.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([REDACTED {} bytes])"), self.0.len())
            }
        }
    };
}

secret_bytes!(
    /// Raw key material: a symmetric key, an HMAC key, or a PKCS#8 private key document.
    KeyMaterial
);

secret_bytes!(
    /// Caller data on its way into or out of a cryptographic operation.
    Plaintext
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let canary = b"CANARY-SECRET-0123456789".to_vec();
        let k = KeyMaterial::new(canary.clone());
        let p = Plaintext::copy_from(&canary);
        for s in [format!("{k:?}"), format!("{p:?}"), format!("{k:#?}")] {
            assert!(!s.contains("CANARY"), "{s}");
            assert!(s.contains("REDACTED 24 bytes"), "{s}");
        }
    }
}
