//! Bad input on the native API: each refusal has the documented status and error body, and
//! changes nothing.

use serde_json::{Value, json};

use crate::support::{B64, TestServer};
use base64::Engine;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no code>")
}

/// Every error body has exactly code, message and a request id matching the header.
async fn assert_error(
    srv: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    status: u16,
    expected_code: &str,
) -> String {
    let (s, h, text) = srv.raw(method, path, headers, body).await;
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{method} {path}: non-JSON error body {text:?}"));
    assert_eq!(
        (s, code(&v)),
        (status, expected_code),
        "{method} {path}: {text}"
    );
    let obj = v["error"].as_object().unwrap();
    assert_eq!(obj.len(), 3, "{text}");
    let rid = obj["request_id"].as_str().unwrap();
    assert_eq!(h.get("x-request-id").unwrap().to_str().unwrap(), rid);
    obj["message"].as_str().unwrap().to_string()
}

fn json_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("authorization", format!("Bearer {token}")),
    ]
}

#[tokio::test]
async fn authentication_failures_look_alike() {
    let srv = TestServer::dev();
    srv.ring("r").await;
    let mut messages = Vec::new();
    for auth in [
        None,
        Some("Bearer "),
        Some("Bearer nope"),
        Some("Basic dXNlcjpwYXNz"),
        Some("garbage"),
        Some(&*format!("Bearer {}", "x".repeat(5000))),
    ] {
        let mut h = vec![];
        if let Some(a) = auth {
            h.push(("authorization", a));
        }
        messages.push(
            assert_error(
                &srv,
                "GET",
                "/v1/keyrings/r",
                &h,
                vec![],
                401,
                "unauthenticated",
            )
            .await,
        );
    }
    messages.dedup();
    assert_eq!(
        messages.len(),
        1,
        "one message for every cause: {messages:?}"
    );
    let (_, h, _) = srv.raw("GET", "/v1/keyrings", &[], vec![]).await;
    assert_eq!(h.get("www-authenticate").unwrap(), "Bearer");
}

#[tokio::test]
async fn malformed_bodies() {
    let srv = TestServer::dev();
    srv.ring("r").await;
    let tok = srv.token.clone();
    let hs = json_headers(&tok);
    let h: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let canary = "CANARY-7731";
    for (body, why) in [
        ("{".to_string(), "truncated JSON"),
        ("{\"name\": \"k\"} trailing".to_string(), "trailing data"),
        (
            format!("{{\"name\": 5, \"description\": \"{canary}\"}}"),
            "wrong type",
        ),
        (
            format!("{{\"name\": \"k\", \"bogus\": \"{canary}\"}}"),
            "unknown field",
        ),
        (
            "{\"name\": \"k\", \"name\": \"j\"}".to_string(),
            "duplicate field",
        ),
        (
            format!("{{\"name\": \"k\", \"labels\": {{\"a\": \"{canary}\", \"a\": \"b\"}}}}"),
            "duplicate map key",
        ),
        ("[]".to_string(), "not an object"),
        (
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            "deep nesting",
        ),
        ("{\"name\": \"k\\u0000\"}".to_string(), "NUL in a name"),
        (
            "{\"name\": \"../x\"}".to_string(),
            "path traversal in a name",
        ),
        (
            "{\"name\": \"k\", \"algorithm\": \"AES-256-GCM\"}".to_string(),
            "unknown algorithm",
        ),
        (
            "{\"name\": \"k\", \"purpose\": \"mac\", \"algorithm\": \"aes-256-gcm\"}".to_string(),
            "purpose mismatch",
        ),
        (
            "{\"name\": \"k\", \"rotation_period\": \"1.5d\"}".to_string(),
            "fractional duration",
        ),
    ] {
        let msg = assert_error(
            &srv,
            "POST",
            "/v1/keyrings/r/keys",
            &h,
            body.into_bytes(),
            400,
            "invalid_argument",
        )
        .await;
        assert!(
            !msg.contains(canary),
            "{why}: the message echoes the value: {msg}"
        );
    }
    // Invalid UTF-8.
    assert_error(
        &srv,
        "POST",
        "/v1/keyrings/r/keys",
        &h,
        vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
        400,
        "invalid_argument",
    )
    .await;
    // Wrong content type, oversized body.
    let auth = format!("Bearer {tok}");
    assert_error(
        &srv,
        "POST",
        "/v1/keyrings/r/keys",
        &[("authorization", &auth), ("content-type", "text/plain")],
        b"{}".to_vec(),
        415,
        "unsupported_media_type",
    )
    .await;
    // Oversized: refused from Content-Length alone, before any of the body is read. (Sent
    // over raw TCP: a client still writing a large body may see the connection reset before
    // it reads the 413, which would make this test flaky, not the server wrong.)
    let (status, body) = raw_http(
        &srv.addr,
        &format!(
            "POST /v1/keyrings/r/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            2 * 1024 * 1024
        ),
    );
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(code(&v), "payload_too_large");
    // Nothing was created by any of these.
    let keys = srv.ok("GET", "/v1/keyrings/r/keys", None).await;
    assert_eq!(keys["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn routing_errors_are_json() {
    let srv = TestServer::dev();
    let auth = format!("Bearer {}", srv.token);
    assert_error(
        &srv,
        "GET",
        "/v1/nope",
        &[("authorization", &auth)],
        vec![],
        404,
        "not_found",
    )
    .await;
    assert_error(
        &srv,
        "DELETE",
        "/v1/keyrings",
        &[("authorization", &auth)],
        vec![],
        405,
        "method_not_allowed",
    )
    .await;
    assert_error(
        &srv,
        "GET",
        "/v1/keyrings/r/keys/k/versions/0",
        &[("authorization", &auth)],
        vec![],
        400,
        "invalid_argument",
    )
    .await;
    assert_error(
        &srv,
        "GET",
        "/v1/keyrings/..%2F..%2Fetc/keys/k",
        &[("authorization", &auth)],
        vec![],
        400,
        "invalid_argument",
    )
    .await;
    assert_error(
        &srv,
        "GET",
        "/v1/keyrings/%FF",
        &[("authorization", &auth)],
        vec![],
        400,
        "invalid_argument",
    )
    .await;
    assert_error(
        &srv,
        "GET",
        "/v1/keyrings?page_size=0",
        &[("authorization", &auth)],
        vec![],
        400,
        "invalid_argument",
    )
    .await;
    assert_error(
        &srv,
        "GET",
        "/v1/keyrings?page_size=abc",
        &[("authorization", &auth)],
        vec![],
        400,
        "invalid_argument",
    )
    .await;
}

#[tokio::test]
async fn crypto_misuse_and_wrong_state() {
    let srv = TestServer::dev();
    srv.ring("r").await;
    srv.key("r/a", json!({})).await;
    srv.key("r/b", json!({})).await;
    let ct = srv.encrypt("r/a", b"plain", json!({"t": "1"})).await;
    let raw = B64.decode(&ct).unwrap();

    // Tampering anywhere, truncation, suffixes, garbage: all the same error.
    let mut variants: Vec<Vec<u8>> = Vec::new();
    for i in [0, 2, 3, 4, 19, 20, 23, 24, 40, 52, raw.len() - 1] {
        let mut t = raw.clone();
        t[i] ^= 0x01;
        variants.push(t);
    }
    for n in [0, 1, 10, 52, 67, raw.len() - 1] {
        variants.push(raw[..n].to_vec());
    }
    let mut suffixed = raw.clone();
    suffixed.push(0);
    variants.push(suffixed);
    variants.push(
        vec![0x53, 0x52, 0x01, 0x01]
            .into_iter()
            .chain(std::iter::repeat_n(7u8, 80))
            .collect(),
    );
    for v in variants {
        let (s, e) = srv
            .call(
                "POST",
                "/v1/crypto/decrypt",
                Some(json!({"ciphertext": B64.encode(&v), "context": {"t": "1"}})),
            )
            .await;
        assert_eq!(
            (s, code(&e)),
            (400, "invalid_ciphertext"),
            "{}",
            B64.encode(&v)
        );
    }
    // Non-canonical base64 is refused as malformed input.
    let (s, e) = srv.call("POST", "/v1/crypto/decrypt", Some(json!({"ciphertext": format!("{}=", ct.trim_end_matches('=')), "context": {"t": "1"}}))).await;
    assert_eq!((s, code(&e)), (400, "invalid_argument"));
    // A ciphertext of key a presented as key b.
    let (s, e) = srv
        .call(
            "POST",
            "/v1/crypto/decrypt",
            Some(json!({"ciphertext": ct, "context": {"t": "1"}, "key": "r/b"})),
        )
        .await;
    assert_eq!((s, code(&e)), (400, "invalid_ciphertext"));

    // Limits.
    let max = B64.encode(vec![1u8; 64 * 1024]);
    assert_eq!(
        srv.call(
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "r/a", "plaintext": max}))
        )
        .await
        .0,
        200
    );
    let over = B64.encode(vec![1u8; 64 * 1024 + 1]);
    let (s, e) = srv
        .call(
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "r/a", "plaintext": over})),
        )
        .await;
    assert_eq!((s, code(&e)), (400, "invalid_argument"));
    for n in [0, 1025] {
        let (s, e) = srv
            .call("POST", "/v1/crypto/random", Some(json!({"length": n})))
            .await;
        assert_eq!((s, code(&e)), (400, "invalid_argument"));
        let (s, e) = srv
            .call(
                "POST",
                "/v1/crypto/generate-data-key",
                Some(json!({"key": "r/a", "length": n})),
            )
            .await;
        assert_eq!((s, code(&e)), (400, "invalid_argument"));
    }

    // Unknown resources.
    for (m, p, b) in [
        ("GET", "/v1/keyrings/none", None),
        ("GET", "/v1/keyrings/r/keys/none", None),
        ("GET", "/v1/keyrings/r/keys/a/versions/9", None),
        (
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "r/none", "plaintext": "eA=="})),
        ),
        (
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "alias/none", "plaintext": "eA=="})),
        ),
        ("POST", "/v1/keyrings/none/keys", Some(json!({"name": "k"}))),
    ] {
        let (s, e) = srv.call(m, p, b).await;
        assert_eq!((s, code(&e)), (404, "not_found"), "{m} {p}");
    }

    // Wrong state: set a disabled version primary; enable a destroyed-scheduled one.
    srv.ok("POST", "/v1/keyrings/r/keys/a/versions", None).await;
    srv.ok("POST", "/v1/keyrings/r/keys/a/versions/1/disable", None)
        .await;
    let before = srv.ok("GET", "/v1/keyrings/r/keys/a", None).await;
    let (s, e) = srv
        .call(
            "POST",
            "/v1/keyrings/r/keys/a/primary",
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!((s, code(&e)), (409, "invalid_state"));
    assert!(e["error"]["message"].as_str().unwrap().contains("disabled"));
    srv.ok(
        "POST",
        "/v1/keyrings/r/keys/a/versions/1/destroy",
        Some(json!({"window": "1d"})),
    )
    .await;
    let (s, e) = srv
        .call("POST", "/v1/keyrings/r/keys/a/versions/1/enable", None)
        .await;
    assert_eq!((s, code(&e)), (409, "invalid_state"));
    let (s, e) = srv
        .call("POST", "/v1/keyrings/r/keys/a/versions/2/restore", None)
        .await;
    assert_eq!((s, code(&e)), (409, "invalid_state"));
    let after = srv.ok("GET", "/v1/keyrings/r/keys/a", None).await;
    assert_eq!(
        before["primary_version"], after["primary_version"],
        "refusals change nothing"
    );
    let v1 = srv
        .ok("GET", "/v1/keyrings/r/keys/a/versions/1", None)
        .await;
    assert_eq!(v1["state"], "destroy_scheduled");

    // Duplicates.
    let (s, e) = srv
        .call("POST", "/v1/keyrings", Some(json!({"name": "r"})))
        .await;
    assert_eq!((s, code(&e)), (409, "already_exists"));
    let (s, e) = srv
        .call("POST", "/v1/keyrings/r/keys", Some(json!({"name": "a"})))
        .await;
    assert_eq!((s, code(&e)), (409, "already_exists"));
}

/// One HTTP/1.1 exchange over a plain socket; returns the status and the body.
fn raw_http(addr: &str, request_head: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let hostport = addr.trim_start_matches("http://");
    let mut sock = std::net::TcpStream::connect(hostport).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    sock.write_all(request_head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = sock.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn consistent_answers_at_the_edges() {
    let srv = TestServer::dev();
    srv.ring("r").await;
    srv.key("r/k", json!({})).await;
    srv.key("r/sig", json!({"purpose": "sign-verify"})).await;
    // Version 0 is malformed wherever it appears.
    for (m, p, b) in [
        (
            "POST",
            "/v1/keyrings/r/keys/k/primary",
            Some(json!({"version": 0})),
        ),
        ("GET", "/v1/keyrings/r/keys/sig/public-key?version=0", None),
        (
            "POST",
            "/v1/crypto/sign",
            Some(json!({"key": "r/sig", "version": 0, "message": "aGk="})),
        ),
    ] {
        let (s, v) = srv.call(m, p, b).await;
        assert_eq!((s, code(&v)), (400, "invalid_argument"), "{m} {p}: {v}");
    }
    // alias/<name> works on every alias endpoint.
    srv.ok(
        "POST",
        "/v1/aliases",
        Some(json!({"name": "alias/team/k", "key": "r/k"})),
    )
    .await;
    srv.ok("GET", "/v1/aliases/alias/team/k", None).await;
    srv.ok(
        "PUT",
        "/v1/aliases/alias/team/k",
        Some(json!({"key": "r/k"})),
    )
    .await;
    assert_eq!(
        srv.call("DELETE", "/v1/aliases/alias/team/k", None).await.0,
        204
    );
    // An empty body with a JSON content type means "no options".
    let auth = format!("Bearer {}", srv.token);
    let (s, _, body) = srv
        .raw(
            "POST",
            "/v1/keyrings/r/keys/k/versions",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            vec![],
        )
        .await;
    assert_eq!(s, 201, "{body}");
    // Duplicate keys in rate limits, and rotation times in the past, are refused.
    let (s, _, _) = srv
        .raw(
            "POST",
            "/v1/principals",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            br#"{"name":"p","rate_limits":{"crypto":1,"crypto":1000}}"#.to_vec(),
        )
        .await;
    assert_eq!(s, 400);
    let (s, v) = srv
        .call(
            "PATCH",
            "/v1/keyrings/r/keys/k",
            Some(json!({"rotation_period": "30d", "next_rotation_time": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!((s, code(&v)), (400, "invalid_argument"), "{v}");
    // An update that changes nothing changes nothing.
    let before = srv.ok("GET", "/v1/keyrings/r/keys/k", None).await;
    let d = before["description"].clone();
    srv.ok(
        "PATCH",
        "/v1/keyrings/r/keys/k",
        Some(json!({"description": d})),
    )
    .await;
    assert_eq!(srv.ok("GET", "/v1/keyrings/r/keys/k", None).await, before);
    // Messages read cleanly.
    let (_, v) = srv
        .call(
            "POST",
            "/v1/keyrings/r/keys",
            Some(json!({"name": "x", "purpose": "mac", "algorithm": "aes-256-gcm"})),
        )
        .await;
    assert!(
        !v["error"]["message"].as_str().unwrap().contains("  "),
        "{v}"
    );
    let (_, v) = srv
        .call(
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "r/sig", "plaintext": "aGk="})),
        )
        .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs a key of purpose encrypt-decrypt"),
        "{v}"
    );
}

/// Every refusal is audited, including those made before a request reaches an operation,
/// and an anonymous caller learns nothing about what was wrong with its request.
#[tokio::test]
async fn refusals_before_an_operation_are_audited_and_anonymous_ones_are_401() {
    let srv = TestServer::dev();
    let json_only = [("content-type", "application/json")];
    let (s, _, body) = srv
        .raw(
            "POST",
            "/v1/crypto/encrypt",
            &json_only,
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(s, 401, "{body}");
    let (s, _, _) = srv.raw("GET", "/v1/does/not/exist", &[], vec![]).await;
    assert_eq!(s, 401);
    let auth = format!("Bearer {}", srv.token);
    let (s, _, _) = srv
        .raw(
            "POST",
            "/v1/crypto/encrypt",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _, _) = srv
        .raw(
            "GET",
            "/v1/keyrings?page_size=0",
            &[("authorization", &auth)],
            vec![],
        )
        .await;
    assert_eq!(s, 400);
    // A public route keeps its own answer for anonymous callers.
    let (s, _, _) = srv
        .raw("POST", "/v1/auth/exchange", &json_only, b"{}".to_vec())
        .await;
    assert_eq!(s, 400);
    let (_, v) = srv
        .call(
            "GET",
            "/v1/audit/events?operation=rejected-request&limit=1000",
            None,
        )
        .await;
    let ev = v["items"].as_array().unwrap();
    let summary: Vec<(Option<&str>, Option<&str>, Option<&str>)> = ev
        .iter()
        .map(|e| {
            (
                e["target"].as_str(),
                e["error_code"].as_str(),
                e["principal"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Some("POST /v1/crypto/encrypt"),
                Some("unauthenticated"),
                None
            ),
            (
                Some("GET /v1/does/not/exist"),
                Some("unauthenticated"),
                None
            ),
            (
                Some("POST /v1/crypto/encrypt"),
                Some("invalid_argument"),
                Some("root")
            ),
            (
                Some("GET /v1/keyrings"),
                Some("invalid_argument"),
                Some("root")
            ),
            (
                Some("POST /v1/auth/exchange"),
                Some("invalid_argument"),
                None
            ),
        ],
        "{v}"
    );
}
