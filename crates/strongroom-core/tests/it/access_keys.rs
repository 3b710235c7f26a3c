//! AWS-style access key pairs: creation, the limit of two, revocation, and SigV4
//! verification in core (RELIABILITY A4: signature recomputed, compared in constant time;
//! skew and scope checked).

use strongroom_core::bootstrap::DataDirOptions;
use strongroom_core::types::CreateKeyRingInput;
use strongroom_core::{
    Error, Labels, PrincipalInput, PrincipalName, PrincipalUpdate, Protocol, RequestContext,
    RingName, SigV4Request,
};

use crate::support::*;

fn name(s: &str) -> PrincipalName {
    PrincipalName::try_new(s).unwrap()
}

async fn make_principal(kms: &Kms, n: &str, roles: &[&str]) {
    kms.svc()
        .create_principal(
            &root(),
            PrincipalInput {
                name: name(n),
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
}

/// What the AWS front-end would build for a request signed at `at` with `secret`.
fn signed(id: &str, secret: &str, at: i64, sts: &str) -> SigV4Request {
    let scope_date = strongroom_core::Timestamp(at).to_rfc3339()[..10].replace('-', "");
    let signature = strongroom_crypto::sigv4::signature(
        secret.as_bytes(),
        &scope_date,
        "us-east-1",
        "kms",
        sts.as_bytes(),
    );
    SigV4Request {
        access_key_id: id.into(),
        scope_date,
        region: "us-east-1".into(),
        service: "kms".into(),
        signed_at: at,
        string_to_sign: sts.into(),
        signature: signature.to_vec(),
        session_token: None,
    }
}

fn as_sigv4(sig: SigV4Request) -> RequestContext {
    RequestContext {
        request_id: strongroom_core::new_request_id(),
        token: None,
        protocol: Protocol::Aws,
        client_addr: None,
        client_cert: None,
        sigv4: Some(sig),
        socket_principal: None,
        client_request_id: None,
    }
}

async fn create_ring(kms: &Kms, ctx: &RequestContext, n: &str) -> strongroom_core::Result<()> {
    kms.svc()
        .create_key_ring(
            ctx,
            CreateKeyRingInput {
                name: RingName::try_new(n).unwrap(),
                description: String::new(),
                labels: Labels::new(),
            },
        )
        .await
        .map(drop)
}

const STS: &str = "AWS4-HMAC-SHA256\n...the front-end's string to sign...";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_signs_with_its_access_key_until_it_is_revoked() {
    let kms = Kms::new().await;
    make_principal(&kms, "ci", &["key-admin"]).await;
    let new = kms
        .svc()
        .create_access_key(&root(), &name("ci"), "github actions".into())
        .await
        .unwrap();
    let id = new.info.id.clone();
    let secret = new.secret.expose_secret().to_string();
    assert!(id.starts_with("SRAK") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    assert_eq!(new.info.principal, "ci");
    assert!(!format!("{new:?}").contains(&secret));

    // Signed now, and at the edges of the 15-minute window.
    for at in [T0, T0 - 900, T0 + 900] {
        create_ring(
            &kms,
            &as_sigv4(signed(&id, &secret, at, STS)),
            &format!("r{}", at - T0 + 1000),
        )
        .await
        .unwrap();
    }
    let ev = kms.audit_events().pop().unwrap();
    assert_eq!(ev["principal"], "ci");
    assert_eq!(ev["auth_method"], "sigv4");
    assert_eq!(ev["token_id"], id.as_str());
    assert_eq!(ev["protocol"], "aws");
    // Nothing of the secret reaches the audit log.
    let log = std::fs::read_to_string(&kms.opened().audit_path).unwrap();
    assert!(!log.contains(&secret));

    // The secret is stored sealed, not in the clear.
    let db = std::fs::read(kms.db_path()).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));

    // Listing shows the pair without its secret.
    let list = kms
        .svc()
        .list_access_keys(&root(), &name("ci"))
        .await
        .unwrap();
    assert_eq!(list, vec![new.info.clone()]);

    let revoked = kms.svc().revoke_access_key(&root(), &id).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(strongroom_core::Timestamp(T0)));
    assert_err!(
        create_ring(&kms, &as_sigv4(signed(&id, &secret, T0, STS)), "after").await,
        Error::Unauthenticated
    );
    // Revoking twice is fine; an unknown id is not found.
    kms.svc().revoke_access_key(&root(), &id).await.unwrap();
    assert_err!(
        kms.svc()
            .revoke_access_key(&root(), "SRAKNOSUCHKEY0000000")
            .await,
        Error::NotFound { .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_are_refused_with_the_reason() {
    let kms = Kms::new().await;
    make_principal(&kms, "ci", &["key-admin"]).await;
    let new = kms
        .svc()
        .create_access_key(&root(), &name("ci"), String::new())
        .await
        .unwrap();
    let id = new.info.id.clone();
    let secret = new.secret.expose_secret().to_string();
    let k = &kms;
    let refused = |sig: SigV4Request| {
        let ctx = as_sigv4(sig);
        async move { create_ring(k, &ctx, "nope").await }
    };

    // The wrong secret, a changed string to sign, a signature for another scope.
    let wrong_secret = signed(&id, "not-the-secret", T0, STS);
    assert_err!(refused(wrong_secret).await, Error::InvalidSignature(_));
    let mut changed = signed(&id, &secret, T0, STS);
    changed.string_to_sign.push('x');
    assert_err!(refused(changed).await, Error::InvalidSignature(_));
    let mut other_region = signed(&id, &secret, T0, STS);
    other_region.region = "eu-west-1".into();
    assert_err!(refused(other_region).await, Error::InvalidSignature(_));
    // Outside the window, either way.
    for at in [T0 - 901, T0 + 901] {
        let e = assert_err!(
            refused(signed(&id, &secret, at, STS)).await,
            Error::InvalidSignature(_)
        );
        assert!(e.to_string().contains("signature expired"), "{e}");
    }
    // A scope date that is not the signing date.
    let mut wrong_date = signed(&id, &secret, T0, STS);
    wrong_date.scope_date = "20000101".into();
    assert_err!(refused(wrong_date).await, Error::InvalidSignature(_));
    // A truncated signature.
    let mut truncated = signed(&id, &secret, T0, STS);
    truncated.signature.truncate(31);
    assert_err!(refused(truncated).await, Error::InvalidSignature(_));
    // Unknown and malformed access key ids.
    assert_err!(
        refused(signed("SRAKUNKNOWN000000000", &secret, T0, STS)).await,
        Error::Unauthenticated
    );
    assert_err!(
        refused(signed("bad id!", &secret, T0, STS)).await,
        Error::Unauthenticated
    );
    // A disabled principal's keys stop working.
    kms.svc()
        .update_principal(
            &root(),
            &name("ci"),
            PrincipalUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_err!(
        refused(signed(&id, &secret, T0, STS)).await,
        Error::Unauthenticated
    );
    // None of these created anything.
    assert!(
        kms.svc()
            .get_key_ring(&root(), &RingName::try_new("nope").unwrap())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_keys_are_limited_and_governed() {
    let kms = Kms::new().await;
    make_principal(&kms, "ci", &["key-user"]).await;
    make_principal(&kms, "admin", &["security-admin"]).await;
    let svc = kms.svc();
    let a = svc
        .create_access_key(&root(), &name("ci"), "a".into())
        .await
        .unwrap();
    svc.create_access_key(&root(), &name("ci"), "b".into())
        .await
        .unwrap();
    assert_err!(
        svc.create_access_key(&root(), &name("ci"), "c".into())
            .await,
        Error::InvalidState { .. }
    );
    // Rotation: revoke one, then a new one may be made.
    svc.revoke_access_key(&root(), &a.info.id).await.unwrap();
    svc.create_access_key(&root(), &name("ci"), "c".into())
        .await
        .unwrap();
    assert_eq!(
        svc.list_access_keys(&root(), &name("ci"))
            .await
            .unwrap()
            .len(),
        3
    );

    // Root gets none through the API; unknown principals are not found.
    assert_err!(
        svc.create_access_key(&root(), &name("root"), String::new())
            .await,
        Error::InvalidArgument { .. }
    );
    assert_err!(
        svc.create_access_key(&root(), &name("ghost"), String::new())
            .await,
        Error::NotFound { .. }
    );
    assert_err!(
        svc.list_access_keys(&root(), &name("ghost")).await,
        Error::NotFound { .. }
    );
    assert_err!(
        svc.revoke_access_key(&root(), "no such id").await,
        Error::InvalidArgument { .. }
    );

    // A key user may not hand out credentials, not even its own.
    let ci = svc
        .create_token_for(&root(), &name("ci"), Some(600), String::new())
        .await
        .unwrap();
    let ci = as_token(Some(ci.secret.expose_secret()));
    assert_err!(
        svc.create_access_key(&ci, &name("ci"), String::new()).await,
        Error::AccessDenied
    );
    assert_err!(
        svc.list_access_keys(&ci, &name("ci")).await,
        Error::AccessDenied
    );
    // Nothing without credentials.
    assert_err!(
        svc.create_access_key(&as_token(None), &name("ci"), String::new())
            .await,
        Error::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_access_key_signs_as_root() {
    let kms = Kms::new_with(|o| DataDirOptions {
        initial_root_access_key: Some((DEV_ACCESS_KEY_ID.into(), DEV_SECRET.into())),
        ..o
    })
    .await;
    // The bootstrap recorded giving root the pair, as it records nothing else.
    let first = kms.audit_events().remove(0);
    assert_eq!(first["operation"], "create-access-key");
    assert_eq!(first["protocol"], "bootstrap");
    assert_eq!(first["target"], DEV_ACCESS_KEY_ID);
    create_ring(
        &kms,
        &as_sigv4(signed(DEV_ACCESS_KEY_ID, DEV_SECRET, T0, STS)),
        "dev",
    )
    .await
    .unwrap();
    let ev = kms.audit_events().pop().unwrap();
    assert_eq!(ev["principal"], "root");
    assert_eq!(ev["auth_method"], "sigv4");
    let keys = kms
        .svc()
        .list_access_keys(&root(), &name("root"))
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, DEV_ACCESS_KEY_ID);
}
