//! A workload logs in with a JWT from a trusted issuer whose JWKS is served over HTTP.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestServer, cli, cli_in};

fn b64u(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Serves `body` as JSON to every request; returns the URL.
async fn serve_json(body: String) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/jwks")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workload_logs_in_with_its_platform_jwt() {
    let srv = TestServer::dev();
    srv.ring("pay").await;
    srv.key("pay/card", json!({})).await;
    let material =
        strongroom_crypto::keys::generate(strongroom_crypto::Algorithm::EcdsaP256Sha256).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, material.expose_secret())
        .unwrap();
    let point = kp.public_key().as_ref().to_vec();
    let jwks = json!({"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256", "x": b64u(&point[1..33]), "y": b64u(&point[33..65])}]});
    let uri = serve_json(jwks.to_string()).await;

    let run = |args: &[&str]| {
        let (code, out, err) = cli(&srv, args);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        out
    };
    run(&["principal", "create", "payments", "--role", "key-user"]);
    run(&[
        "federation",
        "put",
        "k8s",
        "--issuer",
        "https://k8s.example",
        "--audience",
        "strongroom",
        "--jwks-uri",
        &uri,
        "--rule",
        "payments;sub=system:serviceaccount:pay:*",
        "--max-ttl",
        "15m",
    ]);
    let listed = run(&["federation", "list"]);
    assert!(
        listed.contains("k8s") && listed.contains("https://k8s.example"),
        "{listed}"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let claims = json!({"iss": "https://k8s.example", "aud": "strongroom", "sub": "system:serviceaccount:pay:api", "exp": now + 3600, "iat": now});
    let jwt = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(material.expose_secret()),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwt"), &jwt).unwrap();

    let (code, out, err) = cli_in(&srv, &["login", "--jwt-file", "jwt"], Some(dir.path()));
    assert_eq!(code, 0, "{err}\n{}", srv.logs());
    let token = out.trim().to_string();
    assert!(token.starts_with("srt_"), "{out}");
    let (s, v) = srv
        .call_as(
            Some(&token),
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "pay/card", "plaintext": "aGk="})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, me) = srv
        .call_as(Some(&token), "GET", "/v1/tokens/self", None)
        .await;
    assert_eq!(me["principal"], "payments");
    let exp =
        strongroom_core::Timestamp::parse_rfc3339(me["expires_at"].as_str().unwrap()).unwrap();
    assert!(exp.0 <= now + 15 * 60 + 5, "capped by the issuer's max_ttl");

    // A JWT for another service account is refused like any bad credential.
    let other = json!({"iss": "https://k8s.example", "aud": "strongroom", "sub": "system:serviceaccount:other:api", "exp": now + 3600});
    let jwt2 = jsonwebtoken::encode(
        &header,
        &other,
        &jsonwebtoken::EncodingKey::from_ec_der(material.expose_secret()),
    )
    .unwrap();
    let (s, v) = srv
        .call_as(
            None,
            "POST",
            "/v1/auth/exchange",
            Some(json!({"token": jwt2})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (s, _) = srv
        .call_as(
            None,
            "POST",
            "/v1/auth/exchange",
            Some(json!({"token": jwt, "bogus": 1})),
        )
        .await;
    assert_eq!(s, 400);
    let _: Value = v;

    // The same JWT buys AWS session credentials; the official Rust SDK uses them as is.
    let (code, out, err) = cli_in(
        &srv,
        &["login", "--jwt-file", "jwt", "--aws", "-o", "json"],
        Some(dir.path()),
    );
    assert_eq!(code, 0, "{err}");
    let creds: Value = serde_json::from_str(&out).unwrap();
    let id = creds["access_key_id"].as_str().unwrap().to_string();
    let secret = creds["secret_access_key"].as_str().unwrap().to_string();
    let session = creds["session_token"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("SRSK") && session.starts_with("srst_"),
        "{creds}"
    );
    assert_eq!(creds["principal"], "payments");
    let exp =
        strongroom_core::Timestamp::parse_rfc3339(creds["expires_at"].as_str().unwrap()).unwrap();
    assert!(exp.0 <= now + 15 * 60 + 5, "capped by the issuer's max_ttl");
    let sdk = |token: Option<String>| {
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .endpoint_url(&srv.addr)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                &id, &secret, token, None, "test",
            ))
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    };
    let out = sdk(Some(session.clone()))
        .encrypt()
        .key_id("pay/card")
        .plaintext(aws_sdk_kms::primitives::Blob::new(b"hi".to_vec()))
        .send()
        .await
        .unwrap();
    assert!(out.ciphertext_blob.is_some());
    // Without the session token, or with another one, the pair is refused.
    for token in [None, Some(format!("{session}x"))] {
        let e = sdk(token).list_keys().send().await.unwrap_err();
        assert_eq!(
            e.as_service_error()
                .and_then(|s| aws_sdk_kms::error::ProvideErrorMetadata::code(s)),
            Some("UnrecognizedClientException")
        );
    }
    // The session token is not a bearer token.
    let (s, _) = srv
        .call_as(Some(&session), "GET", "/v1/tokens/self", None)
        .await;
    assert_eq!(s, 401);
    assert!(!srv.logs().contains(&secret) && !srv.logs().contains(&session));
}
