//! Opening a data dir: root token, root key file, lock, and refusals that change nothing
//! (RELIABILITY P10, L7, U4, X3).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use strongroom_core::bootstrap::{self, BootstrapError, DataDirOptions};
use strongroom_core::types::KeyRef;
use strongroom_core::{ManualClock, RingName, Timestamp};
use strongroom_crypto::RootKey;

use crate::support::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn refusal(r: Result<bootstrap::Opened, BootstrapError>) -> String {
    match r {
        Err(BootstrapError::Refused(m)) => m,
        Err(e) => panic!("expected a refusal, got {e:?}"),
        Ok(_) => panic!("expected a refusal, the data dir opened"),
    }
}

/// Names and bytes of every file in the data dir except the lock file (whose creation and
/// flock are how a refused open detects a running instance).
fn dir_state(dir: &Path) -> Vec<(String, usize, [u8; 32])> {
    let mut v: Vec<_> = files_under(dir)
        .into_iter()
        .filter(|(p, _)| p.file_name().unwrap() != "strongroom.lock")
        .map(|(p, bytes)| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, bytes.len(), strongroom_crypto::hash::sha256(&bytes))
        })
        .collect();
    v.sort();
    v
}

fn write_root_key(p: &Path, key: &RootKey, mode: u32) {
    std::fs::write(p, key.to_file_text().expose_secret()).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A data dir with one key and a ciphertext made under it, shut down.
async fn populated() -> (Kms, KeyRef, Vec<u8>) {
    let mut kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let ct = kms
        .encrypt(&key, b"survives restarts", &ec(&[("a", "1")]))
        .await
        .unwrap()
        .ciphertext;
    kms.shutdown().await;
    (kms, key, ct)
}

/// Asserts that the reopened data dir still holds the key and decrypts the ciphertext.
async fn still_works(kms: &mut Kms, ct: &[u8]) {
    kms.reopen().await;
    let out = kms.decrypt(ct, &ec(&[("a", "1")])).await.unwrap();
    assert_eq!(out.plaintext.expose_secret(), b"survives restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_open_issues_a_root_token_only_when_none_was_supplied() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let opts = DataDirOptions {
        initial_root_token: None,
        ..options(&dir, clock.clone())
    };
    let opened = bootstrap::open(opts.clone()).await.unwrap();
    let token = opened
        .new_root_token
        .as_ref()
        .expect("a new data dir without a supplied token shows one")
        .expose_secret()
        .to_string();
    assert!(strongroom_core::tokens::looks_like_token(&token), "{token}");
    assert_eq!(
        opened.wrote_root_key.as_deref(),
        Some(&*dir.join("root.key"))
    );
    assert_eq!(opened.audit_path, dir.join("audit.log"));
    assert_eq!(mode(&dir.join("root.key")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("audit.log")), 0o600);
    RootKey::from_file_text(&std::fs::read_to_string(dir.join("root.key")).unwrap()).unwrap();
    assert!(
        !format!("{opened:?}").contains(&token),
        "Debug of Opened shows the root token"
    );

    // The token works and acts as root.
    let me = opened
        .service
        .lookup_self(&as_token(Some(&token)))
        .await
        .unwrap();
    assert_eq!((me.id.as_str(), me.principal.as_str()), ("root", "root"));
    assert_eq!(me.expires_at, None);
    // Stored hashed: the secret is in no file of the data dir.
    for (p, bytes) in files_under(&dir) {
        assert!(!contains(&bytes, token.as_bytes()), "{}", p.display());
    }

    // Reopening shows no token, writes no root key, and the old token still works.
    let bootstrap::Opened { service, lock, .. } = opened;
    service.close_audit().await.unwrap();
    drop((service, lock));
    wait_for_close(&dir.join("strongroom.db"));
    let again = bootstrap::open(opts).await.unwrap();
    assert!(again.new_root_token.is_none());
    assert!(again.wrote_root_key.is_none());
    again
        .service
        .lookup_self(&as_token(Some(&token)))
        .await
        .unwrap();

    // A supplied token is never echoed back.
    let kms = Kms::new().await;
    assert!(kms.opened().new_root_token.is_none());
    assert!(kms.opened().wrote_root_key.is_some());
    kms.svc().lookup_self(&root()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_keys_and_ciphertexts() {
    let (mut kms, key, ct) = populated().await;
    still_works(&mut kms, &ct).await;
    let k = kms.svc().get_key(&root(), &key).await.unwrap();
    assert_eq!(k.version_count, 1);
    // A second reopen is no different from the first.
    still_works(&mut kms, &ct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_while_the_first_is_alive_is_refused() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let before = kms.snapshot(&key).await;
    let msg = refusal(bootstrap::open(kms.options()).await);
    assert!(msg.contains("in use"), "{msg}");
    assert!(msg.contains("strongroom.lock"), "{msg}");
    // The first instance is unaffected.
    assert_eq!(kms.snapshot(&key).await, before);
    kms.encrypt(&key, b"x", &ec(&[])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_root_key_file_is_refused_and_nothing_is_written() {
    let (mut kms, _key, ct) = populated().await;
    let key_file = kms.data_dir().join("root.key");
    let aside = kms.tmp.path().join("root.key.aside");
    std::fs::rename(&key_file, &aside).unwrap();
    let db_before = kms.db_bytes();

    let msg = refusal(bootstrap::open(kms.options()).await);
    assert!(msg.contains(&key_file.display().to_string()), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(kms.db_bytes() == db_before, "the database changed");
    assert!(!key_file.exists(), "a new root key was generated");

    std::fs::rename(&aside, &key_file).unwrap();
    still_works(&mut kms, &ct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_root_key_is_refused_and_nothing_is_written() {
    let (mut kms, _key, ct) = populated().await;
    let key_file = kms.data_dir().join("root.key");
    let original = std::fs::read(&key_file).unwrap();
    write_root_key(&key_file, &RootKey::generate().unwrap(), 0o600);
    let other = std::fs::read(&key_file).unwrap();
    let db_before = kms.db_bytes();

    let msg = refusal(bootstrap::open(kms.options()).await);
    assert!(msg.contains("does not match"), "{msg}");
    assert!(msg.contains(&key_file.display().to_string()), "{msg}");
    assert!(kms.db_bytes() == db_before, "the database changed");
    assert_eq!(std::fs::read(&key_file).unwrap(), other);

    std::fs::write(&key_file, original).unwrap();
    still_works(&mut kms, &ct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_root_key_file_is_refused() {
    let (mut kms, _key, ct) = populated().await;
    let key_file = kms.data_dir().join("root.key");
    let original = std::fs::read(&key_file).unwrap();
    let db_before = kms.db_bytes();
    for text in [
        "",
        "strongroom-root-key-v1\n",
        "strongroom-root-key-v1\nAAAA\n",
    ] {
        std::fs::write(&key_file, text).unwrap();
        let msg = refusal(bootstrap::open(kms.options()).await);
        assert!(msg.contains(&key_file.display().to_string()), "{msg}");
        assert!(!msg.contains("AAAA"), "{msg}");
    }
    assert!(kms.db_bytes() == db_before, "the database changed");
    std::fs::write(&key_file, original).unwrap();
    still_works(&mut kms, &ct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_key_readable_by_others_is_refused() {
    let (mut kms, _key, ct) = populated().await;
    let key_file = kms.data_dir().join("root.key");
    let db_before = kms.db_bytes();
    for m in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(m)).unwrap();
        let msg = refusal(bootstrap::open(kms.options()).await);
        assert!(
            msg.contains(&format!("chmod 600 {}", key_file.display())),
            "{msg}"
        );
    }
    assert!(kms.db_bytes() == db_before, "the database changed");
    // Owner-only modes narrower than 0600 are fine.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o400)).unwrap();
    still_works(&mut kms, &ct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_key_file_outside_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let key_file = tmp.path().join("secrets").join("strongroom.key");
    std::fs::create_dir(tmp.path().join("secrets")).unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let opts = DataDirOptions {
        root_key_file: Some(key_file.clone()),
        ..options(&dir, clock.clone())
    };
    let opened = bootstrap::open(opts.clone()).await.unwrap();
    assert_eq!(opened.wrote_root_key.as_deref(), Some(&*key_file));
    assert_eq!(mode(&key_file), 0o600);
    assert!(!dir.join("root.key").exists());
    let svc = opened.service.clone();
    let ring = "r";
    svc.create_key_ring(
        &root(),
        strongroom_core::types::CreateKeyRingInput {
            name: RingName::try_new(ring).unwrap(),
            description: String::new(),
            labels: Default::default(),
        },
    )
    .await
    .unwrap();
    svc.create_key(&root(), key_input(ring, "k")).await.unwrap();
    let ct = svc
        .encrypt(
            &root(),
            strongroom_core::types::EncryptInput {
                key: path(ring, "k"),
                plaintext: strongroom_core::Plaintext::copy_from(b"elsewhere"),
                context: ec(&[]),
            },
        )
        .await
        .unwrap()
        .ciphertext;
    drop(svc);
    opened.service.close_audit().await.unwrap();
    drop(opened);
    wait_for_close(&dir.join("strongroom.db"));
    for (p, _) in files_under(&dir) {
        assert_ne!(p.file_name().unwrap(), "root.key");
    }

    // Without --root-key-file the data dir alone opens nothing.
    let db_before = db_bytes(&dir);
    let msg = refusal(bootstrap::open(options(&dir, clock.clone())).await);
    assert!(
        msg.contains(&dir.join("root.key").display().to_string()),
        "{msg}"
    );
    assert!(!dir.join("root.key").exists());
    assert!(db_bytes(&dir) == db_before, "the database changed");

    // With it, everything is there.
    let opened = bootstrap::open(opts).await.unwrap();
    assert!(opened.wrote_root_key.is_none());
    let out = opened
        .service
        .decrypt(
            &root(),
            strongroom_core::types::DecryptInput {
                ciphertext: ct,
                context: ec(&[]),
                key: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.plaintext.expose_secret(), b"elsewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_dir_uses_an_existing_root_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("shared.key");
    write_root_key(&key_file, &RootKey::generate().unwrap(), 0o600);
    let before = std::fs::read(&key_file).unwrap();
    let opts = DataDirOptions {
        root_key_file: Some(key_file.clone()),
        ..options(
            &tmp.path().join("data"),
            Arc::new(ManualClock::new(Timestamp(T0))),
        )
    };
    let opened = bootstrap::open(opts).await.unwrap();
    assert!(opened.wrote_root_key.is_none());
    assert_eq!(std::fs::read(&key_file).unwrap(), before);
    opened.service.lookup_self(&root()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_first_start_is_refused() {
    // A database without the "initialized" marker: the first start died before issuing a
    // root token.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    write_root_key(&dir.join("root.key"), &RootKey::generate().unwrap(), 0o600);
    let store = strongroom_store::SqliteStore::open(&strongroom_store::SqliteOptions {
        path: dir.join("strongroom.db"),
        create_if_missing: true,
    })
    .await
    .unwrap();
    store.close().await;
    drop(store);
    wait_for_close(&dir.join("strongroom.db"));
    let db_before = std::fs::read(dir.join("strongroom.db")).unwrap();
    let msg =
        refusal(bootstrap::open(options(&dir, Arc::new(ManualClock::new(Timestamp(T0))))).await);
    assert!(msg.contains("interrupted first start"), "{msg}");
    assert_eq!(std::fs::read(dir.join("strongroom.db")).unwrap(), db_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_open_creates_no_files() {
    let (mut kms, _key, ct) = populated().await;
    checkpoint(&kms.db_path()).await;
    let key_file = kms.data_dir().join("root.key");
    let original = std::fs::read(&key_file).unwrap();
    write_root_key(&key_file, &RootKey::generate().unwrap(), 0o600);
    let before = dir_state(&kms.data_dir());
    let names = |v: &[(String, usize, [u8; 32])]| -> Vec<(String, usize)> {
        v.iter().map(|(n, l, _)| (n.clone(), *l)).collect()
    };
    assert_eq!(
        names(&before)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        [
            "audit-signing.pub",
            "audit.log",
            "root.key",
            "strongroom.db",
            "strongroom.init"
        ]
    );
    refusal(bootstrap::open(kms.options()).await);
    wait_for_close(&kms.db_path());
    let after = dir_state(&kms.data_dir());
    assert_eq!(names(&after), names(&before), "files (name, size) differ");
    assert_eq!(after, before, "file contents differ");
    std::fs::write(&key_file, original).unwrap();
    still_works(&mut kms, &ct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_initial_root_token_is_refused() {
    for token in [String::new(), "x".repeat(513)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let opts = DataDirOptions {
            initial_root_token: Some(token.clone()),
            ..options(&dir, Arc::new(ManualClock::new(Timestamp(T0))))
        };
        match bootstrap::open(opts).await {
            Err(BootstrapError::Refused(_)) => assert!(!dir.join("strongroom.db").exists()),
            Err(e) => panic!("{e:?}"),
            Ok(opened) => {
                // If it is accepted it must at least work.
                let r = opened.service.lookup_self(&as_token(Some(&token))).await;
                assert!(
                    r.is_ok(),
                    "root token of {} bytes accepted but unusable: {r:?}",
                    token.len()
                );
            }
        }
    }
}
