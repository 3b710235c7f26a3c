//! The AWS KMS provider against moto's server (PyPI `moto[server]`, in the venv
//! scripts/test.sh makes; or STRONGROOM_TEST_MOTO): the real SDK, real HTTP, an emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::{Duration, Instant};

use aws_sdk_kms::config::{Credentials, Region};
use strongroom_crypto::EncryptionContext;
use strongroom_providers::{Config, ProviderError};

use strongroom_testkit::peers::Moto;

/// moto's server (strongroom-testkit) and its URL.
async fn moto() -> (Moto, String) {
    let m = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let url = m.url.clone();
    (m, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn wraps_and_unwraps_through_the_sdk_and_maps_errors() {
    let (_moto, url) = moto().await;
    let sdk = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(&url)
            .credentials_provider(Credentials::new("AKIDMOTO", "secret", None, None, "test"))
            .build(),
    );
    let key = sdk.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_string();

    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        "[other]\naws_access_key_id = X\n\n[default]\naws_access_key_id = AKIDMOTO\naws_secret_access_key = secret\n",
    )
    .unwrap();
    let toml = format!(
        "[providers.aws]\nkind = \"aws-kms\"\nregion = \"us-east-1\"\nendpoint = \"{url}\"\nshared_credentials_file = \"{}\"\ntimeout = \"5s\"\n",
        creds.display()
    );
    let p = Config::parse(&toml)
        .unwrap()
        .build()
        .unwrap()
        .remove("aws")
        .unwrap();
    assert_eq!((p.name(), p.kind()), ("aws", "aws-kms"));
    p.health().await.unwrap();
    let d = p.describe(&key_id).await.unwrap();
    assert!(d.can_encrypt, "{d:?}");
    assert_eq!(d.key_type, "SYMMETRIC_DEFAULT");

    let ctx =
        EncryptionContext::try_new([("tenant".to_string(), "acme".to_string())].into()).unwrap();
    let w = p.wrap(&key_id, &[3; 32], &ctx).await.unwrap();
    assert!(w.request_id.is_some());
    assert_eq!(
        p.unwrap(&key_id, &w.ciphertext, &ctx)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        &[3; 32]
    );
    // The key by its ARN and by an alias.
    let arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    sdk.create_alias()
        .alias_name("alias/strongroom")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    for name in [arn.as_str(), "alias/strongroom"] {
        let w = p.wrap(name, &[4; 32], &ctx).await.unwrap();
        assert_eq!(
            p.unwrap(&key_id, &w.ciphertext, &ctx)
                .await
                .unwrap()
                .plaintext
                .expose_secret(),
            &[4; 32]
        );
    }
    // A key that does not exist; a ciphertext that is not one.
    assert!(matches!(
        p.describe("00000000-0000-0000-0000-000000000000")
            .await
            .unwrap_err(),
        ProviderError::NotFound { .. }
    ));
    let e = p.unwrap(&key_id, b"garbage", &ctx).await.unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    // A server that is not there: retryable, within the timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml = toml
        .replace(&url, &format!("http://{closed}"))
        .replace("\"5s\"", "\"1s\"");
    let q = Config::parse(&toml)
        .unwrap()
        .build()
        .unwrap()
        .remove("aws")
        .unwrap();
    let t = Instant::now();
    let e = q.wrap(&key_id, &[3; 32], &ctx).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // No secret in Debug.
    assert!(!format!("{p:?}").contains("secret"));
}

#[test]
fn credentials_must_be_given_one_way() {
    let err = |t: &str| {
        Config::parse(t)
            .and_then(|c| c.build().map(|_| ()))
            .unwrap_err()
            .to_string()
    };
    assert!(
        err("[providers.a]\nkind = \"aws-kms\"\nregion = \"us-east-1\"\n")
            .contains("shared_credentials_file")
    );
    assert!(err("[providers.a]\nkind = \"aws-kms\"\nregion = \"us-east-1\"\nshared_credentials_file = \"/nonexistent\"\n").contains("cannot read"));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c");
    std::fs::write(&f, "[default]\naws_access_key_id = A\n").unwrap();
    assert!(err(&format!("[providers.a]\nkind = \"aws-kms\"\nregion = \"us-east-1\"\nshared_credentials_file = \"{}\"\n", f.display())).contains("has no aws_access_key_id and aws_secret_access_key"));
    std::fs::write(
        &f,
        "[default]\naws_access_key_id = A\naws_secret_access_key = B\n",
    )
    .unwrap();
    assert!(
        err(&format!(
            "[providers.a]\nkind = \"aws-kms\"\nregion = \"us-east-1\"\nendpoint = \"ftp://x\"\nshared_credentials_file = \"{}\"\n",
            f.display()
        ))
        .contains("endpoint must start with http")
    );
}
