//! Key sets end to end: the real binary with a software key, an AWS KMS key on moto's
//! server, a Vault Transit key on OpenBao and an HSM key in SoftHSM2; envelopes through the
//! CLI; failover when moto hangs (SIGSTOP), the breaker opening once and closing when moto
//! is back.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use strongroom_testkit::peers::{BAO_ROOT, Bao, Moto, SoftHsm};

use crate::support::{B64, ROOT, TestServer, cli};

struct Peers {
    _tmp: tempfile::TempDir,
    moto: Moto,
    _bao: Bao,
    hsm: SoftHsm,
    aws_key: String,
    providers: std::path::PathBuf,
}

fn peers() -> Peers {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let bao = Bao::start(&["dk"]);
    let aws_key = moto.create_key();
    let hsm = SoftHsm::init("strongroom");
    hsm.create_aes_key("dk", 1);
    let creds = tmp.path().join("aws-credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = AKIDMOTO\naws_secret_access_key = secret\n",
    )
    .unwrap();
    let token = tmp.path().join("bao-token");
    std::fs::write(&token, BAO_ROOT).unwrap();
    let providers = tmp.path().join("providers.toml");
    std::fs::write(
        &providers,
        format!(
            r#"[providers.aws]
kind = "aws-kms"
region = "us-east-1"
endpoint = "{moto}"
shared_credentials_file = "{creds}"
timeout = "1s"
deadline = "2s"
retries = 1
retry_backoff = "50ms"
breaker_open_for = "2s"

[providers.vault]
kind = "vault-transit"
address = "{bao}"
token_file = "{token}"
timeout = "2s"

{hsm}"#,
            moto = moto.url,
            creds = creds.display(),
            bao = bao.url,
            token = token.display(),
            hsm = hsm.provider_toml("hsm"),
        ),
    )
    .unwrap();
    Peers {
        _tmp: tmp,
        moto,
        _bao: bao,
        hsm,
        aws_key,
        providers,
    }
}

async fn breaker(srv: &TestServer, set: &str, member: usize) -> String {
    let v = srv.ok("GET", &format!("/v1/key-sets/{set}"), None).await;
    v["members"][member]["breaker"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn opened_total(srv: &TestServer, provider: &str) -> u64 {
    let auth = format!("Bearer {}", srv.token);
    let (status, _, body) = srv
        .raw("GET", "/metrics", &[("Authorization", &auth)], vec![])
        .await;
    assert_eq!(status, 200);
    let want = format!("strongroom_provider_breaker_opened_total{{provider=\"{provider}\"}}");
    body.lines()
        .find(|l| l.starts_with(&want))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_envelope_opens_while_any_provider_is_up_and_the_breaker_opens_once() {
    let p = peers();
    let srv = TestServer::start(
        &["--dev", "--providers", p.providers.to_str().unwrap()],
        &[
            ("STRONGROOM_DEV_ROOT_TOKEN", ROOT),
            ("SOFTHSM2_CONF", p.hsm.conf.to_str().unwrap()),
        ],
    )
    .server
    .expect("server starts");
    srv.ring("app").await;
    srv.key("app/data", json!({"name": "data"})).await;

    // The CLI creates the key set: AWS first, so decryption tries moto first.
    let aws_member = format!("aws:{}", p.aws_key);
    let (code, out, err) = cli(
        &srv,
        &[
            "key-set",
            "create",
            "multi",
            "--member",
            &aws_member,
            "--member",
            "vault:dk",
            "--member",
            "hsm:dk",
            "--member",
            "software:app/data",
            "--description",
            "four places",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("vault:dk [closed]"), "{out}");
    let (code, out, _) = cli(&srv, &["key-set", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("multi") && out.contains("software:app/data"),
        "{out}"
    );

    // Encrypt a file through the key set: four wrapped keys in the envelope.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&plain, &data).unwrap();
    let sealed = dir.path().join("sealed");
    let (code, out, err) = cli(
        &srv,
        &[
            "-o",
            "json",
            "envelope",
            "encrypt",
            "--key",
            "key-set:multi",
            "--context",
            "app=billing",
            "--in",
            plain.to_str().unwrap(),
            "--out",
            sealed.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let members: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        members,
        [
            format!("key-set:multi/{aws_member}").as_str(),
            "key-set:multi/vault:dk",
            "key-set:multi/hsm:dk",
            "key-set:multi/software:app/data"
        ]
    );
    let decrypt = |name: &str| {
        let out_path = dir.path().join(name);
        let r = cli(
            &srv,
            &[
                "-o",
                "json",
                "envelope",
                "decrypt",
                "--in",
                sealed.to_str().unwrap(),
                "--out",
                out_path.to_str().unwrap(),
            ],
        );
        (r, out_path)
    };
    let ((code, out, err), got) = decrypt("plain1");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(&got).unwrap(), data);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["member"], format!("key-set:multi/{aws_member}"));

    // moto hangs: the first decrypt costs one deadline (2 s) and opens over to OpenBao.
    p.moto.pause();
    let t = Instant::now();
    let ((code, out, err), got) = decrypt("plain2");
    let took = t.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(&got).unwrap(), data);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["member"], "key-set:multi/vault:dk");
    assert!(took < Duration::from_secs(6), "failover took {took:?}");
    assert_eq!(breaker(&srv, "multi", 0).await, "open");
    // While the breaker is open, moto costs nothing: fast, and it opened exactly once.
    for i in 0..3 {
        let t = Instant::now();
        let ((code, out, err), _) = decrypt(&format!("again{i}"));
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
    }
    assert_eq!(opened_total(&srv, "aws").await, 1);
    // Generating needs every member: refused with a retryable error naming the provider.
    let (status, body) = srv
        .call("POST", "/v1/key-sets/multi/generate-data-key", None)
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(body.to_string().contains("aws"), "{body}");
    let (code, out, _) = cli(&srv, &["provider", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("open"), "{out}");

    // moto is back: after the open period, the next call is a trial that closes it.
    p.moto.resume();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let dk = srv
        .ok(
            "POST",
            "/v1/key-sets/multi/generate-data-key",
            Some(json!({"context": {"app": "billing"}})),
        )
        .await;
    assert_eq!(breaker(&srv, "multi", 0).await, "closed");
    assert_eq!(opened_total(&srv, "aws").await, 1);
    // The wrapped key of the AWS member alone opens it through moto.
    let aws_only = json!({
        "wrapped": [dk["wrapped"][0].clone()],
        "context": {"app": "billing"},
    });
    let v = srv
        .ok("POST", "/v1/key-sets/multi/decrypt", Some(aws_only))
        .await;
    assert_eq!(v["member"], aws_member);
    assert_eq!(v["plaintext"], dk["plaintext"]);
    // And the HSM member alone, inside SoftHSM2.
    let hsm_only = json!({
        "wrapped": [dk["wrapped"][2].clone()],
        "context": {"app": "billing"},
    });
    let v = srv
        .ok("POST", "/v1/key-sets/multi/decrypt", Some(hsm_only))
        .await;
    assert_eq!(v["member"], "hsm:dk");
    assert_eq!(v["plaintext"], dk["plaintext"]);
    assert_eq!(
        B64.decode(v["plaintext"].as_str().unwrap()).unwrap().len(),
        32
    );

    // The audit log names the provider calls, with AWS's request ids.
    let (_, events) = srv
        .call(
            "GET",
            "/v1/audit/events?operation=key-set-decrypt&limit=100",
            None,
        )
        .await;
    let items = events["items"].as_array().unwrap();
    let n = items.len();
    let (aws, hsm) = (items[n - 2].clone(), items[n - 1].clone());
    assert_eq!(hsm["providers"][0]["provider"], "hsm");
    assert_eq!(hsm["providers"][0]["outcome"], "ok");
    let last = aws;
    assert_eq!(last["key_set"], "multi");
    assert_eq!(last["providers"][0]["provider"], "aws");
    assert!(last["providers"][0]["request_id"].is_string(), "{last}");
    assert!(!srv.logs().contains(dk["plaintext"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrap_moves_envelopes_to_a_key_sets_new_members() {
    let p = peers();
    let srv = TestServer::start(
        &["--dev", "--providers", p.providers.to_str().unwrap()],
        &[
            ("STRONGROOM_DEV_ROOT_TOKEN", ROOT),
            ("SOFTHSM2_CONF", p.hsm.conf.to_str().unwrap()),
        ],
    )
    .server
    .expect("server starts");
    srv.ring("app").await;
    srv.key("app/old", json!({"name": "old"})).await;
    srv.ok(
        "POST",
        "/v1/key-sets",
        Some(json!({"name": "moving", "members": ["software:app/old"]})),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"rewrap me").unwrap();
    let sealed = dir.path().join("sealed");
    let (code, out, err) = cli(
        &srv,
        &[
            "envelope",
            "encrypt",
            "--key",
            "key-set:moving",
            "--in",
            plain.to_str().unwrap(),
            "--out",
            sealed.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let body_before = std::fs::read(&sealed).unwrap();

    // The key set now holds the OpenBao key only; rewrap the envelope under it.
    srv.ok(
        "PUT",
        "/v1/key-sets/moving",
        Some(json!({"members": ["vault:dk"]})),
    )
    .await;
    let (code, out, err) = cli(
        &srv,
        &[
            "envelope",
            "rewrap",
            "--key",
            "key-set:moving",
            sealed.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let after = std::fs::read(&sealed).unwrap();
    assert_ne!(after, body_before);
    // The software key is disabled: only the OpenBao member can open it now.
    srv.ok("POST", "/v1/keyrings/app/keys/old/disable", None)
        .await;
    let out_path = dir.path().join("back");
    let (code, out, err) = cli(
        &srv,
        &[
            "-o",
            "json",
            "envelope",
            "decrypt",
            "--in",
            sealed.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(&out_path).unwrap(), b"rewrap me");
    assert!(out.contains("key-set:moving/vault:dk"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_set_endpoints_refuse_bad_requests_clearly() {
    let srv = TestServer::dev();
    srv.ring("app").await;
    srv.key("app/k", json!({"name": "k"})).await;
    srv.ok(
        "POST",
        "/v1/key-sets",
        Some(json!({"name": "ks", "members": ["software:app/k"]})),
    )
    .await;
    for (method, path, body, status, code) in [
        (
            "POST",
            "/v1/key-sets",
            json!({"name": "x", "members": []}),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/v1/key-sets",
            json!({"name": "x", "members": ["aws:k"]}),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/v1/key-sets",
            json!({"name": "x", "members": ["software:app/k"], "extra": 1}),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/v1/key-sets",
            json!({"name": "ks", "members": ["software:app/k"]}),
            409,
            "already_exists",
        ),
        (
            "POST",
            "/v1/key-sets/ks/generate-data-key",
            json!({"length": 1000}),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/v1/key-sets/ks/generate-data-key",
            json!({"context": {"strongroom:key-set": "ks"}}),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/v1/key-sets/nosuch/generate-data-key",
            json!({}),
            404,
            "not_found",
        ),
        (
            "POST",
            "/v1/key-sets/ks/decrypt",
            json!({"wrapped": []}),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/v1/key-sets/ks/decrypt",
            json!({"wrapped": [{"member": "software:app/k", "ciphertext": "not base64!"}]}),
            400,
            "invalid_argument",
        ),
        (
            "POST",
            "/v1/key-sets/ks/decrypt",
            json!({"wrapped": [{"member": "software:app/k", "ciphertext": "AAAA"}]}),
            400,
            "invalid_ciphertext",
        ),
        (
            "POST",
            "/v1/key-sets/ks/wrap",
            json!({"plaintext": "AAAA"}),
            400,
            "invalid_argument",
        ),
        (
            "PUT",
            "/v1/key-sets/nosuch",
            json!({"members": ["software:app/k"]}),
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/v1/key-sets/nosuch",
            Value::Null,
            404,
            "not_found",
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (s, v) = srv.call(method, path, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {v}"
        );
    }
    // Oversized: more than the request body limit is refused before parsing.
    let huge = "A".repeat(2 * 1024 * 1024);
    let (s, _) = srv
        .call(
            "POST",
            "/v1/key-sets/ks/decrypt",
            Some(json!({"wrapped": [{"member": "software:app/k", "ciphertext": huge}]})),
        )
        .await;
    assert_eq!(s, 413);
    // Unauthenticated and unauthorised.
    let (s, _) = srv
        .call_as(None, "POST", "/v1/key-sets/ks/generate-data-key", None)
        .await;
    assert_eq!(s, 401);
    srv.ok(
        "POST",
        "/v1/principals",
        Some(json!({"name": "nobody", "kind": "workload", "roles": []})),
    )
    .await;
    let t = srv
        .ok(
            "POST",
            "/v1/principals/nobody/tokens",
            Some(json!({"ttl": "1h"})),
        )
        .await;
    for (method, path) in [
        ("POST", "/v1/key-sets/ks/generate-data-key"),
        ("GET", "/v1/key-sets/ks"),
        ("GET", "/v1/key-sets"),
        ("DELETE", "/v1/key-sets/ks"),
    ] {
        let (s, v) = srv.call_as(t["token"].as_str(), method, path, None).await;
        assert_eq!(s, 403, "{method} {path}: {v}");
    }
    // Nothing was lost: the key set is still there and works.
    let dk = srv
        .ok("POST", "/v1/key-sets/ks/generate-data-key", None)
        .await;
    assert_eq!(dk["wrapped"].as_array().unwrap().len(), 1);
}
