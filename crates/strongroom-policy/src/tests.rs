//! The role matrix and the example policies, proven both ways.

use super::*;

fn engine_with(extra: &[(&str, &str)]) -> PolicyEngine {
    PolicyEngine::new(
        DEFAULT_POLICIES
            .iter()
            .copied()
            .chain(extra.iter().copied()),
    )
    .unwrap()
}

fn who(name: &str, roles: &[&str], labels: &[(&str, &str)]) -> PrincipalAttrs {
    PrincipalAttrs {
        name: name.into(),
        kind: "workload".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn key(labels: &[(&str, &str)]) -> ResourceAttrs {
    ResourceAttrs::Key(KeyAttrs {
        ring: "payments".into(),
        name: "card".into(),
        id: "1b4e28ba-2fa1-41d2-883f-0016d3cca427".into(),
        purpose: "encrypt-decrypt".into(),
        algorithm: "aes-256-gcm".into(),
        protection: "software".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ring_labels: BTreeMap::new(),
        exists: true,
    })
}

fn req(ctx: &[(&str, &str)]) -> RequestAttrs {
    RequestAttrs {
        protocol: "native".into(),
        now: 1_800_000_000,
        source_ip: Some("10.8.1.2".into()),
        encryption_context: ctx
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        alias: None,
    }
}

const USE: &[&str] = &[
    "encrypt",
    "decrypt",
    "generate-data-key",
    "re-encrypt-from",
    "re-encrypt-to",
    "asymmetric-decrypt",
    "get-public-key",
    "sign",
    "verify",
    "mac",
    "mac-verify",
    "derive-shared-secret",
];
const READ_KEY: &[&str] = &[
    "get-key",
    "get-version",
    "list-versions",
    "get-alias",
    "list-grants",
    "get-provider-view",
];
const MANAGE_KEY: &[&str] = &[
    "update-key",
    "enable-key",
    "disable-key",
    "set-primary-version",
    "create-version",
    "enable-version",
    "disable-version",
    "schedule-version-destruction",
    "restore-version",
    "create-alias",
    "update-alias",
    "delete-alias",
    "schedule-key-deletion",
    "cancel-key-deletion",
    "create-grant",
    "retire-grant",
    "revoke-grant",
    "import-key-material",
    "delete-imported-key-material",
];
const ADMIN: &[&str] = &[
    "create-token",
    "create-principal-token",
    "list-tokens",
    "revoke-token",
    "manage-principals",
    "manage-policies",
    "read-policies",
    "manage-federation",
];

#[test]
fn default_policies_validate_and_the_schema_lists_every_action() {
    for (name, text) in DEFAULT_POLICIES {
        PolicyEngine::validate(name, text).unwrap();
    }
    let names = PolicyEngine::action_names().unwrap();
    for a in USE
        .iter()
        .chain(READ_KEY)
        .chain(MANAGE_KEY)
        .chain(ADMIN)
        .chain(&[
            "create-key",
            "list-keys",
            "get-key-ring",
            "create-key-ring",
            "list-key-rings",
            "list-aliases",
            "generate-random",
            "hash",
            "read-audit",
            "read-metrics",
            "create-backup",
            "list-providers",
            "list-key-sets",
            "get-key-set",
            "create-key-set",
            "update-key-set",
            "delete-key-set",
            "key-set-generate-data-key",
            "key-set-wrap",
            "key-set-decrypt",
        ])
    {
        assert!(names.iter().any(|n| n == a), "schema lacks action {a}");
    }
}

/// For each shipped role and each key operation: allowed or denied as docs/policy.md says.
#[test]
fn role_matrix() {
    let e = engine_with(&[]);
    let k = key(&[]);
    let r = req(&[]);
    let allowed = |p: &PrincipalAttrs, a: &str, res: &ResourceAttrs| {
        e.authorize(p, a, res, &r).unwrap().allowed
    };
    let admin = who("alice", &["key-admin"], &[]);
    let user = who("svc", &["key-user"], &[]);
    let auditor = who("audra", &["auditor"], &[]);
    let secadmin = who("sam", &["security-admin"], &[]);
    let nobody = who("eve", &[], &[]);
    let both = who("mallory", &["key-admin", "key-user"], &[]);
    let system = ResourceAttrs::System;
    let ring = ResourceAttrs::KeyRing {
        name: "payments".into(),
        labels: BTreeMap::new(),
    };
    for a in USE {
        assert!(allowed(&user, a, &k), "key-user {a}");
        assert!(!allowed(&admin, a, &k), "key-admin must not {a}");
        assert!(!allowed(&auditor, a, &k), "auditor must not {a}");
        assert!(!allowed(&secadmin, a, &k), "security-admin must not {a}");
        assert!(!allowed(&nobody, a, &k), "default deny {a}");
        assert!(
            !allowed(&both, a, &k),
            "separation of duties holds with both roles: {a}"
        );
    }
    for a in MANAGE_KEY {
        assert!(allowed(&admin, a, &k), "key-admin {a}");
        assert!(!allowed(&user, a, &k), "key-user must not {a}");
        assert!(!allowed(&auditor, a, &k), "auditor must not {a}");
        assert!(!allowed(&nobody, a, &k));
        assert!(
            !allowed(&both, a, &k),
            "separation of duties holds with both roles: {a}"
        );
    }
    for a in READ_KEY {
        assert!(allowed(&admin, a, &k) && allowed(&user, a, &k), "{a}");
        assert!(!allowed(&auditor, a, &k) && !allowed(&nobody, a, &k), "{a}");
    }
    assert!(allowed(&admin, "create-key", &ring));
    assert!(!allowed(&user, "create-key", &ring));
    assert!(allowed(&admin, "create-key-ring", &system));
    assert!(allowed(&user, "list-keys", &ring));
    assert!(allowed(&auditor, "read-audit", &system));
    assert!(allowed(&auditor, "read-metrics", &system));
    for p in [&admin, &user, &nobody, &secadmin] {
        assert!(
            !allowed(p, "read-audit", &system),
            "{} must not read the audit log",
            p.name
        );
    }
    for a in ADMIN {
        assert!(allowed(&secadmin, a, &system), "security-admin {a}");
        for p in [&admin, &user, &auditor, &nobody] {
            assert!(!allowed(p, a, &system), "{} must not {a}", p.name);
        }
    }
    assert!(allowed(&user, "generate-random", &system));
}

#[test]
fn deciding_policies_are_named() {
    let e = engine_with(&[]);
    let d = e
        .authorize(
            &who("svc", &["key-user"], &[]),
            "decrypt",
            &key(&[]),
            &req(&[]),
        )
        .unwrap();
    assert_eq!(d.policies, vec!["role-key-user/use-and-read".to_string()]);
    let d = e
        .authorize(
            &who("alice", &["key-admin"], &[]),
            "decrypt",
            &key(&[]),
            &req(&[]),
        )
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(
        d.policies,
        vec!["role-key-admin/never-use-keys".to_string()]
    );
    let d = e
        .authorize(&who("eve", &[], &[]), "decrypt", &key(&[]), &req(&[]))
        .unwrap();
    assert_eq!((d.allowed, d.policies.len()), (false, 0));
}

#[test]
fn context_conditioned_policy_both_ways() {
    let e = engine_with(&[(
        "payments-tenant",
        include_str!("../../../docs/policies/examples/payments-tenant.cedar"),
    )]);
    let svc = who("payments", &[], &[("tenant", "acme")]);
    let team_key = key(&[("team", "payments")]);
    let ok = |p: &PrincipalAttrs, a: &str, k: &ResourceAttrs, ctx: &[(&str, &str)]| {
        e.authorize(p, a, k, &req(ctx)).unwrap().allowed
    };
    assert!(ok(&svc, "decrypt", &team_key, &[("tenant", "acme")]));
    assert!(ok(
        &svc,
        "encrypt",
        &team_key,
        &[("tenant", "acme"), ("extra", "x")]
    ));
    assert!(
        !ok(&svc, "decrypt", &team_key, &[("tenant", "globex")]),
        "another tenant's data"
    );
    assert!(
        !ok(&svc, "decrypt", &team_key, &[]),
        "no tenant in the context"
    );
    assert!(
        !ok(
            &svc,
            "decrypt",
            &key(&[("team", "billing")]),
            &[("tenant", "acme")]
        ),
        "another team's key"
    );
    assert!(
        !ok(&svc, "decrypt", &key(&[]), &[("tenant", "acme")]),
        "an unlabelled key"
    );
    assert!(
        !ok(
            &who("payments", &[], &[]),
            "decrypt",
            &team_key,
            &[("tenant", "acme")]
        ),
        "a principal without a tenant label"
    );
    assert!(
        !ok(
            &who("other", &[], &[("tenant", "acme")]),
            "decrypt",
            &team_key,
            &[("tenant", "acme")]
        ),
        "another principal"
    );
    assert!(
        !ok(&svc, "sign", &team_key, &[("tenant", "acme")]),
        "only the actions granted"
    );
}

#[test]
fn source_ip_conditions() {
    let e = engine_with(&[(
        "vpn",
        include_str!("../../../docs/policies/examples/office-hours-from-vpn.cedar"),
    )]);
    let admin = who("alice", &["key-admin"], &[]);
    let mut r = req(&[]);
    assert!(
        e.authorize(&admin, "schedule-version-destruction", &key(&[]), &r)
            .unwrap()
            .allowed
    );
    r.source_ip = Some("192.0.2.7".into());
    assert!(
        !e.authorize(&admin, "schedule-version-destruction", &key(&[]), &r)
            .unwrap()
            .allowed
    );
    r.source_ip = None;
    assert!(
        !e.authorize(&admin, "schedule-version-destruction", &key(&[]), &r)
            .unwrap()
            .allowed,
        "unknown address is refused"
    );
    assert!(
        e.authorize(&admin, "disable-key", &key(&[]), &r)
            .unwrap()
            .allowed,
        "other actions unaffected"
    );
}

#[test]
fn invalid_documents_are_located() {
    let err = PolicyEngine::validate(
        "bad",
        "permit(principal, action, resource)\nwhen { true }\nforbid(principal,",
    )
    .unwrap_err();
    let PolicyError::Invalid { diagnostics, .. } = err else {
        panic!("{err:?}")
    };
    assert!(
        diagnostics
            .iter()
            .any(|d| d.line == Some(1) || d.line == Some(3)),
        "{diagnostics:?}"
    );
    let err = PolicyEngine::validate(
        "typo",
        "permit(principal, action == Strongroom::Action::\"encrpyt\", resource);",
    )
    .unwrap_err();
    let PolicyError::Invalid { diagnostics, .. } = err else {
        panic!("{err:?}")
    };
    assert!(
        diagnostics[0].message.contains("encrpyt"),
        "{diagnostics:?}"
    );
    assert_eq!(diagnostics[0].line, Some(1));
    let err = PolicyEngine::validate(
        "schema",
        "permit(principal, action == Strongroom::Action::\"decrypt\", resource)\nwhen { resource.colour == \"red\" };",
    )
    .unwrap_err();
    let PolicyError::Invalid { diagnostics, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(diagnostics[0].line, Some(2), "{diagnostics:?}");
    assert!(PolicyEngine::validate("huge", &" ".repeat(MAX_DOCUMENT_LEN + 1)).is_err());
    assert!(
        PolicyEngine::validate(
            "template",
            "permit(principal == ?principal, action, resource);"
        )
        .is_err()
    );
}

/// Key sets follow the roles like keys: users use them, admins manage them, neither both.
#[test]
fn key_set_roles() {
    let e = engine_with(&[]);
    let r = req(&[]);
    let set = ResourceAttrs::KeySet {
        name: "payments".into(),
        labels: BTreeMap::new(),
        exists: true,
    };
    let allowed = |p: &PrincipalAttrs, a: &str| e.authorize(p, a, &set, &r).unwrap().allowed;
    let admin = who("alice", &["key-admin"], &[]);
    let user = who("svc", &["key-user"], &[]);
    let auditor = who("audra", &["auditor"], &[]);
    let nobody = who("eve", &[], &[]);
    for a in [
        "key-set-generate-data-key",
        "key-set-wrap",
        "key-set-decrypt",
    ] {
        assert!(allowed(&user, a), "key-user {a}");
        assert!(!allowed(&admin, a), "key-admin must not {a}");
        assert!(!allowed(&auditor, a));
        assert!(!allowed(&nobody, a));
    }
    for a in ["create-key-set", "update-key-set", "delete-key-set"] {
        assert!(allowed(&admin, a), "key-admin {a}");
        assert!(!allowed(&user, a), "key-user must not {a}");
        assert!(!allowed(&nobody, a));
    }
    assert!(allowed(&user, "get-key-set") && allowed(&admin, "get-key-set"));
    assert!(!allowed(&auditor, "get-key-set"));
    let labelled = engine_with(&[(
        "payments-sets",
        r#"permit (principal == Strongroom::Principal::"eve", action == Strongroom::Action::"key-set-decrypt", resource)
           when { resource.hasTag("team") && resource.getTag("team") == "payments" };"#,
    )]);
    let tagged = ResourceAttrs::KeySet {
        name: "payments".into(),
        labels: BTreeMap::from([("team".into(), "payments".into())]),
        exists: true,
    };
    assert!(
        labelled
            .authorize(&nobody, "key-set-decrypt", &tagged, &r)
            .unwrap()
            .allowed
    );
    assert!(
        !labelled
            .authorize(&nobody, "key-set-decrypt", &set, &r)
            .unwrap()
            .allowed
    );
}

/// The decision cache answers exactly as evaluating does, for every mix of inputs the
/// example policies read (labels, encryption context, source address), repeated and past
/// the cache's capacity.
#[test]
fn cached_decisions_equal_evaluated_ones() {
    let e = engine_with(&[
        (
            "payments-tenant",
            include_str!("../../../docs/policies/examples/payments-tenant.cedar"),
        ),
        (
            "vpn",
            include_str!("../../../docs/policies/examples/office-hours-from-vpn.cedar"),
        ),
    ]);
    assert!(!e.decisions.reads.now && e.decisions.reads.source_ip);
    let tenants = ["acme", "globex", ""];
    let mut checked = 0;
    for round in 0..2 {
        for (i, tenant) in tenants.iter().enumerate() {
            for roles in [&["key-user"][..], &["key-admin"], &[]] {
                for action in ["decrypt", "encrypt", "schedule-version-destruction", "sign"] {
                    for ip in [Some("10.8.1.2"), Some("192.0.2.7"), None] {
                        let p = who("payments", roles, &[("tenant", tenants[(i + round) % 3])]);
                        let k = key(&[("team", "payments")]);
                        let mut r = req(&[("tenant", tenant)]);
                        r.source_ip = ip.map(str::to_string);
                        let want = e.evaluate(&p, action, &k, &r).unwrap();
                        assert_eq!(e.authorize(&p, action, &k, &r).unwrap(), want);
                        assert_eq!(e.authorize(&p, action, &k, &r).unwrap(), want);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 216);
    // Past its capacity the cache starts again, and still answers right.
    for n in 0..(DECISION_CACHE_ENTRIES + 10) {
        let p = who(&format!("p{n}"), &["key-user"], &[]);
        assert!(
            e.authorize(&p, "encrypt", &key(&[]), &req(&[]))
                .unwrap()
                .allowed
        );
    }
    assert!(e.decisions.map.lock().unwrap().len() <= DECISION_CACHE_ENTRIES);
}

/// A policy that reads the time turns the cache off: the same request decides differently
/// at another time.
#[test]
fn a_policy_reading_now_is_never_answered_from_the_cache() {
    let e = engine_with(&[(
        "until",
        r#"@id("until-2027")
permit (principal, action == Strongroom::Action::"encrypt", resource)
when { context.now < 1798761600 };"#,
    )]);
    assert!(e.decisions.reads.now);
    let p = who("late", &[], &[]);
    let mut r = req(&[]);
    r.now = 1_798_761_599;
    assert!(e.authorize(&p, "encrypt", &key(&[]), &r).unwrap().allowed);
    r.now = 1_798_761_600;
    assert!(!e.authorize(&p, "encrypt", &key(&[]), &r).unwrap().allowed);
    assert!(e.decisions.map.lock().unwrap().is_empty());
}

/// The facts a caller may leave out are those no policy names; a policy that uses the
/// whole `context` names them all.
#[test]
fn facts_no_policy_names_are_known() {
    let plain = engine_with(&[(
        "users",
        r#"@id("users")
permit (principal, action == Strongroom::Action::"encrypt", resource)
when { context has protocol && context.protocol == "native" };"#,
    )]);
    assert!(!plain.reads_source_ip() && !plain.reads_encryption_context());
    let vpn = engine_with(&[(
        "vpn",
        include_str!("../../../docs/policies/examples/office-hours-from-vpn.cedar"),
    )]);
    assert!(vpn.reads_source_ip());
    let tenant = engine_with(&[(
        "payments-tenant",
        include_str!("../../../docs/policies/examples/payments-tenant.cedar"),
    )]);
    assert!(tenant.reads_encryption_context());

    assert!(!super::uses_whole_context(
        r#"when { context.now < 1 && context has alias && context["protocol"] == "aws" }"#
    ));
    assert!(!super::uses_whole_context(
        "when { context.encryption_context has tenant }"
    ));
    assert!(super::uses_whole_context(
        r#"when { context == {"now": 1} }"#
    ));
    assert!(super::uses_whole_context(
        "when { principal.x.contains(context) }"
    ));
}
