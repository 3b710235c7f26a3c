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

    // A change on one node is seen by the other at its next request.
    let (s, _) = b
        .call("POST", "/v1/keyrings/shared/keys/k/disable", None)
        .await;
    assert_eq!(s, 200);
    let (s, body) = a
        .call(
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "shared/k", "plaintext": "eA=="})),
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );

    // Each node writes its own audit log.
    let log = |d: &str| std::fs::read_to_string(tmp.path().join(d).join("audit.log")).unwrap();
    assert!(log("a").contains("\"operation\":\"encrypt\""));
    assert!(log("b").contains("\"operation\":\"disable-key\""));
    assert!(!log("a").contains("\"operation\":\"disable-key\""));

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
