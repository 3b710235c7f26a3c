//! The CLI against a running server.

use serde_json::Value;

use crate::support::{ROOT, TestServer, bin, cli, cli_in};

#[test]
fn help_explains_itself() {
    let out = std::process::Command::new(bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "serve",
        "keyring",
        "key",
        "version",
        "alias",
        "encrypt",
        "decrypt",
        "sign",
        "verify",
        "mac",
        "random",
        "token",
        "STRONGROOM_ADDR",
        "STRONGROOM_TOKEN",
    ] {
        assert!(
            text.contains(word),
            "--help does not mention {word}:\n{text}"
        );
    }
    for sub in [
        &["serve", "--help"][..],
        &["key", "create", "--help"],
        &["version", "destroy", "--help"],
        &["encrypt", "--help"],
    ] {
        let out = std::process::Command::new(bin())
            .args(sub)
            .output()
            .unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).len() > 200,
            "{sub:?} help is too thin"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quick_start_through_the_cli() {
    let srv = TestServer::dev();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let (code, out, err) = cli_in(&srv, args, Some(dir.path()));
        assert_eq!(code, 0, "{args:?}\nstdout: {out}\nstderr: {err}");
        out
    };
    run(&["keyring", "create", "payments"]);
    let created: Value = serde_json::from_str(&run(&[
        "key",
        "create",
        "payments/card-data",
        "--label",
        "team=payments",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(created["algorithm"], "aes-256-gcm");
    std::fs::write(dir.path().join("secret.txt"), b"top secret\n").unwrap();
    run(&[
        "encrypt",
        "--key",
        "payments/card-data",
        "--in",
        "secret.txt",
        "--context",
        "tenant=acme",
        "--out",
        "secret.enc",
    ]);
    run(&["version", "create", "payments/card-data"]);
    run(&[
        "decrypt",
        "--in",
        "secret.enc",
        "--context",
        "tenant=acme",
        "--out",
        "secret.out",
    ]);
    assert_eq!(
        std::fs::read(dir.path().join("secret.out")).unwrap(),
        b"top secret\n"
    );
    let d: Value = serde_json::from_str(&run(&[
        "decrypt",
        "--in",
        "secret.enc",
        "--context",
        "tenant=acme",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        d["version"], 1,
        "the old ciphertext names version 1 after rotation"
    );

    // Wrong context: a clear error and a non-zero exit.
    let (code, _, err) = cli_in(&srv, &["decrypt", "--in", "secret.enc"], Some(dir.path()));
    assert_ne!(code, 0);
    assert!(err.contains("invalid_ciphertext"), "{err}");

    // Tables by default, JSON on request.
    let table = run(&["key", "list", "payments"]);
    assert!(
        table.contains("payments/card-data") && table.contains("PURPOSE"),
        "{table}"
    );
    let listed: Value = serde_json::from_str(&run(&[
        "version",
        "list",
        "payments/card-data",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    // Signing and verification exit codes.
    run(&[
        "key",
        "create",
        "payments/signer",
        "--algorithm",
        "ecdsa-p256-sha256",
    ]);
    run(&[
        "sign",
        "--key",
        "payments/signer",
        "--in",
        "secret.txt",
        "--out",
        "sig.bin",
    ]);
    let (ok, out, _) = cli_in(
        &srv,
        &[
            "verify",
            "--key",
            "payments/signer",
            "--in",
            "secret.txt",
            "--signature-file",
            "sig.bin",
        ],
        Some(dir.path()),
    );
    assert_eq!((ok, out.trim()), (0, "valid"));
    let (bad, out, _) = cli_in(
        &srv,
        &[
            "verify",
            "--key",
            "payments/signer",
            "--in",
            "secret.enc",
            "--signature-file",
            "sig.bin",
        ],
        Some(dir.path()),
    );
    assert_eq!((bad, out.trim()), (2, "INVALID"));
    let pem = run(&["key", "public-key", "payments/signer"]);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));

    // Aliases, MAC, random, tokens.
    run(&["alias", "create", "cards", "payments/card-data"]);
    run(&[
        "encrypt",
        "--key",
        "alias/cards",
        "--b64",
        "aGk=",
        "--out",
        "a.enc",
    ]);
    run(&["key", "create", "payments/mac", "--purpose", "mac"]);
    let m: Value = serde_json::from_str(&run(&[
        "mac",
        "generate",
        "--key",
        "payments/mac",
        "--b64",
        "aGk=",
        "-o",
        "json",
    ]))
    .unwrap();
    let tag = m["mac"].as_str().unwrap();
    run(&[
        "mac",
        "verify",
        "--key",
        "payments/mac",
        "--b64",
        "aGk=",
        "--mac",
        tag,
    ]);
    run(&["random", "--length", "16", "--out", "r.bin"]);
    assert_eq!(std::fs::read(dir.path().join("r.bin")).unwrap().len(), 16);
    let t: Value =
        serde_json::from_str(&run(&["token", "create", "--ttl", "1h", "-o", "json"])).unwrap();
    assert!(t["token"].as_str().unwrap().starts_with("srt_"));
    run(&[
        "version",
        "destroy",
        "payments/card-data",
        "1",
        "--window",
        "7d",
    ]);
    let (code, _, err) = cli_in(
        &srv,
        &["decrypt", "--in", "secret.enc", "--context", "tenant=acme"],
        Some(dir.path()),
    );
    assert_ne!(code, 0);
    assert!(err.contains("destroy_scheduled"), "{err}");
    run(&["version", "restore", "payments/card-data", "1"]);
}

#[test]
fn unreachable_server_is_a_clear_error() {
    let out = std::process::Command::new(bin())
        .args(["keyring", "list"])
        .env("STRONGROOM_ADDR", "http://127.0.0.1:9")
        .env("STRONGROOM_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach strongroom at http://127.0.0.1:9"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_token_is_explained() {
    let srv = TestServer::dev();
    let out = std::process::Command::new(bin())
        .args(["keyring", "list"])
        .env("STRONGROOM_ADDR", &srv.addr)
        .env_remove("STRONGROOM_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthenticated"));
    let _ = cli(&srv, &["keyring", "list"]);
}

/// Runs `strongroom bench` with `args` and JSON output; returns its results, each checked to
/// have made requests and no errors.
fn bench_results(srv: &TestServer, args: &[&str]) -> Vec<Value> {
    let args: Vec<&str> = std::iter::once("bench")
        .chain(args.iter().copied())
        .chain(["-o", "json"])
        .collect();
    let (code, out, err) = cli(srv, &args);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap().clone();
    for r in &results {
        assert_eq!(r["errors"], 0, "{r}");
        assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
    }
    results
}

/// The load generator runs end to end (a functional check; its numbers are not asserted).
#[tokio::test(flavor = "multi_thread")]
async fn bench_runs_and_reports_against_its_baseline() {
    let srv = TestServer::dev();
    let results = bench_results(
        &srv,
        &[
            "--ops",
            "lookup,encrypt,decrypt,data-key,sign,mac,transit-encrypt,transit-decrypt",
            "--duration",
            "1s",
            "--concurrency",
            "2",
        ],
    );
    assert_eq!(
        results.len(),
        9,
        "health is measured as the baseline: {results:?}"
    );
    assert_eq!(results[0]["op"], "health");
    assert_eq!(results[0]["throughput_vs_health"], 1.0);
}

/// `--rate` paces the clients: never more than the rate offered (each client on its own
/// schedule, a client's first request at most one interval late), and close to it on an idle
/// server.
#[tokio::test(flavor = "multi_thread")]
async fn bench_rate_offers_the_rate_asked() {
    let srv = TestServer::dev();
    let results = bench_results(
        &srv,
        &[
            "--ops",
            "health",
            "--duration",
            "2s",
            "--concurrency",
            "8",
            "--rate",
            "200",
        ],
    );
    let n = results[0]["requests"].as_u64().unwrap();
    // 200/s for 2 s, plus at most one request per client at the deadline.
    assert!(n <= 400 + 8, "{n} requests: more than the rate asked");
    assert!(n >= 200, "{n} requests: far below the rate asked");
    let (code, _, err) = cli(&srv, &["bench", "--rate=-1", "--duration", "1s"]);
    assert_ne!(code, 0);
    assert!(err.contains("--rate"), "{err}");
}

/// The load generator drives the Kubernetes KMS plugin socket: the Rust client connects as
/// the API server does, Status is healthy, and every call succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn bench_drives_the_kubernetes_plugin_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kms.sock");
    let socket = socket.to_str().unwrap();
    let srv = TestServer::start(
        &[
            "--dev",
            "--k8s-kms-socket",
            socket,
            "--k8s-kms-key",
            "bench/aes",
        ],
        &[("STRONGROOM_DEV_ROOT_TOKEN", ROOT)],
    )
    .server
    .expect("dev server starts");
    let results = bench_results(
        &srv,
        &[
            "--ops",
            "k8s-status,k8s-encrypt,k8s-decrypt",
            "--k8s-kms-socket",
            socket,
            "--duration",
            "1s",
            "--concurrency",
            "2",
        ],
    );
    assert_eq!(results.len(), 4, "{results:?}");
    // Without the socket, the k8s operations say what they need.
    let (code, _, err) = cli(&srv, &["bench", "--ops", "k8s-encrypt", "--duration", "1s"]);
    assert_ne!(code, 0);
    assert!(err.contains("--k8s-kms-socket"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_deletion_through_the_cli() {
    let srv = TestServer::dev();
    let run = |args: &[&str]| {
        let (code, out, err) = cli(&srv, args);
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        out
    };
    run(&["keyring", "create", "r"]);
    run(&["key", "create", "r/old"]);
    let v: serde_json::Value = serde_json::from_str(&run(&[
        "key", "delete", "r/old", "--window", "7d", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(v["state"], "deletion_scheduled", "{v}");
    assert!(v["deletion_time"].is_string(), "{v}");
    let (code, _, err) = cli(&srv, &["key", "enable", "r/old"]);
    assert_ne!(code, 0);
    assert!(err.contains("deletion_scheduled"), "{err}");
    let (code, _, err) = cli(&srv, &["key", "delete", "r/old", "--window", "0d"]);
    assert_ne!(code, 0);
    assert!(err.contains("window"), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&run(&["key", "cancel-deletion", "r/old", "-o", "json"])).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["deletion_time"].is_null()),
        (Some("disabled"), true)
    );
}
