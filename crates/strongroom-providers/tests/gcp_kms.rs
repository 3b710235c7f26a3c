//! The Google Cloud KMS provider against replayed exchanges written from Google's published
//! references (Cloud KMS REST v1: `cryptoKeys.encrypt`, `decrypt`, `get`,
//! `cryptoKeyVersions.create`, `updatePrimaryVersion`, `keyRings.list`; OAuth 2.0 for
//! service accounts, RFC 7523 JWT bearer grants; the metadata server's token endpoint).
//! Each exchange checks the request Strongroom sends (path, headers, body, the signed JWT)
//! before it answers. No emulator of Cloud KMS can run here; `live_against_google_cloud`
//! runs against the real service when credentials are given.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use base64::Engine;
use serde_json::{Value, json};
use strongroom_crypto::keys::{self, SignInput};
use strongroom_crypto::{Algorithm, EncryptionContext, RsaBits, Sha2};
use strongroom_providers::{Config, KeyProvider, ProviderError};
use strongroom_testkit::replay::{Exchange, Recorded, Replay};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const KEY: &str = "projects/acme-prod/locations/global/keyRings/strongroom/cryptoKeys/payments";
const TOKEN: &str = "ya29.c.test-access-token";
const RSA: Algorithm = Algorithm::RsaPkcs1(RsaBits::B2048, Sha2::Sha256);

struct Sa {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
    spki: Vec<u8>,
}

/// A service account key file as Google issues it, with a fresh RSA key and `token_uri`
/// pointing at the replay server.
fn service_account(token_uri: &str) -> Sa {
    let key = keys::generate(RSA).unwrap();
    let spki = keys::public_key_der(RSA, &key).unwrap();
    let b64 = B64.encode(key.expose_secret());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sa.json");
    std::fs::write(
        &file,
        json!({
            "type": "service_account",
            "project_id": "acme-prod",
            "private_key_id": "4f1c0e2a9b",
            "private_key": pem,
            "client_email": "strongroom@acme-prod.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        })
        .to_string(),
    )
    .unwrap();
    Sa {
        _dir: dir,
        file,
        spki,
    }
}

/// The token exchange of RFC 7523: a JWT signed RS256 by the service account's key.
fn token_exchange(spki: Vec<u8>, token_uri: String) -> Exchange {
    Exchange::new(
        "oauth2 token (jwt-bearer)",
        "POST",
        "/token",
        200,
        json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}),
    )
    .with_header("content-type", "application/x-www-form-urlencoded")
    .expect(move |r: &Recorded| {
        let f = r.form();
        if f.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return Err(format!("grant_type: {:?}", f.get("grant_type")));
        }
        let jwt = f.get("assertion").ok_or("no assertion")?;
        let parts: Vec<&str> = jwt.split('.').collect();
        if parts.len() != 3 {
            return Err("the assertion is not a JWT".into());
        }
        let header: Value = serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
        let claims: Value = serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        if header != json!({"alg": "RS256", "typ": "JWT", "kid": "4f1c0e2a9b"}) {
            return Err(format!("JWT header {header}"));
        }
        if claims["iss"] != "strongroom@acme-prod.iam.gserviceaccount.com"
            || claims["scope"] != "https://www.googleapis.com/auth/cloudkms"
            || claims["aud"] != token_uri.as_str()
            || claims["exp"].as_u64().unwrap_or(0) != claims["iat"].as_u64().unwrap_or(1) + 3600
        {
            return Err(format!("JWT claims {claims}"));
        }
        let sig = B64URL.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        match keys::verify(RSA, &spki, SignInput::Message(input.as_bytes()), &sig) {
            Ok(true) => Ok(()),
            _ => Err("the JWT signature does not verify with the service account's key".into()),
        }
    })
}

fn api(what: &str, method: &str, path: &str, status: u16, body: Value) -> Exchange {
    Exchange::new(what, method, path, status, body)
        .with_header("authorization", &format!("Bearer {TOKEN}"))
}

/// A documented error: status, code, message, and what Strongroom must make of it.
type Case = (u16, &'static str, &'static str, fn(&ProviderError) -> bool);

fn error(status: u16, code: &str, message: &str) -> Value {
    json!({"error": {"code": status, "message": message, "status": code}})
}

fn provider(replay: &Replay, sa: &Sa) -> std::sync::Arc<dyn KeyProvider> {
    let toml = format!(
        "[providers.gcp]\nkind = \"gcp-kms\"\nproject = \"acme-prod\"\nlocation = \"global\"\nendpoint = \"{}\"\nservice_account_file = \"{}\"\ntimeout = \"5s\"\n",
        replay.url,
        sa.file.display()
    );
    Config::parse(&toml)
        .unwrap()
        .build()
        .unwrap()
        .remove("gcp")
        .unwrap()
}

fn ctx() -> EncryptionContext {
    EncryptionContext::try_new([("tenant".to_string(), "acme".to_string())].into()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_versions_across_pages_and_switches_the_primary_version() {
    let replay = Replay::start(vec![]);
    let sa = service_account(&format!("{}/token", replay.url));
    let key = json!({
        "name": KEY,
        "primary": {"name": format!("{KEY}/cryptoKeyVersions/2"), "state": "ENABLED"},
        "purpose": "ENCRYPT_DECRYPT",
        "rotationPeriod": "7776000s",
    });
    let version = |n: u32, state: &str| json!({"name": format!("{KEY}/cryptoKeyVersions/{n}"), "state": state, "createTime": format!("2026-0{n}-01T00:00:00Z"), "algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION"});
    for ex in [
        token_exchange(sa.spki.clone(), format!("{}/token", replay.url)),
        api(
            "cryptoKeys.get",
            "GET",
            &format!("/v1/{KEY}"),
            200,
            key.clone(),
        ),
        api(
            "cryptoKeyVersions.list (page 1)",
            "GET",
            &format!("/v1/{KEY}/cryptoKeyVersions?pageSize=100"),
            200,
            json!({"cryptoKeyVersions": [version(3, "DESTROY_SCHEDULED"), version(1, "DESTROYED")], "nextPageToken": "CgNwYWdlMg", "totalSize": 4}),
        ),
        api(
            "cryptoKeyVersions.list (page 2)",
            "GET",
            &format!("/v1/{KEY}/cryptoKeyVersions?pageSize=100&pageToken=CgNwYWdlMg"),
            200,
            json!({"cryptoKeyVersions": [version(2, "ENABLED"), version(4, "PENDING_GENERATION")], "totalSize": 4}),
        ),
        api(
            "cryptoKeys.get",
            "GET",
            &format!("/v1/{KEY}"),
            200,
            key.clone(),
        ),
        api(
            "cryptoKeyVersions.patch (disable)",
            "PATCH",
            &format!("/v1/{KEY}/cryptoKeyVersions/2?updateMask=state"),
            200,
            version(2, "DISABLED"),
        )
        .with_json(json!({"state": "DISABLED"})),
        api(
            "cryptoKeyVersions.patch (a signing key's named version)",
            "PATCH",
            &format!("/v1/{KEY}/cryptoKeyVersions/7?updateMask=state"),
            200,
            version(7, "ENABLED"),
        )
        .with_json(json!({"state": "ENABLED"})),
        api(
            "cryptoKeys.get (gone)",
            "GET",
            &format!("/v1/{KEY}"),
            404,
            error(404, "NOT_FOUND", "CryptoKey not found."),
        ),
    ] {
        replay.push(ex);
    }
    let p = provider(&replay, &sa);
    let vs = p.list_versions(KEY).await.unwrap();
    assert_eq!(
        vs.iter()
            .map(|v| (v.version.as_str(), v.state.as_str(), v.primary))
            .collect::<Vec<_>>(),
        vec![
            ("1", "destroyed", false),
            ("2", "enabled", true),
            ("3", "pending-destruction", false),
            ("4", "PENDING_GENERATION", false),
        ]
    );
    assert_eq!(vs[1].created_at.as_deref(), Some("2026-02-01T00:00:00Z"));
    p.set_enabled(KEY, false).await.unwrap();
    p.set_enabled(&format!("{KEY}/cryptoKeyVersions/7"), true)
        .await
        .unwrap();
    assert!(matches!(
        p.set_enabled(KEY, false).await,
        Err(ProviderError::NotFound { .. })
    ));
    replay.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn wraps_unwraps_describes_and_rotates_as_the_reference_says() {
    let replay = Replay::start(vec![]);
    let sa = service_account(&format!("{}/token", replay.url));
    let dk = [0x42u8; 32];
    let aad = B64.encode(ctx().encode());
    let wrapped = B64.encode(b"CiQAxyz-google-ciphertext-bytes");
    for ex in [
        token_exchange(sa.spki.clone(), format!("{}/token", replay.url)),
        api(
            "cryptoKeys.encrypt",
            "POST",
            &format!("/v1/{KEY}:encrypt"),
            200,
            json!({"name": format!("{KEY}/cryptoKeyVersions/3"), "ciphertext": wrapped, "ciphertextCrc32c": "1234", "protectionLevel": "HSM"}),
        )
        .with_json(json!({"plaintext": B64.encode(dk), "additionalAuthenticatedData": aad})),
        api(
            "cryptoKeys.decrypt",
            "POST",
            &format!("/v1/{KEY}:decrypt"),
            200,
            json!({"plaintext": B64.encode(dk), "usedPrimary": true, "protectionLevel": "HSM"}),
        )
        .with_json(json!({"ciphertext": wrapped, "additionalAuthenticatedData": aad})),
        api(
            "cryptoKeys.decrypt (another context)",
            "POST",
            &format!("/v1/{KEY}:decrypt"),
            400,
            error(400, "INVALID_ARGUMENT", "Decryption failed: the ciphertext is invalid."),
        ),
        api(
            "cryptoKeys.get",
            "GET",
            &format!("/v1/{KEY}"),
            200,
            json!({
                "name": KEY,
                "primary": {"name": format!("{KEY}/cryptoKeyVersions/3"), "state": "ENABLED", "protectionLevel": "HSM", "algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION"},
                "purpose": "ENCRYPT_DECRYPT",
                "createTime": "2026-01-01T00:00:00Z",
                "nextRotationTime": "2027-01-01T00:00:00Z",
                "rotationPeriod": "7776000s",
                "versionTemplate": {"protectionLevel": "HSM", "algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION"}
            }),
        ),
        api(
            "cryptoKeyVersions.create",
            "POST",
            &format!("/v1/{KEY}/cryptoKeyVersions"),
            200,
            json!({"name": format!("{KEY}/cryptoKeyVersions/4"), "state": "ENABLED"}),
        )
        .with_json(json!({})),
        api(
            "cryptoKeys.updatePrimaryVersion",
            "POST",
            &format!("/v1/{KEY}:updatePrimaryVersion"),
            200,
            json!({"name": KEY, "primary": {"name": format!("{KEY}/cryptoKeyVersions/4"), "state": "ENABLED"}}),
        )
        .with_json(json!({"cryptoKeyVersionId": "4"})),
        api(
            "keyRings.list (health)",
            "GET",
            "/v1/projects/acme-prod/locations/global/keyRings?pageSize=1",
            200,
            json!({"keyRings": [{"name": "projects/acme-prod/locations/global/keyRings/strongroom"}], "totalSize": 1}),
        ),
    ] {
        replay.push(ex);
    }
    let p = provider(&replay, &sa);
    assert_eq!((p.name(), p.kind()), ("gcp", "gcp-kms"));
    let w = p.wrap(KEY, &dk, &ctx()).await.unwrap();
    assert_eq!(w.key_version, Some(3));
    assert_eq!(w.ciphertext, b"CiQAxyz-google-ciphertext-bytes");
    // The short name resolves to the same resource; the token is reused.
    let u = p
        .unwrap("strongroom/payments", &w.ciphertext, &ctx())
        .await
        .unwrap();
    assert_eq!(u.plaintext.expose_secret(), dk);
    assert!(matches!(
        p.unwrap(KEY, &w.ciphertext, &EncryptionContext::empty())
            .await,
        Err(ProviderError::InvalidCiphertext { .. })
    ));
    let d = p.describe(KEY).await.unwrap();
    assert_eq!(d.latest_version, Some(3));
    assert!(d.can_encrypt);
    assert_eq!(
        d.rotation_period,
        Some(std::time::Duration::from_secs(7_776_000))
    );
    assert_eq!(p.rotate(KEY).await.unwrap(), "4");
    p.health().await.unwrap();
    replay.finish();
    assert!(!format!("{p:?}").contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_documented_error_maps_to_what_it_means() {
    let replay = Replay::start(vec![]);
    let sa = service_account(&format!("{}/token", replay.url));
    replay.push(token_exchange(
        sa.spki.clone(),
        format!("{}/token", replay.url),
    ));
    let cases: Vec<Case> = vec![
        (
            404,
            "NOT_FOUND",
            "CryptoKey projects/acme-prod/... not found.",
            |e| matches!(e, ProviderError::NotFound { .. }),
        ),
        (
            403,
            "PERMISSION_DENIED",
            "Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource",
            |e| matches!(e, ProviderError::AccessDenied { .. }),
        ),
        (
            400,
            "FAILED_PRECONDITION",
            "projects/.../cryptoKeyVersions/3 is not enabled, current state is: DISABLED.",
            |e| matches!(e, ProviderError::AccessDenied { .. }),
        ),
        (
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Cryptographic requests'",
            |e| e.is_retryable(),
        ),
        (
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            |e| e.is_retryable(),
        ),
        (500, "INTERNAL", "Internal error encountered.", |e| {
            e.is_retryable()
        }),
        (
            400,
            "INVALID_ARGUMENT",
            "Invalid value at 'plaintext'",
            |e| matches!(e, ProviderError::Refused { .. }),
        ),
    ];
    for (status, code, message, _) in &cases {
        replay.push(api(
            code,
            "POST",
            &format!("/v1/{KEY}:encrypt"),
            *status,
            error(*status, code, message),
        ));
    }
    let p = provider(&replay, &sa);
    for (_, code, message, ok) in &cases {
        let e = p.wrap(KEY, &[1u8; 32], &ctx()).await.unwrap_err();
        assert!(ok(&e), "{code}: {e:?}");
        if !matches!(e, ProviderError::NotFound { .. }) {
            assert!(e.to_string().contains(&message[..12]), "{code}: {e}");
        }
    }
    // A 401 (an expired token): a new token, the call once more.
    replay.push(api(
        "expired token",
        "POST",
        &format!("/v1/{KEY}:encrypt"),
        401,
        error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        ),
    ));
    replay.push(token_exchange(
        sa.spki.clone(),
        format!("{}/token", replay.url),
    ));
    replay.push(api(
        "cryptoKeys.encrypt after a new token",
        "POST",
        &format!("/v1/{KEY}:encrypt"),
        200,
        json!({"name": format!("{KEY}/cryptoKeyVersions/1"), "ciphertext": B64.encode(b"again")}),
    ));
    assert_eq!(
        p.wrap(KEY, &[1u8; 32], &ctx()).await.unwrap().ciphertext,
        b"again"
    );
    replay.finish();
    // Refused before any request: malformed key names.
    for bad in [
        "payments",
        "a/b/c",
        "projects/x/locations/y/keyRings/z/cryptoKeys/../k",
        "ring/k?x",
    ] {
        assert!(
            matches!(
                p.wrap(bad, &[1u8; 32], &ctx()).await,
                Err(ProviderError::Config(_))
            ),
            "{bad}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_takes_tokens_from_the_metadata_server() {
    let replay = Replay::start(vec![
        Exchange::new(
            "metadata token",
            "GET",
            "/computeMetadata/v1/instance/service-accounts/default/token",
            200,
            json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}),
        )
        .with_header("metadata-flavor", "Google"),
        api(
            "keyRings.list (health)",
            "GET",
            "/v1/projects/acme-prod/locations/europe-west1/keyRings?pageSize=1",
            200,
            json!({}),
        ),
    ]);
    let toml = format!(
        "[providers.gcp]\nkind = \"gcp-kms\"\nproject = \"acme-prod\"\nlocation = \"europe-west1\"\nendpoint = \"{0}\"\nmetadata = true\nmetadata_url = \"{0}\"\n",
        replay.url
    );
    let p = Config::parse(&toml)
        .unwrap()
        .build()
        .unwrap()
        .remove("gcp")
        .unwrap();
    p.health().await.unwrap();
    replay.finish();
}

#[test]
fn configuration_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let not_sa = dir.path().join("user.json");
    std::fs::write(&not_sa, r#"{"type": "authorized_user"}"#).unwrap();
    let err = |extra: &str| {
        let t = format!(
            "[providers.gcp]\nkind = \"gcp-kms\"\nproject = \"acme-prod\"\nlocation = \"global\"\n{extra}"
        );
        Config::parse(&t)
            .and_then(|c| c.build().map(|_| ()))
            .unwrap_err()
            .to_string()
    };
    assert!(err("").contains("exactly one of service_account_file and metadata"));
    assert!(
        err(&format!(
            "metadata = true\nservice_account_file = \"{}\"\n",
            not_sa.display()
        ))
        .contains("exactly one")
    );
    assert!(
        err(&format!(
            "service_account_file = \"{}\"\n",
            not_sa.display()
        ))
        .contains("not a service account key")
    );
    assert!(
        err("service_account_file = \"/nonexistent.json\"\n")
            .contains("cannot read /nonexistent.json")
    );
    assert!(err("metadata = true\nendpoint = \"ftp://x\"\n").contains("http(s) URLs"));
}

/// Against the real Cloud KMS. Needs `STRONGROOM_LIVE_GCP_KEY` (a full crypto key name),
/// `STRONGROOM_LIVE_GCP_PROJECT`, `STRONGROOM_LIVE_GCP_LOCATION` and
/// `GOOGLE_APPLICATION_CREDENTIALS` (a service account key file).
#[tokio::test]
#[ignore = "live: needs Google Cloud credentials (STRONGROOM_LIVE_GCP_* and GOOGLE_APPLICATION_CREDENTIALS); run with --ignored"]
async fn live_against_google_cloud() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("set {k} for the live test"));
    let key = var("STRONGROOM_LIVE_GCP_KEY");
    let toml = format!(
        "[providers.gcp]\nkind = \"gcp-kms\"\nproject = \"{}\"\nlocation = \"{}\"\nservice_account_file = \"{}\"\n",
        var("STRONGROOM_LIVE_GCP_PROJECT"),
        var("STRONGROOM_LIVE_GCP_LOCATION"),
        var("GOOGLE_APPLICATION_CREDENTIALS")
    );
    let p = Config::parse(&toml)
        .unwrap()
        .build()
        .unwrap()
        .remove("gcp")
        .unwrap();
    p.health().await.unwrap();
    assert!(p.describe(&key).await.unwrap().can_encrypt);
    let w = p.wrap(&key, &[7u8; 32], &ctx()).await.unwrap();
    assert_eq!(
        p.unwrap(&key, &w.ciphertext, &ctx())
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        [7u8; 32]
    );
    assert!(matches!(
        p.unwrap(&key, &w.ciphertext, &EncryptionContext::empty())
            .await,
        Err(ProviderError::InvalidCiphertext { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn asymmetric_keys_sign_digests_and_give_their_public_key() {
    use strongroom_crypto::keys::SignInput;
    const EC: Algorithm = Algorithm::EcdsaP256Sha256;
    let signer = keys::generate(EC).unwrap();
    let spki = keys::public_key_der(EC, &signer).unwrap();
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for c in B64.encode(&spki).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(c).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    let message = b"release v1.2.3";
    let digest = strongroom_crypto::hash::sha256(message);
    let sig = keys::sign(EC, &signer, SignInput::Digest(&digest)).unwrap();
    let version = "projects/acme-prod/locations/global/keyRings/strongroom/cryptoKeys/signer/cryptoKeyVersions/1";
    let replay = Replay::start(vec![]);
    let sa = service_account(&format!("{}/token", replay.url));
    for ex in [
        token_exchange(sa.spki.clone(), format!("{}/token", replay.url)),
        api(
            "cryptoKeyVersions.getPublicKey",
            "GET",
            &format!("/v1/{version}/publicKey"),
            200,
            json!({"pem": pem, "algorithm": "EC_SIGN_P256_SHA256", "pemCrc32c": "1", "name": version, "protectionLevel": "HSM"}),
        ),
        api(
            "cryptoKeyVersions.asymmetricSign",
            "POST",
            &format!("/v1/{version}:asymmetricSign"),
            200,
            json!({"signature": B64.encode(&sig), "signatureCrc32c": "1", "name": version, "protectionLevel": "HSM"}),
        )
        .with_json(json!({"digest": {"sha256": B64.encode(digest)}})),
    ] {
        replay.push(ex);
    }
    let p = provider(&replay, &sa);
    let got = p.public_key("strongroom/signer/1").await.unwrap();
    assert_eq!(got, spki);
    // A message is hashed here; Cloud KMS signs the digest.
    let s = p
        .sign(version, EC, SignInput::Message(message))
        .await
        .unwrap();
    assert!(keys::verify(EC, &got, SignInput::Message(message), &s.signature).unwrap());
    replay.finish();
    for bad in ["strongroom/signer", "strongroom/signer/x", "a/b/c/d"] {
        assert!(
            matches!(p.public_key(bad).await, Err(ProviderError::Config(_))),
            "{bad}"
        );
    }
}
