//! Micro-benchmarks of the crypto and sealing paths, each beside raw aws-lc-rs AES-256-GCM on
//! the same input in the same run (the `raw` rows), so the cost of Strongroom's format
//! (per-message key derivation, header, context binding) reads as a ratio. Run with
//! `cargo bench -p strongroom-crypto` (bench/run.sh does); never a test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failure

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strongroom_crypto::ciphertext::{self, Suite};
use strongroom_crypto::envelope;
use strongroom_crypto::{EncryptionContext, KeyId, KeyMaterial, RootKey};

const SIZES: &[usize] = &[256, 16 * 1024, 1024 * 1024];

fn aead(c: &mut Criterion) {
    let material = KeyMaterial::new(vec![7u8; 32]);
    let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let id = KeyId::generate().unwrap();
    let ctx = EncryptionContext::empty();
    let mut g = c.benchmark_group("aes-256-gcm");
    for &n in SIZES {
        let pt = vec![0x5au8; n];
        g.throughput(Throughput::Bytes(n as u64));
        // The plaintext copied into a reused buffer and sealed there: one copy and no
        // allocation, so the figure does not depend on how the allocator serves 1 MiB.
        g.bench_with_input(BenchmarkId::new("raw-seal", n), &pt, |b, pt| {
            let mut buf = Vec::with_capacity(pt.len() + 16);
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(pt);
                raw.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key([1; 12]),
                    Aad::empty(),
                    &mut buf,
                )
                .unwrap();
            })
        });
        g.bench_with_input(
            BenchmarkId::new("ciphertext-v1-encrypt", n),
            &pt,
            |b, pt| {
                b.iter(|| {
                    ciphertext::encrypt(Suite::Aes256GcmHkdf, &material, id, 1, &ctx, pt).unwrap()
                })
            },
        );
        let header = envelope::Header::new(
            &material,
            envelope::DEFAULT_CHUNK_SIZE,
            ctx.clone(),
            vec![envelope::WrappedKey {
                member: "strongroom:bench/aes".into(),
                wrapped: vec![0; 64],
            }],
        )
        .unwrap();
        g.bench_with_input(BenchmarkId::new("envelope-v1-encrypt", n), &pt, |b, pt| {
            let mut out = Vec::with_capacity(pt.len() + pt.len() / 1024 + 1024);
            b.iter(|| {
                out.clear();
                envelope::encrypt(&material, &header, &mut &pt[..], &mut out, |_| {}).unwrap()
            })
        });
        // What the SDK does with a message held in memory.
        g.bench_with_input(
            BenchmarkId::new("envelope-v1-encrypt-in-memory", n),
            &pt,
            |b, pt| b.iter(|| envelope::encrypt_to_vec(&material, &header, pt).unwrap()),
        );
        let mut sealed = Vec::new();
        envelope::encrypt(&material, &header, &mut &pt[..], &mut sealed, |_| {}).unwrap();
        let body = sealed[header.encode().unwrap().len()..].to_vec();
        g.bench_with_input(
            BenchmarkId::new("envelope-v1-decrypt", n),
            &body,
            |b, body| {
                let mut out = Vec::with_capacity(body.len());
                b.iter(|| {
                    out.clear();
                    envelope::decrypt(&material, &header, &mut &body[..], &mut out, |_| {}).unwrap()
                })
            },
        );
        let ct = ciphertext::encrypt(Suite::Aes256GcmHkdf, &material, id, 1, &ctx, &pt).unwrap();
        let header = ciphertext::parse_header(&ct).unwrap();
        g.bench_with_input(
            BenchmarkId::new("ciphertext-v1-decrypt", n),
            &ct,
            |b, ct| b.iter(|| ciphertext::decrypt(&material, &header, &ctx, ct).unwrap()),
        );
    }
    g.finish();
}

fn sealing(c: &mut Criterion) {
    let root = RootKey::generate().unwrap();
    let secret = [9u8; 32];
    let sealed = root.seal(b"key-version\0bench", &secret).unwrap();
    let mut g = c.benchmark_group("root-seal");
    g.bench_function("seal-32-bytes", |b| {
        b.iter(|| root.seal(b"key-version\0bench", &secret).unwrap())
    });
    g.bench_function("unseal-32-bytes", |b| {
        b.iter(|| root.unseal(b"key-version\0bench", &sealed).unwrap())
    });
    g.finish();
}

criterion_group!(benches, aead, sealing);
criterion_main!(benches);
