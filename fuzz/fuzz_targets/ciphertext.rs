//! Any bytes given to the ciphertext v1 parser and decryptor: no panic, and nothing but a
//! ciphertext made under this key and context ever decrypts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_crypto::ciphertext::{decrypt, parse_header};
use strongroom_crypto::{EncryptionContext, KeyMaterial};

fuzz_target!(|data: &[u8]| {
    let key = KeyMaterial::new(vec![0x42; 32]);
    if let Ok(h) = parse_header(data) {
        assert!(h.version >= 1);
        // Random bytes must never authenticate (2^-128 per try).
        assert!(decrypt(&key, &h, &EncryptionContext::empty(), data).is_err());
    }
});
