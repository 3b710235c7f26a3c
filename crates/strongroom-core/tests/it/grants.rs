//! Grants: what no policy permits, a grant on a key may allow — within its actions and
//! encryption-context constraints — and what a policy forbids, no grant allows.

use std::collections::BTreeMap;

use strongroom_core::types::{EncryptInput, KeyRef};
use strongroom_core::{
    Error, GrantInput, GrantRef, Labels, Plaintext, PrincipalInput, PrincipalName, RequestContext,
};

use crate::support::*;

async fn principal(kms: &Kms, name: &str, roles: &[&str]) -> RequestContext {
    let n = PrincipalName::try_new(name).unwrap();
    kms.svc()
        .create_principal(
            &root(),
            PrincipalInput {
                name: n.clone(),
                kind: "workload".into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                labels: Labels::new(),
                description: String::new(),
                rate_limits: Default::default(),
                tls_certs: vec![],
            },
        )
        .await
        .unwrap();
    let t = kms
        .svc()
        .create_token_for(&root(), &n, Some(3600), String::new())
        .await
        .unwrap();
    as_token(Some(t.secret.expose_secret()))
}

fn pairs(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn input(grantee: &str, actions: &[&str], subset: Option<&[(&str, &str)]>) -> GrantInput {
    GrantInput {
        grantee: PrincipalName::try_new(grantee).unwrap(),
        retiring_principal: None,
        actions: actions.iter().map(|a| a.to_string()).collect(),
        context_subset: subset.map(pairs),
        context_equals: None,
        name: None,
    }
}

async fn encrypt(
    kms: &Kms,
    ctx: &RequestContext,
    key: &KeyRef,
    ec_pairs: &[(&str, &str)],
) -> strongroom_core::Result<Vec<u8>> {
    kms.svc()
        .encrypt(
            ctx,
            EncryptInput {
                key: key.clone(),
                plaintext: Plaintext::copy_from(b"x"),
                context: ec(ec_pairs),
            },
        )
        .await
        .map(|o| o.ciphertext)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_allows_what_no_policy_permits_within_its_constraints() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, key) = kms.key("r", "k", None).await;
    let (_, other_key) = kms.key("r", "other", None).await;
    let app = principal(&kms, "app", &[]).await;
    let svc = kms.svc();
    assert_err!(
        encrypt(&kms, &app, &key, &[("tenant", "acme")]).await,
        Error::AccessDenied
    );

    let g = svc
        .create_grant(
            &root(),
            &key,
            input("app", &["encrypt", "decrypt"], Some(&[("tenant", "acme")])),
        )
        .await
        .unwrap();
    assert!(g.info.id.starts_with("srg_"));
    assert!(!format!("{g:?}").contains(g.token.expose_secret()));
    encrypt(&kms, &app, &key, &[("tenant", "acme"), ("extra", "1")])
        .await
        .unwrap();
    let ev = kms.audit_events().pop().unwrap();
    assert_eq!(ev["policy"], format!("grant:{}", g.info.id));
    // Outside its constraints, its actions or its key: still denied.
    assert_err!(
        encrypt(&kms, &app, &key, &[("tenant", "other")]).await,
        Error::AccessDenied
    );
    assert_err!(encrypt(&kms, &app, &key, &[]).await, Error::AccessDenied);
    assert_err!(
        encrypt(&kms, &app, &other_key, &[("tenant", "acme")]).await,
        Error::AccessDenied
    );
    assert_err!(svc.get_key(&app, &key).await, Error::AccessDenied);

    // A forbid wins over any grant.
    let p = svc
        .put_policy(
            &root(),
            "no-app",
            r#"forbid(principal == Strongroom::Principal::"app", action, resource);"#,
            None,
        )
        .await
        .unwrap();
    assert_err!(
        encrypt(&kms, &app, &key, &[("tenant", "acme")]).await,
        Error::AccessDenied
    );
    svc.delete_policy(&root(), "no-app", p.version)
        .await
        .unwrap();
    encrypt(&kms, &app, &key, &[("tenant", "acme")])
        .await
        .unwrap();

    // Listed; revoked: gone at once.
    let listed = svc.list_grants(&root(), &key).await.unwrap();
    assert_eq!(listed, vec![g.info.clone()]);
    svc.revoke_grant(&root(), &key, &g.info.id).await.unwrap();
    assert_err!(
        encrypt(&kms, &app, &key, &[("tenant", "acme")]).await,
        Error::AccessDenied
    );
    assert_err!(
        svc.revoke_grant(&root(), &key, &g.info.id).await,
        Error::NotFound { .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_and_granting_on() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, key) = kms.key("r", "k", None).await;
    let app = principal(&kms, "app", &[]).await;
    let ops = principal(&kms, "ops", &[]).await;
    let stranger = principal(&kms, "stranger", &[]).await;
    let svc = kms.svc();
    let mut i = input("app", &["encrypt", "create-grant"], None);
    i.retiring_principal = Some(PrincipalName::try_new("ops").unwrap());
    let g = svc.create_grant(&root(), &key, i).await.unwrap();
    // The grantee may grant on (it holds create-grant).
    let sub = svc
        .create_grant(&app, &key, input("stranger", &["encrypt"], None))
        .await
        .unwrap();
    encrypt(&kms, &stranger, &key, &[]).await.unwrap();
    // Only the retiring principal (or whoever may revoke) retires.
    assert_err!(
        svc.retire_grant(
            &stranger,
            GrantRef::Token(strongroom_core::BearerToken::new(
                g.token.expose_secret().to_string()
            ))
        )
        .await,
        Error::AccessDenied
    );
    assert_eq!(
        svc.list_retirable_grants(&ops, &PrincipalName::try_new("ops").unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_err!(
        svc.list_retirable_grants(&stranger, &PrincipalName::try_new("ops").unwrap())
            .await,
        Error::AccessDenied
    );
    svc.retire_grant(
        &ops,
        GrantRef::Token(strongroom_core::BearerToken::new(
            g.token.expose_secret().to_string(),
        )),
    )
    .await
    .unwrap();
    assert_err!(encrypt(&kms, &app, &key, &[]).await, Error::AccessDenied);
    // The sub-grant stands on its own until revoked.
    encrypt(&kms, &stranger, &key, &[]).await.unwrap();
    svc.retire_grant(&root(), GrantRef::Id(key.clone(), sub.info.id.clone()))
        .await
        .unwrap();
    assert_err!(
        encrypt(&kms, &stranger, &key, &[]).await,
        Error::AccessDenied
    );
    assert_err!(
        svc.retire_grant(
            &root(),
            GrantRef::Token(strongroom_core::BearerToken::new("srgt_nope".into()))
        )
        .await,
        Error::NotFound { .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_grants_are_refused() {
    let kms = Kms::new().await;
    kms.ring("r").await;
    let (_, key) = kms.key("r", "k", None).await;
    let user = principal(&kms, "user", &["key-user"]).await;
    principal(&kms, "app", &[]).await;
    let svc = kms.svc();
    for (i, what) in [
        (input("app", &[], None), "no operations"),
        (input("app", &["update-key"], None), "not grantable"),
        (
            input("app", &["sign"], Some(&[("a", "1")])),
            "context on sign",
        ),
    ] {
        assert!(
            matches!(
                svc.create_grant(&root(), &key, i).await,
                Err(Error::InvalidArgument { .. })
            ),
            "{what}"
        );
    }
    let mut both = input("app", &["decrypt"], Some(&[("a", "1")]));
    both.context_equals = Some(pairs(&[("a", "1")]));
    assert_err!(
        svc.create_grant(&root(), &key, both).await,
        Error::InvalidArgument { .. }
    );
    assert_err!(
        svc.create_grant(&root(), &key, input("ghost", &["decrypt"], None))
            .await,
        Error::NotFound { .. }
    );
    // A key user may use keys but not hand out grants.
    assert_err!(
        svc.create_grant(&user, &key, input("app", &["decrypt"], None))
            .await,
        Error::AccessDenied
    );
    assert!(svc.list_grants(&root(), &key).await.unwrap().is_empty());
}
