//! The AWS KMS provider against moto's server (PyPI `moto[server]`, in the venv
//! scripts/test.sh makes; or STRONGROOM_TEST_MOTO): the real SDK, real HTTP, an emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::time::{Duration, Instant};

use aws_sdk_kms::config::{Credentials, Region};
use strongroom_crypto::EncryptionContext;
use strongroom_providers::{Config, ProviderError, VersionState};

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

#[tokio::test(flavor = "multi_thread")]
async fn lists_versions_switches_keys_and_reports_the_schedule() {
    let (_moto, url) = moto().await;
    let sdk = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(&url)
            .credentials_provider(Credentials::new("AKIDMOTO", "secret", None, None, "test"))
            .build(),
    );
    let key_id = sdk
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = AKIDMOTO\naws_secret_access_key = secret\n",
    )
    .unwrap();
    let p = Config::parse(&format!(
        "[providers.aws]\nkind = \"aws-kms\"\nregion = \"us-east-1\"\nendpoint = \"{url}\"\nshared_credentials_file = \"{}\"\n",
        creds.display()
    ))
    .unwrap()
    .build()
    .unwrap()
    .remove("aws")
    .unwrap();
    // One version; after an on-demand rotation at AWS, two, the newest primary.
    let vs = p.list_versions(&key_id).await.unwrap();
    assert_eq!(vs.len(), 1, "{vs:?}");
    assert!(vs[0].primary && vs[0].created_at.is_some());
    sdk.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    let vs = p.list_versions(&key_id).await.unwrap();
    assert_eq!(
        vs.iter()
            .map(|v| (v.version.as_str(), v.primary))
            .collect::<Vec<_>>(),
        vec![("1", false), ("2", true)]
    );
    // Disabled at AWS: described as such, every version with it; then enabled again.
    p.set_enabled(&key_id, false).await.unwrap();
    let d = p.describe(&key_id).await.unwrap();
    assert_eq!((d.enabled, d.can_encrypt), (Some(false), false));
    let vs = p.list_versions(&key_id).await.unwrap();
    assert!(vs.iter().all(|v| v.state == VersionState::Disabled));
    let state = sdk.describe_key().key_id(&key_id).send().await.unwrap();
    assert!(!state.key_metadata().unwrap().enabled());
    p.set_enabled(&key_id, true).await.unwrap();
    assert!(p.describe(&key_id).await.unwrap().can_encrypt);
    // The schedule: none, then the one set.
    assert_eq!(p.rotation_schedule(&key_id).await.unwrap(), None);
    p.set_rotation_period(&key_id, Some(Duration::from_secs(90 * 86_400)))
        .await
        .unwrap();
    assert!(p.rotation_schedule(&key_id).await.unwrap().is_some());
    p.set_rotation_period(&key_id, None).await.unwrap();
    assert_eq!(p.rotation_schedule(&key_id).await.unwrap(), None);
    // Data keys made by AWS, bound to the context.
    let c = EncryptionContext::try_new([("app".to_string(), "x".to_string())].into()).unwrap();
    let (dk, w) = p.generate_data_key(&key_id, 32, &c).await.unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    assert!(w.request_id.is_some());
    assert_eq!(
        p.unwrap(&key_id, &w.ciphertext, &c)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        dk.plaintext.expose_secret()
    );
    assert!(
        p.unwrap(&key_id, &w.ciphertext, &EncryptionContext::empty())
            .await
            .is_err()
    );
    assert!(matches!(
        p.generate_data_key(&key_id, 2000, &c).await,
        Err(ProviderError::Refused { .. })
    ));
    // A key that is not there.
    assert!(matches!(
        p.set_enabled("00000000-0000-0000-0000-000000000000", false)
            .await
            .unwrap_err(),
        ProviderError::NotFound { .. }
    ));
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
