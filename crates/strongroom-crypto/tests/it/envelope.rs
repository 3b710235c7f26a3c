//! Envelope format v1: round trips at the chunk boundaries, every kind of tampering refused,
//! and the golden envelopes (which must keep opening, and re-encrypt to the same bytes).

use std::collections::BTreeMap;

use strongroom_crypto::envelope::{self, EnvelopeError, Header, WrappedKey};
use strongroom_crypto::{EncryptionContext, KeyMaterial};

fn ctx() -> EncryptionContext {
    EncryptionContext::try_new(BTreeMap::from([("tenant".into(), "acme".into())])).unwrap()
}

fn wrapped() -> Vec<WrappedKey> {
    vec![
        WrappedKey {
            member: "strongroom:app/data".into(),
            wrapped: vec![1; 80],
        },
        WrappedKey {
            member: "aws-kms:arn:aws:kms:us-east-1:000000000000:key/x".into(),
            wrapped: vec![2; 120],
        },
    ]
}

fn seal(dk: &KeyMaterial, chunk: u32, pt: &[u8]) -> (Header, Vec<u8>) {
    let h = Header::new(dk, chunk, ctx(), wrapped()).unwrap();
    let mut out = Vec::new();
    let n = envelope::encrypt(dk, &h, &mut &pt[..], &mut out, |_| {}).unwrap();
    assert_eq!(n, pt.len() as u64);
    (h, out)
}

fn open(dk: &KeyMaterial, bytes: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut r = bytes;
    let h = Header::read(&mut r)?;
    let mut out = Vec::new();
    envelope::decrypt(dk, &h, &mut r, &mut out, |_| {})?;
    Ok(out)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn round_trips_at_every_chunk_boundary() {
    let dk = KeyMaterial::new(vec![7; 32]);
    for chunk in [16u32, 1000, envelope::DEFAULT_CHUNK_SIZE] {
        let c = chunk as usize;
        for n in [0, 1, c - 1, c, c + 1, 2 * c, 3 * c + 5] {
            let pt = pattern(n);
            let (h, bytes) = seal(&dk, chunk, &pt);
            let chunks = if n == 0 { 1 } else { n.div_ceil(c) };
            assert_eq!(
                bytes.len(),
                h.encode().unwrap().len() + n + 16 * chunks,
                "chunk {c}, {n} bytes"
            );
            assert_eq!(open(&dk, &bytes).unwrap(), pt, "chunk {c}, {n} bytes");
            // The in-memory form writes the same bytes, into a buffer of exactly their size.
            let in_memory = envelope::encrypt_to_vec(&dk, &h, &pt).unwrap();
            assert_eq!(in_memory, bytes, "chunk {c}, {n} bytes");
            assert_eq!(in_memory.capacity(), bytes.len(), "chunk {c}, {n} bytes");
        }
    }
}

#[test]
fn the_in_memory_form_refuses_a_data_key_the_header_was_not_made_for() {
    let dk = KeyMaterial::new(vec![7; 32]);
    let h = Header::new(&dk, 16, ctx(), wrapped()).unwrap();
    let other = KeyMaterial::new(vec![8; 32]);
    assert!(matches!(
        envelope::encrypt_to_vec(&other, &h, b"data"),
        Err(EnvelopeError::WrongDataKey)
    ));
}

#[test]
fn the_header_reads_back() {
    let dk = KeyMaterial::new(vec![7; 32]);
    let (h, bytes) = seal(&dk, 16, b"x");
    let back = Header::read(&mut &bytes[..]).unwrap();
    assert_eq!(back, h);
    assert_eq!(back.context, ctx());
    assert_eq!(back.keys, wrapped());
}

/// The layout: header, then chunks of chunk size + 16.
fn split(bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut r = bytes;
    let h = Header::read(&mut r).unwrap();
    let head = bytes[..bytes.len() - r.len()].to_vec();
    let full = h.chunk_size as usize + 16;
    (head, r.chunks(full).map(<[u8]>::to_vec).collect())
}

#[test]
fn every_changed_byte_of_the_header_or_body_is_refused() {
    let dk = KeyMaterial::new(vec![7; 32]);
    let (h, bytes) = seal(&dk, 16, &pattern(50));
    let head_len = h.encode().unwrap().len();
    let keys_start = head_len
        - wrapped()
            .iter()
            .map(|k| 2 + k.member.len() + 4 + k.wrapped.len())
            .sum::<usize>()
        - 2;
    for i in 0..bytes.len() {
        if (keys_start..head_len).contains(&i) {
            continue; // the wrapped keys: re-wrappable, each authenticated by its own member
        }
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        assert!(
            open(&dk, &b).is_err(),
            "byte {i} of {} changed and accepted",
            bytes.len()
        );
    }
}

#[test]
fn reordered_dropped_duplicated_truncated_or_foreign_chunks_are_refused() {
    let dk = KeyMaterial::new(vec![7; 32]);
    let (_, bytes) = seal(&dk, 16, &pattern(60)); // 4 chunks: 16, 16, 16, 12
    let (head, chunks) = split(&bytes);
    assert_eq!(chunks.len(), 4);
    let join = |cs: &[&Vec<u8>]| {
        [
            head.clone(),
            cs.iter().flat_map(|c| c.iter().copied()).collect(),
        ]
        .concat()
    };
    let [a, b, c, d] = [&chunks[0], &chunks[1], &chunks[2], &chunks[3]];
    assert!(matches!(
        open(&dk, &join(&[b, a, c, d])),
        Err(EnvelopeError::Tampered(0))
    ));
    assert!(matches!(
        open(&dk, &join(&[a, c, d])),
        Err(EnvelopeError::Tampered(1))
    ));
    assert!(matches!(
        open(&dk, &join(&[a, b, b, c, d])),
        Err(EnvelopeError::Tampered(2))
    ));
    // Cut at a chunk boundary: the last chunk left is not marked final.
    assert!(matches!(
        open(&dk, &join(&[a, b, c])),
        Err(EnvelopeError::Truncated)
    ));
    assert!(matches!(
        open(&dk, &join(&[a])),
        Err(EnvelopeError::Truncated)
    ));
    // Cut inside a chunk, or right after the header.
    for cut in [bytes.len() - 1, head.len() + 20, head.len() + 5, head.len()] {
        assert!(open(&dk, &bytes[..cut]).is_err(), "cut at {cut} accepted");
    }
    // Bytes appended after the final chunk.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(open(&dk, &longer).is_err());
    // A chunk from another envelope under the same data key (another salt).
    let (_, other) = seal(&dk, 16, &pattern(60));
    let (_, theirs) = split(&other);
    assert!(matches!(
        open(&dk, &join(&[a, &theirs[1], c, d])),
        Err(EnvelopeError::Tampered(1))
    ));
}

#[test]
fn a_wrapped_key_that_opens_to_another_data_key_is_refused_before_any_chunk() {
    let dk = KeyMaterial::new(vec![7; 32]);
    let (_, bytes) = seal(&dk, 16, &pattern(40));
    let mut r = &bytes[..];
    let h = Header::read(&mut r).unwrap();
    let mut out = Vec::new();
    let other = KeyMaterial::new(vec![8; 32]);
    let err = envelope::decrypt(&other, &h, &mut r, &mut out, |_| {}).unwrap_err();
    assert!(matches!(err, EnvelopeError::WrongDataKey), "{err}");
    assert!(out.is_empty(), "plaintext was written");
    // A changed first chunk: refused, nothing written.
    let mut b = bytes.clone();
    let first_chunk = bytes.len() - (40 + 3 * 16);
    b[first_chunk] ^= 1;
    let mut r = &b[..];
    let h = Header::read(&mut r).unwrap();
    let mut out = Vec::new();
    assert!(envelope::decrypt(&dk, &h, &mut r, &mut out, |_| {}).is_err());
    assert!(out.is_empty());
}

#[test]
fn malformed_headers_are_refused_with_their_reason() {
    assert!(matches!(
        Header::read(&mut &b"PK\x03\x04"[..]),
        Err(EnvelopeError::NotAnEnvelope)
    ));
    assert!(matches!(
        Header::read(&mut &b""[..]),
        Err(EnvelopeError::NotAnEnvelope)
    ));
    let dk = KeyMaterial::new(vec![7; 32]);
    let (_, bytes) = seal(&dk, 16, b"x");
    let mut v2 = bytes.clone();
    v2[4] = 2;
    assert!(matches!(
        Header::read(&mut &v2[..]),
        Err(EnvelopeError::Unsupported {
            version: 2,
            suite: 1
        })
    ));
    let mut huge = bytes.clone();
    huge[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Header::read(&mut &huge[..]),
        Err(EnvelopeError::Malformed(_))
    ));
    assert!(Header::new(&dk, 8, ctx(), wrapped()).is_err());
    assert!(Header::new(&dk, 16, ctx(), vec![]).is_err());
    assert!(Header::new(&KeyMaterial::new(vec![7; 16]), 16, ctx(), wrapped()).is_err());
}

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/envelope-v1");

fn golden_cases() -> Vec<(&'static str, u32, usize)> {
    vec![
        ("empty", 16, 0),
        ("one-byte", 16, 1),
        ("chunk-exactly", 16, 16),
        ("three-chunks-and-a-bit", 16, 37),
        ("default-chunk", envelope::DEFAULT_CHUNK_SIZE, 70_000),
    ]
}

fn golden_header(dk: &KeyMaterial, chunk: u32) -> Header {
    Header::dangerous_new_with_salt(dk, [0x42; 32], chunk, ctx(), wrapped()).unwrap()
}

/// The checked-in envelopes open, and re-encrypting their plaintext with the same data key
/// and salt gives the same bytes: the v1 format is a contract.
#[test]
fn golden_envelopes_v1() {
    let dk = KeyMaterial::new(vec![0x24; 32]);
    for (name, chunk, n) in golden_cases() {
        let bytes = std::fs::read(format!("{GOLDEN}/{name}.srenv")).unwrap();
        assert_eq!(open(&dk, &bytes).unwrap(), pattern(n), "{name}");
        let mut again = Vec::new();
        envelope::encrypt(
            &dk,
            &golden_header(&dk, chunk),
            &mut &pattern(n)[..],
            &mut again,
            |_| {},
        )
        .unwrap();
        assert_eq!(again, bytes, "{name}: the format changed");
        let in_memory =
            envelope::encrypt_to_vec(&dk, &golden_header(&dk, chunk), &pattern(n)).unwrap();
        assert_eq!(in_memory, bytes, "{name}: the in-memory form differs");
    }
}

/// Writes the golden files. Run by hand once (`cargo test -p strongroom-crypto --test it --
/// --ignored generate_golden_envelopes`); they never change afterwards.
#[test]
#[ignore = "generator: run by hand once; the golden files never change"]
fn generate_golden_envelopes() {
    std::fs::create_dir_all(GOLDEN).unwrap();
    let dk = KeyMaterial::new(vec![0x24; 32]);
    for (name, chunk, n) in golden_cases() {
        let path = format!("{GOLDEN}/{name}.srenv");
        assert!(
            !std::path::Path::new(&path).exists(),
            "golden files must not be regenerated"
        );
        let mut out = Vec::new();
        envelope::encrypt(
            &dk,
            &golden_header(&dk, chunk),
            &mut &pattern(n)[..],
            &mut out,
            |_| {},
        )
        .unwrap();
        std::fs::write(path, out).unwrap();
    }
}
