//! Any text given to the root key file parser: no panic; accepted files round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_crypto::RootKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(k) = RootKey::from_file_text(text)
    {
        let again = k.to_file_text();
        let back = RootKey::from_file_text(std::str::from_utf8(again.expose_secret()).unwrap()).unwrap();
        let sealed = k.seal(b"b", b"x").unwrap();
        assert_eq!(back.unseal(b"b", &sealed).unwrap().expose_secret(), b"x");
    }
});
