//! `serve --providers FILE` and `GET /v1/providers` (a healthy provider is tested against a
//! real OpenBao in tests/python/test_deploy.py and crates/strongroom-providers).

use serde_json::json;

use crate::support::{ROOT, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_does_not_answer_is_listed_unhealthy() {
    let tmp = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "s.secret-vault-token").unwrap();
    let file = tmp.path().join("providers.toml");
    std::fs::write(
        &file,
        format!("[providers.east]\nkind = \"vault-transit\"\naddress = \"http://{closed}\"\ntoken_file = \"{}\"\ntimeout = \"1s\"\n", token.display()),
    )
    .unwrap();
    let srv = TestServer::start(
        &["--dev", "--providers", file.to_str().unwrap()],
        &[("STRONGROOM_DEV_ROOT_TOKEN", ROOT)],
    )
    .server
    .expect("server starts");
    let v = srv.ok("GET", "/v1/providers", None).await;
    let p = &v["items"][0];
    assert_eq!(
        (
            p["name"].as_str(),
            p["kind"].as_str(),
            p["healthy"].as_bool()
        ),
        (Some("east"), Some("vault-transit"), Some(false))
    );
    let err = p["error"].as_str().unwrap();
    assert!(
        err.contains("east") && err.contains("cannot connect"),
        "{err}"
    );
    assert!(!v.to_string().contains("secret-vault-token"));
    // Authorization: anonymous 401, a principal without read permissions 403.
    assert_eq!(srv.call_as(None, "GET", "/v1/providers", None).await.0, 401);
    srv.ok(
        "POST",
        "/v1/principals",
        Some(json!({"name": "nobody", "kind": "workload", "roles": []})),
    )
    .await;
    let t = srv
        .ok(
            "POST",
            "/v1/principals/nobody/tokens",
            Some(json!({"ttl": "1h"})),
        )
        .await;
    assert_eq!(
        srv.call_as(t["token"].as_str(), "GET", "/v1/providers", None)
            .await
            .0,
        403
    );
}

#[test]
fn a_bad_providers_file_refuses_the_start_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("providers.toml");
    for (text, want) in [
        ("[providers.x]\nkind = \"cloudhsm\"\n", "unknown variant"),
        (
            "[providers.x]\nkind = \"vault-transit\"\naddress = \"http://127.0.0.1:1\"\n",
            "exactly one of token_env",
        ),
        ("not toml at all [", "providers.toml"),
    ] {
        std::fs::write(&file, text).unwrap();
        let started = TestServer::start(
            &["--dev", "--providers", file.to_str().unwrap()],
            &[("STRONGROOM_DEV_ROOT_TOKEN", ROOT)],
        );
        assert!(started.server.is_none(), "{text}");
        assert!(started.stderr.contains(want), "{text}: {}", started.stderr);
    }
    let started = TestServer::start(
        &[
            "--dev",
            "--providers",
            tmp.path().join("absent.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert!(started.server.is_none());
    assert!(
        started.stderr.contains("cannot read the providers file"),
        "{}",
        started.stderr
    );
}

/// `default_credential_chain = true` resolves credentials as the AWS SDK does: here from
/// the environment, then through web identity (an OIDC token file and a role, as EKS sets
/// them) against moto's STS.
#[tokio::test(flavor = "multi_thread")]
async fn aws_credentials_come_from_the_sdks_default_chain() {
    let moto = tokio::task::spawn_blocking(strongroom_testkit::peers::Moto::start)
        .await
        .unwrap();
    let aws_key = moto.create_key();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("providers.toml");
    std::fs::write(
        &file,
        format!(
            "[providers.aws]\nkind = \"aws-kms\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\ndefault_credential_chain = true\n",
            moto.url
        ),
    )
    .unwrap();
    let token = tmp.path().join("web-identity-token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c3Ryb25ncm9vbSJ9.c2ln",
    )
    .unwrap();
    let home = tmp.path().to_str().unwrap().to_string();
    let sts = moto.url.clone();
    let token_path = token.to_str().unwrap().to_string();
    for (how, env) in [
        (
            "environment",
            vec![
                ("AWS_ACCESS_KEY_ID", "AKIDCHAIN"),
                ("AWS_SECRET_ACCESS_KEY", "chain-secret"),
            ],
        ),
        (
            "web identity",
            vec![
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token_path.as_str()),
                ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/strongroom"),
                ("AWS_ROLE_SESSION_NAME", "strongroom-test"),
                ("AWS_ENDPOINT_URL_STS", sts.as_str()),
                // Nothing else in the chain may answer: only web identity can succeed.
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("AWS_PROFILE", ""),
            ],
        ),
    ] {
        let mut all = vec![
            ("STRONGROOM_DEV_ROOT_TOKEN", ROOT),
            ("HOME", home.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        all.extend(env);
        let srv = TestServer::start(&["--dev", "--providers", file.to_str().unwrap()], &all)
            .server
            .expect("server starts");
        srv.ok("POST", "/v1/keyrings", Some(json!({"name": "ext"})))
            .await;
        let (status, made) = srv
            .call(
                "POST",
                "/v1/keyrings/ext/keys",
                Some(json!({"name": "k", "protection": "external", "provider": "aws", "provider_key": aws_key})),
            )
            .await;
        assert_eq!(status, 201, "{how}: {made}");
        let ct = srv.encrypt("ext/k", b"chained", json!({})).await;
        let (status, back) = srv.decrypt(&ct, json!({})).await;
        assert_eq!(status, 200, "{how}: {back}");
    }
    // And when no link of the chain has credentials: a clear refusal, nothing created.
    let srv = TestServer::start(
        &["--dev", "--providers", file.to_str().unwrap()],
        &[
            ("STRONGROOM_DEV_ROOT_TOKEN", ROOT),
            ("HOME", home.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ],
    )
    .server
    .expect("server starts");
    srv.ok("POST", "/v1/keyrings", Some(json!({"name": "ext"})))
        .await;
    let (status, body) = srv
        .call(
            "POST",
            "/v1/keyrings/ext/keys",
            Some(json!({"name": "k", "protection": "external", "provider": "aws", "provider_key": aws_key})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("aws"),
        "{body}"
    );
    assert_eq!(
        srv.call("GET", "/v1/keyrings/ext/keys/k", None).await.0,
        404
    );
}

/// Protection `hsm`: Strongroom generates the key inside a PKCS#11 token (SoftHSM2) and
/// uses it there through every operation; the material never leaves the token.
#[tokio::test(flavor = "multi_thread")]
async fn hsm_keys_are_generated_in_the_token_and_used_there() {
    let hsm =
        tokio::task::spawn_blocking(|| strongroom_testkit::peers::SoftHsm::init("strongroom"))
            .await
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let token = tmp.path().join("vault-token");
    std::fs::write(&token, "s.unused").unwrap();
    let file = tmp.path().join("providers.toml");
    std::fs::write(
        &file,
        format!(
            "{}\n[providers.vault]\nkind = \"vault-transit\"\naddress = \"http://{closed}\"\ntoken_file = \"{}\"\n",
            hsm.provider_toml("hsm"),
            token.display()
        ),
    )
    .unwrap();
    let srv = TestServer::start(
        &["--dev", "--providers", file.to_str().unwrap()],
        &[
            ("STRONGROOM_DEV_ROOT_TOKEN", ROOT),
            ("SOFTHSM2_CONF", hsm.conf.to_str().unwrap()),
        ],
    )
    .server
    .expect("server starts");
    srv.ok("POST", "/v1/keyrings", Some(json!({"name": "app"})))
        .await;
    let (code, out, err) = crate::support::cli(
        &srv,
        &["-o", "json", "key", "create", "app/in-hsm", "--hsm", "hsm"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let k: serde_json::Value = serde_json::from_str(&out).unwrap();
    let label = format!("strongroom-{}", k["id"].as_str().unwrap());
    assert_eq!(
        (
            k["protection"].as_str(),
            k["provider"].as_str(),
            k["provider_key"].as_str()
        ),
        (Some("hsm"), Some("hsm"), Some(label.as_str()))
    );
    // In the token: AES-256, sensitive, never extractable.
    let objects = hsm.list_objects();
    let block = objects
        .split("Secret Key Object")
        .find(|b| b.contains(&label))
        .unwrap_or_else(|| panic!("{label} not in the token: {objects}"));
    assert!(block.contains("AES length 32"), "{block}");
    assert!(
        block.contains("never extractable") && block.contains("sensitive"),
        "{block}"
    );
    // Used through the ordinary operations.
    let ct = srv
        .encrypt("app/in-hsm", b"inside the token", json!({"a": "b"}))
        .await;
    let (status, back) = srv.decrypt(&ct, json!({"a": "b"})).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(
        back["plaintext"],
        base64::Engine::encode(&crate::support::B64, b"inside the token")
    );
    assert_eq!(srv.decrypt(&ct, json!({"a": "c"})).await.0, 400);
    let dk = srv
        .ok(
            "POST",
            "/v1/crypto/generate-data-key",
            Some(json!({"key": "app/in-hsm"})),
        )
        .await;
    let (status, _) = srv
        .decrypt(dk["ciphertext"].as_str().unwrap(), json!({}))
        .await;
    assert_eq!(status, 200);
    // A signing key made in the token: signatures from the token, verified here.
    for (name, alg) in [
        ("signer", "ecdsa-p256-sha256"),
        ("rsa-signer", "rsa-pss-2048-sha256"),
        ("rsa-pkcs1", "rsa-pkcs1-2048-sha256"),
    ] {
        let made = srv
            .ok(
                "POST",
                "/v1/keyrings/app/keys",
                Some(json!({"name": name, "purpose": "sign-verify", "algorithm": alg, "protection": "hsm", "provider": "hsm"})),
            )
            .await;
        assert_eq!(made["protection"], "hsm");
        let key = format!("app/{name}");
        let msg = base64::Engine::encode(&crate::support::B64, b"release");
        let signed = srv
            .ok(
                "POST",
                "/v1/crypto/sign",
                Some(json!({"key": key, "message": msg})),
            )
            .await;
        let ok = srv
            .ok(
                "POST",
                "/v1/crypto/verify",
                Some(json!({"key": key, "message": msg, "signature": signed["signature"]})),
            )
            .await;
        assert_eq!(ok["valid"], true, "{alg}");
    }
    // Refusals: a taken name (nothing made in the token), a provider that cannot generate,
    // one that does not exist, and hsm with a provider_key.
    let before = hsm.list_objects().matches("Object;").count();
    for (body, status, needle) in [
        (
            json!({"name": "in-hsm", "protection": "hsm", "provider": "hsm"}),
            409,
            "already exists",
        ),
        (
            json!({"name": "v", "protection": "hsm", "provider": "vault"}),
            400,
            "cannot generate this key",
        ),
        (
            json!({"name": "r", "purpose": "sign-verify", "algorithm": "ed25519", "protection": "hsm", "provider": "hsm"}),
            400,
            "sign-verify keys of an ECDSA or RSA algorithm",
        ),
        (
            json!({"name": "r", "purpose": "sign-verify", "algorithm": "ecdsa-p521-sha512", "protection": "hsm", "provider": "hsm"}),
            400,
            "ECDSA P-256/P-384",
        ),
        (
            json!({"name": "n", "protection": "hsm", "provider": "nosuch"}),
            400,
            "no provider",
        ),
        (
            json!({"name": "p", "protection": "hsm", "provider": "hsm", "provider_key": "x"}),
            400,
            "give no provider_key",
        ),
    ] {
        let (s, v) = srv
            .call("POST", "/v1/keyrings/app/keys", Some(body.clone()))
            .await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    let after = hsm.list_objects();
    assert_eq!(after.matches("Object;").count(), before, "{after}");
}

/// The provider view and `at_provider` over the real binary, an AWS key at moto: what AWS
/// says of the key beside Strongroom's record, drift when they disagree, and switching the
/// AWS key only when asked. Plus the refusals: malformed, unauthorised, wrong-state.
#[tokio::test(flavor = "multi_thread")]
async fn the_provider_view_and_at_provider_over_http_and_the_cli() {
    let moto = tokio::task::spawn_blocking(strongroom_testkit::peers::Moto::start)
        .await
        .unwrap();
    let aws_key = moto.create_key();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("providers.toml");
    std::fs::write(
        &file,
        format!(
            "[providers.aws]\nkind = \"aws-kms\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\naccess_key_id_env = \"SR_TEST_AWS_ID\"\nsecret_access_key_env = \"SR_TEST_AWS_SECRET\"\n",
            moto.url
        ),
    )
    .unwrap();
    let srv = TestServer::start(
        &["--dev", "--providers", file.to_str().unwrap()],
        &[
            ("STRONGROOM_DEV_ROOT_TOKEN", ROOT),
            ("SR_TEST_AWS_ID", "AKIDMOTO"),
            ("SR_TEST_AWS_SECRET", "secret"),
        ],
    )
    .server
    .expect("server starts");
    srv.ok("POST", "/v1/keyrings", Some(json!({"name": "ext"})))
        .await;
    srv.ok(
        "POST",
        "/v1/keyrings/ext/keys",
        Some(json!({"name": "k", "protection": "external", "provider": "aws", "provider_key": aws_key})),
    )
    .await;
    let aws_enabled = || {
        let d: serde_json::Value =
            serde_json::from_str(&moto.kms("DescribeKey", &format!("{{\"KeyId\":\"{aws_key}\"}}")))
                .unwrap();
        d["KeyMetadata"]["Enabled"].as_bool().unwrap()
    };
    // In step.
    let view = srv
        .ok("GET", "/v1/keyrings/ext/keys/k/provider", None)
        .await;
    assert_eq!(view["provider"], "aws");
    assert_eq!(view["provider_key"], aws_key.as_str());
    assert_eq!(view["described"]["enabled"], true, "{view}");
    assert_eq!(view["versions"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(view["drift"], json!([]), "{view}");
    // Disabled in Strongroom only: AWS still enabled; then at AWS too, through the CLI.
    srv.ok("POST", "/v1/keyrings/ext/keys/k/disable", None)
        .await;
    assert!(aws_enabled());
    srv.ok("POST", "/v1/keyrings/ext/keys/k/enable", None).await;
    let (code, out, err) = crate::support::cli(
        &srv,
        &["-o", "json", "key", "disable", "ext/k", "--at-provider"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!aws_enabled(), "disabled at AWS");
    let k: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(k["state"], "disabled");
    // Enabled in Strongroom only: the view names the drift.
    srv.ok("POST", "/v1/keyrings/ext/keys/k/enable", None).await;
    let (code, out, err) =
        crate::support::cli(&srv, &["-o", "json", "key", "provider-view", "ext/k"]);
    assert_eq!(code, 0, "{out}{err}");
    let view: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view["drift"][0]["kind"], "provider-disabled", "{view}");
    srv.ok(
        "POST",
        "/v1/keyrings/ext/keys/k/enable",
        Some(json!({"at_provider": true})),
    )
    .await;
    assert!(aws_enabled());
    // Malformed: an unknown field, a wrong type — 400, nothing switched.
    for body in [
        json!({"at_provider": true, "also": 1}),
        json!({"at_provider": "yes"}),
    ] {
        let (status, out) = srv
            .call("POST", "/v1/keyrings/ext/keys/k/disable", Some(body))
            .await;
        assert_eq!(status, 400, "{out}");
    }
    assert!(aws_enabled());
    assert_eq!(
        srv.ok("GET", "/v1/keyrings/ext/keys/k", None).await["state"],
        "enabled"
    );
    // Unauthorised: no token, a bad token.
    for token in [None, Some("srt_not-a-token")] {
        let (status, _) = srv
            .call_as(token, "GET", "/v1/keyrings/ext/keys/k/provider", None)
            .await;
        assert_eq!(status, 401);
        let (status, _) = srv
            .call_as(
                token,
                "POST",
                "/v1/keyrings/ext/keys/k/disable",
                Some(json!({"at_provider": true})),
            )
            .await;
        assert_eq!(status, 401);
    }
    assert!(aws_enabled());
    // Wrong state: a software key has no provider view and no provider switch; an unknown
    // key is not found.
    srv.ok(
        "POST",
        "/v1/keyrings/ext/keys",
        Some(json!({"name": "soft"})),
    )
    .await;
    let (status, out) = srv
        .call("GET", "/v1/keyrings/ext/keys/soft/provider", None)
        .await;
    assert_eq!(status, 409, "{out}");
    let (status, out) = srv
        .call(
            "POST",
            "/v1/keyrings/ext/keys/soft/disable",
            Some(json!({"at_provider": true})),
        )
        .await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(
        srv.ok("GET", "/v1/keyrings/ext/keys/soft", None).await["state"],
        "enabled"
    );
    let (status, _) = srv
        .call("GET", "/v1/keyrings/ext/keys/nope/provider", None)
        .await;
    assert_eq!(status, 404);
}
