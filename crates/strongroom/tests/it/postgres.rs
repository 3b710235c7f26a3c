//! Several `strongroom serve` nodes on one PostgreSQL database (--database-url): they share
//! keys, tokens and policies; each has its own data dir and audit log; only nodes holding
//! the database's root key may join.

use serde_json::json;

use crate::support::TestServer;

fn node(dir: &std::path::Path, key: &std::path::Path, url: &str) -> crate::support::Started {
    TestServer::start(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--root-key-file",
            key.to_str().unwrap(),
            "--database-url",
            url,
        ],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_share_one_database_and_its_root_key() {
    let url = strongroom_testkit::postgres::fresh_database_url().await;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("root.key");
    let a = node(&tmp.path().join("a"), &key, &url)
        .server
        .expect("first node starts");
    assert!(
        !a.token.is_empty(),
        "the first node initialises and shows the root token"
    );
    a.ring("shared").await;
    a.key("shared/k", json!({})).await;
    let ct = a.encrypt("shared/k", b"across nodes", json!({})).await;

    // A second node with its own data dir and the same root key joins: no new root token,
    // the first node's token works, and it decrypts what the first encrypted.
    let b = node(&tmp.path().join("b"), &key, &url)
        .server
        .expect("second node starts");
    assert!(
        b.token.is_empty(),
        "a joining node must not issue a root token"
    );
    let b = b.with_token(&a.token);
    let (status, out) = b.decrypt(&ct, json!({})).await;
    assert_eq!(status, 200, "{out}");

    // A change on one node is seen by the other within the read cache's time to live (1 s
    // by default): refused from then on, never allowed again.
    let (s, _) = b
        .call("POST", "/v1/keyrings/shared/keys/k/disable", None)
        .await;
    assert_eq!(s, 200);
    let disabled_at = std::time::Instant::now();
    let encrypt = || async {
        let (s, body) = a
            .call(
                "POST",
                "/v1/crypto/encrypt",
                Some(json!({"key": "shared/k", "plaintext": "eA=="})),
            )
            .await;
        (s, body["error"]["code"].as_str().map(str::to_string))
    };
    loop {
        let got = encrypt().await;
        if got == (409, Some("invalid_state".to_string())) {
            break;
        }
        assert_eq!(got.0, 200, "{got:?}");
        assert!(
            // The bound is the cache's 1 s; the rest is slack for a loaded machine.
            disabled_at.elapsed() < std::time::Duration::from_secs(3),
            "node A still encrypts {:?} after the disable on B",
            disabled_at.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        assert_eq!(encrypt().await.0, 409);
    }

    // Each node writes its own audit log.
    let log = |d: &str| std::fs::read_to_string(tmp.path().join(d).join("audit.log")).unwrap();
    assert!(log("a").contains("\"operation\":\"encrypt\""));
    assert!(log("b").contains("\"operation\":\"disable-key\""));
    assert!(!log("a").contains("\"operation\":\"disable-key\""));

    // Merged, they are one timeline: every event of both, labelled by node, in time order.
    let paths: Vec<String> = ["a", "b"]
        .iter()
        .map(|d| tmp.path().join(d).join("audit.log").display().to_string())
        .collect();
    let node_id = |d: &str| {
        std::fs::read_to_string(tmp.path().join(d).join("node.id"))
            .unwrap()
            .trim()
            .to_string()
    };
    let (code, out, err) = crate::support::cli_as(
        &a.addr,
        &a.token,
        &["audit", "merge", &paths[0], &paths[1]],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let merged: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |d: &str| {
        log(d)
            .lines()
            .filter(|l| l.contains("\"schema\":\"strongroom.audit.v1\""))
            .count()
    };
    assert_eq!(merged.len(), count("a") + count("b"));
    let disable = merged
        .iter()
        .find(|e| e["operation"] == "disable-key")
        .unwrap();
    assert_eq!(disable["node"].as_str(), Some(node_id("b").as_str()));
    assert!(
        merged
            .iter()
            .any(|e| e["node"].as_str() == Some(node_id("a").as_str()))
    );
    let times: Vec<&str> = merged.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in time order");
    // One log edited (an event with a successor, so its chain link breaks): nothing is merged.
    let edited = log("b").replacen("\"operation\":\"decrypt\"", "\"operation\":\"encrypt\"", 1);
    assert_ne!(edited, log("b"));
    std::fs::write(tmp.path().join("b").join("audit.log"), edited).unwrap();
    let (code, out, err) = crate::support::cli_as(
        &a.addr,
        &a.token,
        &["audit", "merge", &paths[0], &paths[1]],
        None,
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.is_empty());
    assert!(err.contains("not merged"), "{err}");

    // A node with another root key, or none, is refused and changes nothing.
    let other = tmp.path().join("other.key");
    let _maker = TestServer::start(
        &[
            "--data-dir",
            tmp.path().join("scratch").to_str().unwrap(),
            "--root-key-file",
            other.to_str().unwrap(),
        ],
        &[],
    )
    .server
    .expect("a SQLite node makes another root key");
    let refused = node(&tmp.path().join("c"), &other, &url);
    assert!(refused.server.is_none());
    assert!(
        refused
            .stderr
            .contains("not the one the database was initialised with"),
        "{}",
        refused.stderr
    );
    let missing = node(&tmp.path().join("d"), &tmp.path().join("absent.key"), &url);
    assert!(missing.server.is_none());
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
    assert!(!tmp.path().join("absent.key").exists());
    let (status, _) = a.decrypt(&ct, json!({})).await;
    assert_eq!(
        status, 409,
        "the key is still disabled: nothing else changed"
    );
}

#[test]
fn dev_mode_and_a_database_do_not_mix() {
    let started = TestServer::start(
        &[
            "--dev",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ],
        &[],
    );
    assert!(started.server.is_none());
    assert!(
        started
            .stderr
            .contains("cannot be combined with --database-url"),
        "{}",
        started.stderr
    );
}

/// With two nodes, a due rotation happens once (the scheduler lease holder runs it, the
/// other does not race it), and a policy put on one node governs requests on the other
/// within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn one_scheduler_and_shared_policies() {
    let url = strongroom_testkit::postgres::fresh_database_url().await;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("root.key");
    let a = node(&tmp.path().join("a"), &key, &url)
        .server
        .expect("first node");
    let b = node(&tmp.path().join("b"), &key, &url)
        .server
        .expect("second node")
        .with_token(&a.token);
    a.ring("jobs").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let soon = strongroom_core::Timestamp(now + 3).to_rfc3339();
    a.key(
        "jobs/rotating",
        json!({"rotation_period": "1d", "next_rotation_time": soon}),
    )
    .await;
    let versions = || async {
        let (_, k) = b.call("GET", "/v1/keyrings/jobs/keys/rotating", None).await;
        k["version_count"].as_u64().unwrap_or(0)
    };
    let mut rotated = false;
    for _ in 0..60 {
        if versions().await >= 2 {
            rotated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(rotated, "the due rotation did not happen");
    // Both schedulers ran several times since: still one rotation, made by one node, and no
    // node lost a race over it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(versions().await, 2);
    let events: Vec<serde_json::Value> = ["a", "b"]
        .iter()
        .flat_map(|d| {
            std::fs::read_to_string(tmp.path().join(d).join("audit.log"))
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|e| e["operation"] == "scheduled-rotation")
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "ok");

    // A principal with no role is refused on B; a policy put on A lets it in on B.
    let (s, _) = a
        .call(
            "POST",
            "/v1/principals",
            Some(json!({"name": "batch", "kind": "workload", "roles": []})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, t) = a
        .call(
            "POST",
            "/v1/principals/batch/tokens",
            Some(json!({"ttl": "1h"})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let batch = t["token"].as_str().unwrap().to_string();
    let encrypt = || async {
        b.call_as(
            Some(&batch),
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "jobs/rotating", "plaintext": "eA=="})),
        )
        .await
        .0
    };
    assert_eq!(encrypt().await, 403);
    let (s, body) = a
        .call(
            "PUT",
            "/v1/policies/batch-encrypts",
            Some(json!({"text": "permit (principal == Strongroom::Principal::\"batch\", action == Strongroom::Action::\"encrypt\", resource);"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let mut allowed = false;
    for _ in 0..40 {
        if encrypt().await == 200 {
            allowed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(allowed, "node B never saw the policy put on node A");
}

/// What a client saw from one request during an outage test.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Ok,
    Unavailable,
}

/// PostgreSQL stops under load and comes back: meanwhile clients get `unavailable` (503,
/// retryable) and never a wrong answer; afterwards the node serves again with no restart,
/// and every encryption it acknowledged decrypts to its plaintext.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_under_load_is_survived_without_action() {
    let pg = strongroom_testkit::postgres::PrivateCluster::start();
    let url = pg.fresh_database_url().await;
    let tmp = tempfile::tempdir().unwrap();
    let a = node(&tmp.path().join("a"), &tmp.path().join("root.key"), &url)
        .server
        .expect("node starts");
    a.ring("ha").await;
    a.key("ha/k", json!({})).await;
    let (addr, token) = (a.addr.clone(), a.token.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let load = {
        let (stop, refused) = (stop.clone(), refused.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap();
            let mut acked: Vec<(String, String)> = Vec::new();
            let mut seen = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let pt = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("message {i}"),
                );
                let r = http
                    .post(format!("{addr}/v1/crypto/encrypt"))
                    .bearer_auth(&token)
                    .json(&json!({"key": "ha/k", "plaintext": pt}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap();
                match status {
                    200 => {
                        acked.push((body["ciphertext"].as_str().unwrap().to_string(), pt));
                        seen.push(Seen::Ok);
                    }
                    503 => {
                        assert_eq!(body["error"]["code"], "unavailable", "{body}");
                        seen.push(Seen::Unavailable);
                        refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    s => panic!("request {i}: HTTP {s} {body}"),
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            (acked, seen)
        })
    };
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    pg.stop();
    // While the database is down: not ready, and requests are refused as retryable.
    let mut not_ready = false;
    for _ in 0..40 {
        let (s, _) = a.call("GET", "/v1/sys/ready", None).await;
        if s == 503 {
            not_ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        not_ready,
        "/v1/sys/ready kept answering 200 with the database down"
    );
    // Down until a client has been refused (requests fail after the pool's 5 s wait).
    for _ in 0..300 {
        if refused.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    pg.resume();
    // Back without a restart of the node.
    let mut recovered = false;
    for _ in 0..150 {
        let (s, _) = a.call("GET", "/v1/sys/ready", None).await;
        if s == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "the node did not become ready again: {}",
        a.logs()
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, seen) = load.await.unwrap();
    assert!(
        seen.contains(&Seen::Unavailable),
        "the outage was never seen"
    );
    assert_eq!(
        seen.last(),
        Some(&Seen::Ok),
        "requests did not succeed again"
    );
    for (ct, pt) in &acked {
        let (s, out) = a.decrypt(ct, json!({})).await;
        assert_eq!(s, 200, "{out}");
        assert_eq!(out["plaintext"].as_str(), Some(pt.as_str()));
    }
}

/// A node killed with SIGKILL mid-load loses no acknowledged write: every key it said it
/// created, and every ciphertext it returned, is there for the other node.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_mid_load_loses_no_acknowledged_write() {
    let url = strongroom_testkit::postgres::fresh_database_url().await;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("root.key");
    let a = node(&tmp.path().join("a"), &key, &url)
        .server
        .expect("first node");
    let b = node(&tmp.path().join("b"), &key, &url)
        .server
        .expect("second node")
        .with_token(&a.token);
    a.ring("crash").await;
    a.key("crash/k", json!({})).await;
    let (addr, token) = (a.addr.clone(), a.token.clone());
    let load = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut keys = Vec::new();
        let mut cts = Vec::new();
        for i in 0.. {
            let r = http
                .post(format!("{addr}/v1/keyrings/crash/keys"))
                .bearer_auth(&token)
                .json(&json!({"name": format!("k{i}")}))
                .send()
                .await;
            match r {
                Ok(r) if r.status().as_u16() == 201 => keys.push(format!("k{i}")),
                _ => break,
            }
            let r = http
                .post(format!("{addr}/v1/crypto/encrypt"))
                .bearer_auth(&token)
                .json(&json!({"key": format!("crash/k{i}"), "plaintext": "eA=="}))
                .send()
                .await;
            match r {
                Ok(r) if r.status().as_u16() == 200 => {
                    let v: serde_json::Value = match r.json().await {
                        Ok(v) => v,
                        Err(_) => break,
                    };
                    cts.push(v["ciphertext"].as_str().unwrap().to_string());
                }
                _ => break,
            }
        }
        (keys, cts)
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    a.kill();
    let (keys, cts) = load.await.unwrap();
    assert!(
        keys.len() >= 5,
        "too little load before the kill: {}",
        keys.len()
    );
    for k in &keys {
        let (s, v) = b
            .call("GET", &format!("/v1/keyrings/crash/keys/{k}"), None)
            .await;
        assert_eq!(s, 200, "acknowledged key {k} is missing: {v}");
    }
    for ct in &cts {
        let (s, out) = b.decrypt(ct, json!({})).await;
        assert_eq!(s, 200, "{out}");
        assert_eq!(out["plaintext"], "eA==");
    }
    // The killed node's audit chain is intact up to its torn tail.
    let (code, out, err) = crate::support::cli_as(
        &b.addr,
        &b.token,
        &[
            "audit",
            "verify",
            tmp.path().join("a").join("audit.log").to_str().unwrap(),
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
}
