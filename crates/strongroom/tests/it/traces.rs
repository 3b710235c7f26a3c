//! `serve --otlp-endpoint`: a span per request reaches an OTLP/HTTP collector, carrying the
//! request id, operation, outcome and error code, and never a token or plaintext.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestServer;

/// A minimal OTLP/HTTP collector: records each POST body, answers `{}`.
async fn collector() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, len) = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                seen.lock()
                    .unwrap()
                    .push(buf[head_end..head_end + len].to_vec());
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .await;
            });
        }
    });
    (addr, bodies)
}

/// Every span in the received bodies, as (name, attributes).
fn spans(bodies: &[Vec<u8>]) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    for b in bodies {
        let v: Value = serde_json::from_slice(b).unwrap();
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            assert!(
                rs["resource"]["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(
                        |a| a["key"] == "service.name" && a["value"]["stringValue"] == "strongroom"
                    )
            );
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for sp in ss["spans"].as_array().into_iter().flatten() {
                    let mut attrs = serde_json::Map::new();
                    for a in sp["attributes"].as_array().into_iter().flatten() {
                        let val = &a["value"];
                        let v = val
                            .get("stringValue")
                            .or_else(|| val.get("intValue"))
                            .cloned()
                            .unwrap_or(Value::Null);
                        attrs.insert(a["key"].as_str().unwrap().to_string(), v);
                    }
                    out.push((sp["name"].as_str().unwrap().to_string(), attrs));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_is_a_span_at_the_collector() {
    let (endpoint, bodies) = collector().await;
    let srv = TestServer::start(
        &[
            "--dev",
            "--otlp-endpoint",
            &endpoint,
            "--otlp-protocol",
            "http/json",
        ],
        &[
            ("STRONGROOM_DEV_ROOT_TOKEN", crate::support::ROOT),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .server
    .expect("server starts");
    srv.ring("t").await;
    srv.key("t/k", json!({})).await;
    let canary = "c2VjcmV0LWNhbmFyeS1wbGFpbnRleHQ=";
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/crypto/encrypt", srv.addr))
        .bearer_auth(&srv.token)
        .json(&json!({"key": "t/k", "plaintext": canary}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ok_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/crypto/encrypt", srv.addr))
        .bearer_auth("srt_not-a-token")
        .json(&json!({"key": "t/k", "plaintext": canary}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let bad_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();

    let find = |id: &str| {
        spans(&bodies.lock().unwrap())
            .into_iter()
            .find(|(_, a)| a.get("request_id").and_then(Value::as_str) == Some(id))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while (find(&ok_id).is_none() || find(&bad_id).is_none())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (name, a) = find(&ok_id).expect("the encrypt's span reached the collector");
    assert_eq!(name, "HTTP POST");
    assert_eq!(a["operation"], "encrypt");
    assert_eq!(a["outcome"], "ok");
    assert_eq!(a["url.path"], "/v1/crypto/encrypt");
    assert_eq!(a["http.response.status_code"], "200");
    let (_, a) = find(&bad_id).expect("the refused request's span reached the collector");
    assert_eq!(a["outcome"], "error");
    assert_eq!(a["error_code"], "unauthenticated");
    // No secret in any exported byte.
    let all: Vec<u8> = bodies.lock().unwrap().concat();
    let text = String::from_utf8_lossy(&all);
    for secret in [canary, crate::support::ROOT, "srt_not-a-token"] {
        assert!(!text.contains(secret), "{secret} was exported");
    }
}

/// A collector that is not there costs spans, never requests.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_collector_does_not_fail_requests() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let srv = TestServer::start(
        &["--dev", "--otlp-endpoint", &endpoint],
        &[
            ("STRONGROOM_DEV_ROOT_TOKEN", crate::support::ROOT),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .server
    .expect("server starts");
    srv.ring("t").await;
    srv.key("t/k", json!({})).await;
    for _ in 0..50 {
        srv.encrypt("t/k", b"x", json!({})).await;
    }
    let (s, _) = srv.call("GET", "/v1/sys/ready", None).await;
    assert_eq!(s, 200);
}
