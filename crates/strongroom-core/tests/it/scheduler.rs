//! Scheduled rotation and destruction, driven by a `ManualClock` (`docs/key-states.md`;
//! RELIABILITY L2, L3).

use strongroom_core::types::UpdateKeyInput;
use strongroom_core::{Error, JobReport, KeyRecord, Timestamp, VersionState};

use crate::support::*;

fn report(rotated: u32, destroyed: u32) -> JobReport {
    JobReport {
        rotated,
        destroyed,
        deleted: 0,
        expired: 0,
        failed: 0,
    }
}

/// A ring `r` and an AES key `r/k` rotating every `period` seconds.
async fn rotating_key(kms: &Kms, period: i64) -> (KeyRecord, KeyRef) {
    kms.ring("r").await;
    let mut input = key_input("r", "k");
    input.rotation_period_secs = Some(period);
    let (k, _) = kms.svc().create_key(&root(), input).await.unwrap();
    (k, path("r", "k"))
}

/// The sealed material of a version as the store holds it, read through a second store
/// handle on the same database (the test's only way to see store bytes).
async fn sealed_material(kms: &Kms, key: &KeyRecord, version: u32) -> Option<Vec<u8>> {
    let store = strongroom_store::SqliteStore::open(&strongroom_store::SqliteOptions {
        path: kms.db_path(),
        create_if_missing: false,
    })
    .await
    .unwrap();
    let v = strongroom_store::Store::version(&store, key.id, version)
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    v.sealed_material.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_happens_once_per_due_time() {
    let kms = Kms::new().await;
    let (k, key) = rotating_key(&kms, DAY).await;
    assert_eq!(k.rotation_period_secs, Some(DAY));
    assert_eq!(k.next_rotation_time, Some(Timestamp(T0 + DAY)));
    let ctx = ec(&[]);
    let ct1 = kms.encrypt(&key, b"one", &ctx).await.unwrap().ciphertext;

    // Not due yet.
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    kms.advance(DAY - 1);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    assert_eq!(kms.snapshot(&key).await.1.len(), 1);

    // Due exactly now: one rotation, and only one however often the jobs run.
    kms.advance(1);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(1, 0));
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    let (k, versions) = kms.snapshot(&key).await;
    assert_eq!((k.version_count, k.primary_version), (2, Some(2)));
    assert_eq!(k.next_rotation_time, Some(Timestamp(T0 + 2 * DAY)));
    assert_eq!(versions[1].created_at, Timestamp(T0 + DAY));
    // Recorded as the scheduler's work (AWS ListKeyRotations reports it as AUTOMATIC).
    assert_eq!(
        (versions[0].origin, versions[1].origin),
        (
            strongroom_core::VersionOrigin::Creation,
            strongroom_core::VersionOrigin::ScheduledRotation
        )
    );
    assert_eq!(kms.encrypt(&key, b"two", &ctx).await.unwrap().version, 2);

    // Long overdue (the server was busy or down): still one rotation, never a burst.
    kms.advance(5 * DAY + 17);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(1, 0));
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    let (k, _) = kms.snapshot(&key).await;
    assert_eq!(k.version_count, 3);
    assert_eq!(k.next_rotation_time, Some(Timestamp(T0 + 7 * DAY + 17)));

    // A manual rotation pushes the schedule one period past now.
    kms.advance(DAY / 2);
    let (k, manual) = kms.svc().create_version(&root(), &key, true).await.unwrap();
    assert_eq!(
        k.next_rotation_time,
        Some(Timestamp(T0 + 7 * DAY + 17 + DAY / 2))
    );
    assert_eq!(manual.origin, strongroom_core::VersionOrigin::Rotation);
    kms.advance(DAY / 2 + 1);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));

    // Every version's ciphertexts still decrypt.
    assert_eq!(kms.decrypt(&ct1, &ctx).await.unwrap().version, 1);

    // The jobs are audited under the scheduler's own name.
    let rotations: Vec<_> = kms
        .audit_events()
        .into_iter()
        .filter(|e| e["operation"] == "scheduled-rotation")
        .collect();
    assert_eq!(rotations.len(), 2);
    for e in &rotations {
        assert_eq!(e["protocol"], "scheduler");
        assert_eq!(e["principal"], "strongroom-scheduler");
        assert_eq!(e["outcome"], "ok");
        assert_eq!(e["key"], "k");
    }
    assert_eq!(rotations[0]["version"], 2);
    assert_eq!(rotations[1]["version"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_first_rotation_time_and_turning_rotation_off() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let mut input = key_input("r", "k");
    input.rotation_period_secs = Some(30 * DAY);
    input.next_rotation_time = Some(Timestamp(T0 + 3600));
    let (k, _) = kms.svc().create_key(&root(), input).await.unwrap();
    assert_eq!(k.next_rotation_time, Some(Timestamp(T0 + 3600)));
    let key = path("r", "k");
    kms.advance(3600);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(1, 0));
    let (k, _) = kms.snapshot(&key).await;
    assert_eq!(k.next_rotation_time, Some(Timestamp(T0 + 3600 + 30 * DAY)));

    kms.svc()
        .update_key(
            &root(),
            &key,
            UpdateKeyInput {
                rotation_period_secs: Some(None),
                ..UpdateKeyInput::default()
            },
        )
        .await
        .unwrap();
    kms.advance(365 * DAY);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    assert_eq!(kms.snapshot(&key).await.0.version_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_key_is_not_rotated_but_its_schedule_moves() {
    let kms = Kms::new().await;
    let (_, key) = rotating_key(&kms, DAY).await;
    kms.svc()
        .set_key_enabled(&root(), &key, false)
        .await
        .unwrap();
    kms.advance(DAY + 10);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    let (k, versions) = kms.snapshot(&key).await;
    assert_eq!((k.version_count, versions.len()), (1, 1));
    assert_eq!(k.next_rotation_time, Some(Timestamp(T0 + 2 * DAY + 10)));
    // Not retried on every run.
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    assert_eq!(kms.snapshot(&key).await.0, k);

    // Enabled again, it rotates at its moved time.
    kms.svc()
        .set_key_enabled(&root(), &key, true)
        .await
        .unwrap();
    kms.advance(DAY - 1);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    kms.advance(1);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(1, 0));
    assert_eq!(kms.snapshot(&key).await.0.version_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destruction_happens_at_destroy_time_and_is_final() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let k = kms.svc().get_key(&root(), &key).await.unwrap();
    let ctx = ec(&[("c", "1")]);
    let ct1 = kms.encrypt(&key, b"doomed", &ctx).await.unwrap().ciphertext;
    kms.svc().create_version(&root(), &key, true).await.unwrap();
    let ct2 = kms.encrypt(&key, b"kept", &ctx).await.unwrap().ciphertext;
    kms.svc()
        .create_version(&root(), &key, false)
        .await
        .unwrap();
    let sealed = sealed_material(&kms, &k, 1).await.expect("v1 has material");

    let v = kms
        .svc()
        .schedule_version_destruction(&root(), &key, 1, Some(DAY))
        .await
        .unwrap();
    assert_eq!(v.destroy_time, Some(Timestamp(T0 + DAY)));
    // Version 3 is scheduled too, then restored: it must survive its old destroy time.
    kms.svc()
        .schedule_version_destruction(&root(), &key, 3, Some(DAY))
        .await
        .unwrap();
    kms.svc().restore_version(&root(), &key, 3).await.unwrap();

    // Never before destroy_time, whatever the clock does in between.
    kms.advance(DAY - 1);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    kms.advance(-10 * DAY);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    kms.advance(10 * DAY);
    assert_eq!(
        kms.version(&key, 1).await.state,
        VersionState::DestroyScheduled
    );

    // At destroy_time: destroyed, once.
    kms.advance(1);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 1));
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    let v1 = kms.version(&key, 1).await;
    assert_eq!(v1.state, VersionState::Destroyed);
    assert_eq!(v1.destroy_time, Some(Timestamp(T0 + DAY)));
    assert_eq!(v1.destroyed_at, Some(Timestamp(T0 + DAY)));
    assert_eq!(kms.version(&key, 3).await.state, VersionState::Disabled);

    // Its ciphertexts fail clearly; the other versions are untouched.
    let e = assert_err!(
        kms.decrypt(&ct1, &ctx).await,
        Error::InvalidState {
            state: "destroyed",
            operation: "decrypt",
            ..
        }
    );
    assert!(e.to_string().contains("destroyed"), "{e}");
    assert_eq!(
        kms.decrypt(&ct2, &ctx)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"kept"
    );

    // Destroyed is terminal.
    let before = kms.snapshot(&key).await;
    assert_err!(
        kms.svc().restore_version(&root(), &key, 1).await,
        Error::InvalidState {
            state: "destroyed",
            ..
        }
    );
    assert_err!(
        kms.svc().enable_version(&root(), &key, 1).await,
        Error::InvalidState {
            state: "destroyed",
            ..
        }
    );
    assert_err!(
        kms.svc().disable_version(&root(), &key, 1).await,
        Error::InvalidState {
            state: "destroyed",
            ..
        }
    );
    assert_err!(
        kms.svc()
            .schedule_version_destruction(&root(), &key, 1, None)
            .await,
        Error::InvalidState {
            state: "destroyed",
            ..
        }
    );
    assert_err!(
        kms.svc().set_primary_version(&root(), &key, 1).await,
        Error::InvalidState {
            state: "destroyed",
            ..
        }
    );
    assert_eq!(kms.snapshot(&key).await, before);

    // The sealed material is gone from the store and from every file SQLite keeps.
    assert_eq!(sealed_material(&kms, &k, 1).await, None);
    for (p, bytes) in files_under(&kms.data_dir()) {
        assert!(
            !contains(&bytes, &sealed),
            "{} still holds the destroyed version's sealed material",
            p.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_an_asymmetric_version_removes_its_public_key_too() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, key) = kms.key("r", "sig", Some(alg("ed25519"))).await;
    kms.svc().create_version(&root(), &key, true).await.unwrap();
    kms.svc()
        .schedule_version_destruction(&root(), &key, 1, Some(DAY))
        .await
        .unwrap();
    // Scheduled: the public key is still served.
    kms.svc()
        .get_public_key(&root(), &key, Some(1))
        .await
        .unwrap();
    kms.advance(DAY);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 1));
    assert_err!(
        kms.svc().get_public_key(&root(), &key, Some(1)).await,
        Error::InvalidState {
            state: "destroyed",
            ..
        }
    );
    kms.svc().get_public_key(&root(), &key, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_and_overdue_jobs_run_exactly_once() {
    let mut kms = Kms::new().await;
    let (_, key) = rotating_key(&kms, 10 * DAY).await;
    let ctx = ec(&[("k", "v")]);
    let ct1 = kms.encrypt(&key, b"v1", &ctx).await.unwrap().ciphertext;
    kms.svc().create_version(&root(), &key, true).await.unwrap();
    let ct2 = kms.encrypt(&key, b"v2", &ctx).await.unwrap().ciphertext;
    kms.svc()
        .schedule_version_destruction(&root(), &key, 1, Some(2 * DAY))
        .await
        .unwrap();
    kms.svc().disable_version(&root(), &key, 2).await.unwrap();
    kms.svc().enable_version(&root(), &key, 2).await.unwrap();
    let before = kms.snapshot(&key).await;

    // A plain restart changes nothing.
    kms.reopen().await;
    assert_eq!(kms.snapshot(&key).await, before);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));

    // Down across both due times: the destruction (day 2) and the rotation (day 10).
    kms.shutdown().await;
    kms.advance(11 * DAY);
    kms.reopen().await;
    // Opening runs no jobs by itself.
    assert_eq!(kms.snapshot(&key).await, before);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(1, 1));
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    let after = kms.snapshot(&key).await;
    assert_eq!(after.0.version_count, 3);
    assert_eq!(after.1[0].state, VersionState::Destroyed);
    assert_eq!(after.1[0].destroyed_at, Some(Timestamp(T0 + 11 * DAY)));

    // And that, too, survives a restart, with no second run.
    kms.reopen().await;
    assert_eq!(kms.snapshot(&key).await, after);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap(), report(0, 0));
    assert_err!(
        kms.decrypt(&ct1, &ctx).await,
        Error::InvalidState {
            state: "destroyed",
            ..
        }
    );
    assert_eq!(kms.decrypt(&ct2, &ctx).await.unwrap().version, 2);
    assert_eq!(kms.encrypt(&key, b"v3", &ctx).await.unwrap().version, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_scheduled_for_deletion_refuses_everything_until_cancelled_or_deleted() {
    use strongroom_core::{AliasName, KeyState};
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (k, key) = kms.key("r", "doomed", None).await;
    kms.svc().create_version(&root(), &key, true).await.unwrap();
    let ctx = ec(&[("t", "1")]);
    let ct = kms.encrypt(&key, b"secret", &ctx).await.unwrap().ciphertext;
    let alias = AliasName::try_new("doomed").unwrap();
    kms.svc()
        .put_alias(&root(), &alias, &key, false)
        .await
        .unwrap();
    let sealed = sealed_material(&kms, &k, 1).await.unwrap();

    // Out-of-range windows change nothing.
    for w in [0, DAY - 1, 120 * DAY + 1] {
        assert_err!(
            kms.svc()
                .schedule_key_deletion(&root(), &key, Some(w))
                .await,
            Error::InvalidArgument { .. }
        );
    }
    let s = kms
        .svc()
        .schedule_key_deletion(&root(), &key, Some(7 * DAY))
        .await
        .unwrap();
    assert_eq!(s.state, KeyState::DeletionScheduled);
    assert_eq!(s.deletion_time, Some(Timestamp(T0 + 7 * DAY)));

    // Nothing may use or change it meanwhile.
    let refused = |e: Error| {
        assert!(
            matches!(
                e,
                Error::InvalidState {
                    state: "deletion_scheduled",
                    ..
                }
            ),
            "{e:?}"
        )
    };
    refused(kms.encrypt(&key, b"x", &ctx).await.unwrap_err());
    refused(kms.decrypt(&ct, &ctx).await.unwrap_err());
    refused(
        kms.svc()
            .set_key_enabled(&root(), &key, true)
            .await
            .unwrap_err(),
    );
    refused(
        kms.svc()
            .create_version(&root(), &key, true)
            .await
            .unwrap_err(),
    );
    refused(
        kms.svc()
            .disable_version(&root(), &key, 1)
            .await
            .unwrap_err(),
    );
    refused(
        kms.svc()
            .update_key(
                &root(),
                &key,
                UpdateKeyInput {
                    description: Some("x".into()),
                    ..UpdateKeyInput::default()
                },
            )
            .await
            .unwrap_err(),
    );
    refused(
        kms.svc()
            .put_alias(&root(), &AliasName::try_new("other").unwrap(), &key, false)
            .await
            .unwrap_err(),
    );
    refused(
        kms.svc()
            .schedule_key_deletion(&root(), &key, None)
            .await
            .unwrap_err(),
    );
    assert_eq!(kms.svc().get_key(&root(), &key).await.unwrap(), s);

    // Cancelled: back as disabled, then usable once enabled.
    let c = kms.svc().cancel_key_deletion(&root(), &key).await.unwrap();
    assert_eq!((c.state, c.deletion_time), (KeyState::Disabled, None));
    assert_err!(
        kms.svc().cancel_key_deletion(&root(), &key).await,
        Error::InvalidState { .. }
    );
    kms.svc()
        .set_key_enabled(&root(), &key, true)
        .await
        .unwrap();
    assert_eq!(
        kms.decrypt(&ct, &ctx)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"secret"
    );

    // Scheduled again and let run out: deleted once, exactly at its time.
    kms.svc()
        .schedule_key_deletion(&root(), &key, Some(DAY))
        .await
        .unwrap();
    kms.advance(DAY - 1);
    assert_eq!(kms.svc().run_due_jobs().await.unwrap().deleted, 0);
    kms.advance(1);
    let r = kms.svc().run_due_jobs().await.unwrap();
    assert_eq!((r.deleted, r.failed), (1, 0));
    assert_eq!(kms.svc().run_due_jobs().await.unwrap().deleted, 0);

    let (gone, versions) = kms.snapshot(&key).await;
    assert_eq!(gone.state, KeyState::Deleted);
    assert_eq!(gone.primary_version, None);
    assert!(versions.iter().all(|v| v.state == VersionState::Destroyed));
    assert_eq!(versions.len(), 2);
    assert_err!(
        kms.svc().get_alias(&root(), &alias).await,
        Error::NotFound { .. }
    );
    assert_err!(
        kms.decrypt(&ct, &ctx).await,
        Error::InvalidState {
            state: "deleted",
            ..
        }
    );
    assert_err!(
        kms.svc().cancel_key_deletion(&root(), &key).await,
        Error::InvalidState {
            state: "deleted",
            ..
        }
    );
    // Gone from the AWS view of all keys, and physically from the store's files.
    let all = kms
        .svc()
        .list_all_keys(&root(), &strongroom_core::PageRequest::default())
        .await
        .unwrap();
    assert!(all.items.iter().all(|x| x.id != k.id));
    assert_eq!(sealed_material(&kms, &k, 1).await, None);
    for (p, bytes) in files_under(&kms.data_dir()) {
        assert!(
            !contains(&bytes, &sealed),
            "{} still holds the deleted key's sealed material",
            p.display()
        );
    }
    let ev = kms
        .audit_events()
        .into_iter()
        .find(|e| e["operation"] == "scheduled-key-deletion")
        .unwrap();
    assert_eq!(ev["principal"], "strongroom-scheduler");
    assert_eq!(ev["key_id"], k.id.to_string());
    assert_eq!(ev["outcome"], "ok");
}
