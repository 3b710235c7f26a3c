//! Bring your own key: import parameters, single-use tokens, both wrappings, the same
//! material on re-import, and deleting imported material (RELIABILITY C8).

use strongroom_core::{Error, KeyOrigin, KeyState, Timestamp};
use strongroom_crypto::import::{ImportWrapping, aes_kwp_wrap};
use strongroom_crypto::{RsaBits, keys};

use crate::support::*;

fn wrap_oaep(public: &[u8], material: &[u8]) -> Vec<u8> {
    keys::rsa_oaep_encrypt(public, material).unwrap()
}

fn wrap_kwp(public: &[u8], material: &[u8]) -> Vec<u8> {
    let kek = [0x42u8; 32];
    let mut ct = keys::rsa_oaep_encrypt(public, &kek).unwrap();
    ct.extend(aes_kwp_wrap(&kek, material).unwrap());
    ct
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_material_encrypts_and_can_be_deleted_and_reimported() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let svc = kms.svc();
    let k = svc
        .create_key_for_import(&root(), key_input("r", "byok"))
        .await
        .unwrap();
    assert_eq!(
        (k.state, k.origin, k.primary_version),
        (KeyState::PendingImport, KeyOrigin::Imported, None)
    );
    let key = path("r", "byok");
    let ctx = ec(&[]);
    assert_err!(
        kms.encrypt(&key, b"x", &ctx).await,
        Error::InvalidState {
            state: "pending_import",
            ..
        }
    );
    assert_err!(
        svc.set_key_enabled(&root(), &key, true).await,
        Error::InvalidState {
            state: "pending_import",
            ..
        }
    );

    let material = [0x17u8; 32];
    let p = svc
        .get_import_parameters(&root(), &key, ImportWrapping::RsaOaepSha256, RsaBits::B2048)
        .await
        .unwrap();
    assert_eq!(p.expires_at, Timestamp(T0 + 24 * 3600));
    assert!(!format!("{p:?}").contains(p.token.expose_secret()));
    // Wrong size for AES-256: refused, and the token is not spent.
    assert_err!(
        svc.import_key_material(
            &root(),
            &key,
            &p.token,
            &wrap_oaep(&p.public_key, &[1; 16]),
            None
        )
        .await,
        Error::InvalidArgument { .. }
    );
    // Tampered: refused alike.
    let mut bad = wrap_oaep(&p.public_key, &material);
    bad[10] ^= 1;
    assert_err!(
        svc.import_key_material(&root(), &key, &p.token, &bad, None)
            .await,
        Error::InvalidCiphertext
    );
    let done = svc
        .import_key_material(
            &root(),
            &key,
            &p.token,
            &wrap_oaep(&p.public_key, &material),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (done.state, done.primary_version),
        (KeyState::Enabled, Some(1))
    );
    // The token is single use.
    assert_err!(
        svc.import_key_material(
            &root(),
            &key,
            &p.token,
            &wrap_oaep(&p.public_key, &material),
            None
        )
        .await,
        Error::InvalidArgument { .. } | Error::InvalidState { .. }
    );
    let ct = kms
        .encrypt(&key, b"byok data", &ctx)
        .await
        .unwrap()
        .ciphertext;
    // The ciphertext is made with the owner's material: decrypting it outside Strongroom
    // with the same material works.
    let km = strongroom_crypto::KeyMaterial::copy_from(&material);
    let h = strongroom_crypto::ciphertext::parse_header(&ct).unwrap();
    let pt = strongroom_crypto::ciphertext::decrypt(&km, &h, &ctx, &ct).unwrap();
    assert_eq!(pt.expose_secret(), b"byok data");
    assert_err!(
        svc.create_version(&root(), &key, true).await,
        Error::InvalidState {
            state: "imported",
            ..
        }
    );

    // Deleted: the key waits for its material again; the old ciphertext does not open.
    let gone = svc
        .delete_imported_key_material(&root(), &key)
        .await
        .unwrap();
    assert_eq!(gone.state, KeyState::PendingImport);
    assert_err!(
        kms.decrypt(&ct, &ctx).await,
        Error::InvalidState {
            state: "pending_import",
            ..
        }
    );

    // Re-import needs new parameters and the same material; with it, old ciphertexts open.
    let p2 = svc
        .get_import_parameters(
            &root(),
            &key,
            ImportWrapping::RsaAesKeyWrapSha256,
            RsaBits::B3072,
        )
        .await
        .unwrap();
    assert_err!(
        svc.import_key_material(
            &root(),
            &key,
            &p2.token,
            &wrap_kwp(&p2.public_key, &[0x18; 32]),
            None
        )
        .await,
        Error::InvalidArgument { .. }
    );
    svc.import_key_material(
        &root(),
        &key,
        &p2.token,
        &wrap_kwp(&p2.public_key, &material),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        kms.decrypt(&ct, &ctx)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"byok data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_tokens_expire_and_belong_to_one_key() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let svc = kms.svc();
    svc.create_key_for_import(&root(), key_input("r", "a"))
        .await
        .unwrap();
    svc.create_key_for_import(&root(), key_input("r", "b"))
        .await
        .unwrap();
    let (_, generated) = kms.key("r", "generated", None).await;
    let (a, b) = (path("r", "a"), path("r", "b"));
    let p = svc
        .get_import_parameters(&root(), &a, ImportWrapping::RsaOaepSha256, RsaBits::B2048)
        .await
        .unwrap();
    let wrapped = wrap_oaep(&p.public_key, &[5; 32]);
    assert_err!(
        svc.import_key_material(&root(), &b, &p.token, &wrapped, None)
            .await,
        Error::InvalidArgument { .. }
    );
    assert_err!(
        svc.get_import_parameters(
            &root(),
            &generated,
            ImportWrapping::RsaOaepSha256,
            RsaBits::B2048
        )
        .await,
        Error::InvalidState {
            state: "generated",
            ..
        }
    );
    kms.advance(24 * 3600);
    let e = assert_err!(
        svc.import_key_material(&root(), &a, &p.token, &wrapped, None)
            .await,
        Error::InvalidArgument { .. }
    );
    assert!(e.to_string().contains("expired"), "{e}");
    assert_eq!(
        svc.get_key(&root(), &a).await.unwrap().state,
        KeyState::PendingImport
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_material_expires_at_its_time() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let svc = kms.svc();
    svc.create_key_for_import(&root(), key_input("r", "k"))
        .await
        .unwrap();
    let key = path("r", "k");
    let material = [0x33u8; 32];
    let params = || async {
        svc.get_import_parameters(&root(), &key, ImportWrapping::RsaOaepSha256, RsaBits::B2048)
            .await
            .unwrap()
    };
    let p = params().await;
    let wrapped = wrap_oaep(&p.public_key, &material);
    // The expiry must be in the future and at most 365 days away; a refusal spends nothing.
    for bad in [T0, T0 - 1, T0 + 365 * 86400 + 1] {
        let e = assert_err!(
            svc.import_key_material(&root(), &key, &p.token, &wrapped, Some(Timestamp(bad)))
                .await,
            Error::InvalidArgument { .. }
        );
        assert!(e.to_string().contains("valid_to"), "{e}");
    }
    let done = svc
        .import_key_material(
            &root(),
            &key,
            &p.token,
            &wrapped,
            Some(Timestamp(T0 + 3600)),
        )
        .await
        .unwrap();
    assert_eq!(done.material_expires_at, Some(Timestamp(T0 + 3600)));
    let ctx = ec(&[]);
    let ct = kms.encrypt(&key, b"short-lived", &ctx).await.unwrap();
    kms.advance(3599);
    assert_eq!(svc.run_due_jobs().await.unwrap().expired, 0);
    kms.decrypt(&ct.ciphertext, &ctx).await.unwrap();

    // At the second it expires the key is unusable, before the scheduler has run.
    kms.advance(1);
    let unusable = |e: &Error| {
        matches!(
            e,
            Error::InvalidState {
                state: "pending_import",
                ..
            }
        )
    };
    assert!(unusable(
        &kms.decrypt(&ct.ciphertext, &ctx).await.unwrap_err()
    ));
    assert!(unusable(&kms.encrypt(&key, b"x", &ctx).await.unwrap_err()));
    let report = svc.run_due_jobs().await.unwrap();
    assert_eq!((report.expired, report.failed), (1, 0));
    let k = svc.get_key(&root(), &key).await.unwrap();
    assert_eq!(
        (k.state, k.material_expires_at),
        (KeyState::PendingImport, None)
    );
    assert!(unusable(
        &kms.decrypt(&ct.ciphertext, &ctx).await.unwrap_err()
    ));
    assert_eq!(
        svc.run_due_jobs().await.unwrap().expired,
        0,
        "expired twice"
    );
    let events: Vec<_> = kms
        .audit_events()
        .into_iter()
        .filter(|e| e["operation"] == "scheduled-material-expiry")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["outcome"], "ok");

    // The same material comes back, this time without expiry, and opens the old ciphertext.
    let p = params().await;
    svc.import_key_material(
        &root(),
        &key,
        &p.token,
        &wrap_oaep(&p.public_key, &material),
        None,
    )
    .await
    .unwrap();
    kms.advance(400 * 86400);
    assert_eq!(svc.run_due_jobs().await.unwrap().expired, 0);
    assert_eq!(
        kms.decrypt(&ct.ciphertext, &ctx)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"short-lived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_keys_material_expires_and_deletion_waits() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let svc = kms.svc();
    svc.create_key_for_import(&root(), key_input("r", "k"))
        .await
        .unwrap();
    let key = path("r", "k");
    let p = svc
        .get_import_parameters(&root(), &key, ImportWrapping::RsaOaepSha256, RsaBits::B2048)
        .await
        .unwrap();
    svc.import_key_material(
        &root(),
        &key,
        &p.token,
        &wrap_oaep(&p.public_key, &[9; 32]),
        Some(Timestamp(T0 + 60)),
    )
    .await
    .unwrap();
    svc.set_key_enabled(&root(), &key, false).await.unwrap();
    svc.schedule_key_deletion(&root(), &key, Some(7 * 86400))
        .await
        .unwrap();
    kms.advance(120);
    // Scheduled for deletion: left for the deletion (or for after its cancellation).
    assert_eq!(svc.run_due_jobs().await.unwrap().expired, 0);
    let k = svc.cancel_key_deletion(&root(), &key).await.unwrap();
    assert_eq!(k.state, KeyState::Disabled);
    assert_eq!(svc.run_due_jobs().await.unwrap().expired, 1);
    assert_eq!(
        svc.get_key(&root(), &key).await.unwrap().state,
        KeyState::PendingImport
    );
}
