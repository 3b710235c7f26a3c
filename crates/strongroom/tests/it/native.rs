//! The native API end to end: every key type through its whole lifecycle.

use serde_json::{Value, json};

use crate::support::{B64, TestServer};
use base64::Engine;

#[tokio::test]
async fn health_and_openapi_need_no_token() {
    let srv = TestServer::dev();
    let (s, v) = srv.call_as(None, "GET", "/v1/sys/health", None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, v) = srv.call_as(None, "GET", "/v1/openapi.json", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        v["openapi"].as_str().map(|s| s.starts_with("3.")),
        Some(true)
    );
    let (s, h, _) = srv.raw("GET", "/v1/sys/health", &[], vec![]).await;
    assert_eq!(s, 200);
    assert!(
        h.get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[tokio::test]
async fn symmetric_key_lifecycle() {
    let srv = TestServer::dev();
    srv.ring("pay").await;
    let k = srv
        .key("pay/card", json!({"labels": {"team": "payments"}}))
        .await;
    assert_eq!(k["purpose"], "encrypt-decrypt");
    assert_eq!(k["algorithm"], "aes-256-gcm");
    assert_eq!(k["primary_version"], 1);
    assert_eq!(k["first_version"]["state"], "enabled");
    assert_eq!(k["exportable"], false);

    let ctx = json!({"tenant": "acme", "purpose": "billing"});
    let ct1 = srv
        .encrypt("pay/card", b"4111 1111 1111 1111", ctx.clone())
        .await;
    // Context order does not matter; its content does.
    let (s, v) = srv
        .decrypt(&ct1, json!({"purpose": "billing", "tenant": "acme"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        B64.decode(v["plaintext"].as_str().unwrap()).unwrap(),
        b"4111 1111 1111 1111"
    );
    assert_eq!(
        (v["key"].as_str(), v["version"].as_u64()),
        (Some("pay/card"), Some(1))
    );
    for bad in [
        json!({}),
        json!({"tenant": "acme"}),
        json!({"tenant": "Acme", "purpose": "billing"}),
        json!({"tenant": "acme", "purpose": "billing", "x": "y"}),
    ] {
        let (s, v) = srv.decrypt(&ct1, bad).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("invalid_ciphertext"))
        );
    }

    // Rotate: new encryptions use v2, the v1 ciphertext still decrypts.
    let v2 = srv
        .ok("POST", "/v1/keyrings/pay/keys/card/versions", None)
        .await;
    assert_eq!(v2["version"], 2);
    let ct2 = srv.encrypt("pay/card", b"x", json!({})).await;
    let (_, d2) = srv.decrypt(&ct2, json!({})).await;
    assert_eq!(d2["version"], 2);
    let (s, d1) = srv.decrypt(&ct1, ctx.clone()).await;
    assert_eq!((s, d1["version"].as_u64()), (200, Some(1)));

    // Data keys: the wrapped copy decrypts to the plaintext copy.
    let dk = srv
        .ok(
            "POST",
            "/v1/crypto/generate-data-key",
            Some(json!({"key": "pay/card", "context": {"file": "a"}})),
        )
        .await;
    let plain = dk["plaintext"].as_str().unwrap().to_string();
    assert_eq!(B64.decode(&plain).unwrap().len(), 32);
    let (_, opened) = srv
        .decrypt(dk["ciphertext"].as_str().unwrap(), json!({"file": "a"}))
        .await;
    assert_eq!(opened["plaintext"].as_str(), Some(plain.as_str()));
    let wrapped_only = srv
        .ok(
            "POST",
            "/v1/crypto/generate-data-key",
            Some(json!({"key": "pay/card", "length": 16, "include_plaintext": false})),
        )
        .await;
    assert!(wrapped_only.get("plaintext").is_none());

    // Re-encrypt v1's ciphertext under the new primary without seeing the plaintext.
    let re = srv.ok("POST", "/v1/crypto/re-encrypt", Some(json!({"ciphertext": ct1, "source_context": ctx, "destination_context": {"moved": "yes"}}))).await;
    assert_eq!(
        (re["source_version"].as_u64(), re["version"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(re.get("plaintext").is_none());
    let (_, d) = srv
        .decrypt(re["ciphertext"].as_str().unwrap(), json!({"moved": "yes"}))
        .await;
    assert_eq!(
        B64.decode(d["plaintext"].as_str().unwrap()).unwrap(),
        b"4111 1111 1111 1111"
    );

    // Disable v1: its ciphertexts are refused with the state named; enable brings them back.
    srv.ok(
        "POST",
        "/v1/keyrings/pay/keys/card/versions/1/disable",
        None,
    )
    .await;
    let (s, v) = srv.decrypt(&ct1, ctx.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("disabled"),
        "{v}"
    );
    srv.ok("POST", "/v1/keyrings/pay/keys/card/versions/1/enable", None)
        .await;
    assert_eq!(srv.decrypt(&ct1, ctx.clone()).await.0, 200);

    // Disable the key as a whole.
    srv.ok("POST", "/v1/keyrings/pay/keys/card/disable", None)
        .await;
    let (s, v) = srv
        .call(
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "pay/card", "plaintext": "eA=="})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    srv.ok("POST", "/v1/keyrings/pay/keys/card/enable", None)
        .await;

    // Set v1 primary again; list versions.
    let k = srv
        .ok(
            "POST",
            "/v1/keyrings/pay/keys/card/primary",
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(k["primary_version"], 1);
    let vs = srv
        .ok("GET", "/v1/keyrings/pay/keys/card/versions", None)
        .await;
    assert_eq!(vs["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn destruction_window_and_restore() {
    let srv = TestServer::dev();
    srv.ring("r").await;
    srv.key("r/k", json!({})).await;
    let ct = srv.encrypt("r/k", b"secret", json!({})).await;
    srv.ok("POST", "/v1/keyrings/r/keys/k/versions", None).await;

    for bad in ["0d", "121d", "-1d", "1.5d", "23h"] {
        let (s, v) = srv
            .call(
                "POST",
                "/v1/keyrings/r/keys/k/versions/1/destroy",
                Some(json!({"window": bad})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("invalid_argument")),
            "{bad}"
        );
    }
    let v = srv
        .ok("POST", "/v1/keyrings/r/keys/k/versions/1/destroy", None)
        .await;
    assert_eq!(v["state"], "destroy_scheduled");
    let when =
        strongroom_core::Timestamp::parse_rfc3339(v["destroy_time"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (when.0 - now - 30 * 86400).abs() < 120,
        "default window is 30 days"
    );

    let (s, v) = srv.decrypt(&ct, json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("destroy_scheduled")
    );
    let (s, _) = srv
        .call("POST", "/v1/keyrings/r/keys/k/versions/1/destroy", None)
        .await;
    assert_eq!(s, 409, "scheduling twice is refused");

    let v = srv
        .ok("POST", "/v1/keyrings/r/keys/k/versions/1/restore", None)
        .await;
    assert_eq!(
        (v["state"].as_str(), v["destroy_time"].as_str()),
        (Some("disabled"), None)
    );
    assert_eq!(
        srv.decrypt(&ct, json!({})).await.0,
        409,
        "restored versions come back disabled"
    );
    srv.ok("POST", "/v1/keyrings/r/keys/k/versions/1/enable", None)
        .await;
    let (s, v) = srv.decrypt(&ct, json!({})).await;
    assert_eq!(s, 200, "{v}");
}

async fn sign_verify(srv: &TestServer, key: &str, digest_len: Option<usize>) {
    let msg = B64.encode(b"the message");
    let sig = srv
        .ok(
            "POST",
            "/v1/crypto/sign",
            Some(json!({"key": key, "message": msg})),
        )
        .await;
    let s = sig["signature"].as_str().unwrap();
    let v = srv
        .ok(
            "POST",
            "/v1/crypto/verify",
            Some(json!({"key": key, "message": msg, "signature": s})),
        )
        .await;
    assert_eq!(v["valid"], true, "{key}");
    let other = B64.encode(b"another message");
    let v = srv
        .ok(
            "POST",
            "/v1/crypto/verify",
            Some(json!({"key": key, "message": other, "signature": s})),
        )
        .await;
    assert_eq!(v["valid"], false, "{key}");
    let pk = srv
        .ok(
            "GET",
            &format!("/v1/keyrings/{}/public-key", key.replacen('/', "/keys/", 1)),
            None,
        )
        .await;
    assert!(
        pk["pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );
    // Verify locally with the returned public key, as a client would.
    let alg: strongroom_crypto::Algorithm = pk["algorithm"].as_str().unwrap().parse().unwrap();
    let der = B64.decode(pk["der"].as_str().unwrap()).unwrap();
    let raw_sig = B64.decode(s).unwrap();
    assert!(
        strongroom_crypto::keys::verify(
            alg,
            &der,
            strongroom_crypto::keys::SignInput::Message(b"the message"),
            &raw_sig
        )
        .unwrap()
    );
    match digest_len {
        Some(n) => {
            let hash = alg.signing_hash().unwrap();
            assert_eq!(hash.output_len(), n);
            let d = strongroom_crypto::hash::digest(hash, b"the message");
            let sig = srv
                .ok(
                    "POST",
                    "/v1/crypto/sign",
                    Some(json!({"key": key, "digest": B64.encode(&d)})),
                )
                .await;
            let v = srv
                .ok(
                    "POST",
                    "/v1/crypto/verify",
                    Some(json!({"key": key, "message": msg, "signature": sig["signature"]})),
                )
                .await;
            assert_eq!(
                v["valid"], true,
                "digest signature verifies against the message"
            );
            let (s, e) = srv
                .call(
                    "POST",
                    "/v1/crypto/sign",
                    Some(json!({"key": key, "digest": B64.encode(&d[1..])})),
                )
                .await;
            assert_eq!(
                (s, e["error"]["code"].as_str()),
                (400, Some("invalid_argument"))
            );
        }
        None => {
            let (s, e) = srv
                .call(
                    "POST",
                    "/v1/crypto/sign",
                    Some(json!({"key": key, "digest": B64.encode([0u8; 32])})),
                )
                .await;
            assert_eq!(
                (s, e["error"]["code"].as_str()),
                (400, Some("invalid_argument"))
            );
        }
    }
}

#[tokio::test]
async fn signing_keys() {
    let srv = TestServer::dev();
    srv.ring("s").await;
    for (name, alg, dl) in [
        ("p256", "ecdsa-p256-sha256", Some(32)),
        ("p384", "ecdsa-p384-sha384", Some(48)),
        ("p521", "ecdsa-p521-sha512", Some(64)),
        ("k1", "ecdsa-secp256k1-sha256", Some(32)),
        ("ed", "ed25519", None),
        ("mldsa", "ml-dsa-65", None),
        ("pss", "rsa-pss-2048-sha256", Some(32)),
        ("pkcs1", "rsa-pkcs1-2048-sha512", Some(64)),
    ] {
        let k = srv
            .key(&format!("s/{name}"), json!({"algorithm": alg}))
            .await;
        assert_eq!(
            (k["purpose"].as_str(), k["algorithm"].as_str()),
            (Some("sign-verify"), Some(alg))
        );
        sign_verify(&srv, &format!("s/{name}"), dl).await;
    }
    // A signing key refuses to encrypt.
    let (s, v) = srv
        .call(
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "s/ed", "plaintext": "eA=="})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_key_usage"))
    );
}

#[tokio::test]
async fn asymmetric_decrypt_and_mac_keys() {
    let srv = TestServer::dev();
    srv.ring("a").await;
    srv.key(
        "a/rsa",
        json!({"purpose": "asymmetric-decrypt", "algorithm": "rsa-oaep-2048-sha256"}),
    )
    .await;
    let pk = srv
        .ok("GET", "/v1/keyrings/a/keys/rsa/public-key", None)
        .await;
    let der = B64.decode(pk["der"].as_str().unwrap()).unwrap();
    let ct = strongroom_crypto::keys::rsa_oaep_encrypt(&der, b"wrapped secret").unwrap();
    let v = srv
        .ok(
            "POST",
            "/v1/crypto/asymmetric-decrypt",
            Some(json!({"key": "a/rsa", "ciphertext": B64.encode(&ct)})),
        )
        .await;
    assert_eq!(
        B64.decode(v["plaintext"].as_str().unwrap()).unwrap(),
        b"wrapped secret"
    );
    let mut bad = ct.clone();
    bad[10] ^= 1;
    let (s, v) = srv
        .call(
            "POST",
            "/v1/crypto/asymmetric-decrypt",
            Some(json!({"key": "a/rsa", "ciphertext": B64.encode(&bad)})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_ciphertext"))
    );

    for alg in ["hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"] {
        let name = format!("a/{alg}");
        srv.key(&name, json!({"algorithm": alg})).await;
        let m = srv
            .ok(
                "POST",
                "/v1/crypto/mac",
                Some(json!({"key": name, "message": B64.encode(b"data")})),
            )
            .await;
        let tag = m["mac"].as_str().unwrap().to_string();
        assert_eq!(
            B64.decode(&tag).unwrap().len(),
            match alg {
                "hmac-sha224" => 28,
                "hmac-sha256" => 32,
                "hmac-sha384" => 48,
                _ => 64,
            }
        );
        let ok = srv
            .ok(
                "POST",
                "/v1/crypto/mac-verify",
                Some(json!({"key": name, "message": B64.encode(b"data"), "mac": tag})),
            )
            .await;
        assert_eq!(ok["valid"], true);
        let no = srv
            .ok(
                "POST",
                "/v1/crypto/mac-verify",
                Some(json!({"key": name, "message": B64.encode(b"datA"), "mac": tag})),
            )
            .await;
        assert_eq!(no["valid"], false);
        // After rotation the old tag verifies against its version, not the new primary.
        srv.ok("POST", &format!("/v1/keyrings/a/keys/{alg}/versions"), None)
            .await;
        let new_primary = srv
            .ok(
                "POST",
                "/v1/crypto/mac-verify",
                Some(json!({"key": name, "message": B64.encode(b"data"), "mac": tag})),
            )
            .await;
        assert_eq!(new_primary["valid"], false);
        let v1 = srv
            .ok(
                "POST",
                "/v1/crypto/mac-verify",
                Some(
                    json!({"key": name, "version": 1, "message": B64.encode(b"data"), "mac": tag}),
                ),
            )
            .await;
        assert_eq!(v1["valid"], true);
    }
    let r = srv
        .ok("POST", "/v1/crypto/random", Some(json!({"length": 64})))
        .await;
    assert_eq!(B64.decode(r["random"].as_str().unwrap()).unwrap().len(), 64);
}

#[tokio::test]
async fn aliases_keys_listing_and_tokens() {
    let srv = TestServer::dev();
    srv.ring("r").await;
    for i in 0..5 {
        let env = if i % 2 == 0 { "prod" } else { "dev" };
        srv.key(&format!("r/k{i}"), json!({"labels": {"env": env}}))
            .await;
    }
    srv.key("r/sig", json!({"purpose": "sign-verify"})).await;
    let all = srv.ok("GET", "/v1/keyrings/r/keys?page_size=2", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let mut names: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    let mut token = all["next_page_token"].as_str().map(str::to_string);
    while let Some(t) = token {
        let p = srv
            .ok(
                "GET",
                &format!("/v1/keyrings/r/keys?page_size=2&page_token={t}"),
                None,
            )
            .await;
        names.extend(
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["name"].as_str().unwrap().to_string()),
        );
        token = p["next_page_token"].as_str().map(str::to_string);
    }
    assert_eq!(names, ["k0", "k1", "k2", "k3", "k4", "sig"]);
    let prod = srv
        .ok("GET", "/v1/keyrings/r/keys?labels=env:prod", None)
        .await;
    assert_eq!(prod["items"].as_array().unwrap().len(), 3);
    let signing = srv
        .ok("GET", "/v1/keyrings/r/keys?purpose=sign-verify", None)
        .await;
    assert_eq!(signing["items"][0]["name"], "sig");

    // Aliases: create, use, re-point, delete.
    let a = srv
        .ok(
            "POST",
            "/v1/aliases",
            Some(json!({"name": "team/current", "key": "r/k0"})),
        )
        .await;
    assert_eq!(a["key"], "r/k0");
    let ct = srv.encrypt("alias/team/current", b"x", json!({})).await;
    assert_eq!(srv.decrypt(&ct, json!({})).await.1["key"], "r/k0");
    let (s, _) = srv
        .call(
            "POST",
            "/v1/aliases",
            Some(json!({"name": "team/current", "key": "r/k1"})),
        )
        .await;
    assert_eq!(s, 409);
    srv.ok(
        "PUT",
        "/v1/aliases/team/current",
        Some(json!({"key": "r/k1"})),
    )
    .await;
    let ct = srv.encrypt("alias/team/current", b"x", json!({})).await;
    assert_eq!(srv.decrypt(&ct, json!({})).await.1["key"], "r/k1");
    let listed = srv.ok("GET", "/v1/aliases?key=r/k1", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let (s, v) = srv.call("DELETE", "/v1/aliases/team/current", None).await;
    assert_eq!((s, v), (204, Value::Null));
    let (s, _) = srv.call("GET", "/v1/aliases/team/current", None).await;
    assert_eq!(s, 404);

    // Tokens: a new token works; revoked, it stops at once.
    let t = srv
        .ok(
            "POST",
            "/v1/tokens",
            Some(json!({"ttl": "1h", "description": "ci"})),
        )
        .await;
    let secret = t["token"].as_str().unwrap().to_string();
    let me = srv
        .call_as(Some(&secret), "GET", "/v1/tokens/self", None)
        .await;
    assert_eq!((me.0, me.1["id"].as_str()), (200, t["id"].as_str()));
    let list = srv.ok("GET", "/v1/tokens", None).await;
    assert!(
        !list.to_string().contains(&secret),
        "listing never shows secrets"
    );
    srv.ok(
        "DELETE",
        &format!("/v1/tokens/{}", t["id"].as_str().unwrap()),
        None,
    )
    .await;
    let (s, v) = srv
        .call_as(Some(&secret), "GET", "/v1/keyrings", None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (s, _) = srv.call("DELETE", "/v1/tokens/root", None).await;
    assert_eq!(s, 400, "the root token cannot be revoked");
}

/// Concurrent rotations and state changes on one key all apply: none is lost, none fails with
/// a conflict the caller would have to retry, and exactly one version is primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_all_apply() {
    let srv = std::sync::Arc::new(TestServer::dev());
    srv.ring("r").await;
    srv.key("r/k", json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let srv = srv.clone();
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                srv.call(
                    "PATCH",
                    "/v1/keyrings/r/keys/k",
                    Some(json!({"description": format!("d{i}")})),
                )
                .await
            } else {
                srv.call("POST", "/v1/keyrings/r/keys/k/versions", None)
                    .await
            }
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert!(s == 200 || s == 201, "{s} {v}");
        if let Some(n) = v["version"].as_u64() {
            versions.push(n);
        }
    }
    versions.sort();
    assert_eq!(
        versions,
        (2..=9).collect::<Vec<u64>>(),
        "each rotation made its own version"
    );
    let k = srv.ok("GET", "/v1/keyrings/r/keys/k", None).await;
    assert_eq!(k["version_count"], 9);
    let listed = srv.ok("GET", "/v1/keyrings/r/keys/k/versions", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 9);
}
