//! Golden vectors: ciphertexts and sealed blobs written by the v1 code, which every later
//! release must keep opening. The files never change; a new format adds a new directory.
//! `tests/golden/README.md` describes the fields and how the files were made.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use strongroom_crypto::ciphertext::{
    self, Suite, dangerous_encrypt_with_fixed_randomness, parse_header,
};
use strongroom_crypto::{EncryptionContext, Error, KeyId, KeyMaterial, RootKey};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An encryption context as written in the file, in the file's order. A JSON object read
/// into a map would lose that order, and with it the proof that the file lists some pairs out
/// of canonical order (which is what makes the vectors catch a reader that does not sort).
#[derive(Debug)]
struct Pairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut v = Vec::new();
                while let Some(pair) = m.next_entry::<String, String>()? {
                    if v.iter().any(|(k, _): &(String, String)| *k == pair.0) {
                        return Err(de::Error::custom("duplicate context key"));
                    }
                    v.push(pair);
                }
                Ok(Pairs(v))
            }
        }
        d.deserialize_map(V)
    }
}

impl Pairs {
    fn context(&self) -> EncryptionContext {
        EncryptionContext::try_new(self.0.iter().cloned().collect()).unwrap()
    }

    fn is_in_canonical_order(&self) -> bool {
        self.0
            .windows(2)
            .all(|w| w[0].0.as_bytes() < w[1].0.as_bytes())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CiphertextCase {
    name: String,
    key: String,
    key_id: String,
    version: u32,
    context: Pairs,
    plaintext: String,
    ciphertext: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealCase {
    name: String,
    root_key: String,
    binding: String,
    secret: String,
    sealed: String,
}

fn load<T: for<'de> Deserialize<'de>>(path: &str) -> Vec<T> {
    let text = std::fs::read_to_string(Path::new(DIR).join(path)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The ciphertext v1 vector files, one per suite.
const CIPHERTEXT_FILES: [(&str, Suite); 2] = [
    ("ciphertext-v1/vectors.json", Suite::Aes256GcmHkdf),
    (
        "ciphertext-v1/chacha20-poly1305.json",
        Suite::ChaCha20Poly1305Hkdf,
    ),
];

#[test]
fn ciphertext_v1_vectors_decrypt_and_reproduce() {
    for (file, suite) in CIPHERTEXT_FILES {
        check_ciphertext_vectors(file, suite);
    }
}

fn check_ciphertext_vectors(file: &str, suite: Suite) {
    let cases: Vec<CiphertextCase> = load(file);
    assert!(!cases.is_empty());
    for c in &cases {
        let name = &c.name;
        let key = KeyMaterial::new(hex::decode(&c.key).unwrap());
        assert_eq!(key.len(), ciphertext::KEY_LEN, "{name}");
        let id: KeyId = c.key_id.parse().unwrap();
        let ctx = c.context.context();
        let pt = hex::decode(&c.plaintext).unwrap();
        let ct = B64.decode(&c.ciphertext).unwrap();
        assert_eq!(ct.len(), ciphertext::OVERHEAD + pt.len(), "{name}");

        let h = parse_header(&ct).unwrap();
        assert_eq!(
            (h.key_id, h.version, h.suite),
            (id, c.version, suite),
            "{name}"
        );
        assert_eq!(
            ciphertext::decrypt(&key, &h, &ctx, &ct)
                .unwrap()
                .expose_secret(),
            &pt[..],
            "{name}"
        );

        // The context is bound: one pair more, or none at all, does not open.
        let mut more = ctx.pairs().clone();
        more.insert("golden".into(), "tampered".into());
        let mut wrong = vec![EncryptionContext::try_new(more).unwrap()];
        if !ctx.is_empty() {
            wrong.push(EncryptionContext::empty());
        }
        for w in &wrong {
            assert!(
                matches!(
                    ciphertext::decrypt(&key, &h, w, &ct),
                    Err(Error::InvalidCiphertext)
                ),
                "{name}: opened under another context"
            );
        }

        // Byte for byte: the same inputs and randomness give the same ciphertext.
        let salt: [u8; 16] = ct[24..40].try_into().unwrap();
        let nonce: [u8; 12] = ct[40..52].try_into().unwrap();
        let again = dangerous_encrypt_with_fixed_randomness(
            suite, &key, id, c.version, &ctx, &pt, salt, nonce,
        )
        .unwrap();
        assert_eq!(again, ct, "{name}: the encoding changed");
    }
}

/// The files keep covering what they were written to cover.
#[test]
fn ciphertext_v1_vectors_cover_the_format() {
    for (file, _) in CIPHERTEXT_FILES {
        check_coverage(file);
    }
}

fn check_coverage(file: &str) {
    let cases: Vec<CiphertextCase> = load(file);
    assert!(cases.len() >= 6, "only {} vectors", cases.len());
    let pt_lens: Vec<usize> = cases.iter().map(|c| c.plaintext.len() / 2).collect();
    assert!(pt_lens.contains(&0), "no empty plaintext");
    assert!(pt_lens.contains(&1000), "no 1000-byte plaintext");
    assert!(
        pt_lens.iter().any(|&n| (1..=64).contains(&n)),
        "no short one"
    );
    assert!(
        cases.iter().any(|c| c.context.0.is_empty()),
        "no empty context"
    );
    assert!(
        cases
            .iter()
            .any(|c| c.context.0.len() >= 3 && !c.context.is_in_canonical_order()),
        "no multi-pair context written out of canonical order"
    );
    let versions: BTreeSet<u32> = cases.iter().map(|c| c.version).collect();
    assert!(versions.contains(&1) && versions.contains(&u32::MAX));
    let ids: BTreeSet<&str> = cases.iter().map(|c| c.key_id.as_str()).collect();
    assert_eq!(ids.len(), cases.len(), "key ids repeat");
}

#[test]
fn seal_v1_vectors_open() {
    let cases: Vec<SealCase> = load("seal-v1/vectors.json");
    assert!(!cases.is_empty());
    for c in &cases {
        let name = &c.name;
        let root_bytes = hex::decode(&c.root_key).unwrap();
        let binding = hex::decode(&c.binding).unwrap();
        let sealed = B64.decode(&c.sealed).unwrap();
        let secret = hex::decode(&c.secret).unwrap();
        // Layout (docs/sealing.md): 0x01, a 12-byte nonce, the ciphertext, a 16-byte tag.
        assert_eq!(sealed[0], 0x01, "{name}");
        assert_eq!(sealed.len(), 1 + 12 + secret.len() + 16, "{name}");

        // The same key through both ways in: raw material and the root key file.
        let file_text = format!("strongroom-root-key-v1\n{}\n", B64.encode(&root_bytes));
        let roots = [
            RootKey::from_material(KeyMaterial::copy_from(&root_bytes)).unwrap(),
            RootKey::from_file_text(&file_text).unwrap(),
        ];
        for root in &roots {
            assert_eq!(
                root.unseal(&binding, &sealed).unwrap().expose_secret(),
                &secret[..],
                "{name}"
            );
            let mut other = binding.clone();
            other.push(b'!');
            for wrong in [&b"another binding"[..], &other[..], &[][..]] {
                assert_ne!(wrong, &binding[..]);
                assert!(
                    matches!(root.unseal(wrong, &sealed), Err(Error::Unseal)),
                    "{name}: opened under another binding"
                );
            }
        }
        let mut other_root = root_bytes.clone();
        other_root[0] ^= 1;
        let other_root = RootKey::from_material(KeyMaterial::new(other_root)).unwrap();
        assert!(
            matches!(other_root.unseal(&binding, &sealed), Err(Error::Unseal)),
            "{name}: opened under another root key"
        );
    }
}

/// Writes whichever golden file is missing. Run by hand once, with `--ignored`; it never
/// overwrites, because the files never change.
#[test]
#[ignore = "generator: run by hand only to create vectors; vectors never change"]
fn generate_golden_vectors() {
    for (file, suite) in CIPHERTEXT_FILES {
        let path = Path::new(DIR).join(file);
        if !path.exists() {
            std::fs::write(&path, ciphertext_vectors_json(suite)).unwrap();
        }
    }
    let seal_path = Path::new(DIR).join("seal-v1/vectors.json");
    if !seal_path.exists() {
        std::fs::write(&seal_path, seal_vectors_json()).unwrap();
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The ciphertext cases. Written by hand rather than through `serde_json::Value`, whose
/// objects sort their keys: contexts must appear in the order given here.
fn ciphertext_vectors_json(suite: Suite) -> String {
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
    let mut entries = Vec::new();
    for (i, (name, key, id, version, ctx, pt)) in cases.into_iter().enumerate() {
        let k = KeyMaterial::copy_from(&key);
        // Suite 2's cases use other key ids (the last digit of the UUID moved on by the
        // suite), so no id means two things across the files.
        let id = match suite {
            Suite::Aes256GcmHkdf => id.to_string(),
            _ => {
                let (head, last) = id.split_at(id.len() - 1);
                let d = u8::from_str_radix(last, 16).unwrap();
                format!("{head}{:x}", (d + suite.byte() - 1) % 16)
            }
        };
        let id = id.as_str();
        let kid: KeyId = id.parse().unwrap();
        let map: BTreeMap<String, String> = ctx
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        // Fixed, distinct per case; never reused under one key.
        let salt = [i as u8 + 0xa0; 16];
        let nonce = [i as u8 + 0xb0; 12];
        let ct = dangerous_encrypt_with_fixed_randomness(
            suite,
            &k,
            kid,
            version,
            &EncryptionContext::try_new(map).unwrap(),
            &pt,
            salt,
            nonce,
        )
        .unwrap();
        let context = if ctx.is_empty() {
            "{}".to_string()
        } else {
            let pairs: Vec<String> = ctx
                .iter()
                .map(|(a, b)| format!("      {}: {}", json_str(a), json_str(b)))
                .collect();
            format!("{{\n{}\n    }}", pairs.join(",\n"))
        };
        entries.push(format!(
            "  {{\n    \"name\": {},\n    \"key\": \"{}\",\n    \"key_id\": \"{id}\",\n    \"version\": {version},\n    \"context\": {context},\n    \"plaintext\": \"{}\",\n    \"ciphertext\": \"{}\"\n  }}",
            json_str(name),
            hex::encode(key),
            hex::encode(&pt),
            B64.encode(&ct),
        ));
    }
    format!("[\n{}\n]\n", entries.join(",\n"))
}

/// The sealing cases. Sealing draws a random nonce, so each run gives other blobs; the ones
/// checked in are from the one run that created the file.
fn seal_vectors_json() -> String {
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
        seals.push(serde_json::json!({"name": name, "root_key": hex::encode(root), "binding": hex::encode(&binding), "secret": hex::encode(&secret), "sealed": B64.encode(&sealed)}));
    }
    serde_json::to_string_pretty(&seals).unwrap() + "\n"
}
