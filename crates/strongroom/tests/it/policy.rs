//! Principals and policies end to end, through the CLI and HTTP.

use serde_json::{Value, json};

use crate::support::{TestServer, cli, cli_in};

#[tokio::test(flavor = "multi_thread")]
async fn roles_separate_duties_over_http() {
    let srv = TestServer::dev();
    srv.ring("pay").await;
    srv.key("pay/card", json!({})).await;
    let run = |args: &[&str]| {
        let (code, out, err) = cli(&srv, args);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        out
    };
    run(&[
        "principal",
        "create",
        "svc",
        "--role",
        "key-user",
        "--label",
        "team=payments",
    ]);
    run(&[
        "principal",
        "create",
        "alice",
        "--kind",
        "user",
        "--role",
        "key-admin",
    ]);
    let token = |name: &str| -> String {
        let v: Value = serde_json::from_str(&run(&[
            "principal",
            "token",
            name,
            "--ttl",
            "1h",
            "-o",
            "json",
        ]))
        .unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let (svc_t, alice_t) = (token("svc"), token("alice"));

    let enc = json!({"key": "pay/card", "plaintext": "aGk="});
    let (s, v) = srv
        .call_as(
            Some(&svc_t),
            "POST",
            "/v1/crypto/encrypt",
            Some(enc.clone()),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = srv
        .call_as(
            Some(&alice_t),
            "POST",
            "/v1/crypto/encrypt",
            Some(enc.clone()),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("access_denied")),
        "{v}"
    );
    let (s, _) = srv
        .call_as(
            Some(&svc_t),
            "POST",
            "/v1/keyrings/pay/keys/card/disable",
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = srv
        .call_as(
            Some(&alice_t),
            "POST",
            "/v1/keyrings/pay/keys/card/disable",
            None,
        )
        .await;
    assert_eq!(s, 200);
    // A missing key and a forbidden key look the same to someone who may not use keys.
    let (s1, v1) = srv
        .call_as(
            Some(&alice_t),
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "pay/nope", "plaintext": "aGk="})),
        )
        .await;
    assert_eq!(
        (s1, v1["error"]["message"].as_str()),
        (403, v["error"]["message"].as_str())
    );

    // Disabling the principal cuts its token off at once.
    run(&["principal", "update", "svc", "--disable"]);
    let (s, _) = srv
        .call_as(Some(&svc_t), "POST", "/v1/crypto/encrypt", Some(enc))
        .await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_documents_through_the_cli() {
    let srv = TestServer::dev();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| cli_in(&srv, args, Some(dir.path()));

    let (code, out, _) = run(&["policy", "list"]);
    assert_eq!(code, 0);
    for role in [
        "role-key-admin",
        "role-key-user",
        "role-auditor",
        "role-security-admin",
    ] {
        assert!(out.contains(role), "{out}");
    }
    std::fs::write(
        dir.path().join("bad.cedar"),
        "permit(principal, action, resource)\nwhen { resource.colour == \"red\" };\n",
    )
    .unwrap();
    let (code, _, err) = run(&["policy", "validate", "bad.cedar"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("line 2") && err.contains("invalid_argument"),
        "{err}"
    );
    let (code, _, _) = run(&["policy", "put", "bad", "bad.cedar"]);
    assert_ne!(code, 0, "invalid documents are never stored");

    std::fs::write(
        dir.path().join("ci.cedar"),
        "permit(principal == Strongroom::Principal::\"ci\", action == Strongroom::Action::\"encrypt\", resource in Strongroom::KeyRing::\"build\");\n",
    )
    .unwrap();
    assert_eq!(run(&["policy", "validate", "ci.cedar"]).0, 0);
    let (code, out, err) = run(&["policy", "put", "ci", "ci.cedar"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("version 1"), "{out}");
    assert_eq!(run(&["principal", "create", "ci"]).0, 0);
    let (code, out, _) = run(&["policy", "test", "ci", "encrypt", "--key", "build/anything"]);
    assert_eq!((code, out.trim()), (0, "ALLOW by ci#0"));
    let (code, out, _) = run(&["policy", "test", "ci", "decrypt", "--key", "build/anything"]);
    assert_eq!(code, 2);
    assert!(
        out.contains("DENY") && out.contains("default deny"),
        "{out}"
    );
    // Replacing needs the current version: a stale editor does not overwrite silently.
    let (code, _, err) = run(&["policy", "put", "ci", "ci.cedar", "--version", "7"]);
    assert_ne!(code, 0);
    assert!(err.contains("conflict"), "{err}");
    assert_eq!(
        run(&["policy", "put", "ci", "ci.cedar", "--version", "1"]).0,
        0
    );
    let (code, out, _) = run(&["policy", "history", "ci"]);
    assert_eq!(code, 0);
    assert!(out.contains('1') && out.contains('2'), "{out}");
    let (code, out, _) = run(&["policy", "schema"]);
    assert_eq!(code, 0);
    assert!(out.contains("namespace Strongroom"));
}

#[tokio::test(flavor = "multi_thread")]
async fn auditors_query_the_audit_log() {
    let srv = TestServer::dev();
    srv.ring("pay").await;
    srv.key("pay/card", json!({})).await;
    for _ in 0..3 {
        srv.encrypt("pay/card", b"x", json!({})).await;
    }
    let _ = srv
        .call_as(Some("bogus"), "GET", "/v1/keyrings", None)
        .await;
    let run = |args: &[&str]| {
        let (code, out, err) = cli(&srv, args);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        out
    };
    run(&["principal", "create", "audra", "--role", "auditor"]);
    run(&["principal", "create", "svc", "--role", "key-user"]);
    let tok = |n: &str| -> String {
        serde_json::from_str::<Value>(&run(&["principal", "token", n, "-o", "json"])).unwrap()["token"].as_str().unwrap().to_string()
    };
    let (audra, svc) = (tok("audra"), tok("svc"));

    let (s, v) = srv
        .call_as(
            Some(&audra),
            "GET",
            "/v1/audit/events?operation=encrypt&key=pay/card",
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|e| e["principal"] == "root" && e["outcome"] == "ok")
    );
    let (_, v) = srv
        .call_as(
            Some(&audra),
            "GET",
            "/v1/audit/events?outcome=error&limit=1000",
            None,
        )
        .await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["error_code"] == "unauthenticated")
    );
    // Paging by sequence number.
    let (_, p1) = srv
        .call_as(Some(&audra), "GET", "/v1/audit/events?limit=2", None)
        .await;
    let next = p1["next_after_seq"]
        .as_u64()
        .expect("a full page has a cursor");
    let (_, p2) = srv
        .call_as(
            Some(&audra),
            "GET",
            &format!("/v1/audit/events?limit=2&after_seq={next}"),
            None,
        )
        .await;
    assert!(p2["items"][0]["seq"].as_u64().unwrap() > next);
    // JSON lines for a SIEM.
    let (s, _, body) = srv
        .raw(
            "GET",
            "/v1/audit/events?format=ndjson&operation=encrypt",
            &[("authorization", &format!("Bearer {audra}"))],
            vec![],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(body.lines().count(), 3);
    // Key users may not read the audit log; bad filters are refused.
    let (s, _) = srv
        .call_as(Some(&svc), "GET", "/v1/audit/events", None)
        .await;
    assert_eq!(s, 403);
    let (s, _) = srv
        .call_as(Some(&audra), "GET", "/v1/audit/events?outcome=maybe", None)
        .await;
    assert_eq!(s, 400);
    let (s, _) = srv
        .call_as(
            Some(&audra),
            "GET",
            "/v1/audit/events?since=yesterday",
            None,
        )
        .await;
    assert_eq!(s, 400);
    // The CLI's table and tail.
    let out = run(&["audit", "query", "--operation", "encrypt"]);
    assert!(out.contains("encrypt") && out.contains("pay"), "{out}");
    let out = run(&["audit", "tail", "--after-seq", "0", "--count", "2"]);
    assert_eq!(out.lines().count(), 2);
    assert!(
        out.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );
}

/// RELIABILITY R3: a principal over its quota gets 429 with a retry hint; others are not
/// affected, and the root token is never throttled.
#[tokio::test(flavor = "multi_thread")]
async fn quotas_throttle_one_principal_only() {
    let srv = TestServer::dev();
    srv.ring("pay").await;
    srv.key("pay/card", json!({})).await;
    let run = |args: &[&str]| {
        let (code, out, err) = cli(&srv, args);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        out
    };
    run(&[
        "principal",
        "create",
        "slow",
        "--role",
        "key-user",
        "--rate-limit",
        "crypto=1",
    ]);
    run(&["principal", "create", "fast", "--role", "key-user"]);
    let tok = |n: &str| -> String {
        serde_json::from_str::<Value>(&run(&["principal", "token", n, "-o", "json"])).unwrap()["token"].as_str().unwrap().to_string()
    };
    let (slow, fast) = (tok("slow"), tok("fast"));
    let enc = json!({"key": "pay/card", "plaintext": "aGk="});
    let auth = format!("Bearer {slow}");
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    // A burst of twice the rate passes, then the bucket is empty.
    let mut statuses = Vec::new();
    let mut throttled = None;
    for _ in 0..4 {
        let (s, headers, body) = srv
            .raw(
                "POST",
                "/v1/crypto/encrypt",
                &h,
                enc.to_string().into_bytes(),
            )
            .await;
        statuses.push(s);
        if s == 429 {
            throttled = Some((headers, body));
        }
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert_eq!(statuses[3], 429, "{statuses:?}");
    let (headers, body) = throttled.unwrap();
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "throttled");
    assert!(v["error"]["message"].as_str().unwrap().contains("crypto"));
    // Another class, another principal and root are unaffected.
    assert_eq!(
        srv.call_as(Some(&slow), "GET", "/v1/keyrings/pay/keys/card", None)
            .await
            .0,
        200
    );
    for _ in 0..5 {
        assert_eq!(
            srv.call_as(Some(&fast), "POST", "/v1/crypto/encrypt", Some(enc.clone()))
                .await
                .0,
            200
        );
        assert_eq!(
            srv.call("POST", "/v1/crypto/encrypt", Some(enc.clone()))
                .await
                .0,
            200
        );
    }
    // Throttled requests are audited as such.
    let (_, ev) = srv
        .call("GET", "/v1/audit/events?outcome=error&limit=1000", None)
        .await;
    assert!(
        ev["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["error_code"] == "throttled" && e["principal"] == "slow")
    );
}

/// The server-wide default quota (`--rate-limit`) applies to principals without their own.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_quota_comes_from_the_command_line() {
    let srv = TestServer::start(
        &["--dev", "--rate-limit", "crypto=1"],
        &[("STRONGROOM_DEV_ROOT_TOKEN", crate::support::ROOT)],
    )
    .server
    .expect("starts");
    srv.ring("pay").await;
    srv.key("pay/card", json!({})).await;
    let (code, _, err) = cli(&srv, &["principal", "create", "svc", "--role", "key-user"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = cli(&srv, &["principal", "token", "svc", "-o", "json"]);
    let t = serde_json::from_str::<Value>(&out).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let enc = json!({"key": "pay/card", "plaintext": "aGk="});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            srv.call_as(Some(&t), "POST", "/v1/crypto/encrypt", Some(enc.clone()))
                .await
                .0,
        );
    }
    assert_eq!(statuses[3], 429, "{statuses:?}");
    let bad = TestServer::start(&["--dev", "--rate-limit", "crypto=fast"], &[]);
    assert!(bad.server.is_none());
    assert!(bad.stderr.contains("rate-limit"), "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn access_keys_through_the_cli() {
    let srv = TestServer::dev();
    let run = |args: &[&str]| {
        let (code, out, err) = cli(&srv, args);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        out
    };
    run(&["principal", "create", "app", "--role", "key-user"]);
    let created: Value = serde_json::from_str(&run(&[
        "principal",
        "access-key",
        "create",
        "app",
        "--description",
        "ci",
        "-o",
        "json",
    ]))
    .unwrap();
    let id = created["access_key_id"].as_str().unwrap().to_string();
    let secret = created["secret_access_key"].as_str().unwrap().to_string();
    assert!(id.starts_with("SRAK") && secret.len() == 40, "{created}");
    assert_eq!(created["principal"], "app");

    // Listing never shows the secret.
    let table = run(&["principal", "access-key", "list", "app"]);
    assert!(table.contains(&id) && !table.contains(&secret), "{table}");
    let list: Value = serde_json::from_str(&run(&[
        "principal",
        "access-key",
        "list",
        "app",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("secret_access_key").is_none());

    // A second pair is allowed, a third is not.
    run(&["principal", "access-key", "create", "app"]);
    let (code, _, err) = cli(&srv, &["principal", "access-key", "create", "app"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("invalid_state") || err.contains("2 active"),
        "{err}"
    );

    let revoked: Value = serde_json::from_str(&run(&[
        "principal",
        "access-key",
        "revoke",
        &id,
        "-o",
        "json",
    ]))
    .unwrap();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    // Over HTTP: unknown principal, unauthenticated, malformed body.
    let (s, v) = srv
        .call("GET", "/v1/principals/ghost/access-keys", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    let (s, _) = srv
        .call_as(None, "POST", "/v1/principals/app/access-keys", None)
        .await;
    assert_eq!(s, 401);
    let (s, v) = srv
        .call(
            "POST",
            "/v1/principals/app/access-keys",
            Some(json!({"description": 7})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_argument")),
        "{v}"
    );
    // The secret is in no log.
    assert!(!srv.logs().contains(&secret));
}
