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
