//! Principals and policy through the service: default deny, the shipped roles, refusals that
//! do not reveal existence, decisions in the audit log, policy documents and dry runs.

use strongroom_core::types::{DecryptInput, EncryptInput, KeyRef};
use strongroom_core::{
    Error, Labels, Plaintext, PolicyTest, PrincipalInput, PrincipalName, PrincipalUpdate,
    RequestContext, TestResource,
};

use crate::support::*;

fn enc(key: &KeyRef, pt: &[u8], ctx: &[(&str, &str)]) -> EncryptInput {
    EncryptInput {
        key: key.clone(),
        plaintext: Plaintext::copy_from(pt),
        context: ec(ctx),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_roles_are_installed_and_enforced() {
    let kms = Kms::new().await;
    let names: Vec<String> = kms
        .svc()
        .list_policies(&root())
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        [
            "role-auditor",
            "role-key-admin",
            "role-key-user",
            "role-security-admin"
        ]
    );
    let key = kms.aes_key("pay", "card").await;
    let user = principal(&kms, "svc", &["key-user"], &[]).await;
    let admin = principal(&kms, "alice", &["key-admin"], &[]).await;
    let auditor = principal(&kms, "audra", &["auditor"], &[]).await;
    let nobody = principal(&kms, "eve", &[], &[]).await;

    let ct = kms
        .svc()
        .encrypt(&user, enc(&key, b"x", &[]))
        .await
        .unwrap();
    let input = || DecryptInput {
        ciphertext: ct.ciphertext.clone(),
        context: ec(&[]),
        key: None,
    };
    kms.svc().decrypt(&user, input()).await.unwrap();
    for c in [&admin, &auditor, &nobody] {
        assert_err!(kms.svc().decrypt(c, input()).await, Error::AccessDenied);
    }

    let before = kms.snapshot(&key).await;
    assert_err!(
        kms.svc().set_key_enabled(&user, &key, false).await,
        Error::AccessDenied
    );
    assert_err!(
        kms.svc().set_key_enabled(&nobody, &key, false).await,
        Error::AccessDenied
    );
    assert_eq!(kms.snapshot(&key).await, before, "refusals change nothing");
    kms.svc()
        .set_key_enabled(&admin, &key, false)
        .await
        .unwrap();
    kms.svc().set_key_enabled(&admin, &key, true).await.unwrap();
    kms.svc().create_version(&admin, &key, true).await.unwrap();
    assert_err!(
        kms.svc().create_token(&user, Some(60), String::new()).await,
        Error::AccessDenied
    );
    assert_err!(kms.svc().list_policies(&admin).await, Error::AccessDenied);
}

/// RELIABILITY A3: "no such key" and "not allowed" are the same refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_do_not_reveal_whether_a_key_exists() {
    let kms = Kms::new().await;
    let key = kms.aes_key("pay", "card").await;
    let nobody = principal(&kms, "eve", &[], &[]).await;
    let missing = path("pay", "does-not-exist");
    let a = assert_err!(
        kms.svc().encrypt(&nobody, enc(&key, b"x", &[])).await,
        Error::AccessDenied
    );
    let b = assert_err!(
        kms.svc().encrypt(&nobody, enc(&missing, b"x", &[])).await,
        Error::AccessDenied
    );
    assert_eq!(a.to_string(), b.to_string());
    let c = assert_err!(
        kms.svc().get_key(&nobody, &path("nope", "nope")).await,
        Error::AccessDenied
    );
    assert_eq!(a.to_string(), c.to_string());
    // A caller who may use keys learns that a missing one is missing.
    let user = principal(&kms, "svc", &["key-user"], &[]).await;
    assert_err!(
        kms.svc().encrypt(&user, enc(&missing, b"x", &[])).await,
        Error::NotFound { .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deciding_policy_is_in_the_audit_event() {
    let kms = Kms::new().await;
    let key = kms.aes_key("pay", "card").await;
    let user = principal(&kms, "svc", &["key-user"], &[]).await;
    let admin = principal(&kms, "alice", &["key-admin"], &[]).await;
    kms.svc()
        .encrypt(&user, enc(&key, b"x", &[]))
        .await
        .unwrap();
    let _ = kms.svc().encrypt(&admin, enc(&key, b"x", &[])).await;
    kms.encrypt(&key, b"x", &ec(&[])).await.unwrap();
    let events = kms.audit_events();
    let encrypts: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["operation"] == "encrypt")
        .collect();
    assert_eq!(encrypts.len(), 3);
    assert_eq!(
        (
            encrypts[0]["principal"].as_str(),
            encrypts[0]["policy"].as_str(),
            encrypts[0]["outcome"].as_str()
        ),
        (Some("svc"), Some("role-key-user/use-and-read"), Some("ok"))
    );
    assert_eq!(
        (
            encrypts[1]["policy"].as_str(),
            encrypts[1]["error_code"].as_str()
        ),
        (Some("role-key-admin/never-use-keys"), Some("access_denied"))
    );
    assert_eq!(
        (
            encrypts[2]["principal"].as_str(),
            encrypts[2]["policy"].as_str()
        ),
        (Some("root"), Some("builtin:root"))
    );
    assert!(encrypts.iter().all(|e| e["auth_method"] == "token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_conditioned_policy_through_the_service() {
    let kms = Kms::new().await;
    kms.ring("pay").await;
    let mut input = key_input("pay", "card");
    input.labels = Labels::from([("team".to_string(), "payments".to_string())]);
    kms.svc().create_key(&root(), input).await.unwrap();
    let key = path("pay", "card");
    kms.svc()
        .put_policy(
            &root(),
            "payments-tenant",
            include_str!("../../../../docs/policies/examples/payments-tenant.cedar"),
            None,
        )
        .await
        .unwrap();
    let svc = principal(&kms, "payments", &[], &[("tenant", "acme")]).await;
    let ct = kms
        .svc()
        .encrypt(&svc, enc(&key, b"acme data", &[("tenant", "acme")]))
        .await
        .unwrap();
    assert_err!(
        kms.svc()
            .encrypt(&svc, enc(&key, b"x", &[("tenant", "globex")]))
            .await,
        Error::AccessDenied
    );
    let other_ct = kms
        .encrypt(&key, b"globex data", &ec(&[("tenant", "globex")]))
        .await
        .unwrap();
    let dec = |ct: &[u8], ctx: &[(&str, &str)]| {
        kms.svc().decrypt(
            &svc,
            DecryptInput {
                ciphertext: ct.to_vec(),
                context: ec(ctx),
                key: None,
            },
        )
    };
    assert_eq!(
        dec(&ct.ciphertext, &[("tenant", "acme")])
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"acme data"
    );
    assert_err!(
        dec(&other_ct.ciphertext, &[("tenant", "globex")]).await,
        Error::AccessDenied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_documents_are_validated_versioned_and_tested() {
    let kms = Kms::new().await;
    let svc = kms.svc();
    let bad = assert_err!(
        svc.put_policy(
            &root(),
            "bad",
            "permit(principal, action == Strongroom::Action::\"encrpyt\", resource);",
            None
        )
        .await,
        Error::InvalidArgument { .. }
    );
    assert!(
        bad.to_string().contains("line 1") && bad.to_string().contains("encrpyt"),
        "{bad}"
    );
    assert_err!(
        svc.list_policies(&root())
            .await
            .map(|l| l
                .into_iter()
                .find(|p| p.name == "bad")
                .ok_or(Error::Conflict(String::new())))
            .and_then(|x| x),
        Error::Conflict(_)
    );
    let text = "permit(principal == Strongroom::Principal::\"ci\", action == Strongroom::Action::\"encrypt\", resource in Strongroom::KeyRing::\"build\");";
    let v1 = svc.put_policy(&root(), "ci", text, None).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_err!(
        svc.put_policy(&root(), "ci", text, None).await,
        Error::AlreadyExists { .. }
    );
    assert_err!(
        svc.put_policy(&root(), "ci", text, Some(7)).await,
        Error::Conflict(_)
    );
    let ci = principal(&kms, "ci", &[], &[]).await;
    let build = kms.aes_key("build", "artifacts").await;
    let other = kms.aes_key("pay", "card").await;
    svc.encrypt(&ci, enc(&build, b"x", &[])).await.unwrap();
    assert_err!(
        svc.encrypt(&ci, enc(&other, b"x", &[])).await,
        Error::AccessDenied
    );

    let t = |action: &str, resource: TestResource| PolicyTest {
        principal: PrincipalName::try_new("ci").unwrap(),
        action: action.into(),
        resource,
        context: ec(&[]),
        source_ip: None,
    };
    let d = svc
        .test_policy(&root(), t("encrypt", TestResource::Key(build.clone())))
        .await
        .unwrap();
    assert!(d.allowed);
    assert_eq!(d.policies, vec!["ci#0".to_string()]);
    assert!(
        !svc.test_policy(&root(), t("decrypt", TestResource::Key(build.clone())))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !svc.test_policy(&root(), t("encrypt", TestResource::Key(other.clone())))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        svc.test_policy(
            &root(),
            t("encrypt", TestResource::Key(path("build", "not-yet")))
        )
        .await
        .unwrap()
        .allowed,
        "a key that does not exist yet"
    );
    assert_err!(
        svc.test_policy(&root(), t("encrpyt", TestResource::System))
            .await,
        Error::InvalidArgument { .. }
    );

    // Delete: the permission goes at once; the history stays.
    svc.delete_policy(&root(), "ci", 1).await.unwrap();
    assert_err!(
        svc.encrypt(&ci, enc(&build, b"x", &[])).await,
        Error::AccessDenied
    );
    let h = svc.policy_history(&root(), "ci").await.unwrap();
    assert_eq!(
        h.iter()
            .map(|p| (p.version, p.text.is_some()))
            .collect::<Vec<_>>(),
        [(1, true), (2, false)]
    );
    svc.validate_policy(&root(), "ok", text).await.unwrap();
    assert_err!(
        svc.validate_policy(&root(), "bad name!", text).await,
        Error::InvalidArgument { .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principals_and_their_tokens() {
    let kms = Kms::new().await;
    let svc = kms.svc();
    let key = kms.aes_key("pay", "card").await;
    let secadmin = principal(&kms, "sam", &["security-admin"], &[]).await;
    let name = PrincipalName::try_new("svc").unwrap();
    svc.create_principal(
        &secadmin,
        PrincipalInput {
            name: name.clone(),
            kind: "workload".into(),
            roles: vec!["key-user".into()],
            labels: Labels::new(),
            description: String::new(),
            rate_limits: Default::default(),
            tls_certs: vec![],
        },
    )
    .await
    .unwrap();
    assert_err!(
        svc.encrypt(&secadmin, enc(&key, b"x", &[])).await,
        Error::AccessDenied
    );
    let t = svc
        .create_token_for(&secadmin, &name, Some(600), "deploy".into())
        .await
        .unwrap();
    let user = as_token(Some(t.secret.expose_secret()));
    svc.encrypt(&user, enc(&key, b"x", &[])).await.unwrap();
    assert_err!(
        svc.create_token_for(
            &secadmin,
            &PrincipalName::try_new("root").unwrap(),
            None,
            String::new()
        )
        .await,
        Error::InvalidArgument { .. }
    );
    assert_err!(
        svc.create_token_for(
            &secadmin,
            &PrincipalName::try_new("ghost").unwrap(),
            None,
            String::new()
        )
        .await,
        Error::NotFound { .. }
    );
    for reserved in ["root", "strongroom-scheduler"] {
        let input = PrincipalInput {
            name: PrincipalName::try_new(reserved).unwrap(),
            kind: "user".into(),
            roles: vec![],
            labels: Labels::new(),
            description: String::new(),
            rate_limits: Default::default(),
            tls_certs: vec![],
        };
        assert_err!(
            svc.create_principal(&root(), input).await,
            Error::InvalidArgument { .. }
        );
    }
    // Disabling a principal stops its tokens at once; enabling restores them.
    svc.update_principal(
        &root(),
        &name,
        PrincipalUpdate {
            disabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_err!(
        svc.encrypt(&user, enc(&key, b"x", &[])).await,
        Error::Unauthenticated
    );
    assert_err!(
        svc.create_token_for(&root(), &name, None, String::new())
            .await,
        Error::InvalidState { .. }
    );
    svc.update_principal(
        &root(),
        &name,
        PrincipalUpdate {
            disabled: Some(false),
            roles: Some(vec![]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_err!(
        svc.encrypt(&user, enc(&key, b"x", &[])).await,
        Error::AccessDenied,
    );
}

/// A request as the Kubernetes KMS plugin's socket makes it: the socket vouches for a
/// configured principal.
fn over_socket(protocol: strongroom_core::Protocol, principal: &str) -> RequestContext {
    let mut ctx = as_token(None);
    ctx.protocol = protocol;
    ctx.socket_principal = Some(principal.into());
    ctx.client_request_id = Some("6f1c9a2e-uid".into());
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_principal_is_honoured_only_on_the_kubernetes_socket() {
    use strongroom_core::Protocol;
    let kms = Kms::new().await;
    let svc = kms.svc();
    let key = kms.aes_key("r", "k").await;
    principal(&kms, "kube", &["key-user"], &[]).await;

    let ctx = over_socket(Protocol::K8sKms, "kube");
    let ct = svc.encrypt(&ctx, enc(&key, b"seed", &[])).await.unwrap();
    let events = kms.audit_events();
    let last = events.last().unwrap();
    assert_eq!(
        (
            &last["principal"],
            &last["auth_method"],
            &last["token_id"],
            &last["protocol"],
            &last["client_request_id"]
        ),
        (
            &serde_json::json!("kube"),
            &serde_json::json!("unix-socket"),
            &serde_json::json!("unix-socket"),
            &serde_json::json!("k8s-kms"),
            &serde_json::json!("6f1c9a2e-uid")
        )
    );
    // The same claim from another front-end is no credential at all.
    for p in [Protocol::Native, Protocol::Aws] {
        assert_err!(
            svc.encrypt(&over_socket(p, "kube"), enc(&key, b"seed", &[]))
                .await,
            Error::Unauthenticated
        );
    }
    // Policy still decides: a principal without a role may not decrypt.
    principal(&kms, "nobody", &[], &[]).await;
    assert_err!(
        svc.decrypt(
            &over_socket(Protocol::K8sKms, "nobody"),
            DecryptInput {
                ciphertext: ct.ciphertext.clone(),
                context: ec(&[]),
                key: None,
            }
        )
        .await,
        Error::AccessDenied
    );
    // An unknown or disabled principal is refused.
    assert_err!(
        svc.encrypt(
            &over_socket(Protocol::K8sKms, "ghost"),
            enc(&key, b"x", &[])
        )
        .await,
        Error::Unauthenticated
    );
    svc.update_principal(
        &root(),
        &PrincipalName::try_new("kube").unwrap(),
        PrincipalUpdate {
            disabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_err!(
        svc.encrypt(&ctx, enc(&key, b"x", &[])).await,
        Error::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_is_a_use_of_the_system() {
    use strongroom_crypto::hash::HashFunction;
    let kms = Kms::new().await;
    let svc = kms.svc();
    let user = principal(&kms, "hasher", &["key-user"], &[]).await;
    let auditor = principal(&kms, "reader", &["auditor"], &[]).await;
    let input = Plaintext::copy_from(b"abc");
    let d = svc
        .hash(&user, HashFunction::Sha3_256, &input)
        .await
        .unwrap();
    assert_eq!(d, HashFunction::Sha3_256.hash(b"abc"));
    assert_err!(
        svc.hash(&auditor, HashFunction::Sha256, &input).await,
        Error::AccessDenied
    );
    assert_err!(
        svc.hash(&as_token(None), HashFunction::Sha256, &input)
            .await,
        Error::Unauthenticated
    );
    let big = Plaintext::new(vec![0; 64 * 1024 + 1]);
    assert_err!(
        svc.hash(&user, HashFunction::Sha256, &big).await,
        Error::InvalidArgument { .. }
    );
    let events: Vec<_> = kms
        .audit_events()
        .into_iter()
        .filter(|e| e["operation"] == "hash")
        .collect();
    assert_eq!(events.len(), 4);
    assert_eq!(
        events.iter().filter(|e| e["outcome"] == "ok").count(),
        1,
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_needs_an_exportable_key_and_a_policy_no_role_has() {
    let kms = Kms::new().await;
    let svc = kms.svc();
    kms.ring("r").await;
    let mut input = key_input("r", "portable");
    input.exportable = true;
    svc.create_key(&root(), input).await.unwrap();
    let portable = path("r", "portable");
    svc.create_version(&root(), &portable, true).await.unwrap();
    let sealed = kms.aes_key("r", "sealed").await;

    let out = svc.export_key(&root(), &portable, None).await.unwrap();
    assert_eq!(
        out.versions.iter().map(|v| v.0).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(out.versions.iter().all(|(_, m)| m.len() == 32));
    assert!(!format!("{out:?}").contains(&format!("{:?}", out.versions[0].1.expose_secret())));
    // The exported material is the key: data encrypted under it opens with it.
    let ct = kms
        .encrypt(&portable, b"moving out", &ec(&[]))
        .await
        .unwrap()
        .ciphertext;
    let header = strongroom_crypto::ciphertext::parse_header(&ct).unwrap();
    let (_, m) = out
        .versions
        .iter()
        .find(|(n, _)| *n == header.version)
        .unwrap();
    let pt = strongroom_crypto::ciphertext::decrypt(m, &header, &ec(&[]), &ct).unwrap();
    assert_eq!(pt.expose_secret(), b"moving out");

    assert_err!(
        svc.export_key(&root(), &sealed, None).await,
        Error::InvalidState {
            state: "not exportable",
            ..
        }
    );
    for role in ["key-user", "key-admin", "auditor", "security-admin"] {
        let who = principal(&kms, &format!("p-{role}"), &[role], &[]).await;
        assert_err!(
            svc.export_key(&who, &portable, None).await,
            Error::AccessDenied
        );
    }
    // A disabled version is left out; asked for by number, it is refused.
    svc.disable_version(&root(), &portable, 1).await.unwrap();
    let out = svc.export_key(&root(), &portable, None).await.unwrap();
    assert_eq!(
        out.versions.iter().map(|v| v.0).collect::<Vec<_>>(),
        vec![2]
    );
    assert_err!(
        svc.export_key(&root(), &portable, Some(1)).await,
        Error::InvalidState { .. }
    );
}
