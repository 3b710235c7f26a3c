//! Backend-independent store tests. Each takes `&dyn Store` on an empty database.

use std::collections::BTreeMap;
use std::sync::Arc;

use strongroom_crypto::{Algorithm, KeyId, Purpose};
use strongroom_store::*;

pub(crate) async fn ensure_ring(s: &dyn Store, name: &str) {
    s.create_key_ring(&KeyRingRecord {
        name: RingName::try_new(name).unwrap(),
        description: String::new(),
        labels: Labels::new(),
        created_at: Timestamp(100),
    })
    .await
    .unwrap();
}

pub(crate) fn sample_key(ring: &str, name: &str, versions: u32) -> (KeyRecord, Vec<VersionRecord>) {
    let id = KeyId::generate().unwrap();
    let key = KeyRecord {
        id,
        ring: RingName::try_new(ring).unwrap(),
        name: KeyName::try_new(name).unwrap(),
        purpose: Purpose::EncryptDecrypt,
        algorithm: Algorithm::Aes256Gcm,
        protection: Protection::Software,
        external: None,
        origin: KeyOrigin::Generated,
        exportable: false,
        description: "d".into(),
        labels: BTreeMap::from([("team".into(), "payments".into())]),
        state: KeyState::Enabled,
        primary_version: Some(versions),
        version_count: versions,
        rotation_period_secs: None,
        next_rotation_time: None,
        deletion_time: None,
        material_expires_at: None,
        created_at: Timestamp(100),
        updated_at: Timestamp(100),
        revision: 1,
    };
    let vs = (1..=versions)
        .map(|n| VersionRecord {
            origin: VersionOrigin::Creation,
            key_id: id,
            version: n,
            state: VersionState::Enabled,
            sealed_material: Some(vec![n as u8; 45]),
            public_key: None,
            created_at: Timestamp(100),
            destroy_time: None,
            destroyed_at: None,
        })
        .collect();
    (key, vs)
}

pub(crate) async fn key_rings(s: &dyn Store) {
    ensure_ring(s, "a").await;
    let dup = s
        .create_key_ring(&KeyRingRecord {
            name: RingName::try_new("a").unwrap(),
            description: "other".into(),
            labels: Labels::new(),
            created_at: Timestamp(1),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))), "{dup:?}");
    let got = s
        .key_ring(&RingName::try_new("a").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.description, "", "the duplicate must not overwrite");
    assert!(
        s.key_ring(&RingName::try_new("b").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn keys_and_versions(s: &dyn Store) {
    let (key, versions) = sample_key("r", "k", 2);
    let missing_ring = s.create_key(&key, &versions).await;
    assert!(
        matches!(missing_ring, Err(StoreError::NotFound("key ring"))),
        "{missing_ring:?}"
    );
    assert!(
        s.key_by_id(key.id).await.unwrap().is_none(),
        "nothing written on failure"
    );

    ensure_ring(s, "r").await;
    s.create_key(&key, &versions).await.unwrap();
    assert_eq!(
        s.key(&key.ring, &key.name).await.unwrap(),
        Some(Arc::new(key.clone()))
    );
    assert_eq!(
        s.key_by_id(key.id).await.unwrap(),
        Some(Arc::new(key.clone()))
    );
    assert_eq!(
        s.version(key.id, 2).await.unwrap(),
        Some(Arc::new(versions[1].clone()))
    );
    assert!(s.version(key.id, 3).await.unwrap().is_none());

    let (mut same_name, v2) = sample_key("r", "k", 1);
    same_name.name = key.name.clone();
    let dup = s.create_key(&same_name, &v2).await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))), "{dup:?}");
    assert!(
        s.version(same_name.id, 1).await.unwrap().is_none(),
        "no orphan versions"
    );

    // Add a version and change state in one update.
    let mut k = key.clone();
    k.revision += 1;
    k.version_count = 3;
    k.primary_version = Some(3);
    k.state = KeyState::Disabled;
    let mut v1 = versions[0].clone();
    v1.state = VersionState::DestroyScheduled;
    v1.destroy_time = Some(Timestamp(5000));
    let mut v3 = versions[0].clone();
    v3.version = 3;
    v3.sealed_material = Some(vec![3; 45]);
    s.update_key(key.revision, &k, &[v1.clone(), v3.clone()])
        .await
        .unwrap();
    assert_eq!(
        s.key_by_id(key.id).await.unwrap(),
        Some(Arc::new(k.clone()))
    );
    assert_eq!(s.version(key.id, 1).await.unwrap(), Some(Arc::new(v1)));
    assert_eq!(s.version(key.id, 3).await.unwrap(), Some(Arc::new(v3)));
    let page = s
        .list_versions(key.id, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

pub(crate) async fn optimistic_concurrency(s: &dyn Store) {
    ensure_ring(s, "r").await;
    let (key, versions) = sample_key("r", "k", 1);
    s.create_key(&key, &versions).await.unwrap();
    let mut a = key.clone();
    a.revision += 1;
    a.description = "a".into();
    let mut b = key.clone();
    b.revision += 1;
    b.description = "b".into();
    s.update_key(key.revision, &a, &[]).await.unwrap();
    let lost = s.update_key(key.revision, &b, &[]).await;
    assert!(matches!(lost, Err(StoreError::Conflict)), "{lost:?}");
    assert_eq!(s.key_by_id(key.id).await.unwrap().unwrap().description, "a");

    // A conflicting update writes none of its versions.
    let mut v2 = versions[0].clone();
    v2.version = 2;
    let lost = s.update_key(key.revision, &b, &[v2]).await;
    assert!(matches!(lost, Err(StoreError::Conflict)));
    assert!(s.version(key.id, 2).await.unwrap().is_none());

    let (ghost, _) = sample_key("r", "ghost", 1);
    let mut g = ghost.clone();
    g.revision += 1;
    assert!(matches!(
        s.update_key(ghost.revision, &g, &[]).await,
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) async fn pagination(s: &dyn Store) {
    ensure_ring(s, "r").await;
    for i in 0..25 {
        let (k, v) = sample_key("r", &format!("k{i:02}"), 1);
        s.create_key(&k, &v).await.unwrap();
    }
    let ring = RingName::try_new("r").unwrap();
    let mut seen = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 10,
    };
    loop {
        let p = s.list_keys(&ring, &page).await.unwrap();
        assert!(p.items.len() <= 10);
        seen.extend(p.items.iter().map(|k| k.name.to_string()));
        match p.next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    assert_eq!(seen, expected);
    let other = s
        .list_keys(&RingName::try_new("zz").unwrap(), &PageRequest::default())
        .await
        .unwrap();
    assert!(other.items.is_empty() && other.next.is_none());

    // Across rings, by id.
    ensure_ring(s, "r2").await;
    for i in 0..5 {
        let (k, v) = sample_key("r2", &format!("k{i}"), 1);
        s.create_key(&k, &v).await.unwrap();
    }
    let mut ids = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 7,
    };
    loop {
        let p = s.list_all_keys(&page).await.unwrap();
        assert!(p.items.len() <= 7);
        ids.extend(p.items.iter().map(|k| k.id.to_string()));
        match p.next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    assert_eq!(ids.len(), 30);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "by id, each once");
    assert!(matches!(
        s.list_all_keys(&PageRequest {
            after: Some("not-an-id".into()),
            limit: 1
        })
        .await,
        Err(StoreError::Corrupt(_))
    ));
}

pub(crate) async fn key_deletion(s: &dyn Store) {
    ensure_ring(s, "r").await;
    let (k, v) = sample_key("r", "doomed", 1);
    s.create_key(&k, &v).await.unwrap();
    let (other, ov) = sample_key("r", "kept", 1);
    s.create_key(&other, &ov).await.unwrap();
    assert!(
        s.keys_due_for_deletion(Timestamp(i64::MAX), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let scheduled = KeyRecord {
        state: KeyState::DeletionScheduled,
        deletion_time: Some(Timestamp(5000)),
        revision: k.revision + 1,
        ..k.clone()
    };
    s.update_key(k.revision, &scheduled, &[]).await.unwrap();
    let back = s.key_by_id(k.id).await.unwrap().unwrap();
    assert_eq!(*back, scheduled);
    assert!(
        s.keys_due_for_deletion(Timestamp(4999), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.keys_due_for_deletion(Timestamp(5000), 10).await.unwrap(),
        vec![k.id]
    );
    let deleted = KeyRecord {
        state: KeyState::Deleted,
        revision: scheduled.revision + 1,
        ..scheduled.clone()
    };
    s.update_key(scheduled.revision, &deleted, &[])
        .await
        .unwrap();
    assert!(
        s.keys_due_for_deletion(Timestamp(i64::MAX), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.key_by_id(k.id).await.unwrap().unwrap().state,
        KeyState::Deleted
    );
}

pub(crate) async fn material_expiry(s: &dyn Store) {
    ensure_ring(s, "r").await;
    let (mut k, v) = sample_key("r", "imported", 1);
    k.origin = KeyOrigin::Imported;
    k.material_expires_at = Some(Timestamp(7000));
    s.create_key(&k, &v).await.unwrap();
    let (mut never, nv) = sample_key("r", "never", 1);
    never.origin = KeyOrigin::Imported;
    s.create_key(&never, &nv).await.unwrap();
    assert_eq!(*s.key_by_id(k.id).await.unwrap().unwrap(), k);
    let due = |t| async move {
        s.keys_due_for_material_expiry(Timestamp(t), 10)
            .await
            .unwrap()
    };
    assert!(due(6999).await.is_empty());
    assert_eq!(due(7000).await, vec![k.id]);
    // A disabled key's material expires too; a key scheduled for deletion waits.
    let disabled = KeyRecord {
        state: KeyState::Disabled,
        revision: k.revision + 1,
        ..k.clone()
    };
    s.update_key(k.revision, &disabled, &[]).await.unwrap();
    assert_eq!(due(i64::MAX).await, vec![k.id]);
    let scheduled = KeyRecord {
        state: KeyState::DeletionScheduled,
        deletion_time: Some(Timestamp(9000)),
        revision: disabled.revision + 1,
        ..disabled.clone()
    };
    s.update_key(disabled.revision, &scheduled, &[])
        .await
        .unwrap();
    assert!(due(i64::MAX).await.is_empty());
    // Clearing the time (material deleted, or re-imported without expiry) takes it off.
    let cleared = KeyRecord {
        state: KeyState::PendingImport,
        material_expires_at: None,
        deletion_time: None,
        revision: scheduled.revision + 1,
        ..scheduled.clone()
    };
    s.update_key(scheduled.revision, &cleared, &[])
        .await
        .unwrap();
    assert_eq!(*s.key_by_id(k.id).await.unwrap().unwrap(), cleared);
    assert!(due(i64::MAX).await.is_empty());
}

pub(crate) async fn due_lists(s: &dyn Store) {
    ensure_ring(s, "r").await;
    let (mut a, av) = sample_key("r", "a", 1);
    a.rotation_period_secs = Some(86400);
    a.next_rotation_time = Some(Timestamp(1000));
    let (mut b, mut bv) = sample_key("r", "b", 1);
    b.rotation_period_secs = Some(86400);
    b.next_rotation_time = Some(Timestamp(3000));
    bv[0].state = VersionState::DestroyScheduled;
    bv[0].destroy_time = Some(Timestamp(2000));
    s.create_key(&a, &av).await.unwrap();
    s.create_key(&b, &bv).await.unwrap();
    assert_eq!(
        s.keys_due_for_rotation(Timestamp(999), 10).await.unwrap(),
        Vec::<KeyId>::new()
    );
    assert_eq!(
        s.keys_due_for_rotation(Timestamp(1000), 10).await.unwrap(),
        vec![a.id]
    );
    assert_eq!(
        s.keys_due_for_rotation(Timestamp(5000), 10).await.unwrap(),
        vec![a.id, b.id]
    );
    assert_eq!(
        s.keys_due_for_rotation(Timestamp(5000), 1).await.unwrap(),
        vec![a.id]
    );
    assert!(
        s.versions_due_for_destruction(Timestamp(1999), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.versions_due_for_destruction(Timestamp(2000), 10)
            .await
            .unwrap(),
        vec![(b.id, 1)]
    );
}

pub(crate) async fn inventory(s: &dyn Store) {
    assert_eq!(
        s.inventory(Timestamp(0)).await.unwrap(),
        Inventory::default()
    );
    ensure_ring(s, "r").await;
    // a: rotates daily, next rotation at 1000 (versions created at 100).
    let (mut a, av) = sample_key("r", "a", 1);
    a.rotation_period_secs = Some(86400);
    a.next_rotation_time = Some(Timestamp(1000));
    // b: rotates every 500 s but its schedule says later: its primary version is overdue.
    let (mut b, mut bv) = sample_key("r", "b", 2);
    b.rotation_period_secs = Some(500);
    b.next_rotation_time = Some(Timestamp(100_000));
    bv[0].state = VersionState::DestroyScheduled;
    bv[0].destroy_time = Some(Timestamp(2000));
    // c: overdue but scheduled for deletion, which is not drift.
    let (mut c, cv) = sample_key("r", "c", 1);
    c.state = KeyState::DeletionScheduled;
    c.deletion_time = Some(Timestamp(7000));
    c.rotation_period_secs = Some(10);
    c.next_rotation_time = Some(Timestamp(110));
    for (k, v) in [(&a, &av), (&b, &bv), (&c, &cv)] {
        s.create_key(k, v).await.unwrap();
    }
    let inv = s.inventory(Timestamp(300)).await.unwrap();
    assert_eq!(
        inv.keys,
        vec![
            ("deletion_scheduled".into(), "software".into(), 1),
            ("enabled".into(), "software".into(), 2)
        ]
    );
    assert_eq!(
        inv.versions,
        vec![("destroy_scheduled".into(), 1), ("enabled".into(), 3)]
    );
    assert_eq!(inv.rotation_overdue, 0);
    assert_eq!(inv.next_destruction, Some(Timestamp(2000)));
    assert_eq!(inv.next_key_deletion, Some(Timestamp(7000)));
    // At 600, b's primary (created at 100) is past its 500 s period; at 1000, a is due too.
    assert_eq!(
        s.inventory(Timestamp(600)).await.unwrap().rotation_overdue,
        1
    );
    assert_eq!(
        s.inventory(Timestamp(1000)).await.unwrap().rotation_overdue,
        2
    );
}

pub(crate) async fn aliases(s: &dyn Store) {
    ensure_ring(s, "r").await;
    let (a, av) = sample_key("r", "a", 1);
    let (b, bv) = sample_key("r", "b", 1);
    s.create_key(&a, &av).await.unwrap();
    s.create_key(&b, &bv).await.unwrap();
    let name = AliasName::try_new("team/payments").unwrap();
    let rec = AliasRecord {
        name: name.clone(),
        key_id: a.id,
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
    };
    assert!(matches!(
        s.put_alias(&rec, AliasWrite::Update).await,
        Err(StoreError::NotFound("alias"))
    ));
    s.put_alias(&rec, AliasWrite::Create).await.unwrap();
    assert!(matches!(
        s.put_alias(&rec, AliasWrite::Create).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let moved = AliasRecord {
        key_id: b.id,
        updated_at: Timestamp(2),
        ..rec.clone()
    };
    s.put_alias(&moved, AliasWrite::Update).await.unwrap();
    let got = s.alias(&name).await.unwrap().unwrap();
    assert_eq!(
        (got.key_id, got.created_at, got.updated_at),
        (b.id, Timestamp(1), Timestamp(2))
    );
    let ghost = AliasRecord {
        key_id: KeyId::generate().unwrap(),
        ..rec.clone()
    };
    assert!(matches!(
        s.put_alias(&ghost, AliasWrite::Update).await,
        Err(StoreError::NotFound("key"))
    ));
    assert_eq!(
        s.list_aliases(Some(a.id), &PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    assert_eq!(
        s.list_aliases(Some(b.id), &PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    s.delete_alias(&name).await.unwrap();
    assert!(matches!(
        s.delete_alias(&name).await,
        Err(StoreError::NotFound("alias"))
    ));
    assert!(s.alias(&name).await.unwrap().is_none());
}

pub(crate) async fn tokens(s: &dyn Store) {
    let t = TokenRecord {
        id: "tok1".into(),
        hash: [7; 32],
        principal: "root".into(),
        description: "d".into(),
        created_at: Timestamp(1),
        expires_at: Some(Timestamp(100)),
        revoked_at: None,
    };
    s.insert_token(&t).await.unwrap();
    let dup = TokenRecord {
        id: "tok2".into(),
        ..t.clone()
    };
    assert!(
        matches!(
            s.insert_token(&dup).await,
            Err(StoreError::AlreadyExists(_))
        ),
        "hashes are unique"
    );
    assert_eq!(
        s.token_by_hash(&[7; 32]).await.unwrap(),
        Some(Arc::new(t.clone()))
    );
    assert!(s.token_by_hash(&[8; 32]).await.unwrap().is_none());
    s.revoke_token("tok1", Timestamp(50)).await.unwrap();
    s.revoke_token("tok1", Timestamp(60)).await.unwrap();
    assert_eq!(
        s.token("tok1").await.unwrap().unwrap().revoked_at,
        Some(Timestamp(50))
    );
    assert!(matches!(
        s.revoke_token("nope", Timestamp(1)).await,
        Err(StoreError::NotFound("token"))
    ));
    assert_eq!(
        s.list_tokens(&PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

pub(crate) async fn meta(s: &dyn Store) {
    assert_eq!(s.meta("x").await.unwrap(), None);
    assert!(s.put_meta_if_absent("x", b"1").await.unwrap());
    assert!(!s.put_meta_if_absent("x", b"2").await.unwrap());
    assert_eq!(s.meta("x").await.unwrap(), Some(b"1".to_vec()));
    s.put_meta("x", b"3").await.unwrap();
    assert_eq!(s.meta("x").await.unwrap(), Some(b"3".to_vec()));
    assert!(s.is_healthy());
}

pub(crate) async fn principals(s: &dyn Store) {
    let p = PrincipalRecord {
        name: PrincipalName::try_new("payments@prod").unwrap(),
        kind: "workload".into(),
        roles: vec!["key-user".into()],
        labels: BTreeMap::from([("team".into(), "payments".into())]),
        description: String::new(),
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
        disabled_at: None,
        rate_limits: BTreeMap::from([("crypto".into(), 50)]),
        tls_certs: vec!["ab".repeat(32)],
    };
    assert!(matches!(
        s.put_principal(&p, AliasWrite::Update).await,
        Err(StoreError::NotFound(_))
    ));
    s.put_principal(&p, AliasWrite::Create).await.unwrap();
    assert!(matches!(
        s.put_principal(&p, AliasWrite::Create).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let changed = PrincipalRecord {
        roles: vec![],
        disabled_at: Some(Timestamp(5)),
        ..p.clone()
    };
    s.put_principal(&changed, AliasWrite::Update).await.unwrap();
    assert_eq!(s.principal(&p.name).await.unwrap(), Some(Arc::new(changed)));
    assert_eq!(
        s.list_principals(&PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // Client certificate fingerprints find their principal and belong to one principal only.
    assert_eq!(
        s.principal_by_cert(&"ab".repeat(32))
            .await
            .unwrap()
            .map(|p| p.name),
        Some(p.name.clone())
    );
    assert!(
        s.principal_by_cert(&"cd".repeat(32))
            .await
            .unwrap()
            .is_none()
    );
    let thief = PrincipalRecord {
        name: PrincipalName::try_new("thief").unwrap(),
        ..p.clone()
    };
    assert!(matches!(
        s.put_principal(&thief, AliasWrite::Create).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(
        s.principal(&thief.name).await.unwrap().is_none(),
        "nothing written"
    );
    assert!(
        s.principal(&PrincipalName::try_new("nobody").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn policies(s: &dyn Store) {
    assert_eq!(
        s.put_policy(
            "a",
            Some("permit(principal, action, resource);"),
            None,
            Timestamp(1),
            "root"
        )
        .await
        .unwrap(),
        1
    );
    assert!(matches!(
        s.put_policy("a", Some("x"), None, Timestamp(2), "root")
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.put_policy("a", Some("x"), Some(7), Timestamp(2), "root")
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.put_policy("b", Some("x"), Some(1), Timestamp(2), "root")
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.put_policy(
            "a",
            Some("forbid(principal, action, resource);"),
            Some(1),
            Timestamp(3),
            "alice"
        )
        .await
        .unwrap(),
        2
    );
    s.put_policy(
        "b",
        Some("permit(principal, action, resource);"),
        None,
        Timestamp(3),
        "root",
    )
    .await
    .unwrap();
    let live = s.policies().await.unwrap();
    assert_eq!(
        live.iter()
            .map(|p| (p.name.as_str(), p.version))
            .collect::<Vec<_>>(),
        [("a", 2), ("b", 1)]
    );
    assert_eq!(
        live[0].text.as_deref(),
        Some("forbid(principal, action, resource);")
    );
    // Delete, then re-create: versions keep counting, history keeps everything.
    assert_eq!(
        s.put_policy("a", None, Some(2), Timestamp(4), "root")
            .await
            .unwrap(),
        3
    );
    assert_eq!(s.policies().await.unwrap().len(), 1);
    assert_eq!(
        s.put_policy(
            "a",
            Some("permit(principal, action, resource);"),
            None,
            Timestamp(5),
            "root"
        )
        .await
        .unwrap(),
        4
    );
    let h = s.policy_history("a").await.unwrap();
    assert_eq!(
        h.iter()
            .map(|p| (p.version, p.text.is_some(), p.created_by.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, true, "root"),
            (2, true, "alice"),
            (3, false, "root"),
            (4, true, "root")
        ]
    );
}

pub(crate) async fn issuers(s: &dyn Store) {
    let i = IssuerRecord {
        name: "github".into(),
        issuer: "https://token.actions.githubusercontent.com".into(),
        audiences: vec!["strongroom".into()],
        jwks: None,
        jwks_uri: Some("https://token.actions.githubusercontent.com/.well-known/jwks".into()),
        rules: vec![ClaimRule {
            claims: BTreeMap::from([("repository".into(), "acme/*".into())]),
            principal: "ci".into(),
        }],
        max_ttl_secs: 3600,
        created_at: 1,
        updated_at: 1,
    };
    s.put_issuer(&i).await.unwrap();
    assert_eq!(s.issuer("github").await.unwrap(), Some(i.clone()));
    let j = IssuerRecord {
        max_ttl_secs: 60,
        updated_at: 2,
        ..i.clone()
    };
    s.put_issuer(&j).await.unwrap();
    assert_eq!(s.issuers().await.unwrap(), vec![j]);
    s.delete_issuer("github").await.unwrap();
    assert!(matches!(
        s.delete_issuer("github").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.issuer("github").await.unwrap().is_none());
}

pub(crate) async fn access_keys(s: &dyn Store) {
    let k = AccessKeyRecord {
        id: "SRAKAAAAAAAAAAAAAAAA".into(),
        principal: "svc".into(),
        sealed_secret: vec![9; 61],
        description: "ci".into(),
        created_at: Timestamp(1),
        revoked_at: None,
        expires_at: None,
        session_token_hash: None,
    };
    s.insert_access_key(&k).await.unwrap();
    let session = AccessKeyRecord {
        id: "SRSKAAAAAAAAAAAAAAAA".into(),
        expires_at: Some(Timestamp(99)),
        session_token_hash: Some(vec![7; 32]),
        ..k.clone()
    };
    s.insert_access_key(&session).await.unwrap();
    assert_eq!(
        s.access_key(&session.id).await.unwrap(),
        Some(Arc::new(session.clone()))
    );
    s.revoke_access_key(&session.id, Timestamp(2))
        .await
        .unwrap();
    assert!(matches!(
        s.insert_access_key(&k).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        s.access_key(&k.id).await.unwrap(),
        Some(Arc::new(k.clone()))
    );
    assert_eq!(s.access_keys_of("svc").await.unwrap().len(), 2);
    assert_eq!(s.access_keys_of("svc").await.unwrap()[0], k.clone());
    assert!(s.access_keys_of("other").await.unwrap().is_empty());
    s.revoke_access_key(&k.id, Timestamp(5)).await.unwrap();
    s.revoke_access_key(&k.id, Timestamp(6)).await.unwrap();
    assert_eq!(
        s.access_key(&k.id).await.unwrap().unwrap().revoked_at,
        Some(Timestamp(5))
    );
    assert!(matches!(
        s.revoke_access_key("nope", Timestamp(1)).await,
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) async fn grants(s: &dyn Store) {
    ensure_ring(s, "r").await;
    let (k, v) = sample_key("r", "k", 1);
    s.create_key(&k, &v).await.unwrap();
    let g = GrantRecord {
        id: "srg_1".into(),
        key_id: k.id,
        grantee: "app".into(),
        retiring_principal: Some("ops".into()),
        actions: vec!["decrypt".into(), "encrypt".into()],
        context_subset: Some(BTreeMap::from([("tenant".into(), "acme".into())])),
        context_equals: None,
        name: Some("n".into()),
        token_hash: vec![1; 32],
        created_at: Timestamp(10),
        created_by: "root".into(),
    };
    s.insert_grant(&g).await.unwrap();
    let g2 = GrantRecord {
        id: "srg_2".into(),
        grantee: "other".into(),
        retiring_principal: None,
        token_hash: vec![2; 32],
        created_at: Timestamp(11),
        ..g.clone()
    };
    s.insert_grant(&g2).await.unwrap();
    assert!(matches!(
        s.insert_grant(&g).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(s.grant("srg_1").await.unwrap(), Some(g.clone()));
    assert_eq!(
        s.grant_by_token_hash(&[2; 32]).await.unwrap(),
        Some(g2.clone())
    );
    assert_eq!(
        s.grants_of_key(k.id).await.unwrap(),
        vec![g.clone(), g2.clone()]
    );
    assert_eq!(s.grants_for("app", k.id).await.unwrap(), vec![g.clone()]);
    assert_eq!(s.grants_retirable_by("ops").await.unwrap(), vec![g.clone()]);
    s.delete_grant("srg_1").await.unwrap();
    assert!(matches!(
        s.delete_grant("srg_1").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.grants_for("app", k.id).await.unwrap().is_empty());
}

pub(crate) async fn import_tokens(s: &dyn Store) {
    ensure_ring(s, "r").await;
    let (k, v) = sample_key("r", "imported", 1);
    let k = KeyRecord {
        origin: KeyOrigin::Imported,
        state: KeyState::PendingImport,
        ..k
    };
    s.create_key(&k, &v).await.unwrap();
    assert_eq!(*s.key_by_id(k.id).await.unwrap().unwrap(), k);
    let t = ImportTokenRecord {
        id: "imp_1".into(),
        key_id: k.id,
        token_hash: vec![3; 32],
        wrapping: "rsaes-oaep-sha256".into(),
        wrapping_algorithm: Algorithm::RsaOaep(strongroom_crypto::RsaBits::B2048),
        sealed_private: vec![9; 100],
        expires_at: Timestamp(1000),
        used_at: None,
    };
    s.insert_import_token(&t).await.unwrap();
    assert_eq!(
        s.import_token_by_hash(&[3; 32]).await.unwrap(),
        Some(t.clone())
    );
    assert!(s.import_token_by_hash(&[4; 32]).await.unwrap().is_none());
    s.use_import_token("imp_1", Timestamp(5)).await.unwrap();
    assert!(matches!(
        s.use_import_token("imp_1", Timestamp(6)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.import_token_by_hash(&[3; 32])
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(Timestamp(5))
    );
}

pub(crate) async fn leases(s: &dyn Store) {
    let claim = |holder: &'static str, now: i64, until: i64| async move {
        s.claim_lease("scheduler", holder, Timestamp(now), Timestamp(until))
            .await
            .unwrap()
    };
    assert!(claim("a", 100, 130).await, "free: taken");
    assert!(!claim("b", 110, 140).await, "held by another, not expired");
    assert!(claim("a", 120, 150).await, "the holder renews");
    assert!(!claim("b", 149, 180).await, "one second before expiry");
    assert!(claim("b", 150, 180).await, "expired: another takes over");
    assert!(!claim("a", 160, 190).await, "the old holder lost it");
    // Leases are independent by name.
    assert!(
        s.claim_lease("other", "a", Timestamp(160), Timestamp(190))
            .await
            .unwrap()
    );
}

pub(crate) async fn policy_generation(s: &dyn Store) {
    let g0 = s.policy_generation().await.unwrap();
    s.put_policy(
        "p",
        Some("permit(principal, action, resource);"),
        None,
        Timestamp(1),
        "t",
    )
    .await
    .unwrap();
    let g1 = s.policy_generation().await.unwrap();
    assert!(g1 > g0);
    s.put_policy("p", None, Some(1), Timestamp(2), "t")
        .await
        .unwrap();
    assert!(
        s.policy_generation().await.unwrap() > g1,
        "a delete counts too"
    );
}

pub(crate) async fn key_sets(s: &dyn Store) {
    let set = KeySetRecord {
        name: "payments".into(),
        members: vec![
            KeySetMember {
                provider: "software".into(),
                key: "payments/data".into(),
            },
            KeySetMember {
                provider: "aws".into(),
                key: "arn:aws:kms:eu-west-1:111122223333:key/1".into(),
            },
        ],
        retired: vec![],
        description: "payments data keys".into(),
        labels: BTreeMap::from([("team".into(), "payments".into())]),
        created_at: 1,
        updated_at: 1,
    };
    assert!(matches!(
        s.put_key_set(&set, AliasWrite::Update).await,
        Err(StoreError::NotFound(_))
    ));
    s.put_key_set(&set, AliasWrite::Create).await.unwrap();
    assert!(matches!(
        s.put_key_set(&set, AliasWrite::Create).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(s.key_set("payments").await.unwrap(), Some(set.clone()));
    let changed = KeySetRecord {
        members: set.members[1..].to_vec(),
        retired: set.members[..1].to_vec(),
        updated_at: 2,
        ..set.clone()
    };
    s.put_key_set(&changed, AliasWrite::Update).await.unwrap();
    let other = KeySetRecord {
        name: "backups".into(),
        ..set.clone()
    };
    s.put_key_set(&other, AliasWrite::Create).await.unwrap();
    assert_eq!(s.key_sets().await.unwrap(), vec![other, changed]);
    s.delete_key_set("payments").await.unwrap();
    assert!(matches!(
        s.delete_key_set("payments").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.key_set("payments").await.unwrap().is_none());
}

pub(crate) async fn external_keys(s: &dyn Store) {
    ensure_ring(s, "ext").await;
    let (mut key, mut versions) = sample_key("ext", "aws", 1);
    key.protection = Protection::External;
    key.external = Some(ExternalKey {
        provider: "aws".into(),
        key: "arn:aws:kms:eu-west-1:111122223333:key/1".into(),
    });
    versions[0].sealed_material = None;
    s.create_key(&key, &versions).await.unwrap();
    let got = s.key_by_id(key.id).await.unwrap().unwrap();
    assert_eq!(*got, key);
    assert_eq!(got.external.as_ref().unwrap().provider, "aws");
    let v = s.version(key.id, 1).await.unwrap().unwrap();
    assert!(v.sealed_material.is_none());
    // An update keeps the binding.
    let next = KeyRecord {
        description: "changed".into(),
        revision: key.revision + 1,
        ..key.clone()
    };
    s.update_key(key.revision, &next, &[]).await.unwrap();
    assert_eq!(
        s.key_by_id(key.id).await.unwrap().unwrap().external,
        key.external
    );
}
