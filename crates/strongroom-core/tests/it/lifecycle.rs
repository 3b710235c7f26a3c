//! Key rings, keys, versions and aliases through the management API (`docs/key-states.md`).

use strongroom_core::types::{CreateKeyRingInput, KeyFilter, KeyRef, UpdateKeyInput, VersionInfo};
use strongroom_core::{
    AliasName, Error, KeyState, Labels, PageRequest, Protection, Purpose, RingName, Timestamp,
    VersionState,
};

use crate::support::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn page(after: Option<String>, limit: u32) -> PageRequest {
    PageRequest { after, limit }
}

fn alias(name: &str) -> AliasName {
    AliasName::try_new(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rings_create_get_list_and_refusals() {
    let kms = Kms::new().await;
    let svc = kms.svc();
    let created = svc
        .create_key_ring(
            &root(),
            CreateKeyRingInput {
                name: RingName::try_new("payments").unwrap(),
                description: "card data".into(),
                labels: labels(&[("team", "pay")]),
            },
        )
        .await
        .unwrap();
    assert_eq!(created.created_at, Timestamp(T0));
    let got = svc.get_key_ring(&root(), &created.name).await.unwrap();
    assert_eq!(got, created);

    // Duplicate: refused, and the first ring is untouched.
    assert_err!(
        svc.create_key_ring(
            &root(),
            CreateKeyRingInput {
                name: created.name.clone(),
                description: "other".into(),
                labels: Labels::new(),
            },
        )
        .await,
        Error::AlreadyExists { kind: "key ring", ref name } if name == "payments"
    );
    assert_eq!(
        svc.get_key_ring(&root(), &created.name).await.unwrap(),
        created
    );

    // `alias` is reserved: `alias/<name>` refers to aliases.
    let reserved = RingName::try_new("alias").unwrap();
    assert_err!(
        svc.create_key_ring(
            &root(),
            CreateKeyRingInput {
                name: reserved.clone(),
                description: String::new(),
                labels: Labels::new(),
            },
        )
        .await,
        Error::InvalidArgument { ref field, .. } if field == "name"
    );
    assert_err!(
        svc.get_key_ring(&root(), &reserved).await,
        Error::NotFound {
            kind: "key ring",
            ..
        }
    );

    // Bad labels and descriptions are refused and create nothing.
    for (desc, l) in [
        ("ok", labels(&[("Team", "x")])),
        ("ok", labels(&[("team", "has space")])),
        ("bell\u{7}", Labels::new()),
        (&*"x".repeat(1025), Labels::new()),
    ] {
        assert_err!(
            svc.create_key_ring(
                &root(),
                CreateKeyRingInput {
                    name: RingName::try_new("bad").unwrap(),
                    description: desc.to_string(),
                    labels: l,
                },
            )
            .await,
            Error::InvalidArgument { .. }
        );
    }
    assert_err!(
        svc.get_key_ring(&root(), &RingName::try_new("bad").unwrap())
            .await,
        Error::NotFound { .. }
    );

    // Listing pages through every ring in name order.
    for n in ["a", "b", "c"] {
        kms.ring(n).await;
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let p = svc.list_key_rings(&root(), &page(after, 2)).await.unwrap();
        assert!(p.items.len() <= 2);
        seen.extend(p.items.iter().map(|r| r.name.to_string()));
        match p.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "payments"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_purpose_gets_its_default_algorithm() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    // Neither purpose nor algorithm: AES-256-GCM for encrypt-decrypt.
    let (k, v) = kms
        .svc()
        .create_key(&root(), key_input("r", "plain"))
        .await
        .unwrap();
    assert_eq!(
        (k.purpose, k.algorithm.name().as_str()),
        (Purpose::EncryptDecrypt, "aes-256-gcm")
    );
    assert_eq!(v.state, VersionState::Enabled);

    for (i, p) in Purpose::ALL.into_iter().enumerate() {
        let mut input = key_input("r", &format!("p{i}"));
        input.purpose = Some(p);
        let (k, v) = kms.svc().create_key(&root(), input).await.unwrap();
        assert_eq!(k.purpose, p);
        assert_eq!(k.algorithm, p.default_algorithm(), "{p}");
        assert_eq!(v.version, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_explicit_algorithms() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let names = [
        "aes-256-gcm",
        "chacha20-poly1305",
        "rsa-oaep-2048-sha256",
        "rsa-pss-2048-sha256",
        "rsa-pkcs1-2048-sha512",
        "ecdsa-p256-sha256",
        "ecdsa-p384-sha384",
        "ecdsa-p521-sha512",
        "ecdsa-secp256k1-sha256",
        "ed25519",
        "ml-dsa-44",
        "ecdh-p256",
        "hmac-sha224",
        "hmac-sha256",
        "hmac-sha384",
        "hmac-sha512",
    ];
    for (i, name) in names.into_iter().enumerate() {
        let a = alg(name);
        let mut input = key_input("r", &format!("k{i}"));
        input.algorithm = Some(a);
        input.description = format!("a {name} key");
        input.labels = labels(&[("alg", name)]);
        // Naming the matching purpose too is fine.
        if i % 2 == 0 {
            input.purpose = Some(a.purpose());
        }
        let (k, v) = kms.svc().create_key(&root(), input).await.unwrap();
        assert_eq!(k.algorithm, a);
        assert_eq!(k.purpose, a.purpose());
        assert_eq!(k.state, KeyState::Enabled);
        assert_eq!(k.protection, Protection::Software);
        assert!(!k.exportable);
        assert_eq!((k.primary_version, k.version_count), (Some(1), 1));
        assert_eq!((k.rotation_period_secs, k.next_rotation_time), (None, None));
        assert_eq!(k.created_at, Timestamp(T0));
        assert_eq!(
            v,
            VersionInfo {
                version: 1,
                state: VersionState::Enabled,
                origin: strongroom_core::VersionOrigin::Creation,
                created_at: Timestamp(T0),
                destroy_time: None,
                destroyed_at: None,
            }
        );
        // What get_key returns is what create_key returned, by path and by id.
        let r = path("r", &format!("k{i}"));
        assert_eq!(kms.svc().get_key(&root(), &r).await.unwrap(), k);
        assert_eq!(
            kms.svc()
                .get_key(&root(), &KeyRef::parse(&format!("r/k{i}"), "key").unwrap())
                .await
                .unwrap(),
            k
        );
        assert_eq!(
            kms.svc().get_key(&root(), &KeyRef::Id(k.id)).await.unwrap(),
            k
        );
        let pk = kms.svc().get_public_key(&root(), &r, None).await;
        if a.is_asymmetric() {
            let pk = pk.unwrap();
            assert_eq!((pk.version, pk.algorithm), (1, a));
            assert!(pk.der.len() > 32);
        } else {
            assert_err!(pk, Error::InvalidKeyUsage { .. });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_key_refusals_change_nothing() {
    let kms = Kms::new().await;
    let existing = kms.aes_key("r", "k").await;
    let before = kms.snapshot(&existing).await;

    // Purpose and algorithm disagree.
    let mut input = key_input("r", "mismatch");
    input.purpose = Some(Purpose::EncryptDecrypt);
    input.algorithm = Some(alg("ecdsa-p256-sha256"));
    assert_err!(
        kms.svc().create_key(&root(), input).await,
        Error::InvalidArgument { ref field, .. } if field == "algorithm"
    );
    let mut input = key_input("r", "mismatch");
    input.purpose = Some(Purpose::Mac);
    input.algorithm = Some(alg("aes-256-gcm"));
    assert_err!(
        kms.svc().create_key(&root(), input).await,
        Error::InvalidArgument { ref field, .. } if field == "algorithm"
    );

    // The ring does not exist.
    assert_err!(
        kms.svc().create_key(&root(), key_input("nope", "k")).await,
        Error::NotFound { kind: "key ring", ref name } if name == "nope"
    );
    assert_err!(
        kms.svc()
            .get_key_ring(&root(), &RingName::try_new("nope").unwrap())
            .await,
        Error::NotFound { .. }
    );

    // The name is taken.
    assert_err!(
        kms.svc().create_key(&root(), key_input("r", "k")).await,
        Error::AlreadyExists { kind: "key", ref name } if name == "r/k"
    );

    // Rotation only for encrypt-decrypt, 1 day to 100 years, and a next time needs a period.
    let mut input = key_input("r", "rot");
    input.algorithm = Some(alg("hmac-sha256"));
    input.rotation_period_secs = Some(30 * DAY);
    assert_err!(
        kms.svc().create_key(&root(), input).await,
        Error::InvalidArgument { ref field, .. } if field == "rotation_period"
    );
    for p in [0, DAY - 1, 36_500 * DAY + 1, -DAY] {
        let mut input = key_input("r", "rot");
        input.rotation_period_secs = Some(p);
        assert_err!(
            kms.svc().create_key(&root(), input).await,
            Error::InvalidArgument { ref field, .. } if field == "rotation_period"
        );
    }
    let mut input = key_input("r", "rot");
    input.next_rotation_time = Some(Timestamp(T0 + DAY));
    assert_err!(
        kms.svc().create_key(&root(), input).await,
        Error::InvalidArgument { ref field, .. } if field == "next_rotation_time"
    );
    let mut input = key_input("r", "rot");
    input.labels = labels(&[("UPPER", "x")]);
    assert_err!(
        kms.svc().create_key(&root(), input).await,
        Error::InvalidArgument { ref field, .. } if field == "labels"
    );

    // Nothing was created and the existing key is unchanged.
    let all = kms
        .svc()
        .list_keys(
            &root(),
            &RingName::try_new("r").unwrap(),
            &KeyFilter::default(),
            &page(None, 0),
        )
        .await
        .unwrap();
    let names: Vec<_> = all.items.iter().map(|k| k.name.to_string()).collect();
    assert_eq!(names, ["k"]);
    assert_eq!(kms.snapshot(&existing).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keys_filters_and_pages() {
    let kms = Kms::new().await;
    let ring = kms.ring("r").await;
    // 9 keys: names k0..k8; team a for even, b for odd; every third one is an HMAC key;
    // k4 and k7 are disabled.
    for i in 0..9 {
        let mut input = key_input("r", &format!("k{i}"));
        input.labels = labels(&[
            ("team", if i % 2 == 0 { "a" } else { "b" }),
            ("n", &i.to_string()),
        ]);
        if i % 3 == 0 {
            input.algorithm = Some(alg("hmac-sha256"));
        }
        kms.svc().create_key(&root(), input).await.unwrap();
    }
    for i in [4, 7] {
        kms.svc()
            .set_key_enabled(&root(), &path("r", &format!("k{i}")), false)
            .await
            .unwrap();
    }
    // Another ring's keys never show up.
    kms.ring("other").await;
    kms.key("other", "k0", None).await;

    let list = |filter: KeyFilter, limit: u32| {
        let ring = ring.clone();
        let svc = kms.svc();
        async move {
            let mut names = Vec::new();
            let mut after = None;
            let mut pages = 0;
            loop {
                let p = svc
                    .list_keys(&root(), &ring, &filter, &page(after, limit))
                    .await
                    .unwrap();
                pages += 1;
                assert!(limit == 0 || p.items.len() <= limit as usize);
                names.extend(p.items.iter().map(|k| k.name.to_string()));
                match p.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
                assert!(pages < 100, "listing does not end");
            }
            (names, pages)
        }
    };
    let all: Vec<String> = (0..9).map(|i| format!("k{i}")).collect();
    assert_eq!(list(KeyFilter::default(), 0).await, (all.clone(), 1));
    let (names, pages) = list(KeyFilter::default(), 2).await;
    assert_eq!(names, all);
    assert!(pages >= 5, "{pages} pages of 2 for 9 keys");

    let team_a = KeyFilter {
        labels: labels(&[("team", "a")]),
        ..KeyFilter::default()
    };
    assert_eq!(
        list(team_a.clone(), 0).await.0,
        ["k0", "k2", "k4", "k6", "k8"]
    );
    assert_eq!(list(team_a, 1).await.0, ["k0", "k2", "k4", "k6", "k8"]);

    let disabled = KeyFilter {
        state: Some(KeyState::Disabled),
        ..KeyFilter::default()
    };
    assert_eq!(list(disabled, 1).await.0, ["k4", "k7"]);

    let mac = KeyFilter {
        purpose: Some(Purpose::Mac),
        ..KeyFilter::default()
    };
    assert_eq!(list(mac, 0).await.0, ["k0", "k3", "k6"]);

    let combined = KeyFilter {
        labels: labels(&[("team", "b")]),
        state: Some(KeyState::Enabled),
        purpose: Some(Purpose::EncryptDecrypt),
    };
    assert_eq!(list(combined, 0).await.0, ["k1", "k5"]);

    let both_labels = KeyFilter {
        labels: labels(&[("team", "b"), ("n", "3")]),
        ..KeyFilter::default()
    };
    assert_eq!(list(both_labels, 0).await.0, ["k3"]);

    let none = KeyFilter {
        labels: labels(&[("team", "c")]),
        ..KeyFilter::default()
    };
    assert_eq!(list(none, 0).await, (vec![], 1));

    assert_err!(
        kms.svc()
            .list_keys(
                &root(),
                &RingName::try_new("missing").unwrap(),
                &KeyFilter::default(),
                &page(None, 0)
            )
            .await,
        Error::NotFound {
            kind: "key ring",
            ..
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_key_changes_only_what_it_may() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let mut input = key_input("r", "k");
    input.exportable = true;
    let (k0, _) = kms.svc().create_key(&root(), input).await.unwrap();
    let key = path("r", "k");
    kms.advance(60);

    let k1 = kms
        .svc()
        .update_key(
            &root(),
            &key,
            UpdateKeyInput {
                description: Some("new text".into()),
                labels: Some(labels(&[("env", "prod")])),
                ..UpdateKeyInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(k1.description, "new text");
    assert_eq!(k1.labels, labels(&[("env", "prod")]));
    assert_eq!(k1.revision, k0.revision + 1);
    assert_eq!(k1.updated_at, Timestamp(T0 + 60));
    assert_eq!(
        (k1.id, k1.created_at, k1.algorithm),
        (k0.id, k0.created_at, k0.algorithm)
    );
    assert_eq!(kms.svc().get_key(&root(), &key).await.unwrap(), k1);

    // exportable: true → false is allowed, false → true never.
    let k2 = kms
        .svc()
        .update_key(
            &root(),
            &key,
            UpdateKeyInput {
                exportable: Some(false),
                ..UpdateKeyInput::default()
            },
        )
        .await
        .unwrap();
    assert!(!k2.exportable);
    let before = kms.snapshot(&key).await;
    assert_err!(
        kms.svc()
            .update_key(
                &root(),
                &key,
                UpdateKeyInput {
                    exportable: Some(true),
                    description: Some("sneaky".into()),
                    ..UpdateKeyInput::default()
                },
            )
            .await,
        Error::InvalidArgument { ref field, .. } if field == "exportable"
    );
    assert_eq!(kms.snapshot(&key).await, before);

    // Invalid labels or description: nothing changes, not even the other fields.
    for bad in [
        UpdateKeyInput {
            labels: Some(labels(&[("1bad", "x")])),
            description: Some("changed".into()),
            ..UpdateKeyInput::default()
        },
        UpdateKeyInput {
            description: Some("nul\0".into()),
            ..UpdateKeyInput::default()
        },
    ] {
        assert_err!(
            kms.svc().update_key(&root(), &key, bad).await,
            Error::InvalidArgument { .. }
        );
    }
    assert_eq!(kms.snapshot(&key).await, before);

    // Rotation: on, with next time now + period; an explicit next time; off again.
    let k3 = kms
        .svc()
        .update_key(
            &root(),
            &key,
            UpdateKeyInput {
                rotation_period_secs: Some(Some(2 * DAY)),
                ..UpdateKeyInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(k3.rotation_period_secs, Some(2 * DAY));
    assert_eq!(k3.next_rotation_time, Some(Timestamp(T0 + 60 + 2 * DAY)));
    let k4 = kms
        .svc()
        .update_key(
            &root(),
            &key,
            UpdateKeyInput {
                next_rotation_time: Some(Timestamp(T0 + 5 * DAY)),
                ..UpdateKeyInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(k4.next_rotation_time, Some(Timestamp(T0 + 5 * DAY)));
    let k5 = kms
        .svc()
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
    assert_eq!(
        (k5.rotation_period_secs, k5.next_rotation_time),
        (None, None)
    );
    let before = kms.snapshot(&key).await;
    assert_err!(
        kms.svc()
            .update_key(
                &root(),
                &key,
                UpdateKeyInput {
                    next_rotation_time: Some(Timestamp(T0 + DAY)),
                    ..UpdateKeyInput::default()
                },
            )
            .await,
        Error::InvalidArgument { ref field, .. } if field == "next_rotation_time"
    );
    assert_err!(
        kms.svc()
            .update_key(
                &root(),
                &key,
                UpdateKeyInput {
                    rotation_period_secs: Some(Some(3600)),
                    ..UpdateKeyInput::default()
                },
            )
            .await,
        Error::InvalidArgument { ref field, .. } if field == "rotation_period"
    );
    assert_eq!(kms.snapshot(&key).await, before);

    // Only encrypt-decrypt keys rotate automatically.
    let (_, mac) = kms.key("r", "mac", Some(alg("hmac-sha256"))).await;
    let before = kms.snapshot(&mac).await;
    assert_err!(
        kms.svc()
            .update_key(
                &root(),
                &mac,
                UpdateKeyInput {
                    rotation_period_secs: Some(Some(30 * DAY)),
                    ..UpdateKeyInput::default()
                },
            )
            .await,
        Error::InvalidArgument { ref field, .. } if field == "rotation_period"
    );
    assert_eq!(kms.snapshot(&mac).await, before);

    // A missing key.
    assert_err!(
        kms.svc()
            .update_key(&root(), &path("r", "missing"), UpdateKeyInput::default())
            .await,
        Error::NotFound { kind: "key", .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_and_disable_a_key() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let ct = kms.encrypt(&key, b"x", &ec(&[])).await.unwrap().ciphertext;

    let k = kms
        .svc()
        .set_key_enabled(&root(), &key, false)
        .await
        .unwrap();
    assert_eq!(k.state, KeyState::Disabled);
    // Idempotent: a second disable writes nothing.
    let again = kms
        .svc()
        .set_key_enabled(&root(), &key, false)
        .await
        .unwrap();
    assert_eq!(again, k);

    let e = assert_err!(
        kms.encrypt(&key, b"x", &ec(&[])).await,
        Error::InvalidState {
            state: "disabled",
            operation: "encrypt",
            ..
        }
    );
    assert!(e.to_string().contains("disabled"), "{e}");
    assert_err!(
        kms.decrypt(&ct, &ec(&[])).await,
        Error::InvalidState {
            state: "disabled",
            operation: "decrypt",
            ..
        }
    );
    // Management still works on a disabled key; versions keep their own state.
    let (_, v2) = kms.svc().create_version(&root(), &key, true).await.unwrap();
    assert_eq!(v2.state, VersionState::Enabled);

    let k = kms
        .svc()
        .set_key_enabled(&root(), &key, true)
        .await
        .unwrap();
    assert_eq!(k.state, KeyState::Enabled);
    assert_eq!(kms.encrypt(&key, b"x", &ec(&[])).await.unwrap().version, 2);
    assert_eq!(kms.decrypt(&ct, &ec(&[])).await.unwrap().version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_the_primary() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    kms.advance(10);

    let (k, v2) = kms.svc().create_version(&root(), &key, true).await.unwrap();
    assert_eq!(
        (v2.version, v2.state, v2.created_at),
        (2, VersionState::Enabled, Timestamp(T0 + 10))
    );
    assert_eq!((k.primary_version, k.version_count), (Some(2), 2));
    assert_eq!(kms.encrypt(&key, b"x", &ec(&[])).await.unwrap().version, 2);

    let (k, v3) = kms
        .svc()
        .create_version(&root(), &key, false)
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!((k.primary_version, k.version_count), (Some(2), 3));
    assert_eq!(kms.encrypt(&key, b"x", &ec(&[])).await.unwrap().version, 2);

    let k = kms
        .svc()
        .set_primary_version(&root(), &key, 3)
        .await
        .unwrap();
    assert_eq!(k.primary_version, Some(3));
    assert_eq!(kms.encrypt(&key, b"x", &ec(&[])).await.unwrap().version, 3);
    // Setting the current primary again is a no-op.
    assert_eq!(
        kms.svc()
            .set_primary_version(&root(), &key, 3)
            .await
            .unwrap(),
        k
    );

    // Versions list in order.
    let (_, vs) = kms.snapshot(&key).await;
    assert_eq!(vs.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2, 3]);
    let (_, p) = kms
        .svc()
        .list_versions(&root(), &key, &page(None, 2))
        .await
        .unwrap();
    assert_eq!(p.items.len(), 2);
    let (_, p) = kms
        .svc()
        .list_versions(&root(), &key, &page(p.next, 2))
        .await
        .unwrap();
    assert_eq!(p.items.iter().map(|v| v.version).collect::<Vec<_>>(), [3]);
    assert_eq!(p.next, None);

    // A missing version and a disabled one cannot become primary.
    let before = kms.snapshot(&key).await;
    assert_err!(
        kms.svc().set_primary_version(&root(), &key, 9).await,
        Error::NotFound {
            kind: "key version",
            ..
        }
    );
    assert_err!(
        kms.svc().get_version(&root(), &key, 9).await,
        Error::NotFound {
            kind: "key version",
            ..
        }
    );
    kms.svc().disable_version(&root(), &key, 1).await.unwrap();
    let before_disabled = kms.snapshot(&key).await;
    assert_ne!(before_disabled, before);
    let e = assert_err!(
        kms.svc().set_primary_version(&root(), &key, 1).await,
        Error::InvalidState {
            state: "disabled",
            operation: "set-primary-version",
            ..
        }
    );
    assert!(e.to_string().contains("version 1"), "{e}");
    assert_eq!(kms.snapshot(&key).await, before_disabled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_state_machine() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let ctx = ec(&[("app", "t")]);
    let ct1 = kms
        .encrypt(&key, b"v1 data", &ctx)
        .await
        .unwrap()
        .ciphertext;
    kms.svc().create_version(&root(), &key, true).await.unwrap();

    // enabled → disabled (twice: no-op) → enabled.
    let v = kms.svc().disable_version(&root(), &key, 1).await.unwrap();
    assert_eq!(v.state, VersionState::Disabled);
    assert_err!(
        kms.decrypt(&ct1, &ctx).await,
        Error::InvalidState {
            state: "disabled",
            ..
        }
    );
    let same = kms.snapshot(&key).await;
    assert_eq!(
        kms.svc().disable_version(&root(), &key, 1).await.unwrap(),
        v
    );
    assert_eq!(kms.snapshot(&key).await, same, "a no-op disable wrote");
    let v = kms.svc().enable_version(&root(), &key, 1).await.unwrap();
    assert_eq!(v.state, VersionState::Enabled);
    kms.decrypt(&ct1, &ctx).await.unwrap();

    // Windows outside 1 to 120 days are refused and change nothing.
    let before = kms.snapshot(&key).await;
    for w in [0, DAY - 1, 121 * DAY, 120 * DAY + 1, -DAY] {
        assert_err!(
            kms.svc()
                .schedule_version_destruction(&root(), &key, 1, Some(w))
                .await,
            Error::InvalidArgument { ref field, .. } if field == "window"
        );
    }
    assert_eq!(kms.snapshot(&key).await, before);

    // Default window: 30 days.
    kms.advance(100);
    let v = kms
        .svc()
        .schedule_version_destruction(&root(), &key, 1, None)
        .await
        .unwrap();
    assert_eq!(v.state, VersionState::DestroyScheduled);
    assert_eq!(v.destroy_time, Some(Timestamp(T0 + 100 + 30 * DAY)));
    let e = assert_err!(
        kms.decrypt(&ct1, &ctx).await,
        Error::InvalidState {
            state: "destroy_scheduled",
            operation: "decrypt",
            ..
        }
    );
    assert!(e.to_string().contains("destroy_scheduled"), "{e}");

    // While scheduled: no enable, no disable, no second schedule.
    let before = kms.snapshot(&key).await;
    assert_err!(
        kms.svc().enable_version(&root(), &key, 1).await,
        Error::InvalidState {
            state: "destroy_scheduled",
            ..
        }
    );
    assert_err!(
        kms.svc().disable_version(&root(), &key, 1).await,
        Error::InvalidState {
            state: "destroy_scheduled",
            ..
        }
    );
    assert_err!(
        kms.svc()
            .schedule_version_destruction(&root(), &key, 1, Some(DAY))
            .await,
        Error::InvalidState {
            state: "destroy_scheduled",
            ..
        }
    );
    assert_eq!(kms.snapshot(&key).await, before);

    // Restore lands in disabled (still refused), enable makes it usable again.
    let v = kms.svc().restore_version(&root(), &key, 1).await.unwrap();
    assert_eq!((v.state, v.destroy_time), (VersionState::Disabled, None));
    assert_err!(
        kms.decrypt(&ct1, &ctx).await,
        Error::InvalidState {
            state: "disabled",
            ..
        }
    );
    let v = kms.svc().enable_version(&root(), &key, 1).await.unwrap();
    assert_eq!(v.state, VersionState::Enabled);
    assert_eq!(
        kms.decrypt(&ct1, &ctx)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"v1 data"
    );

    // Restore needs destroy_scheduled.
    let before = kms.snapshot(&key).await;
    assert_err!(
        kms.svc().restore_version(&root(), &key, 1).await,
        Error::InvalidState {
            state: "enabled",
            operation: "restore-version",
            ..
        }
    );
    assert_eq!(kms.snapshot(&key).await, before);

    // The window bounds themselves are accepted, from enabled and from disabled.
    let v = kms
        .svc()
        .schedule_version_destruction(&root(), &key, 1, Some(DAY))
        .await
        .unwrap();
    assert_eq!(v.destroy_time, Some(Timestamp(T0 + 100 + DAY)));
    kms.svc().disable_version(&root(), &key, 2).await.unwrap();
    let v = kms
        .svc()
        .schedule_version_destruction(&root(), &key, 2, Some(120 * DAY))
        .await
        .unwrap();
    assert_eq!(v.destroy_time, Some(Timestamp(T0 + 100 + 120 * DAY)));
    // The primary (2) is now scheduled: encrypt refuses until another version is primary.
    assert_err!(
        kms.encrypt(&key, b"x", &ctx).await,
        Error::InvalidState {
            state: "destroy_scheduled",
            operation: "encrypt",
            ..
        }
    );
    let (_, v3) = kms.svc().create_version(&root(), &key, true).await.unwrap();
    assert_eq!(
        kms.encrypt(&key, b"x", &ctx).await.unwrap().version,
        v3.version
    );

    // Unknown versions.
    assert_err!(
        kms.svc().disable_version(&root(), &key, 42).await,
        Error::NotFound {
            kind: "key version",
            ..
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases() {
    let kms = Kms::new().await;
    let a = kms.aes_key("r", "a").await;
    let b = kms.aes_key("r", "b").await;
    let ka = kms.svc().get_key(&root(), &a).await.unwrap();
    let kb = kms.svc().get_key(&root(), &b).await.unwrap();
    let name = alias("team/pay");
    let via_alias = KeyRef::Alias(name.clone());

    let info = kms
        .svc()
        .put_alias(&root(), &name, &a, false)
        .await
        .unwrap();
    assert_eq!((info.name.clone(), info.key.id), (name.clone(), ka.id));
    assert_eq!(info.key.path(), "r/a");
    assert_eq!(kms.svc().get_alias(&root(), &name).await.unwrap(), info);
    assert_eq!(kms.svc().get_key(&root(), &via_alias).await.unwrap(), ka);

    // Operations through the alias use the key it points to.
    let out = kms.encrypt(&via_alias, b"hello", &ec(&[])).await.unwrap();
    assert_eq!(out.key.id, ka.id);
    let ct_a = out.ciphertext;

    // Creating it again is refused and changes nothing.
    assert_err!(
        kms.svc().put_alias(&root(), &name, &b, false).await,
        Error::AlreadyExists { kind: "alias", .. }
    );
    assert_eq!(kms.svc().get_alias(&root(), &name).await.unwrap(), info);

    // An alias cannot point to an alias, or to a missing key.
    kms.svc()
        .put_alias(&root(), &alias("second"), &b, false)
        .await
        .unwrap();
    assert_err!(
        kms.svc()
            .put_alias(&root(), &name, &KeyRef::Alias(alias("second")), true)
            .await,
        Error::InvalidArgument { ref field, .. } if field == "key"
    );
    assert_err!(
        kms.svc()
            .put_alias(&root(), &alias("third"), &KeyRef::Alias(alias("second")), false)
            .await,
        Error::InvalidArgument { ref field, .. } if field == "key"
    );
    assert_err!(
        kms.svc()
            .put_alias(&root(), &alias("third"), &path("r", "missing"), false)
            .await,
        Error::NotFound { kind: "key", .. }
    );
    assert_err!(
        kms.svc().get_alias(&root(), &alias("third")).await,
        Error::NotFound { kind: "alias", .. }
    );
    assert_eq!(kms.svc().get_alias(&root(), &name).await.unwrap(), info);

    // Updating a missing alias is NotFound, not a create.
    assert_err!(
        kms.svc()
            .put_alias(&root(), &alias("ghost"), &a, true)
            .await,
        Error::NotFound { kind: "alias", .. }
    );
    assert_err!(
        kms.svc().get_alias(&root(), &alias("ghost")).await,
        Error::NotFound { kind: "alias", .. }
    );

    // Re-pointing (by key id this time) switches which key encrypts.
    kms.advance(5);
    let moved = kms
        .svc()
        .put_alias(&root(), &name, &KeyRef::Id(kb.id), true)
        .await
        .unwrap();
    assert_eq!(moved.key.id, kb.id);
    assert_eq!(moved.updated_at, Timestamp(T0 + 5));
    assert_eq!(moved.created_at, info.created_at);
    let out = kms.encrypt(&via_alias, b"hello", &ec(&[])).await.unwrap();
    assert_eq!(out.key.id, kb.id);
    // Old ciphertexts still decrypt by their own key id, whatever the alias says now.
    assert_eq!(kms.decrypt(&ct_a, &ec(&[])).await.unwrap().key.id, ka.id);

    // Listing, all and per key.
    let all = kms
        .svc()
        .list_aliases(&root(), None, &page(None, 0))
        .await
        .unwrap();
    let names: Vec<_> = all.items.iter().map(|a| a.name.to_string()).collect();
    assert_eq!(names, ["second", "team/pay"]);
    let of_a = kms
        .svc()
        .list_aliases(&root(), Some(&a), &page(None, 0))
        .await
        .unwrap();
    assert!(of_a.items.is_empty());
    let of_b = kms
        .svc()
        .list_aliases(&root(), Some(&b), &page(None, 1))
        .await
        .unwrap();
    assert_eq!(of_b.items.len(), 1);
    let of_b2 = kms
        .svc()
        .list_aliases(&root(), Some(&b), &page(of_b.next, 1))
        .await
        .unwrap();
    let mut names: Vec<_> = of_b
        .items
        .iter()
        .chain(&of_b2.items)
        .map(|a| a.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["second", "team/pay"]);

    // Delete: the alias goes, the key stays.
    let before = kms.snapshot(&b).await;
    kms.svc().delete_alias(&root(), &name).await.unwrap();
    assert_err!(
        kms.svc().get_alias(&root(), &name).await,
        Error::NotFound { kind: "alias", .. }
    );
    assert_err!(
        kms.encrypt(&via_alias, b"x", &ec(&[])).await,
        Error::NotFound { kind: "alias", .. }
    );
    assert_err!(
        kms.svc().delete_alias(&root(), &name).await,
        Error::NotFound { kind: "alias", .. }
    );
    assert_eq!(kms.snapshot(&b).await, before);
    // The name is free again.
    kms.svc()
        .put_alias(&root(), &name, &a, false)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_by_every_kind_of_reference() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
    for r in [
        path("r", "missing"),
        path("no-ring", "k"),
        KeyRef::parse(id, "key").unwrap(),
    ] {
        assert_err!(
            kms.svc().get_key(&root(), &r).await,
            Error::NotFound { kind: "key", ref name } if *name == r.to_string()
        );
    }
    assert_err!(
        kms.svc()
            .get_key(&root(), &KeyRef::Alias(alias("missing")))
            .await,
        Error::NotFound { kind: "alias", ref name } if name == "missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_to_one_key_all_apply() {
    // docs/key-states.md "Concurrency": a lost compare-and-swap is retried, not reported.
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let svc = kms.opened().service.clone();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let svc = svc.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                svc.create_version(&root(), &key, true)
                    .await
                    .map(|(_, v)| v.version)
            } else {
                svc.update_key(
                    &root(),
                    &key,
                    UpdateKeyInput {
                        labels: Some(labels(&[("writer", &i.to_string())])),
                        ..UpdateKeyInput::default()
                    },
                )
                .await
                .map(|_| 0)
            }
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        let v = t.await.unwrap().unwrap();
        if v != 0 {
            versions.push(v);
        }
    }
    drop(svc);
    versions.sort();
    assert_eq!(versions, [2, 3, 4, 5]);
    let (k, vs) = kms.snapshot(&key).await;
    assert_eq!(k.version_count, 5);
    assert_eq!(vs.len(), 5);
    assert_eq!(k.revision, 1 + 8);
    assert!(k.labels.contains_key("writer"));
    // Every version's material was sealed for its own number.
    for v in 1..=5 {
        kms.svc()
            .set_primary_version(&root(), &key, v)
            .await
            .unwrap();
        let ct = kms.encrypt(&key, b"x", &ec(&[])).await.unwrap();
        assert_eq!(ct.version, v);
        kms.decrypt(&ct.ciphertext, &ec(&[])).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_named_by_their_id_and_listed_across_rings() {
    let kms = Kms::new().await;
    kms.ring("a").await;
    kms.ring("b").await;
    let svc = kms.svc();
    let mut input = key_input("a", "unused");
    input.name = None;
    let (k, _) = svc.create_key(&root(), input).await.unwrap();
    assert_eq!(k.name.as_str(), k.id.to_string());
    kms.key("a", "named", None).await;
    for i in 0..3 {
        kms.key("b", &format!("k{i}"), None).await;
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let p = svc.list_all_keys(&root(), &page(after, 2)).await.unwrap();
        assert!(p.items.len() <= 2);
        seen.extend(p.items.iter().map(|k| k.id.to_string()));
        match p.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert_err!(
        svc.list_all_keys(&root(), &page(Some("junk".into()), 2))
            .await,
        Error::InvalidArgument { .. }
    );

    // A principal sees only the rings it may list keys of.
    kms.svc()
        .put_policy(
            &root(),
            "lister",
            r#"permit(principal == Strongroom::Principal::"lister", action == Strongroom::Action::"list-key-rings", resource);
               permit(principal == Strongroom::Principal::"lister", action == Strongroom::Action::"list-keys", resource == Strongroom::KeyRing::"b");"#,
            None,
        )
        .await
        .unwrap();
    svc.create_principal(
        &root(),
        strongroom_core::PrincipalInput {
            name: strongroom_core::PrincipalName::try_new("lister").unwrap(),
            kind: "workload".into(),
            roles: vec![],
            labels: Labels::new(),
            description: String::new(),
            rate_limits: Default::default(),
            tls_certs: vec![],
        },
    )
    .await
    .unwrap();
    let t = svc
        .create_token_for(
            &root(),
            &strongroom_core::PrincipalName::try_new("lister").unwrap(),
            Some(60),
            String::new(),
        )
        .await
        .unwrap();
    let lister = as_token(Some(t.secret.expose_secret()));
    let p = svc.list_all_keys(&lister, &page(None, 100)).await.unwrap();
    assert_eq!(p.items.len(), 3);
    assert!(p.items.iter().all(|k| k.ring.as_str() == "b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_are_merged_and_removed_in_one_change() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, key) = kms.key("r", "k", None).await;
    let svc = kms.svc();
    let update = |set: &[(&str, &str)], remove: &[&str]| UpdateKeyInput {
        set_labels: labels(set),
        remove_labels: remove.iter().map(|r| r.to_string()).collect(),
        ..UpdateKeyInput::default()
    };
    let k = svc
        .update_key(&root(), &key, update(&[("a", "1"), ("b", "2")], &[]))
        .await
        .unwrap();
    assert_eq!(k.labels, labels(&[("a", "1"), ("b", "2")]));
    let k = svc
        .update_key(
            &root(),
            &key,
            update(&[("b", "3"), ("c", "4")], &["a", "zz"]),
        )
        .await
        .unwrap();
    assert_eq!(k.labels, labels(&[("b", "3"), ("c", "4")]));
    // An invalid label refuses the whole change.
    assert_err!(
        svc.update_key(&root(), &key, update(&[("d", "5"), ("Bad", "x")], &["b"]))
            .await,
        Error::InvalidArgument { .. }
    );
    assert_eq!(
        svc.get_key(&root(), &key).await.unwrap().labels,
        labels(&[("b", "3"), ("c", "4")])
    );
}
