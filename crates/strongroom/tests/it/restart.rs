//! A server with a real data dir: keys, ciphertexts and schedules survive restarts (including
//! SIGKILL), scheduled work that fell due while down happens on start, and a wrong or
//! missing root key refuses to start without touching anything.

use serde_json::json;

use crate::support::{B64, TestServer, data_dir_files, eventually};
use base64::Engine;

const DAY: i64 = 86_400;

fn serve_args(dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["--data-dir".to_string(), dir.display().to_string()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn start(dir: &std::path::Path, extra: &[&str]) -> crate::support::Started {
    let args = serve_args(dir, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start(&refs, &[])
}

#[tokio::test]
async fn keys_and_schedules_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let srv = start(&dir, &[]).server.expect("first start");
    let root = srv.token.clone();
    assert!(
        root.starts_with("srt_"),
        "the first start prints a root token"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("root.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    srv.ring("r").await;
    srv.key("r/rotating", json!({"rotation_period": "1d"}))
        .await;
    srv.key("r/doomed", json!({})).await;
    let ct = srv
        .encrypt("r/rotating", b"survives", json!({"a": "b"}))
        .await;
    let doomed_ct = srv.encrypt("r/doomed", b"gone", json!({})).await;
    srv.ok("POST", "/v1/keyrings/r/keys/doomed/versions", None)
        .await;
    srv.ok(
        "POST",
        "/v1/keyrings/r/keys/doomed/versions/1/destroy",
        Some(json!({"window": "1d"})),
    )
    .await;
    srv.key("r/retired", json!({})).await;
    srv.ok(
        "POST",
        "/v1/aliases",
        Some(json!({"name": "retired", "key": "r/retired"})),
    )
    .await;
    let retired_ct = srv.encrypt("r/retired", b"old", json!({})).await;
    let k = srv
        .ok(
            "POST",
            "/v1/keyrings/r/keys/retired/schedule-deletion",
            Some(json!({"window": "1d"})),
        )
        .await;
    assert_eq!(k["state"], "deletion_scheduled", "{k}");
    // SIGKILL: no shutdown path runs; acknowledged writes must still be there.
    srv.kill();

    // Restart two days later: no new root token, the old one works, the rotation and the
    // destruction that fell due while down happen on start.
    let offset = (2 * DAY).to_string();
    let srv = start(&dir, &["--dangerous-clock-offset-secs", &offset])
        .server
        .expect("restart")
        .with_token(&root);
    assert!(
        !srv.logs().contains("Root token:"),
        "the root token is printed only once"
    );
    let rotated = eventually(20, || async {
        srv.ok("GET", "/v1/keyrings/r/keys/rotating", None).await["primary_version"] == 2
    })
    .await;
    assert!(rotated, "scheduled rotation ran after restart");
    let destroyed = eventually(20, || async {
        srv.ok("GET", "/v1/keyrings/r/keys/doomed/versions/1", None)
            .await["state"]
            == "destroyed"
    })
    .await;
    assert!(destroyed, "scheduled destruction ran after restart");
    let deleted = eventually(20, || async {
        srv.ok("GET", "/v1/keyrings/r/keys/retired", None).await["state"] == "deleted"
    })
    .await;
    assert!(deleted, "scheduled key deletion ran after restart");
    let (s, v) = srv.call("GET", "/v1/aliases/retired", None).await;
    assert_eq!(s, 404, "the deleted key's alias is gone: {v}");
    let (s, v) = srv.decrypt(&retired_ct, json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("invalid_state")),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("deleted"),
        "{v}"
    );
    let (s, v) = srv.decrypt(&ct, json!({"a": "b"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        B64.decode(v["plaintext"].as_str().unwrap()).unwrap(),
        b"survives"
    );
    let (s, v) = srv.decrypt(&doomed_ct, json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("destroyed")
    );
    let k = srv.ok("GET", "/v1/keyrings/r/keys/rotating", None).await;
    let next = strongroom_core::Timestamp::parse_rfc3339(k["next_rotation_time"].as_str().unwrap())
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 2 * DAY;
    assert!(
        (next.0 - (now + DAY)).abs() < 120,
        "next rotation is one period after the catch-up rotation, not a burst"
    );
    let status = srv.terminate();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status:?}");

    // The audit log recorded the scheduler's work and never the plaintexts or the token.
    let audit = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"operation\":\"scheduled-rotation\"")
                && l.contains("\"outcome\":\"ok\""))
    );
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"operation\":\"scheduled-destruction\""))
    );
    for f in data_dir_files(&dir) {
        let bytes = std::fs::read(&f).unwrap();
        for canary in [&b"survives"[..], b"gone", root.as_bytes()] {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary),
                "{} contains a secret",
                f.display()
            );
        }
    }
}

#[tokio::test]
async fn wrong_or_missing_root_key_refuses_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let srv = start(&dir, &[]).server.expect("first start");
    let root = srv.token.clone();
    srv.ring("r").await;
    srv.terminate();
    let db = dir.join("strongroom.db");
    let snapshot = std::fs::read(&db).unwrap();

    // Another valid root key.
    let key_file = dir.join("root.key");
    let original = std::fs::read(&key_file).unwrap();
    let other = strongroom_crypto::RootKey::generate().unwrap();
    std::fs::write(&key_file, other.to_file_text().expose_secret()).unwrap();
    let r = start(&dir, &[]);
    assert!(r.server.is_none(), "started with the wrong root key");
    assert!(!r.exit_status.unwrap().success());
    assert!(
        r.stderr.contains("does not match") && r.stderr.contains("root.key"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        snapshot,
        "the database was modified"
    );

    // Missing root key: refused, never regenerated.
    std::fs::remove_file(&key_file).unwrap();
    let r = start(&dir, &[]);
    assert!(r.server.is_none());
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(
        !key_file.exists(),
        "a new root key was generated for an existing data dir"
    );
    assert_eq!(std::fs::read(&db).unwrap(), snapshot);

    // World-readable root key: refused with the fix in the message.
    std::fs::write(&key_file, &original).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let r = start(&dir, &[]);
    assert!(r.server.is_none());
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);

    // Fixed: starts again, data intact.
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let srv = start(&dir, &[])
        .server
        .expect("restart with the right key")
        .with_token(&root);
    srv.ok("GET", "/v1/keyrings/r", None).await;
}

#[tokio::test]
async fn second_process_on_the_same_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _first = start(&dir, &[]).server.expect("first start");
    let second = start(&dir, &[]);
    assert!(second.server.is_none());
    assert!(
        second
            .stderr
            .contains("in use by another strongroom process"),
        "{}",
        second.stderr
    );
}

#[tokio::test]
async fn root_key_outside_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let key = tmp.path().join("secrets").join("root.key");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    let key_s = key.display().to_string();
    let srv = start(&dir, &["--root-key-file", &key_s])
        .server
        .expect("start");
    assert!(key.exists() && !dir.join("root.key").exists());
    srv.ring("r").await;
    let token = srv.token.clone();
    srv.terminate();
    let srv = start(&dir, &["--root-key-file", &key_s])
        .server
        .expect("restart")
        .with_token(&token);
    srv.ok("GET", "/v1/keyrings/r", None).await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn core_dumps_are_disabled() {
    let srv = TestServer::dev();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", srv.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
}

/// The audit log survives a SIGKILL and a restart as one verifiable chain, and
/// `strongroom audit verify` catches tampering.
#[tokio::test]
async fn audit_log_chain_survives_crashes_and_catches_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let srv = start(&dir, &[]).server.expect("first start");
    let root = srv.token.clone();
    srv.ring("r").await;
    srv.key("r/k", json!({})).await;
    for _ in 0..5 {
        srv.encrypt("r/k", b"x", json!({})).await;
    }
    let _ = srv
        .call_as(Some("wrong"), "GET", "/v1/keyrings", None)
        .await;
    srv.kill();
    let srv = start(&dir, &[]).server.expect("restart").with_token(&root);
    srv.encrypt("r/k", b"y", json!({})).await;
    assert!(srv.terminate().success());

    let log = dir.join("audit.log");
    let verify = |file: &std::path::Path| {
        let out = std::process::Command::new(crate::support::bin())
            .args(["audit", "verify"])
            .arg(file)
            .arg("--public-key")
            .arg(dir.join("audit-signing.pub"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = verify(&log);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("intact") && out.contains(" 0 lines after the last checkpoint"),
        "{out}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let events = text
        .lines()
        .filter(|l| l.contains("\"schema\":\"strongroom.audit.v1\""))
        .count();
    assert_eq!(
        events,
        1 + 1 + 5 + 1 + 1,
        "create ring, create key, 5 encrypts, the refused call, 1 encrypt"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("\"error_code\":\"unauthenticated\""))
    );

    // Delete one line from a copy: the verifier names the gap and exits 3.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(3);
    let tampered = tmp.path().join("tampered.log");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let (code, out) = verify(&tampered);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("missing range") && out.contains("TAMPERED"),
        "{out}"
    );
}

/// RELIABILITY U2: SIGKILL under concurrent load. The audit log still verifies (a torn last
/// line at most), every request the server acknowledged has its event, and a restart repairs
/// the tail and continues the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_survives_sigkill_under_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let srv = start(&dir, &[]).server.expect("start");
    let root = srv.token.clone();
    srv.ring("r").await;
    srv.key("r/k", json!({})).await;
    let srv = std::sync::Arc::new(srv);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let srv = srv.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acked = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = http
                    .post(format!("{}/v1/crypto/encrypt", srv.addr))
                    .bearer_auth(&srv.token)
                    .json(&json!({"key": "r/k", "plaintext": "aGk="}))
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().as_u16() == 200 => {
                        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
                        // Acknowledged only once the whole body arrived.
                        if resp.bytes().await.is_ok() {
                            acked.push(id);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // SIGKILL while requests are in flight.
    let pid = srv.pid();
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    eprintln!("acknowledged {} encrypts before SIGKILL", acked.len());
    assert!(
        acked.len() > 20,
        "the load did not get going: {} requests",
        acked.len()
    );
    let srv = std::sync::Arc::try_unwrap(srv)
        .ok()
        .expect("tasks are done");
    srv.kill();

    let log = dir.join("audit.log");
    let verify = || {
        let out = std::process::Command::new(crate::support::bin())
            .args(["audit", "verify", "-o", "json"])
            .arg(&log)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), v)
    };
    let (code, report) = verify();
    assert_eq!(code, Some(0), "{report}");
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    let written: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["operation"] == "encrypt" && e["outcome"] == "ok")
        .filter_map(|e| e["request_id"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !written.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged requests have no audit event: {missing:?}",
        missing.len()
    );

    // Restart: the tail is repaired (if torn) and the chain continues, verifiably.
    let srv = start(&dir, &[]).server.expect("restart").with_token(&root);
    srv.encrypt("r/k", b"after", json!({})).await;
    assert!(srv.terminate().success());
    let (code, report) = verify();
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
}

/// RELIABILITY S5/U3: an audit log replaced by an older copy is caught at start.
#[tokio::test]
async fn an_audit_log_rolled_back_to_an_older_copy_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let srv = start(&dir, &[]).server.expect("start");
    srv.ring("r").await;
    let log = dir.join("audit.log");
    let older = std::fs::read(&log).unwrap();
    srv.key("r/k", json!({})).await;
    for _ in 0..3 {
        srv.encrypt("r/k", b"x", json!({})).await;
    }
    assert!(
        srv.terminate().success(),
        "a clean stop records the log's position"
    );
    std::fs::write(&log, &older).unwrap();
    let r = start(&dir, &[]);
    assert!(r.server.is_none(), "started with a rolled-back audit log");
    assert!(
        r.stderr.contains("truncated or replaced by an older copy"),
        "{}",
        r.stderr
    );
    // The operator can override after investigating; the log then continues from there.
    let srv = start(&dir, &["--dangerous-accept-audit-rollback"])
        .server
        .expect("override");
    assert!(srv.terminate().success());
    assert!(
        start(&dir, &[]).server.is_some(),
        "the recorded position was reset to the log's"
    );
}
