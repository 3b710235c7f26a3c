//! Property tests through the service: random plaintexts and contexts round-trip, and any
//! change to the context or the ciphertext is refused.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use strongroom_core::types::{DecryptInput, EncryptInput};
use strongroom_core::{EncryptionContext, Error, Plaintext};

use crate::support::*;

fn context() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("[A-Za-z0-9_.:-]{1,24}", any::<String>(), 0..6)
}

#[test]
fn encrypt_decrypt_round_trips_random_plaintexts_and_contexts() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (kms, key) = rt.block_on(async {
        let kms = Kms::new().await;
        let key = kms.aes_key("r", "k").await;
        (kms, key)
    });
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..4096),
        context(),
        any::<prop::sample::Index>(),
        1u8..=255,
    );
    runner
        .run(&strategy, |(plaintext, pairs, at, mask)| {
            rt.block_on(async {
                let ctx = EncryptionContext::try_new(pairs.clone()).unwrap();
                let out = kms
                    .svc()
                    .encrypt(
                        &root(),
                        EncryptInput {
                            key: key.clone(),
                            plaintext: Plaintext::copy_from(&plaintext),
                            context: ctx.clone(),
                        },
                    )
                    .await
                    .unwrap();
                prop_assert_eq!(out.ciphertext.len(), plaintext.len() + 68);
                let decrypt = |ciphertext: Vec<u8>, context: EncryptionContext| {
                    let svc = kms.svc();
                    async move {
                        svc.decrypt(
                            &root(),
                            DecryptInput {
                                ciphertext,
                                context,
                                key: None,
                            },
                        )
                        .await
                    }
                };
                let back = decrypt(out.ciphertext.clone(), ctx.clone()).await.unwrap();
                prop_assert_eq!(back.plaintext.expose_secret(), &plaintext[..]);

                // An extra pair, or one pair dropped, is a different context.
                let mut more = pairs.clone();
                more.insert("~extra".into(), String::new());
                let more = EncryptionContext::try_new(more).unwrap();
                let r = decrypt(out.ciphertext.clone(), more).await;
                prop_assert!(matches!(r, Err(Error::InvalidCiphertext)), "{:?}", r);
                if let Some(first) = pairs.keys().next() {
                    let mut fewer = pairs.clone();
                    fewer.remove(&first.clone());
                    let fewer = EncryptionContext::try_new(fewer).unwrap();
                    let r = decrypt(out.ciphertext.clone(), fewer).await;
                    prop_assert!(matches!(r, Err(Error::InvalidCiphertext)), "{:?}", r);
                }

                // Any byte changed anywhere is refused.
                let mut bad = out.ciphertext.clone();
                let i = at.index(bad.len());
                bad[i] ^= mask;
                let r = decrypt(bad, ctx).await;
                prop_assert!(
                    matches!(r, Err(Error::InvalidCiphertext)),
                    "byte {}: {:?}",
                    i,
                    r
                );
                Ok(())
            })
        })
        .unwrap();
    rt.block_on(async move { drop(kms) });
}
