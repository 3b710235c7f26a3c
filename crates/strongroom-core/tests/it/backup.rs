//! Backups through `KeyService::create_backup` and `bootstrap::restore`: a restored data dir
//! serves what the original did; a wrong root key, a changed file or a target that is not
//! empty is refused with nothing written. The v1 golden backup keeps restoring.

use std::path::{Path, PathBuf};

use strongroom_core::Error;
use strongroom_core::bootstrap::{self, RestoreOptions};

use crate::support::*;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/backup-v1");

fn restore_opts(backup: &Path, key: &Path, dir: &Path) -> RestoreOptions {
    RestoreOptions {
        backup: backup.to_path_buf(),
        root_key_file: key.to_path_buf(),
        data_dir: dir.to_path_buf(),
        database: None,
    }
}

/// Opens a restored data dir as `serve` would (the root key lives elsewhere).
async fn open_restored(dir: &Path, key: &Path) -> bootstrap::Opened {
    let mut o = options(
        dir,
        std::sync::Arc::new(strongroom_core::ManualClock::new(
            strongroom_core::Timestamp(T0),
        )),
    );
    o.root_key_file = Some(key.to_path_buf());
    o.initial_root_token = None;
    let opened = bootstrap::open(o).await.unwrap();
    assert!(
        opened.new_root_token.is_none(),
        "a restored data dir is not new"
    );
    opened
}

fn write_key_copy(from: &Path, to: &Path) -> PathBuf {
    std::fs::copy(from, to).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    to.to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_data_dir_serves_what_the_original_did() {
    let kms = Kms::new().await;
    let key = kms.aes_key("app", "data").await;
    let ctx = ec(&[("tenant", "acme")]);
    let ct = kms
        .encrypt(&key, b"kept across a restore", &ctx)
        .await
        .unwrap();
    let (header, bytes) = kms.svc().create_backup(&root()).await.unwrap();
    assert_eq!(header.counts["keys"], 1);
    assert_eq!(header.audit.node, "local");
    assert!(header.audit.seq > 0);
    let events = kms.audit_events();
    let last = events.last().unwrap();
    assert_eq!(
        (last["operation"].as_str(), last["outcome"].as_str()),
        (Some("create-backup"), Some("ok"))
    );

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("b.srbk");
    std::fs::write(&file, &bytes).unwrap();
    let root_key = kms.data_dir().join("root.key");
    let dir = tmp.path().join("restored");
    let done = bootstrap::restore(restore_opts(&file, &root_key, &dir))
        .await
        .unwrap();
    assert_eq!(done.header, header);
    // Only the data dir: no temporary directory left beside it.
    let beside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside.len(), 2, "{beside:?}");

    let opened = open_restored(&dir, &root_key).await;
    let out = opened
        .service
        .decrypt(
            &root(),
            strongroom_core::types::DecryptInput {
                ciphertext: ct.ciphertext.clone(),
                context: ctx.clone(),
                key: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(out.plaintext.expose_secret(), b"kept across a restore");

    // Into a data dir that holds anything: refused.
    let err = bootstrap::restore(restore_opts(&file, &root_key, &dir))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_root_key_or_a_changed_byte_is_refused_and_writes_nothing() {
    let kms = Kms::new().await;
    kms.aes_key("app", "data").await;
    let (_, bytes) = kms.svc().create_backup(&root()).await.unwrap();
    let other = Kms::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("b.srbk");
    std::fs::write(&file, &bytes).unwrap();
    let dir = tmp.path().join("restored");

    let err = bootstrap::restore(restore_opts(
        &file,
        &other.data_dir().join("root.key"),
        &dir,
    ))
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("not made with this root key"),
        "{err}"
    );
    assert!(!dir.exists());

    let root_key = kms.data_dir().join("root.key");
    for at in [10, 40, bytes.len() / 2, bytes.len() - 1] {
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        std::fs::write(&file, &b).unwrap();
        let err = bootstrap::restore(restore_opts(&file, &root_key, &dir))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("nothing was changed"),
            "byte {at}: {err}"
        );
        assert!(!dir.exists(), "byte {at}: the target was created");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn taking_a_backup_needs_create_backup() {
    let kms = Kms::new().await;
    let err = kms.svc().create_backup(&as_token(None)).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated), "{err:?}");
    let err = kms
        .svc()
        .create_backup(&as_token(Some("srt_nope")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthenticated), "{err:?}");
    let last = kms.audit_events().pop().unwrap();
    assert_eq!(
        (last["operation"].as_str(), last["outcome"].as_str()),
        (Some("create-backup"), Some("error"))
    );
}

/// The checked-in v1 backup keeps restoring and decrypting: the format is a contract.
#[tokio::test(flavor = "multi_thread")]
async fn golden_backup_v1_restores() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{GOLDEN}/expected.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let key = write_key_copy(
        &Path::new(GOLDEN).join("root.key"),
        &tmp.path().join("root.key"),
    );
    let dir = tmp.path().join("data");
    let done = bootstrap::restore(restore_opts(
        &Path::new(GOLDEN).join("backup.srbk"),
        &key,
        &dir,
    ))
    .await
    .unwrap();
    assert_eq!(
        done.header.schema_version,
        expected["schema_version"].as_i64().unwrap()
    );
    let opened = open_restored(&dir, &key).await;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let out = opened
        .service
        .decrypt(
            &root(),
            strongroom_core::types::DecryptInput {
                ciphertext: b64
                    .decode(expected["ciphertext"].as_str().unwrap())
                    .unwrap(),
                context: ec(&[("purpose", "golden")]),
                key: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        out.plaintext.expose_secret(),
        b64.decode(expected["plaintext"].as_str().unwrap()).unwrap()
    );
}

/// Writes the golden backup. Run by hand once (`cargo test -p strongroom-core --test it --
/// --ignored generate_golden_backup`); the files it writes never change afterwards.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "generator: run by hand once; the golden files never change"]
async fn generate_golden_backup() {
    let out = Path::new(GOLDEN);
    assert!(
        !out.join("backup.srbk").exists(),
        "golden files exist already; they must not be regenerated"
    );
    std::fs::create_dir_all(out).unwrap();
    let kms = Kms::new().await;
    let key = kms.aes_key("golden", "aes").await;
    let ct = kms
        .encrypt(&key, b"golden backup v1", &ec(&[("purpose", "golden")]))
        .await
        .unwrap();
    let (header, bytes) = kms.svc().create_backup(&root()).await.unwrap();
    std::fs::write(out.join("backup.srbk"), bytes).unwrap();
    std::fs::copy(kms.data_dir().join("root.key"), out.join("root.key")).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let expected = serde_json::json!({
        "schema_version": header.schema_version,
        "ciphertext": b64.encode(&ct.ciphertext),
        "plaintext": b64.encode(b"golden backup v1"),
        "context": {"purpose": "golden"},
        "root_token": ROOT_TOKEN,
    });
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
}
