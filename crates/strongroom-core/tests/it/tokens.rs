//! API tokens: creation, expiry, revocation, and every way a credential can be wrong
//! (RELIABILITY A1, A2, X3).

use strongroom_core::types::{CreateKeyRingInput, MAX_TOKEN_TTL_SECS};
use strongroom_core::{Error, Labels, PageRequest, Protocol, RequestContext, RingName, Timestamp};

use crate::support::*;

fn all_tokens_page() -> PageRequest {
    PageRequest {
        after: None,
        limit: 1000,
    }
}

async fn create_ring(kms: &Kms, ctx: &RequestContext, name: &str) -> strongroom_core::Result<()> {
    kms.svc()
        .create_key_ring(
            ctx,
            CreateKeyRingInput {
                name: RingName::try_new(name).unwrap(),
                description: String::new(),
                labels: Labels::new(),
            },
        )
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_tokens_work_until_they_expire() {
    let kms = Kms::new().await;
    let new = kms
        .svc()
        .create_token(&root(), Some(3600), "ci pipeline".into())
        .await
        .unwrap();
    let secret = new.secret.expose_secret().to_string();
    assert!(strongroom_core::tokens::looks_like_token(&secret));
    assert!(new.info.id.starts_with("tok_"), "{}", new.info.id);
    assert_eq!(new.info.principal, "root");
    assert_eq!(new.info.description, "ci pipeline");
    assert_eq!(new.info.created_at, Timestamp(T0));
    assert_eq!(new.info.expires_at, Some(Timestamp(T0 + 3600)));
    assert_eq!(new.info.revoked_at, None);
    assert!(
        !format!("{new:?}").contains(&secret),
        "Debug of NewToken shows the secret"
    );

    // It is a credential like any other.
    let me = kms
        .svc()
        .lookup_self(&as_token(Some(&secret)))
        .await
        .unwrap();
    assert_eq!(me, new.info);
    create_ring(&kms, &as_token(Some(&secret)), "by-token")
        .await
        .unwrap();
    // A token made with it acts as the same principal.
    let child = kms
        .svc()
        .create_token(&as_token(Some(&secret)), Some(60), String::new())
        .await
        .unwrap();
    assert_eq!(child.info.principal, "root");

    // Valid until the last second before expiry, refused from expiry on.
    kms.advance(3599);
    kms.svc()
        .lookup_self(&as_token(Some(&secret)))
        .await
        .unwrap();
    kms.advance(1);
    assert_err!(
        kms.svc().lookup_self(&as_token(Some(&secret))).await,
        Error::Unauthenticated
    );
    assert_err!(
        create_ring(&kms, &as_token(Some(&secret)), "too-late").await,
        Error::Unauthenticated
    );
    assert_err!(
        kms.svc()
            .get_key_ring(&root(), &RingName::try_new("too-late").unwrap())
            .await,
        Error::NotFound { .. }
    );
    // The root token does not expire.
    kms.advance(10 * 366 * DAY);
    assert_eq!(
        kms.svc().lookup_self(&root()).await.unwrap().expires_at,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_ttl_and_description_bounds() {
    let kms = Kms::new().await;
    let default = kms
        .svc()
        .create_token(&root(), None, String::new())
        .await
        .unwrap();
    assert_eq!(default.info.expires_at, Some(Timestamp(T0 + DAY)));
    let longest = kms
        .svc()
        .create_token(&root(), Some(MAX_TOKEN_TTL_SECS), String::new())
        .await
        .unwrap();
    assert_eq!(longest.info.expires_at, Some(Timestamp(T0 + 366 * DAY)));
    let shortest = kms
        .svc()
        .create_token(&root(), Some(1), String::new())
        .await
        .unwrap();
    assert_eq!(shortest.info.expires_at, Some(Timestamp(T0 + 1)));

    let count = kms
        .svc()
        .list_tokens(&root(), &all_tokens_page())
        .await
        .unwrap()
        .items
        .len();
    for ttl in [0, -1, MAX_TOKEN_TTL_SECS + 1, i64::MAX, i64::MIN] {
        assert_err!(
            kms.svc().create_token(&root(), Some(ttl), String::new()).await,
            Error::InvalidArgument { ref field, .. } if field == "ttl"
        );
    }
    assert_err!(
        kms.svc().create_token(&root(), None, "esc\u{1b}[31m".into()).await,
        Error::InvalidArgument { ref field, .. } if field == "description"
    );
    assert_eq!(
        kms.svc()
            .list_tokens(&root(), &all_tokens_page())
            .await
            .unwrap()
            .items
            .len(),
        count
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_stop_working_at_once() {
    let kms = Kms::new().await;
    let new = kms
        .svc()
        .create_token(&root(), Some(DAY), String::new())
        .await
        .unwrap();
    let secret = new.secret.expose_secret().to_string();
    kms.svc()
        .lookup_self(&as_token(Some(&secret)))
        .await
        .unwrap();

    kms.advance(5);
    let info = kms.svc().revoke_token(&root(), &new.info.id).await.unwrap();
    assert_eq!(info.revoked_at, Some(Timestamp(T0 + 5)));
    assert_err!(
        kms.svc().lookup_self(&as_token(Some(&secret))).await,
        Error::Unauthenticated
    );
    assert_err!(
        create_ring(&kms, &as_token(Some(&secret)), "nope").await,
        Error::Unauthenticated
    );
    // Revoking again keeps the first revocation time.
    kms.advance(5);
    let again = kms.svc().revoke_token(&root(), &new.info.id).await.unwrap();
    assert_eq!(again.revoked_at, Some(Timestamp(T0 + 5)));

    // The root token cannot be revoked, and still works afterwards.
    assert_err!(
        kms.svc().revoke_token(&root(), "root").await,
        Error::InvalidArgument { ref field, .. } if field == "id"
    );
    let me = kms.svc().lookup_self(&root()).await.unwrap();
    assert_eq!((me.id.as_str(), me.revoked_at), ("root", None));

    // Unknown and malformed ids.
    assert_err!(
        kms.svc()
            .revoke_token(&root(), "tok_0000000000000000")
            .await,
        Error::NotFound { kind: "token", .. }
    );
    for bad in ["../root", "tok 1", "tok_\u{0}", "root\n", &"a".repeat(65)] {
        assert_err!(
            kms.svc().revoke_token(&root(), bad).await,
            Error::InvalidArgument { ref field, .. } if field == "id"
        );
    }

    // A token can revoke itself.
    let other = kms
        .svc()
        .create_token(&root(), None, String::new())
        .await
        .unwrap();
    let other_secret = other.secret.expose_secret().to_string();
    kms.svc()
        .revoke_token(&as_token(Some(&other_secret)), &other.info.id)
        .await
        .unwrap();
    assert_err!(
        kms.svc().lookup_self(&as_token(Some(&other_secret))).await,
        Error::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_bad_credentials_are_unauthenticated() {
    let kms = Kms::new().await;
    let real = kms
        .svc()
        .create_token(&root(), None, String::new())
        .await
        .unwrap();
    let real = real.secret.expose_secret().to_string();
    let lookalike = {
        let mut s = real.clone();
        let last = s.pop().unwrap();
        s.push(if last == 'A' { 'B' } else { 'A' });
        s
    };
    let garbage: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some(" ".into()),
        Some("Bearer test-root-token".into()),
        Some("test-root-token ".into()),
        Some(" test-root-token".into()),
        Some("TEST-ROOT-TOKEN".into()),
        Some("test-root-toke".into()),
        Some("test-root-tokenn".into()),
        Some("test-root-token\0".into()),
        Some(lookalike),
        Some(format!("srt_{}", "A".repeat(43))),
        Some("\u{feff}test-root-token".into()),
        Some("x".repeat(512)),
        Some("x".repeat(513)),
        Some(format!("test-root-token{}", "x".repeat(1 << 20))),
    ];
    let message = Error::Unauthenticated.to_string();
    for t in &garbage {
        let ctx = || as_token(t.as_deref());
        let label = t.as_deref().map(|s| s.chars().take(40).collect::<String>());
        for e in [
            kms.svc().lookup_self(&ctx()).await.unwrap_err(),
            create_ring(&kms, &ctx(), "intruder").await.unwrap_err(),
            kms.svc().generate_random(&ctx(), 16).await.unwrap_err(),
            kms.svc()
                .create_token(&ctx(), None, String::new())
                .await
                .unwrap_err(),
            kms.svc()
                .list_tokens(&ctx(), &all_tokens_page())
                .await
                .unwrap_err(),
        ] {
            assert!(matches!(e, Error::Unauthenticated), "{label:?}: {e:?}");
            // One message for every cause.
            assert_eq!(e.to_string(), message);
        }
    }
    // Nothing was created by any of them.
    assert_err!(
        kms.svc()
            .get_key_ring(&root(), &RingName::try_new("intruder").unwrap())
            .await,
        Error::NotFound { .. }
    );
    assert_eq!(
        kms.svc()
            .list_tokens(&root(), &all_tokens_page())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_tokens_never_shows_secrets() {
    let kms = Kms::new().await;
    let mut secrets = vec![ROOT_TOKEN.to_string()];
    let mut ids = vec!["root".to_string()];
    for i in 0..4 {
        let t = kms
            .svc()
            .create_token(&root(), Some(DAY), format!("token {i}"))
            .await
            .unwrap();
        secrets.push(t.secret.expose_secret().to_string());
        ids.push(t.info.id.clone());
    }
    ids.sort();

    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = kms
            .svc()
            .list_tokens(&root(), &PageRequest { after, limit: 2 })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        let shown = format!("{page:?} {page:#?}");
        for s in &secrets {
            assert!(!shown.contains(s.as_str()), "a token list shows a secret");
        }
        listed.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let listed_ids: Vec<_> = listed.iter().map(|t| t.id.clone()).collect();
    assert_eq!(listed_ids, ids);
    let root_info = listed.iter().find(|t| t.id == "root").unwrap();
    assert_eq!(root_info.principal, "root");
    assert_eq!(root_info.expires_at, None);
    assert_eq!(
        kms.svc().lookup_self(&root()).await.unwrap(),
        root_info.clone()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_identity_cannot_be_claimed_by_a_caller() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let ct = kms
        .encrypt(&key, b"secret", &ec(&[]))
        .await
        .unwrap()
        .ciphertext;
    let claim = || RequestContext {
        request_id: strongroom_core::new_request_id(),
        token: None,
        protocol: Protocol::Scheduler,
        client_addr: Some("203.0.113.9:4242".into()),
        client_cert: None,
        sigv4: None,
        socket_principal: None,
        client_request_id: None,
    };
    let r = kms
        .svc()
        .decrypt(
            &claim(),
            strongroom_core::types::DecryptInput {
                ciphertext: ct,
                context: ec(&[]),
                key: None,
            },
        )
        .await;
    assert!(matches!(r, Err(Error::Unauthenticated)), "{r:?}");
    let r = kms
        .svc()
        .create_token(&claim(), Some(DAY), String::new())
        .await;
    assert!(matches!(r, Err(Error::Unauthenticated)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_never_outlives_its_parent() {
    let kms = Kms::new().await;
    let parent = kms
        .svc()
        .create_token(&root(), Some(3600), "parent".into())
        .await
        .unwrap();
    let parent_secret = parent.secret.expose_secret().to_string();
    let child = kms
        .svc()
        .create_token(
            &as_token(Some(&parent_secret)),
            Some(MAX_TOKEN_TTL_SECS),
            "child".into(),
        )
        .await
        .unwrap();
    assert_eq!(
        child.info.expires_at,
        Some(Timestamp(T0 + 3600)),
        "capped at the parent's expiry"
    );
    let shorter = kms
        .svc()
        .create_token(&as_token(Some(&parent_secret)), Some(60), "short".into())
        .await
        .unwrap();
    assert_eq!(shorter.info.expires_at, Some(Timestamp(T0 + 60)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_empty_id_is_an_invalid_argument() {
    let kms = Kms::new().await;
    let err = kms.svc().revoke_token(&root(), "").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
}
