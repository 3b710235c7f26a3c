//! `strongroom operator backup` against a server under load, and `operator restore` into a
//! new data dir and into PostgreSQL: the restored instance serves everything the original
//! did at backup time, and nothing after.

use base64::Engine;
use serde_json::json;

use crate::support::{B64, TestServer, bin, cli};

fn restore(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .arg("operator")
        .arg("restore")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("STRONGROOM_DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Made {
    ct: String,
    sig_msg: String,
    sig: String,
    app_token: String,
}

/// Keys of three kinds, an alias, a principal with a token, and a policy.
async fn populate(a: &TestServer) -> Made {
    a.ring("app").await;
    a.key("app/data", json!({})).await;
    a.key("app/signer", json!({"purpose": "sign-verify"})).await;
    a.key(
        "app/hooks",
        json!({"purpose": "mac", "algorithm": "hmac-sha256"}),
    )
    .await;
    a.ok(
        "POST",
        "/v1/aliases",
        Some(json!({"name": "app/current", "key": "app/data"})),
    )
    .await;
    a.ok(
        "POST",
        "/v1/principals",
        Some(json!({"name": "svc", "kind": "workload", "roles": ["key-user"]})),
    )
    .await;
    let t = a
        .ok(
            "POST",
            "/v1/principals/svc/tokens",
            Some(json!({"ttl": "1h"})),
        )
        .await;
    a.ok(
        "PUT",
        "/v1/policies/extra",
        Some(json!({"text": "permit (principal == Strongroom::Principal::\"svc\", action == Strongroom::Action::\"get-key\", resource);"})),
    )
    .await;
    let ct = a
        .encrypt("alias/app/current", b"backed up", json!({"t": "1"}))
        .await;
    let sig_msg = B64.encode(b"signed before the backup");
    let sig = a
        .ok(
            "POST",
            "/v1/crypto/sign",
            Some(json!({"key": "app/signer", "message": sig_msg})),
        )
        .await["signature"]
        .as_str()
        .unwrap()
        .to_string();
    Made {
        ct,
        sig_msg,
        sig,
        app_token: t["token"].as_str().unwrap().to_string(),
    }
}

/// What the restored server must still do, as the original's root and as `svc`.
async fn serves_the_backup(b: &TestServer, m: &Made) {
    let (s, out) = b.decrypt(&m.ct, json!({"t": "1"})).await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["plaintext"], B64.encode(b"backed up"));
    assert_eq!(out["key"], "app/data", "the alias's key");
    let v = b
        .ok(
            "POST",
            "/v1/crypto/verify",
            Some(json!({"key": "app/signer", "message": m.sig_msg, "signature": m.sig})),
        )
        .await;
    assert_eq!(v["valid"], true);
    let (s, _) = b
        .call_as(
            Some(&m.app_token),
            "POST",
            "/v1/crypto/encrypt",
            Some(json!({"key": "alias/app/current", "plaintext": "eA=="})),
        )
        .await;
    assert_eq!(s, 200, "the principal's token works after the restore");
    let (s, p) = b.call("GET", "/v1/policies/extra", None).await;
    assert_eq!(s, 200, "{p}");
    // Made after the backup: not there.
    let (s, _) = b.call("GET", "/v1/keyrings/app/keys/late", None).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_load_restores_into_a_new_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = tmp.path().join("a");
    let a = TestServer::start(&["--data-dir", a_dir.to_str().unwrap()], &[])
        .server
        .expect("server starts");
    let made = populate(&a).await;

    // Encryptions keep going while the backup is taken; none fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (addr, token, stop) = (a.addr.clone(), a.token.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || n < 20 {
                let r = http
                    .post(format!("{addr}/v1/crypto/encrypt"))
                    .bearer_auth(&token)
                    .json(&json!({"key": "app/data", "plaintext": "eA=="}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                n += 1;
            }
            n
        })
    };
    let file = tmp.path().join("full.srbk");
    let (code, out, err) = cli(
        &a,
        &[
            "operator",
            "backup",
            "--out",
            file.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(load.await.unwrap() >= 20);
    assert_eq!(code, 0, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["counts"]["keys"], 3);
    assert_eq!(summary["counts"]["aliases"], 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Never overwritten.
    let (code, _, err) = cli(&a, &["operator", "backup", "--out", file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("exists"), "{err}");
    // Without the permission: refused.
    let (code, _, err) = crate::support::cli_as(
        &a.addr,
        &made.app_token,
        &[
            "operator",
            "backup",
            "--out",
            tmp.path().join("x.srbk").to_str().unwrap(),
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("access_denied"), "{err}");
    assert!(!tmp.path().join("x.srbk").exists());
    a.key("app/late", json!({})).await;

    // Inspect reads the header without the key.
    let (code, out, _) = cli(
        &a,
        &["operator", "inspect", file.to_str().unwrap(), "-o", "json"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["format"],
        "strongroom-backup"
    );

    let key = a_dir.join("root.key");
    let b_dir = tmp.path().join("b");
    let (code, out, err) = restore(&[
        "--from",
        file.to_str().unwrap(),
        "--root-key-file",
        key.to_str().unwrap(),
        "--data-dir",
        b_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("start it with: strongroom serve --data-dir"),
        "{out}"
    );
    let b = TestServer::start(
        &[
            "--data-dir",
            b_dir.to_str().unwrap(),
            "--root-key-file",
            key.to_str().unwrap(),
        ],
        &[],
    )
    .server
    .expect("the restored data dir starts");
    assert!(
        b.token.is_empty(),
        "a restored data dir issues no new root token"
    );
    let b = b.with_token(&a.token);
    serves_the_backup(&b, &made).await;
    let (code, _, err) = restore(&[
        "--from",
        file.to_str().unwrap(),
        "--root-key-file",
        key.to_str().unwrap(),
        "--data-dir",
        b_dir.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_from_sqlite_restores_into_postgres() {
    let tmp = tempfile::tempdir().unwrap();
    let a_dir = tmp.path().join("a");
    let a = TestServer::start(&["--data-dir", a_dir.to_str().unwrap()], &[])
        .server
        .expect("server starts");
    let made = populate(&a).await;
    let file = tmp.path().join("b.srbk");
    let (code, out, err) = cli(&a, &["operator", "backup", "--out", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let key = a_dir.join("root.key");

    let url = strongroom_testkit::postgres::fresh_database_url().await;
    // A wrong root key or a changed file: refused before the database is touched.
    let other_dir = tmp.path().join("other");
    TestServer::start(&["--data-dir", other_dir.to_str().unwrap()], &[])
        .server
        .expect("another data dir")
        .kill();
    let (code, _, err) = restore(&[
        "--from",
        file.to_str().unwrap(),
        "--root-key-file",
        other_dir.join("root.key").to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not made with this root key"), "{err}");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let bad = tmp.path().join("bad.srbk");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, _, err) = restore(&[
        "--from",
        bad.to_str().unwrap(),
        "--root-key-file",
        key.to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("nothing was changed"), "{err}");

    let (code, out, err) = restore(&[
        "--from",
        file.to_str().unwrap(),
        "--root-key-file",
        key.to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let node = TestServer::start(
        &[
            "--data-dir",
            tmp.path().join("n1").to_str().unwrap(),
            "--root-key-file",
            key.to_str().unwrap(),
            "--database-url",
            &url,
        ],
        &[],
    )
    .server
    .expect("a node starts on the restored database");
    assert!(
        node.token.is_empty(),
        "the restored database is initialised"
    );
    serves_the_backup(&node.with_token(&a.token), &made).await;
    // Restoring again into the same database: refused.
    let (code, _, err) = restore(&[
        "--from",
        file.to_str().unwrap(),
        "--root-key-file",
        key.to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
}
