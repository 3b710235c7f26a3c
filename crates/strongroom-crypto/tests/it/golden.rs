//! Golden vectors: ciphertexts and sealed blobs written by the v1 code, which every later
//! release must keep opening. The files never change; a new format adds a new directory.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde_json::{Value, json};
use strongroom_crypto::ciphertext::{self, dangerous_encrypt_with_fixed_randomness, parse_header};
use strongroom_crypto::{EncryptionContext, KeyId, KeyMaterial, RootKey};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn context(v: &Value) -> EncryptionContext {
    let m: BTreeMap<String, String> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    EncryptionContext::try_new(m).unwrap()
}

fn load(path: &str) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(DIR).join(path)).unwrap()).unwrap();
    v.as_array().unwrap().clone()
}

#[test]
fn ciphertext_v1_vectors_decrypt_and_reproduce() {
    let cases = load("ciphertext-v1/vectors.json");
    assert!(cases.len() >= 6, "only {} vectors", cases.len());
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let key = KeyMaterial::new(hex::decode(c["key"].as_str().unwrap()).unwrap());
        let id: KeyId = c["key_id"].as_str().unwrap().parse().unwrap();
        let version = c["version"].as_u64().unwrap() as u32;
        let ctx = context(&c["context"]);
        let pt = hex::decode(c["plaintext"].as_str().unwrap()).unwrap();
        let ct = B64.decode(c["ciphertext"].as_str().unwrap()).unwrap();
        let h = parse_header(&ct).unwrap();
        assert_eq!((h.key_id, h.version), (id, version), "{name}");
        assert_eq!(
            ciphertext::decrypt(&key, &h, &ctx, &ct)
                .unwrap()
                .expose_secret(),
            &pt[..],
            "{name}"
        );
        let mut other = ctx.pairs().clone();
        other.insert("golden".into(), "tampered".into());
        assert!(
            ciphertext::decrypt(&key, &h, &EncryptionContext::try_new(other).unwrap(), &ct)
                .is_err(),
            "{name}"
        );
        // Byte for byte: the same inputs and randomness give the same ciphertext.
        let salt: [u8; 16] = ct[24..40].try_into().unwrap();
        let nonce: [u8; 12] = ct[40..52].try_into().unwrap();
        let again =
            dangerous_encrypt_with_fixed_randomness(&key, id, version, &ctx, &pt, salt, nonce)
                .unwrap();
        assert_eq!(again, ct, "{name}: the encoding changed");
    }
}

#[test]
fn seal_v1_vectors_open() {
    let cases = load("seal-v1/vectors.json");
    assert!(cases.len() >= 3);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let root = RootKey::from_material(KeyMaterial::new(
            hex::decode(c["root_key"].as_str().unwrap()).unwrap(),
        ))
        .unwrap();
        let binding = hex::decode(c["binding"].as_str().unwrap()).unwrap();
        let sealed = B64.decode(c["sealed"].as_str().unwrap()).unwrap();
        let secret = hex::decode(c["secret"].as_str().unwrap()).unwrap();
        assert_eq!(
            root.unseal(&binding, &sealed).unwrap().expose_secret(),
            &secret[..],
            "{name}"
        );
        assert!(root.unseal(b"another binding", &sealed).is_err(), "{name}");
    }
}

/// Writes the golden files. Run by hand once; it refuses to overwrite.
#[test]
#[ignore = "generator: run by hand once; the golden files never change"]
fn generate_golden_vectors() {
    let ct_path = Path::new(DIR).join("ciphertext-v1/vectors.json");
    let seal_path = Path::new(DIR).join("seal-v1/vectors.json");
    assert!(
        !ct_path.exists() && !seal_path.exists(),
        "golden files exist already"
    );
    type Case<'a> = (
        &'a str,
        [u8; 32],
        &'a str,
        u32,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
    );
    let cases: Vec<Case> = vec![
        (
            "empty plaintext, empty context",
            [0x11; 32],
            "00000000-0000-4000-8000-000000000001",
            1,
            vec![],
            vec![],
        ),
        (
            "short plaintext",
            [0x22; 32],
            "6f1e0b7c-2d4a-4c3b-9e8f-7a6b5c4d3e2f",
            1,
            vec![("tenant", "acme")],
            b"hello, strongroom".to_vec(),
        ),
        (
            "multi-pair context given out of order",
            [0x33; 32],
            "6f1e0b7c-2d4a-4c3b-9e8f-7a6b5c4d3e30",
            7,
            vec![("zeta", "last"), ("alpha", "first"), ("Mid", "dle")],
            b"context order does not matter".to_vec(),
        ),
        (
            "1000-byte plaintext",
            [0x44; 32],
            "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
            2,
            vec![("file", "report.pdf")],
            (0..1000u32).map(|i| (i * 7 % 256) as u8).collect(),
        ),
        (
            "largest version number",
            [0x55; 32],
            "ffffffff-ffff-4fff-bfff-ffffffffffff",
            u32::MAX,
            vec![],
            b"v4294967295".to_vec(),
        ),
        (
            "utf-8 context",
            [0x66; 32],
            "a0b1c2d3-e4f5-4a6b-8c7d-8e9fa0b1c2d3",
            3,
            vec![("région", "Île-de-France"), ("ключ", "значение")],
            b"\x00\x01\x02binary\xff".to_vec(),
        ),
    ];
    let mut out = Vec::new();
    for (i, (name, key, id, version, ctx, pt)) in cases.into_iter().enumerate() {
        let k = KeyMaterial::copy_from(&key);
        let kid: KeyId = id.parse().unwrap();
        let c: BTreeMap<String, String> = ctx
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let salt = [i as u8 + 0xa0; 16];
        let nonce = [i as u8 + 0xb0; 12];
        let ct = dangerous_encrypt_with_fixed_randomness(
            &k,
            kid,
            version,
            &EncryptionContext::try_new(c).unwrap(),
            &pt,
            salt,
            nonce,
        )
        .unwrap();
        let json_ctx: serde_json::Map<String, Value> = ctx
            .iter()
            .map(|(a, b)| (a.to_string(), Value::String(b.to_string())))
            .collect();
        out.push(json!({"name": name, "key": hex::encode(key), "key_id": id, "version": version, "context": json_ctx, "plaintext": hex::encode(&pt), "ciphertext": B64.encode(&ct)}));
    }
    std::fs::write(&ct_path, serde_json::to_string_pretty(&out).unwrap() + "\n").unwrap();
    let mut seals = Vec::new();
    for (name, root, binding, secret) in [
        (
            "aes key material",
            [0x77u8; 32],
            b"key-version\0binding".to_vec(),
            vec![0x01; 32],
        ),
        (
            "root key check",
            [0x88u8; 32],
            b"root-key-check".to_vec(),
            b"strongroom root key check v1".to_vec(),
        ),
        ("empty secret", [0x99u8; 32], b"x".to_vec(), vec![]),
    ] {
        let rk = RootKey::from_material(KeyMaterial::copy_from(&root)).unwrap();
        let sealed = rk.seal(&binding, &secret).unwrap();
        seals.push(json!({"name": name, "root_key": hex::encode(root), "binding": hex::encode(&binding), "secret": hex::encode(&secret), "sealed": B64.encode(&sealed)}));
    }
    std::fs::write(
        &seal_path,
        serde_json::to_string_pretty(&seals).unwrap() + "\n",
    )
    .unwrap();
}
