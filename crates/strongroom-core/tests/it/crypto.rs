//! Cryptographic operations and their misuse (RELIABILITY §4.3): every malformed, altered or
//! misdirected input gets the documented error and nothing is decrypted.

use strongroom_core::types::{
    DecryptInput, GenerateDataKeyInput, MAX_PLAINTEXT, ReEncryptInput, SignData,
};
use strongroom_core::{Error, Plaintext, Purpose};
use strongroom_crypto::{Sha2, hash, keys};

use crate::support::*;

fn pt(b: &[u8]) -> Plaintext {
    Plaintext::copy_from(b)
}

fn msg(b: &[u8]) -> SignData {
    SignData::Message(pt(b))
}

async fn decrypt_with_key(
    kms: &Kms,
    ct: &[u8],
    ctx: &strongroom_core::EncryptionContext,
    key: KeyRef,
) -> strongroom_core::Result<strongroom_core::types::DecryptOutput> {
    kms.svc()
        .decrypt(
            &root(),
            DecryptInput {
                ciphertext: ct.to_vec(),
                context: ctx.clone(),
                key: Some(key),
            },
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_decrypt_round_trip_and_context_binding() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let other = kms.aes_key("r", "other").await;
    let (_, signing) = kms.key("r", "sig", Some(alg("ecdsa-p256-sha256"))).await;
    let k = kms.svc().get_key(&root(), &key).await.unwrap();
    let ctx = ec(&[("tenant", "acme"), ("purpose", "billing")]);
    let data = b"the quick brown fox";

    let out = kms.encrypt(&key, data, &ctx).await.unwrap();
    assert_eq!((out.key.id, out.version), (k.id, 1));
    assert_eq!(out.ciphertext.len(), data.len() + 68);
    assert!(!contains(&out.ciphertext, data));
    let again = kms.encrypt(&key, data, &ctx).await.unwrap();
    assert_ne!(
        again.ciphertext, out.ciphertext,
        "fresh salt and nonce every time"
    );
    let ct = out.ciphertext;

    let d = kms.decrypt(&ct, &ctx).await.unwrap();
    assert_eq!(d.plaintext.expose_secret(), data);
    assert_eq!(
        (d.key.id, d.key.path(), d.version),
        (k.id, "r/k".to_string(), 1)
    );

    // Context order does not matter (canonical form).
    let reordered = ec(&[("purpose", "billing"), ("tenant", "acme")]);
    assert_eq!(
        kms.decrypt(&ct, &reordered)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        data
    );

    // Anything else about the context does.
    for bad in [
        ec(&[]),
        ec(&[("tenant", "acme")]),
        ec(&[("tenant", "acme"), ("purpose", "billing"), ("extra", "1")]),
        ec(&[("tenant", "acme"), ("purpose", "payroll")]),
        ec(&[("tenant", "ACME"), ("purpose", "billing")]),
        ec(&[("Tenant", "acme"), ("purpose", "billing")]),
        ec(&[("tenant", "acme "), ("purpose", "billing")]),
        ec(&[("tenant", "acmepurpose"), ("billing", "")]),
    ] {
        let e = assert_err!(kms.decrypt(&ct, &bad).await, Error::InvalidCiphertext);
        assert_eq!(e.code(), "invalid_ciphertext");
    }
    // And an empty context is bound too.
    let ct0 = kms.encrypt(&key, data, &ec(&[])).await.unwrap().ciphertext;
    kms.decrypt(&ct0, &ec(&[])).await.unwrap();
    assert_err!(
        kms.decrypt(&ct0, &ec(&[("a", "")])).await,
        Error::InvalidCiphertext
    );

    // Naming the key: the right one (by path, id or alias) works, another key is refused
    // as the wrong key, a key of another purpose is the wrong usage.
    decrypt_with_key(&kms, &ct, &ctx, key.clone())
        .await
        .unwrap();
    decrypt_with_key(&kms, &ct, &ctx, KeyRef::Id(k.id))
        .await
        .unwrap();
    let al = strongroom_core::AliasName::try_new("k-alias").unwrap();
    kms.svc()
        .put_alias(&root(), &al, &key, false)
        .await
        .unwrap();
    decrypt_with_key(&kms, &ct, &ctx, KeyRef::Alias(al))
        .await
        .unwrap();
    // Named another key the caller may use: said so (AWS's IncorrectKeyException; the
    // native API answers invalid_ciphertext).
    assert_err!(
        decrypt_with_key(&kms, &ct, &ctx, other.clone()).await,
        Error::IncorrectKey
    );
    assert_err!(
        decrypt_with_key(&kms, &ct, &ctx, signing).await,
        Error::InvalidKeyUsage {
            operation: "decrypt",
            ..
        }
    );
    assert_err!(
        decrypt_with_key(&kms, &ct, &ctx, path("r", "missing")).await,
        Error::NotFound { kind: "key", .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_and_malformed_ciphertexts_are_invalid_ciphertext() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let ctx = ec(&[("a", "b")]);
    let ct = kms
        .encrypt(&key, b"sixteen bytes!!!", &ctx)
        .await
        .unwrap()
        .ciphertext;
    let second = kms
        .encrypt(&key, b"sixteen bytes???", &ctx)
        .await
        .unwrap()
        .ciphertext;
    kms.svc().create_version(&root(), &key, true).await.unwrap();
    let before = kms.snapshot(&key).await;

    // One bit, and a whole byte, flipped at every position (header, body and tag).
    for i in 0..ct.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = ct.clone();
            bad[i] ^= mask;
            assert_err!(kms.decrypt(&bad, &ctx).await, Error::InvalidCiphertext);
        }
    }
    // Truncated at every length, including empty and header-only.
    for n in 0..ct.len() {
        assert_err!(kms.decrypt(&ct[..n], &ctx).await, Error::InvalidCiphertext);
    }
    // Suffixes.
    for extra in [&[0u8][..], b"garbage", &ct[..]] {
        let mut bad = ct.clone();
        bad.extend_from_slice(extra);
        assert_err!(kms.decrypt(&bad, &ctx).await, Error::InvalidCiphertext);
    }
    // Random garbage of assorted lengths.
    for n in [1, 2, 51, 52, 67, 68, 69, 100, 4096] {
        let junk = strongroom_crypto::rand::bytes(n).unwrap();
        assert_err!(kms.decrypt(&junk, &ctx).await, Error::InvalidCiphertext);
    }
    // Garbage that starts like a v1 ciphertext.
    let mut junk = ct[..4].to_vec();
    junk.extend(strongroom_crypto::rand::bytes(80).unwrap());
    assert_err!(kms.decrypt(&junk, &ctx).await, Error::InvalidCiphertext);
    // A key id no key has.
    let mut unknown = ct.clone();
    unknown[4..20].copy_from_slice(&strongroom_crypto::rand::bytes(16).unwrap());
    assert_err!(kms.decrypt(&unknown, &ctx).await, Error::InvalidCiphertext);
    // The id of another existing key: one of the same purpose, and one of another purpose.
    let other = kms.aes_key("r", "other").await;
    let (mac, _) = kms.key("r", "mac", Some(alg("hmac-sha256"))).await;
    let other_id = kms.svc().get_key(&root(), &other).await.unwrap().id;
    for id in [other_id, mac.id] {
        let mut moved = ct.clone();
        moved[4..20].copy_from_slice(id.as_bytes());
        assert_err!(kms.decrypt(&moved, &ctx).await, Error::InvalidCiphertext);
    }
    // The version field pointed at another existing version of the same key.
    let mut other_version = ct.clone();
    other_version[20..24].copy_from_slice(&2u32.to_be_bytes());
    assert_err!(
        kms.decrypt(&other_version, &ctx).await,
        Error::InvalidCiphertext
    );
    // The header of one ciphertext on the body of another.
    let mut spliced = second[..52].to_vec();
    spliced.extend_from_slice(&ct[52..]);
    assert_err!(kms.decrypt(&spliced, &ctx).await, Error::InvalidCiphertext);

    // Longer than any ciphertext can be: refused before parsing.
    let huge = vec![0u8; MAX_PLAINTEXT + 68 + 1];
    assert_err!(
        kms.decrypt(&huge, &ctx).await,
        Error::InvalidArgument { ref field, .. } if field == "ciphertext"
    );

    // The original still decrypts, and the key was not touched.
    kms.decrypt(&ct, &ctx).await.unwrap();
    assert_eq!(kms.snapshot(&key).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_ciphertexts_decrypting() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let ctx = ec(&[("x", "y")]);
    let mut cts = Vec::new();
    for v in 1..=4u32 {
        let out = kms
            .encrypt(&key, format!("under v{v}").as_bytes(), &ctx)
            .await
            .unwrap();
        assert_eq!(out.version, v);
        cts.push(out.ciphertext);
        kms.svc().create_version(&root(), &key, true).await.unwrap();
    }
    for (i, ct) in cts.iter().enumerate() {
        let d = kms.decrypt(ct, &ctx).await.unwrap();
        assert_eq!(d.version, i as u32 + 1);
        assert_eq!(
            d.plaintext.expose_secret(),
            format!("under v{}", i + 1).as_bytes()
        );
    }
    assert_eq!(kms.encrypt(&key, b"x", &ctx).await.unwrap().version, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_keys_and_versions_refuse_every_operation() {
    let kms = Kms::new().await;
    let aes = kms.aes_key("r", "aes").await;
    let (_, sig) = kms.key("r", "sig", Some(alg("ed25519"))).await;
    let (_, mac) = kms.key("r", "mac", Some(alg("hmac-sha256"))).await;
    let ctx = ec(&[]);
    let ct = kms.encrypt(&aes, b"data", &ctx).await.unwrap().ciphertext;
    let sig1 = kms
        .svc()
        .sign(&root(), &sig, None, msg(b"m"), None)
        .await
        .unwrap()
        .signature;
    let tag1 = kms
        .svc()
        .mac(&root(), &mac, None, &pt(b"m"), None)
        .await
        .unwrap()
        .mac;

    async fn every_op(
        kms: &Kms,
        keys: (&KeyRef, &KeyRef, &KeyRef),
        ct: &[u8],
        sig1: &[u8],
        tag1: &[u8],
    ) -> Vec<(&'static str, Error)> {
        let (aes, sig, mac) = keys;
        let svc = kms.svc();
        let ctx = ec(&[]);
        let mut errs = Vec::new();
        let mut push = |op: &'static str, r: Result<(), Error>| {
            errs.push((op, r.expect_err(op)));
        };
        push("encrypt", kms.encrypt(aes, b"x", &ctx).await.map(drop));
        push("decrypt", kms.decrypt(ct, &ctx).await.map(drop));
        push(
            "generate-data-key",
            svc.generate_data_key(
                &root(),
                GenerateDataKeyInput {
                    key: aes.clone(),
                    length: 32,
                    context: ctx.clone(),
                    include_plaintext: true,
                },
            )
            .await
            .map(drop),
        );
        push(
            "re-encrypt",
            svc.re_encrypt(
                &root(),
                ReEncryptInput {
                    source: None,
                    ciphertext: ct.to_vec(),
                    source_context: ctx.clone(),
                    destination: None,
                    destination_context: ctx.clone(),
                },
            )
            .await
            .map(drop),
        );
        push(
            "sign",
            svc.sign(&root(), sig, None, msg(b"m"), None)
                .await
                .map(drop),
        );
        push(
            "verify",
            svc.verify(&root(), sig, None, msg(b"m"), sig1, None)
                .await
                .map(drop),
        );
        push(
            "mac",
            svc.mac(&root(), mac, None, &pt(b"m"), None).await.map(drop),
        );
        push(
            "mac-verify",
            svc.mac_verify(&root(), mac, None, &pt(b"m"), tag1, None)
                .await
                .map(drop),
        );
        errs
    }
    let keys = (&aes, &sig, &mac);

    // Version 1 of each key disabled.
    for k in [&aes, &sig, &mac] {
        kms.svc().disable_version(&root(), k, 1).await.unwrap();
    }
    for (op, e) in every_op(&kms, keys, &ct, &sig1, &tag1).await {
        assert!(
            matches!(e, Error::InvalidState { state: "disabled", operation, .. } if operation == op),
            "{op}: {e:?}"
        );
        let text = e.to_string();
        assert!(text.contains("version 1 is disabled"), "{op}: {text}");
    }
    // The public key of a disabled version is still available.
    kms.svc()
        .get_public_key(&root(), &sig, Some(1))
        .await
        .unwrap();

    // Version 1 scheduled for destruction.
    for k in [&aes, &sig, &mac] {
        kms.svc()
            .schedule_version_destruction(&root(), k, 1, None)
            .await
            .unwrap();
    }
    for (op, e) in every_op(&kms, keys, &ct, &sig1, &tag1).await {
        assert!(
            matches!(
                e,
                Error::InvalidState {
                    state: "destroy_scheduled",
                    ..
                }
            ),
            "{op}: {e:?}"
        );
        assert!(e.to_string().contains("destroy_scheduled"), "{op}: {e}");
    }

    // Restored and enabled, but the key as a whole disabled.
    for k in [&aes, &sig, &mac] {
        kms.svc().restore_version(&root(), k, 1).await.unwrap();
        kms.svc().enable_version(&root(), k, 1).await.unwrap();
        kms.svc().set_key_enabled(&root(), k, false).await.unwrap();
    }
    for (op, e) in every_op(&kms, keys, &ct, &sig1, &tag1).await {
        assert!(
            matches!(e, Error::InvalidState { state: "disabled", ref resource, .. } if !resource.contains("version")),
            "{op}: {e:?}"
        );
    }

    // Enabled again: everything works.
    for k in [&aes, &sig, &mac] {
        kms.svc().set_key_enabled(&root(), k, true).await.unwrap();
    }
    kms.decrypt(&ct, &ctx).await.unwrap();
    assert!(
        kms.svc()
            .verify(&root(), &sig, None, msg(b"m"), &sig1, None)
            .await
            .unwrap()
            .valid
    );
    assert!(
        kms.svc()
            .mac_verify(&root(), &mac, None, &pt(b"m"), &tag1, None)
            .await
            .unwrap()
            .valid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_size_limits() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let ctx = ec(&[]);
    for n in [0, 1, MAX_PLAINTEXT] {
        let data = vec![0x5a; n];
        let out = kms.encrypt(&key, &data, &ctx).await.unwrap();
        assert_eq!(out.ciphertext.len(), n + 68);
        let d = kms.decrypt(&out.ciphertext, &ctx).await.unwrap();
        assert_eq!(d.plaintext.expose_secret(), &data[..]);
    }
    assert_err!(
        kms.encrypt(&key, &vec![0; MAX_PLAINTEXT + 1], &ctx).await,
        Error::InvalidArgument { ref field, .. } if field == "plaintext"
    );
    // Messages to sign and MAC have the same bound.
    let (_, sig) = kms.key("r", "sig", Some(alg("ecdsa-p256-sha256"))).await;
    let (_, mac) = kms.key("r", "mac", Some(alg("hmac-sha256"))).await;
    kms.svc()
        .sign(&root(), &sig, None, msg(&vec![1; MAX_PLAINTEXT]), None)
        .await
        .unwrap();
    assert_err!(
        kms.svc()
            .sign(&root(), &sig, None, msg(&vec![1; MAX_PLAINTEXT + 1]), None)
            .await,
        Error::InvalidArgument { ref field, .. } if field == "message"
    );
    assert_err!(
        kms.svc()
            .mac(&root(), &mac, None, &pt(&vec![1; MAX_PLAINTEXT + 1]), None)
            .await,
        Error::InvalidArgument { ref field, .. } if field == "message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_keys() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let (_, mac) = kms.key("r", "mac", Some(alg("hmac-sha256"))).await;
    let ctx = ec(&[("bucket", "logs")]);
    let gdk = |length: usize, include_plaintext: bool, key: KeyRef| {
        let ctx = ctx.clone();
        let svc = kms.svc();
        async move {
            svc.generate_data_key(
                &root(),
                GenerateDataKeyInput {
                    key,
                    length,
                    context: ctx,
                    include_plaintext,
                },
            )
            .await
        }
    };

    let out = gdk(32, true, key.clone()).await.unwrap();
    let dk = out.plaintext.expect("asked for the plaintext");
    assert_eq!(dk.len(), 32);
    assert_eq!(out.wrapped.version, 1);
    let d = kms.decrypt(&out.wrapped.ciphertext, &ctx).await.unwrap();
    assert_eq!(d.plaintext.expose_secret(), dk.expose_secret());
    assert_err!(
        kms.decrypt(&out.wrapped.ciphertext, &ec(&[])).await,
        Error::InvalidCiphertext
    );

    let out = gdk(64, false, key.clone()).await.unwrap();
    assert!(out.plaintext.is_none());
    let d = kms.decrypt(&out.wrapped.ciphertext, &ctx).await.unwrap();
    assert_eq!(d.plaintext.len(), 64);

    for n in [1, 1024] {
        let out = gdk(n, true, key.clone()).await.unwrap();
        assert_eq!(out.plaintext.unwrap().len(), n);
    }
    for n in [0, 1025, usize::MAX] {
        assert_err!(
            gdk(n, true, key.clone()).await,
            Error::InvalidArgument { ref field, .. } if field == "length"
        );
    }
    assert_err!(
        gdk(32, true, mac).await,
        Error::InvalidKeyUsage {
            operation: "generate-data-key",
            ..
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_encrypt() {
    let kms = Kms::new().await;
    let a = kms.aes_key("r", "a").await;
    let b = kms.aes_key("r", "b").await;
    let (_, sig) = kms.key("r", "sig", Some(alg("ed25519"))).await;
    let ka = kms.svc().get_key(&root(), &a).await.unwrap();
    let kb = kms.svc().get_key(&root(), &b).await.unwrap();
    let c1 = ec(&[("v", "1")]);
    let c2 = ec(&[("v", "2")]);
    let ct = kms.encrypt(&a, b"move me", &c1).await.unwrap().ciphertext;
    let re = |ct: Vec<u8>, src: &strongroom_core::EncryptionContext, dest: Option<KeyRef>| {
        let input = ReEncryptInput {
            source: None,
            ciphertext: ct,
            source_context: src.clone(),
            destination: dest,
            destination_context: c2.clone(),
        };
        let svc = kms.svc();
        async move { svc.re_encrypt(&root(), input).await }
    };

    // To another key, with a new context.
    let out = re(ct.clone(), &c1, Some(b.clone())).await.unwrap();
    assert_eq!((out.source_key.id, out.source_version), (ka.id, 1));
    assert_eq!((out.output.key.id, out.output.version), (kb.id, 1));
    let d = kms.decrypt(&out.output.ciphertext, &c2).await.unwrap();
    assert_eq!(
        (d.key.id, d.plaintext.expose_secret()),
        (kb.id, &b"move me"[..])
    );
    assert_err!(
        kms.decrypt(&out.output.ciphertext, &c1).await,
        Error::InvalidCiphertext
    );

    // To the new primary of the same key.
    kms.svc().create_version(&root(), &a, true).await.unwrap();
    let out = re(ct.clone(), &c1, None).await.unwrap();
    assert_eq!((out.output.key.id, out.output.version), (ka.id, 2));
    let d = kms.decrypt(&out.output.ciphertext, &c2).await.unwrap();
    assert_eq!(
        (d.version, d.plaintext.expose_secret()),
        (2, &b"move me"[..])
    );

    // The source context is checked; bad sources and destinations are refused.
    assert_err!(
        re(ct.clone(), &c2, Some(b.clone())).await,
        Error::InvalidCiphertext
    );
    let mut tampered = ct.clone();
    tampered[60] ^= 1;
    assert_err!(
        re(tampered, &c1, Some(b.clone())).await,
        Error::InvalidCiphertext
    );
    assert_err!(re(vec![], &c1, None).await, Error::InvalidCiphertext);
    assert_err!(
        re(ct.clone(), &c1, Some(sig)).await,
        Error::InvalidKeyUsage {
            operation: "re-encrypt",
            ..
        }
    );
    assert_err!(
        re(ct.clone(), &c1, Some(path("r", "missing"))).await,
        Error::NotFound { kind: "key", .. }
    );
    kms.svc().set_key_enabled(&root(), &b, false).await.unwrap();
    assert_err!(
        re(ct.clone(), &c1, Some(b.clone())).await,
        Error::InvalidState {
            state: "disabled",
            ..
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asymmetric_decrypt_with_rsa_oaep() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, key) = kms
        .key("r", "oaep", Some(alg("rsa-oaep-2048-sha256")))
        .await;
    let (_, aes) = kms.key("r", "aes", None).await;
    let pk1 = kms.svc().get_public_key(&root(), &key, None).await.unwrap();
    assert_eq!(pk1.version, 1);
    let ct = keys::rsa_oaep_encrypt(&pk1.der, b"for the key holder").unwrap();
    assert_eq!(ct.len(), 256);

    let d = kms
        .svc()
        .asymmetric_decrypt(&root(), &key, None, &ct)
        .await
        .unwrap();
    assert_eq!(d.plaintext.expose_secret(), b"for the key holder");
    assert_eq!(d.version, 1);

    for bad in [
        {
            let mut c = ct.clone();
            c[100] ^= 1;
            c
        },
        ct[..255].to_vec(),
        vec![],
        vec![0; 256],
    ] {
        assert_err!(
            kms.svc()
                .asymmetric_decrypt(&root(), &key, None, &bad)
                .await,
            Error::InvalidCiphertext
        );
    }
    assert_err!(
        kms.svc()
            .asymmetric_decrypt(&root(), &key, None, &vec![0; 1025])
            .await,
        Error::InvalidArgument { ref field, .. } if field == "ciphertext"
    );
    assert_err!(
        kms.svc().asymmetric_decrypt(&root(), &aes, None, &ct).await,
        Error::InvalidKeyUsage {
            operation: "asymmetric-decrypt",
            ..
        }
    );

    // A new version has a new key pair: old ciphertexts need their version named.
    kms.svc().create_version(&root(), &key, true).await.unwrap();
    let pk2 = kms.svc().get_public_key(&root(), &key, None).await.unwrap();
    assert_eq!(pk2.version, 2);
    assert_ne!(pk2.der, pk1.der);
    assert_eq!(
        kms.svc()
            .get_public_key(&root(), &key, Some(1))
            .await
            .unwrap()
            .der,
        pk1.der
    );
    assert_err!(
        kms.svc().asymmetric_decrypt(&root(), &key, None, &ct).await,
        Error::InvalidCiphertext
    );
    let d = kms
        .svc()
        .asymmetric_decrypt(&root(), &key, Some(1), &ct)
        .await
        .unwrap();
    assert_eq!(d.plaintext.expose_secret(), b"for the key holder");
    assert_err!(
        kms.svc().get_public_key(&root(), &key, Some(3)).await,
        Error::NotFound {
            kind: "key version",
            ..
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_and_verify() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let message = b"pay 10 EUR to alice";
    for name in [
        "ecdsa-p256-sha256",
        "ecdsa-p384-sha384",
        "ecdsa-p521-sha512",
        "ecdsa-secp256k1-sha256",
        "ed25519",
        "ml-dsa-65",
        "rsa-pss-2048-sha256",
        "rsa-pkcs1-2048-sha512",
    ] {
        let a = alg(name);
        let (_, key) = kms.key("r", name, Some(a)).await;
        let svc = kms.svc();
        let s = svc
            .sign(&root(), &key, None, msg(message), None)
            .await
            .unwrap();
        assert_eq!((s.version, s.algorithm), (1, a));
        let verify = |data: SignData, sig: Vec<u8>, version: Option<u32>| {
            let key = key.clone();
            async move { svc.verify(&root(), &key, version, data, &sig, None).await }
        };
        assert!(
            verify(msg(message), s.signature.clone(), None)
                .await
                .unwrap()
                .valid,
            "{name}"
        );
        assert!(
            !verify(msg(b"pay 99 EUR to alice"), s.signature.clone(), None)
                .await
                .unwrap()
                .valid,
            "{name}"
        );
        for i in [0, s.signature.len() / 2, s.signature.len() - 1] {
            let mut bad = s.signature.clone();
            bad[i] ^= 0x01;
            assert!(
                !verify(msg(message), bad, None).await.unwrap().valid,
                "{name} byte {i}"
            );
        }
        assert!(
            !verify(msg(message), vec![], None).await.unwrap().valid,
            "{name}"
        );
        assert!(
            !verify(
                msg(message),
                s.signature[..s.signature.len() - 1].to_vec(),
                None
            )
            .await
            .unwrap()
            .valid,
            "{name}"
        );
        assert_err!(
            verify(msg(message), vec![0; 8193], None).await,
            Error::InvalidArgument { ref field, .. } if field == "signature"
        );

        match a.signing_hash() {
            Some(h) => {
                // A digest signs the same thing as the message it was computed from.
                let d = hash::digest(h, message);
                let sd = svc
                    .sign(&root(), &key, None, SignData::Digest(d.clone()), None)
                    .await
                    .unwrap();
                assert!(
                    verify(msg(message), sd.signature.clone(), None)
                        .await
                        .unwrap()
                        .valid,
                    "{name}"
                );
                assert!(
                    verify(SignData::Digest(d.clone()), s.signature.clone(), None)
                        .await
                        .unwrap()
                        .valid,
                    "{name}"
                );
                let wrong = if h == Sha2::Sha256 {
                    Sha2::Sha384
                } else {
                    Sha2::Sha256
                };
                for bad in [
                    hash::digest(wrong, message),
                    vec![],
                    d[1..].to_vec(),
                    [&d[..], &[0u8][..]].concat(),
                ] {
                    assert_err!(
                        svc.sign(&root(), &key, None, SignData::Digest(bad.clone()), None).await,
                        Error::InvalidArgument { ref field, .. } if field == "digest"
                    );
                    assert_err!(
                        verify(SignData::Digest(bad), s.signature.clone(), None).await,
                        Error::InvalidArgument { ref field, .. } if field == "digest"
                    );
                }
            }
            None => {
                // Ed25519 signs messages only.
                let d = hash::digest(Sha2::Sha512, message);
                assert_err!(
                    svc.sign(&root(), &key, None, SignData::Digest(d.clone()), None).await,
                    Error::InvalidArgument { ref field, .. } if field == "digest"
                );
                assert_err!(
                    verify(SignData::Digest(d), s.signature.clone(), None).await,
                    Error::InvalidArgument { ref field, .. } if field == "digest"
                );
            }
        }
    }

    // After a manual rotation, old signatures verify against their version only.
    let key = path("r", "ecdsa-p256-sha256");
    let old = kms
        .svc()
        .sign(&root(), &key, None, msg(message), None)
        .await
        .unwrap()
        .signature;
    kms.svc().create_version(&root(), &key, true).await.unwrap();
    let new = kms
        .svc()
        .sign(&root(), &key, None, msg(message), None)
        .await
        .unwrap();
    assert_eq!(new.version, 2);
    let svc = kms.svc();
    let check = |version, sig: &[u8]| {
        let key = key.clone();
        let sig = sig.to_vec();
        async move {
            svc.verify(&root(), &key, version, msg(message), &sig, None)
                .await
                .unwrap()
        }
    };
    assert!(!check(None, &old).await.valid);
    let v1 = check(Some(1), &old).await;
    assert!(v1.valid);
    assert_eq!(v1.version, 1);
    assert!(check(None, &new.signature).await.valid);
    let s1 = kms
        .svc()
        .sign(&root(), &key, Some(1), msg(message), None)
        .await
        .unwrap();
    assert_eq!(s1.version, 1);
    assert!(check(Some(1), &s1.signature).await.valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mac_and_mac_verify() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let m = pt(b"message");
    for (name, len) in [
        ("hmac-sha224", 28),
        ("hmac-sha256", 32),
        ("hmac-sha384", 48),
        ("hmac-sha512", 64),
    ] {
        let (_, key) = kms.key("r", name, Some(alg(name))).await;
        let svc = kms.svc();
        let out = svc.mac(&root(), &key, None, &m, None).await.unwrap();
        assert_eq!((out.version, out.mac.len()), (1, len));
        assert_eq!(
            svc.mac(&root(), &key, None, &m, None).await.unwrap().mac,
            out.mac,
            "deterministic"
        );
        let ok = |msg: &'static [u8], tag: Vec<u8>, version: Option<u32>| {
            let key = key.clone();
            async move {
                svc.mac_verify(&root(), &key, version, &pt(msg), &tag, None)
                    .await
            }
        };
        assert!(ok(b"message", out.mac.clone(), None).await.unwrap().valid);
        assert!(!ok(b"messagE", out.mac.clone(), None).await.unwrap().valid);
        let mut bad = out.mac.clone();
        bad[len - 1] ^= 1;
        assert!(!ok(b"message", bad, None).await.unwrap().valid);
        assert!(
            !ok(b"message", out.mac[..len - 1].to_vec(), None)
                .await
                .unwrap()
                .valid
        );
        assert!(!ok(b"message", vec![], None).await.unwrap().valid);
        assert_err!(
            ok(b"message", vec![0; 65], None).await,
            Error::InvalidArgument { ref field, .. } if field == "mac"
        );

        // After rotation the primary's tag differs; the old tag verifies against v1 only.
        svc.create_version(&root(), &key, true).await.unwrap();
        let out2 = svc.mac(&root(), &key, None, &m, None).await.unwrap();
        assert_eq!(out2.version, 2);
        assert_ne!(out2.mac, out.mac);
        assert!(!ok(b"message", out.mac.clone(), None).await.unwrap().valid);
        let v1 = ok(b"message", out.mac.clone(), Some(1)).await.unwrap();
        assert!(v1.valid);
        assert_eq!(v1.version, 1);
        assert_eq!(
            svc.mac(&root(), &key, Some(1), &m, None).await.unwrap().mac,
            out.mac
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_purpose_is_invalid_key_usage() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, aes) = kms.key("r", "aes", None).await;
    let (_, ec_key) = kms.key("r", "ec", Some(alg("ecdsa-p256-sha256"))).await;
    let (_, hmac) = kms.key("r", "hmac", Some(alg("hmac-sha256"))).await;
    let (_, oaep) = kms
        .key("r", "oaep", Some(alg("rsa-oaep-2048-sha256")))
        .await;
    let svc = kms.svc();
    let snapshots = {
        let mut v = Vec::new();
        for k in [&aes, &ec_key, &hmac, &oaep] {
            v.push(kms.snapshot(k).await);
        }
        v
    };
    let usage = |e: Error, op: &str, required: &str, purpose: Purpose| match e {
        Error::InvalidKeyUsage {
            operation,
            required: r,
            purpose: p,
            ..
        } => {
            assert_eq!((operation, r, p), (op, required, purpose));
        }
        e => panic!("{op}: expected InvalidKeyUsage, got {e:?}"),
    };

    for k in [&ec_key, &hmac, &oaep] {
        let p = svc.get_key(&root(), k).await.unwrap().purpose;
        usage(
            kms.encrypt(k, b"x", &ec(&[])).await.unwrap_err(),
            "encrypt",
            "encrypt-decrypt",
            p,
        );
    }
    for k in [&aes, &hmac, &oaep] {
        let p = svc.get_key(&root(), k).await.unwrap().purpose;
        usage(
            svc.sign(&root(), k, None, msg(b"m"), None)
                .await
                .unwrap_err(),
            "sign",
            "sign-verify",
            p,
        );
        usage(
            svc.verify(&root(), k, None, msg(b"m"), &[0; 64], None)
                .await
                .unwrap_err(),
            "verify",
            "sign-verify",
            p,
        );
    }
    for k in [&aes, &ec_key, &oaep] {
        let p = svc.get_key(&root(), k).await.unwrap().purpose;
        usage(
            svc.mac(&root(), k, None, &pt(b"m"), None)
                .await
                .unwrap_err(),
            "mac",
            "mac",
            p,
        );
        usage(
            svc.mac_verify(&root(), k, None, &pt(b"m"), &[0; 32], None)
                .await
                .unwrap_err(),
            "mac-verify",
            "mac",
            p,
        );
    }
    for k in [&aes, &ec_key, &hmac] {
        let p = svc.get_key(&root(), k).await.unwrap().purpose;
        usage(
            svc.asymmetric_decrypt(&root(), k, None, &[0; 256])
                .await
                .unwrap_err(),
            "asymmetric-decrypt",
            "asymmetric-decrypt",
            p,
        );
    }
    for k in [&aes, &hmac] {
        let e = svc.get_public_key(&root(), k, None).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidKeyUsage {
                    operation: "get-public-key",
                    ..
                }
            ),
            "{e:?}"
        );
    }
    let mut after = Vec::new();
    for k in [&aes, &ec_key, &hmac, &oaep] {
        after.push(kms.snapshot(k).await);
    }
    assert_eq!(after, snapshots);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_random() {
    let kms = Kms::new().await;
    for n in [1, 32, 1024] {
        assert_eq!(
            kms.svc().generate_random(&root(), n).await.unwrap().len(),
            n
        );
    }
    let a = kms.svc().generate_random(&root(), 32).await.unwrap();
    let b = kms.svc().generate_random(&root(), 32).await.unwrap();
    assert_ne!(a.expose_secret(), b.expose_secret());
    for n in [0, 1025, usize::MAX] {
        assert_err!(
            kms.svc().generate_random(&root(), n).await,
            Error::InvalidArgument { ref field, .. } if field == "length"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rsa_key_signs_with_every_padding_and_hash_of_its_size() {
    use strongroom_crypto::{Algorithm, RsaBits, SignatureScheme};
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, key) = kms
        .key(
            "r",
            "rsa",
            Some(Algorithm::RsaPss(RsaBits::B2048, Sha2::Sha256)),
        )
        .await;
    let svc = kms.svc();
    for alg in Algorithm::RsaPkcs1(RsaBits::B2048, Sha2::Sha512).signing_variants() {
        let s = svc
            .sign(&root(), &key, None, msg(b"m"), alg.scheme())
            .await
            .unwrap();
        assert_eq!(s.algorithm, alg);
        let v = svc
            .verify(&root(), &key, None, msg(b"m"), &s.signature, alg.scheme())
            .await
            .unwrap();
        assert!(v.valid, "{alg}");
        // A signature checks out only under the algorithm that made it.
        let other = if alg == Algorithm::RsaPss(RsaBits::B2048, Sha2::Sha256) {
            Algorithm::RsaPkcs1(RsaBits::B2048, Sha2::Sha256)
        } else {
            Algorithm::RsaPss(RsaBits::B2048, Sha2::Sha256)
        };
        let v = svc
            .verify(&root(), &key, None, msg(b"m"), &s.signature, other.scheme())
            .await
            .unwrap();
        assert!(!v.valid, "{alg} verified as {other}");
    }
    // Another family is not this key's to use.
    for wrong in [
        SignatureScheme::Ecdsa(Sha2::Sha256),
        SignatureScheme::Ed25519,
    ] {
        assert_err!(
            svc.sign(&root(), &key, None, msg(b"m"), Some(wrong)).await,
            Error::InvalidArgument { .. }
        );
    }
    let (_, ec_key) = kms.key("r", "ec", Some(Algorithm::EcdsaP256Sha256)).await;
    assert_err!(
        svc.sign(
            &root(),
            &ec_key,
            None,
            msg(b"m"),
            Some(SignatureScheme::Ecdsa(Sha2::Sha384))
        )
        .await,
        Error::InvalidArgument { .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asymmetric_encrypt_and_data_key_pairs() {
    use strongroom_core::types::GenerateDataKeyPairInput;
    use strongroom_crypto::Algorithm;
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, rsa) = kms.key("r", "rsa", Some(alg("rsa-oaep-2048-sha256"))).await;
    let (_, sym) = kms.key("r", "sym", None).await;
    let svc = kms.svc();
    let ct = svc
        .asymmetric_encrypt(&root(), &rsa, &pt(b"to the key"))
        .await
        .unwrap();
    assert_eq!(ct.ciphertext.len(), 256);
    let back = svc
        .asymmetric_decrypt(&root(), &rsa, None, &ct.ciphertext)
        .await
        .unwrap();
    assert_eq!(back.plaintext.expose_secret(), b"to the key");
    assert_err!(
        svc.asymmetric_encrypt(&root(), &rsa, &pt(&[0; 191])).await,
        Error::InvalidArgument { .. }
    );
    assert_err!(
        svc.asymmetric_encrypt(&root(), &sym, &pt(b"x")).await,
        Error::InvalidKeyUsage { .. }
    );

    let ctx = ec(&[("owner", "me")]);
    let pair = svc
        .generate_data_key_pair(
            &root(),
            GenerateDataKeyPairInput {
                key: sym.clone(),
                pair: Algorithm::EcdsaP256Sha256,
                context: ctx.clone(),
                include_private: true,
            },
        )
        .await
        .unwrap();
    let private = pair.private_key.unwrap();
    // The private key is PKCS#8 and matches the public key; the wrapped copy unwraps to it.
    let material = strongroom_crypto::KeyMaterial::copy_from(private.expose_secret());
    assert_eq!(
        keys::public_key_der(Algorithm::EcdsaP256Sha256, &material).unwrap(),
        pair.public_key
    );
    let unwrapped = kms
        .decrypt(&pair.wrapped_private.ciphertext, &ctx)
        .await
        .unwrap();
    assert_eq!(unwrapped.plaintext.expose_secret(), private.expose_secret());
    let without = svc
        .generate_data_key_pair(
            &root(),
            GenerateDataKeyPairInput {
                key: sym.clone(),
                pair: Algorithm::EcdsaP256Sha256,
                context: ctx.clone(),
                include_private: false,
            },
        )
        .await
        .unwrap();
    assert!(without.private_key.is_none());
    for (key, pair_alg) in [
        (&rsa, Algorithm::EcdsaP256Sha256),
        (&sym, Algorithm::Aes256Gcm),
    ] {
        assert!(
            svc.generate_data_key_pair(
                &root(),
                GenerateDataKeyPairInput {
                    key: key.clone(),
                    pair: pair_alg,
                    context: ctx.clone(),
                    include_private: true,
                },
            )
            .await
            .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_agreement_derives_the_same_secret_on_both_sides() {
    use strongroom_crypto::Algorithm;
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, a) = kms.key("r", "a", Some(Algorithm::EcdhP384)).await;
    let (_, b) = kms.key("r", "b", Some(Algorithm::EcdhP384)).await;
    let (_, other_curve) = kms.key("r", "c", Some(Algorithm::EcdhP256)).await;
    let svc = kms.svc();
    let pub_a = svc.get_public_key(&root(), &a, None).await.unwrap().der;
    let pub_b = svc.get_public_key(&root(), &b, None).await.unwrap().der;
    let ab = svc
        .derive_shared_secret(&root(), &a, None, &pub_b)
        .await
        .unwrap();
    let ba = svc
        .derive_shared_secret(&root(), &b, None, &pub_a)
        .await
        .unwrap();
    assert_eq!(ab.secret.expose_secret(), ba.secret.expose_secret());
    assert_eq!(ab.secret.len(), 48);
    assert_err!(
        svc.derive_shared_secret(&root(), &other_curve, None, &pub_a)
            .await,
        Error::InvalidArgument { .. }
    );
    let mut bent = pub_b.clone();
    let last = bent.len() - 1;
    bent[last] ^= 1; // no longer on the curve
    assert_err!(
        svc.derive_shared_secret(&root(), &a, None, &bent).await,
        Error::InvalidArgument { .. }
    );
    let (_, aes) = kms.key("r", "aes", None).await;
    assert_err!(
        svc.derive_shared_secret(&root(), &aes, None, &pub_a).await,
        Error::InvalidKeyUsage { .. }
    );
    // The secret is never in the audit log.
    let log = std::fs::read(&kms.opened().audit_path).unwrap();
    assert!(!contains(&log, ab.secret.expose_secret()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chacha20_poly1305_keys_encrypt_with_their_own_suite() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, chacha) = kms.key("r", "chacha", Some(alg("chacha20-poly1305"))).await;
    let aes = kms.aes_key("r", "aes").await;
    let ctx = ec(&[("tenant", "acme")]);
    let out = kms.encrypt(&chacha, b"stream cipher", &ctx).await.unwrap();
    assert_eq!(out.ciphertext[3], 0x02, "suite 2");
    assert_eq!(
        kms.decrypt(&out.ciphertext, &ctx)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"stream cipher"
    );
    // Data keys and re-encryption work across the suites.
    let dk = kms
        .svc()
        .generate_data_key(
            &root(),
            GenerateDataKeyInput {
                key: chacha.clone(),
                length: 32,
                context: ctx.clone(),
                include_plaintext: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(dk.wrapped.ciphertext[3], 0x02);
    let moved = kms
        .svc()
        .re_encrypt(
            &root(),
            ReEncryptInput {
                ciphertext: out.ciphertext.clone(),
                source_context: ctx.clone(),
                source: None,
                destination: Some(aes.clone()),
                destination_context: ctx.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.output.ciphertext[3], 0x01);
    // A ciphertext relabelled with the other suite is refused, in both directions.
    let aes_ct = kms
        .encrypt(&aes, b"block cipher", &ctx)
        .await
        .unwrap()
        .ciphertext;
    for (ct, suite) in [(&out.ciphertext, 0x01u8), (&aes_ct, 0x02)] {
        let mut forged = ct.clone();
        forged[3] = suite;
        assert_err!(kms.decrypt(&forged, &ctx).await, Error::InvalidCiphertext);
    }
}
