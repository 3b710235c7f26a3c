//! `serve --providers FILE` and `GET /v1/providers` (a healthy provider is tested against a
//! real OpenBao in tests/python/test_deploy.py and crates/strongroom-providers).

use serde_json::json;

use crate::support::{ROOT, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_does_not_answer_is_listed_unhealthy() {
    let tmp = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "s.secret-vault-token").unwrap();
    let file = tmp.path().join("providers.toml");
    std::fs::write(
        &file,
        format!("[providers.east]\nkind = \"vault-transit\"\naddress = \"http://{closed}\"\ntoken_file = \"{}\"\ntimeout = \"1s\"\n", token.display()),
    )
    .unwrap();
    let srv = TestServer::start(
        &["--dev", "--providers", file.to_str().unwrap()],
        &[("STRONGROOM_DEV_ROOT_TOKEN", ROOT)],
    )
    .server
    .expect("server starts");
    let v = srv.ok("GET", "/v1/providers", None).await;
    let p = &v["items"][0];
    assert_eq!(
        (
            p["name"].as_str(),
            p["kind"].as_str(),
            p["healthy"].as_bool()
        ),
        (Some("east"), Some("vault-transit"), Some(false))
    );
    let err = p["error"].as_str().unwrap();
    assert!(
        err.contains("east") && err.contains("cannot connect"),
        "{err}"
    );
    assert!(!v.to_string().contains("secret-vault-token"));
    // Authorization: anonymous 401, a principal without read permissions 403.
    assert_eq!(srv.call_as(None, "GET", "/v1/providers", None).await.0, 401);
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
    assert_eq!(
        srv.call_as(t["token"].as_str(), "GET", "/v1/providers", None)
            .await
            .0,
        403
    );
}

#[test]
fn a_bad_providers_file_refuses_the_start_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("providers.toml");
    for (text, want) in [
        ("[providers.x]\nkind = \"cloudhsm\"\n", "unknown variant"),
        (
            "[providers.x]\nkind = \"vault-transit\"\naddress = \"http://127.0.0.1:1\"\n",
            "exactly one of token_env",
        ),
        ("not toml at all [", "providers.toml"),
    ] {
        std::fs::write(&file, text).unwrap();
        let started = TestServer::start(
            &["--dev", "--providers", file.to_str().unwrap()],
            &[("STRONGROOM_DEV_ROOT_TOKEN", ROOT)],
        );
        assert!(started.server.is_none(), "{text}");
        assert!(started.stderr.contains(want), "{text}: {}", started.stderr);
    }
    let started = TestServer::start(
        &[
            "--dev",
            "--providers",
            tmp.path().join("absent.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert!(started.server.is_none());
    assert!(
        started.stderr.contains("cannot read the providers file"),
        "{}",
        started.stderr
    );
}
