//! The Azure Key Vault provider against replayed exchanges written from Microsoft's published
//! references (Key Vault keys REST API 7.5: get key, wrap key, unwrap key, rotate key, get
//! keys; the Microsoft identity platform's client credentials flow, with a client secret
//! or a federated credential). Each exchange checks the request Strongroom sends before it
//! answers. No emulator of Key Vault can run here; `live_against_azure` runs against the
//! real service when credentials are given.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use base64::Engine;
use serde_json::{Value, json};
use strongroom_crypto::EncryptionContext;
use strongroom_providers::{Config, KeyProvider, ProviderError};
use strongroom_testkit::replay::{Exchange, Recorded, Replay};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "b2b9c3f1-5c1d-4c8e-9f7a-0123456789ab";
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.test.token";
const VERSION: &str = "78deebed173b48e48f55abf87ed4cf71";

fn token(assertion: Option<String>) -> Exchange {
    Exchange::new(
        "identity platform token (client credentials)",
        "POST",
        &format!("/{TENANT}/oauth2/v2.0/token"),
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": TOKEN}),
    )
    .with_header("content-type", "application/x-www-form-urlencoded")
    .expect(move |r: &Recorded| {
        let f = r.form();
        let want_common = [
            ("client_id", CLIENT),
            ("scope", "https://vault.azure.net/.default"),
            ("grant_type", "client_credentials"),
        ];
        for (k, v) in want_common {
            if f.get(k).map(String::as_str) != Some(v) {
                return Err(format!("{k}: {:?}", f.get(k)));
            }
        }
        match &assertion {
            None if f.get("client_secret").map(String::as_str) == Some("s3cr3t~value") => Ok(()),
            Some(a)
                if f.get("client_assertion") == Some(a)
                    && f.get("client_assertion_type").map(String::as_str)
                        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") =>
            {
                Ok(())
            }
            _ => Err(format!("credential fields: {f:?}")),
        }
    })
}

fn api(what: &str, method: &str, path: &str, status: u16, body: Value) -> Exchange {
    Exchange::new(what, method, path, status, body)
        .with_header("authorization", &format!("Bearer {TOKEN}"))
}

fn key_bundle(vault: &str, version: &str) -> Value {
    json!({
        "key": {
            "kid": format!("{vault}/keys/dk/{version}"),
            "kty": "RSA-HSM",
            "key_ops": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
            "n": "1_6ZtP288hEkKML-L6nFyZh1PD1rmAgwbbwjEvTSDK_008BYWhjp_6ULy9BhWtRIytNkPkm9gzaBTrCpp-vyDXPGa836Htp-w8u5JmxoUZchJh576m3m-8ZYWTmZSAFZ2oJHUiBYdqQj_2yE0sH5NHYrL0Wj2kK0Yd_0VYYXsLuyJ9U5E5Hl7c4v0pKJ4Q7Q",
            "e": "AQAB"
        },
        "attributes": {"enabled": true, "created": 1493942451, "updated": 1493942451, "recoveryLevel": "Recoverable+Purgeable"}
    })
}

/// A documented error: status, code, message, and what Strongroom must make of it.
type Case = (u16, &'static str, &'static str, fn(&ProviderError) -> bool);

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// What Strongroom asks Key Vault to wrap: "SR1", SHA-256 of the context, the data key.
fn bound(context: &EncryptionContext, dk: &[u8]) -> Vec<u8> {
    let mut v = b"SR1".to_vec();
    v.extend_from_slice(&strongroom_crypto::hash::sha256(&context.encode()));
    v.extend_from_slice(dk);
    v
}

fn ctx() -> EncryptionContext {
    EncryptionContext::try_new([("tenant".to_string(), "acme".to_string())].into()).unwrap()
}

fn provider(replay: &Replay, credential: &str) -> std::sync::Arc<dyn KeyProvider> {
    let toml = format!(
        "[providers.azure]\nkind = \"azure-keyvault\"\nvault_url = \"{0}\"\nauthority = \"{0}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n{credential}\n",
        replay.url
    );
    Config::parse(&toml)
        .unwrap()
        .build()
        .unwrap()
        .remove("azure")
        .unwrap()
}

fn secret_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("secret");
    std::fs::write(&p, "s3cr3t~value\n").unwrap();
    let line = format!("client_secret_file = \"{}\"", p.display());
    (dir, line)
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_versions_follows_next_links_on_the_vault_only_and_switches_the_current_version() {
    let replay = Replay::start(vec![]);
    let v = replay.url.clone();
    const OLD: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let item = |version: &str, enabled: bool, created: u64| json!({"kid": format!("{v}/keys/dk/{version}"), "attributes": {"enabled": enabled, "created": created, "updated": created, "recoveryLevel": "Recoverable+Purgeable"}});
    let (secret_dir, secret) = secret_file();
    for ex in [
        token(None),
        api(
            "get key",
            "GET",
            "/keys/dk?api-version=7.5",
            200,
            key_bundle(&v, VERSION),
        ),
        api(
            "get key versions (page 1)",
            "GET",
            "/keys/dk/versions?maxresults=25&api-version=7.5",
            200,
            json!({"value": [item(VERSION, true, 1_700_000_000)], "nextLink": format!("{v}/keys/dk/versions?api-version=7.5&$skiptoken=eyJOZXh0IjoyfQ&maxresults=25")}),
        ),
        api(
            "get key versions (page 2, followed as given)",
            "GET",
            "/keys/dk/versions?api-version=7.5&$skiptoken=eyJOZXh0IjoyfQ&maxresults=25",
            200,
            // A next link off the vault is not followed: the token goes nowhere else.
            json!({"value": [item(OLD, false, 1_600_000_000)], "nextLink": "https://attacker.example/keys/dk/versions?api-version=7.5"}),
        ),
        api(
            "get key (current version)",
            "GET",
            "/keys/dk?api-version=7.5",
            200,
            key_bundle(&v, VERSION),
        ),
        api(
            "update key (disable the current version)",
            "PATCH",
            &format!("/keys/dk/{VERSION}?api-version=7.5"),
            200,
            key_bundle(&v, VERSION),
        )
        .with_json(json!({"attributes": {"enabled": false}})),
        api(
            "get key rotation policy",
            "GET",
            "/keys/dk/rotationpolicy?api-version=7.5",
            200,
            json!({"id": format!("{v}/keys/dk/rotationpolicy"), "lifetimeActions": [
                {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}},
                {"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "Rotate"}}
            ], "attributes": {"expiryTime": "P2Y"}}),
        ),
        api(
            "get key rotation policy (none)",
            "GET",
            "/keys/dk/rotationpolicy?api-version=7.5",
            200,
            json!({"id": format!("{v}/keys/dk/rotationpolicy"), "lifetimeActions": []}),
        ),
    ] {
        replay.push(ex);
    }
    let p = provider(&replay, &secret);
    let vs = p.list_versions("dk").await.unwrap();
    assert_eq!(
        vs.iter()
            .map(|x| (x.version.as_str(), x.state.as_str(), x.primary))
            .collect::<Vec<_>>(),
        vec![(OLD, "disabled", false), (VERSION, "enabled", true)]
    );
    assert_eq!(vs[1].created_at.as_deref(), Some("2023-11-14T22:13:20Z"));
    p.set_enabled("dk", false).await.unwrap();
    assert_eq!(
        p.rotation_schedule("dk").await.unwrap(),
        Some(std::time::Duration::from_secs(90 * 86_400))
    );
    assert_eq!(p.rotation_schedule("dk").await.unwrap(), None);
    replay.finish();
    drop(secret_dir);
}

/// Managed HSM `oct-HSM` keys with `algorithm = "A256GCM"`: `encrypt`/`decrypt` with the
/// context's encoding as AAD, so Key Vault binds the copy itself.
#[tokio::test(flavor = "multi_thread")]
async fn a256gcm_encrypts_with_the_context_as_aad() {
    let replay = Replay::start(vec![]);
    let v = replay.url.clone();
    let dk = [0x5au8; 32];
    let aad = B64URL.encode(ctx().encode());
    let (iv, tag, value) = (
        B64URL.encode([1u8; 12]),
        B64URL.encode([2u8; 16]),
        B64URL.encode(b"gcm ciphertext from the HSM"),
    );
    let mut oct = key_bundle(&v, VERSION);
    oct["key"] = json!({"kid": format!("{v}/keys/dk/{VERSION}"), "kty": "oct-HSM", "key_ops": ["encrypt", "decrypt"]});
    let (secret_dir, secret) = secret_file();
    for ex in [
        token(None),
        api(
            "get key",
            "GET",
            "/keys/dk?api-version=7.5",
            200,
            oct.clone(),
        ),
        api(
            "encrypt (A256GCM)",
            "POST",
            &format!("/keys/dk/{VERSION}/encrypt?api-version=7.5"),
            200,
            json!({"kid": format!("{v}/keys/dk/{VERSION}"), "value": value, "iv": iv, "tag": tag}),
        )
        .with_json(json!({"alg": "A256GCM", "value": B64URL.encode(dk), "aad": aad})),
        api(
            "decrypt (A256GCM)",
            "POST",
            &format!("/keys/dk/{VERSION}/decrypt?api-version=7.5"),
            200,
            json!({"kid": format!("{v}/keys/dk/{VERSION}"), "value": B64URL.encode(dk)}),
        )
        .with_json(json!({"alg": "A256GCM", "value": value, "iv": iv, "tag": tag, "aad": aad})),
        api(
            "decrypt (another context: the tag fails)",
            "POST",
            &format!("/keys/dk/{VERSION}/decrypt?api-version=7.5"),
            400,
            error("BadParameter", "Decryption failed."),
        ),
        api(
            "get key (describe)",
            "GET",
            "/keys/dk?api-version=7.5",
            200,
            oct,
        ),
    ] {
        replay.push(ex);
    }
    let p = provider(&replay, &format!("{secret}\nalgorithm = \"A256GCM\""));
    let w = p.wrap("dk", &dk, &ctx()).await.unwrap();
    assert_eq!(w.ciphertext[0], 0x02);
    let u = p.unwrap("dk", &w.ciphertext, &ctx()).await.unwrap();
    assert_eq!(u.plaintext.expose_secret(), dk);
    assert!(matches!(
        p.unwrap("dk", &w.ciphertext, &EncryptionContext::empty())
            .await,
        Err(ProviderError::InvalidCiphertext { .. })
    ));
    // Malformed copies are refused here, before any call.
    for bad in [
        vec![0x02],
        vec![0x02, 40],
        w.ciphertext[..w.ciphertext.len() - 27].to_vec(),
        [&[0x02u8, 3][..], b"a/b", &w.ciphertext[2 + VERSION.len()..]].concat(),
    ] {
        assert!(matches!(
            p.unwrap("dk", &bad, &ctx()).await,
            Err(ProviderError::InvalidCiphertext { .. })
        ));
    }
    assert!(p.describe("dk").await.unwrap().can_encrypt);
    replay.finish();
    drop(secret_dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn wraps_with_the_current_version_and_unwraps_with_the_one_that_wrapped() {
    let replay = Replay::start(vec![]);
    let v = replay.url.clone();
    let dk = [0x24u8; 32];
    let wrapped_value = b"RSA-OAEP-256 output from Key Vault".to_vec();
    for ex in [
        token(None),
        api("get key", "GET", "/keys/dk?api-version=7.5", 200, key_bundle(&v, VERSION)),
        api(
            "wrap key",
            "POST",
            &format!("/keys/dk/{VERSION}/wrapkey?api-version=7.5"),
            200,
            json!({"kid": format!("{v}/keys/dk/{VERSION}"), "value": B64URL.encode(&wrapped_value)}),
        )
        .with_json(json!({"alg": "RSA-OAEP-256", "value": B64URL.encode(bound(&ctx(), &dk))}))
        .answer_header("x-ms-request-id", "9f8a7b6c-1111-2222-3333-444455556666"),
        api(
            "unwrap key",
            "POST",
            &format!("/keys/dk/{VERSION}/unwrapkey?api-version=7.5"),
            200,
            json!({"kid": format!("{v}/keys/dk/{VERSION}"), "value": B64URL.encode(bound(&ctx(), &dk))}),
        )
        .with_json(json!({"alg": "RSA-OAEP-256", "value": B64URL.encode(&wrapped_value)})),
        // The same copy under another context: Key Vault opens it (RSA-OAEP has no
        // associated data), Strongroom's binding refuses it.
        api(
            "unwrap key (another context)",
            "POST",
            &format!("/keys/dk/{VERSION}/unwrapkey?api-version=7.5"),
            200,
            json!({"kid": format!("{v}/keys/dk/{VERSION}"), "value": B64URL.encode(bound(&ctx(), &dk))}),
        ),
        api(
            "unwrap key (altered)",
            "POST",
            &format!("/keys/dk/{VERSION}/unwrapkey?api-version=7.5"),
            400,
            error("BadParameter", "The parameter is incorrect."),
        ),
        api("get key (describe)", "GET", "/keys/dk?api-version=7.5", 200, key_bundle(&v, VERSION)),
        api(
            "rotate key",
            "POST",
            "/keys/dk/rotate?api-version=7.5",
            200,
            key_bundle(&v, "5a4b3c2d1e0f99887766554433221100"),
        ),
        api("get keys (health)", "GET", "/keys?maxresults=1&api-version=7.5", 200, json!({"value": [], "nextLink": null})),
    ] {
        replay.push(ex);
    }
    let (_dir, cred) = secret_file();
    let p = provider(&replay, &cred);
    assert_eq!((p.name(), p.kind()), ("azure", "azure-keyvault"));
    let w = p.wrap("dk", &dk, &ctx()).await.unwrap();
    assert_eq!(
        w.request_id.as_deref(),
        Some("9f8a7b6c-1111-2222-3333-444455556666")
    );
    assert_eq!(w.ciphertext[0], 1);
    assert_eq!(&w.ciphertext[2..2 + VERSION.len()], VERSION.as_bytes());
    let u = p.unwrap("dk", &w.ciphertext, &ctx()).await.unwrap();
    assert_eq!(u.plaintext.expose_secret(), dk);
    assert!(matches!(
        p.unwrap("dk", &w.ciphertext, &EncryptionContext::empty())
            .await,
        Err(ProviderError::InvalidCiphertext { .. })
    ));
    assert!(matches!(
        p.unwrap("dk", &w.ciphertext, &ctx()).await,
        Err(ProviderError::InvalidCiphertext { .. })
    ));
    let d = p.describe("dk").await.unwrap();
    assert!(d.can_encrypt);
    assert_eq!(d.key_type, "RSA-HSM");
    assert_eq!(
        p.rotate("dk").await.unwrap(),
        "5a4b3c2d1e0f99887766554433221100"
    );
    p.health().await.unwrap();
    replay.finish();
    // Malformed wrapped forms are refused before any request.
    for bad in [
        vec![],
        vec![2, 1, b'a', 1],
        vec![1, 40, b'a'],
        vec![1, 3, b'a', b'/', b'c', 9],
    ] {
        assert!(matches!(
            p.unwrap("dk", &bad, &ctx()).await,
            Err(ProviderError::InvalidCiphertext { .. })
        ));
    }
    assert!(!format!("{p:?}").contains("s3cr3t"));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_documented_error_maps_to_what_it_means() {
    let replay = Replay::start(vec![token(None)]);
    let cases: Vec<Case> = vec![
        (
            404,
            "KeyNotFound",
            "A key with (name/id) dk was not found in this key vault.",
            |e| matches!(e, ProviderError::NotFound { .. }),
        ),
        (
            403,
            "Forbidden",
            "The user, group or application does not have keys get permission on key vault.",
            |e| matches!(e, ProviderError::AccessDenied { .. }),
        ),
        (
            429,
            "Throttled",
            "Request was not processed because too many requests were received.",
            |e| e.is_retryable(),
        ),
        (
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
            |e| e.is_retryable(),
        ),
        (400, "BadParameter", "Property has invalid value", |e| {
            matches!(e, ProviderError::Refused { .. })
        }),
    ];
    for (status, code, message, _) in &cases {
        replay.push(api(
            code,
            "GET",
            "/keys/dk?api-version=7.5",
            *status,
            error(code, message),
        ));
    }
    let (_dir, cred) = secret_file();
    let p = provider(&replay, &cred);
    for (_, code, _, ok) in &cases {
        let e = p.describe("dk").await.unwrap_err();
        assert!(ok(&e), "{code}: {e:?}");
    }
    // An expired token: a new one, then the call once more.
    replay.push(api(
        "expired token",
        "GET",
        "/keys/dk?api-version=7.5",
        401,
        error(
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        ),
    ));
    replay.push(token(None));
    replay.push(api(
        "get key after a new token",
        "GET",
        "/keys/dk?api-version=7.5",
        200,
        key_bundle(&replay.url, VERSION),
    ));
    p.describe("dk").await.unwrap();
    replay.finish();
    for bad in ["", "a/b", "a_b", &"x".repeat(128)] {
        assert!(
            matches!(p.describe(bad).await, Err(ProviderError::Config(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_sends_the_federated_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, "eyJhbGciOiJSUzI1NiJ9.federated.kubernetes-token\n").unwrap();
    let replay = Replay::start(vec![
        token(Some(
            "eyJhbGciOiJSUzI1NiJ9.federated.kubernetes-token".into(),
        )),
        api(
            "get keys (health)",
            "GET",
            "/keys?maxresults=1&api-version=7.5",
            200,
            json!({"value": []}),
        ),
    ]);
    let p = provider(
        &replay,
        &format!("federated_token_file = \"{}\"", file.display()),
    );
    p.health().await.unwrap();
    replay.finish();
}

#[test]
fn configuration_errors_say_what_is_wrong() {
    let err = |extra: &str| {
        let t = format!(
            "[providers.azure]\nkind = \"azure-keyvault\"\nvault_url = \"https://v.vault.azure.net\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\n{extra}"
        );
        Config::parse(&t)
            .and_then(|c| c.build().map(|_| ()))
            .unwrap_err()
            .to_string()
    };
    assert!(
        err("").contains(
            "exactly one of client_secret_env, client_secret_file and federated_token_file"
        )
    );
    assert!(err("client_secret_file = \"/nonexistent\"\n").contains("cannot read /nonexistent"));
    assert!(err("federated_token_file = \"/nonexistent\"\n").contains("does not exist"));
    assert!(err("client_secret_env = \"STRONGROOM_TEST_UNSET_VARIABLE\"\n").contains("is not set"));
    assert!(err("client_secret_env = \"HOME\"\nalgorithm = \"RSA1_5\"\n").contains("algorithm"));
}

/// Against a real Key Vault. Needs `STRONGROOM_LIVE_AZURE_VAULT_URL`, `AZURE_TENANT_ID`,
/// `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` and `STRONGROOM_LIVE_AZURE_KEY` (an RSA key
/// allowing wrapKey and unwrapKey).
#[tokio::test]
#[ignore = "live: needs Azure credentials (STRONGROOM_LIVE_AZURE_* and AZURE_TENANT_ID/CLIENT_ID/CLIENT_SECRET); run with --ignored"]
async fn live_against_azure() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("set {k} for the live test"));
    let key = var("STRONGROOM_LIVE_AZURE_KEY");
    let toml = format!(
        "[providers.azure]\nkind = \"azure-keyvault\"\nvault_url = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"AZURE_CLIENT_SECRET\"\n",
        var("STRONGROOM_LIVE_AZURE_VAULT_URL"),
        var("AZURE_TENANT_ID"),
        var("AZURE_CLIENT_ID")
    );
    let p = Config::parse(&toml)
        .unwrap()
        .build()
        .unwrap()
        .remove("azure")
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

/// `r || s` of a DER ECDSA signature, each left-padded to `size`.
fn raw_ecdsa(der: &[u8], size: usize) -> Vec<u8> {
    assert_eq!(der[0], 0x30);
    let mut i = 2;
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02);
        let n = der[i + 1] as usize;
        let int = &der[i + 2..i + 2 + n];
        let int = &int[int.iter().take_while(|b| **b == 0).count()..];
        out.extend(std::iter::repeat_n(0, size - int.len()));
        out.extend_from_slice(int);
        i += 2 + n;
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_give_their_jwk_as_spki_and_sign_digests() {
    use strongroom_crypto::keys::{self, SignInput};
    use strongroom_crypto::{Algorithm, RsaBits, Sha2};
    const EC: Algorithm = Algorithm::EcdsaP256Sha256;
    const RSA: Algorithm = Algorithm::RsaPkcs1(RsaBits::B2048, Sha2::Sha256);
    let ec = keys::generate(EC).unwrap();
    let ec_spki = keys::public_key_der(EC, &ec).unwrap();
    let rsa = keys::generate(RSA).unwrap();
    let rsa_spki = keys::public_key_der(RSA, &rsa).unwrap();
    // RSA-2048 SubjectPublicKeyInfo as aws-lc writes it: n at 33..289, e = 65537.
    assert_eq!(&rsa_spki[28..33], &[0x02, 0x82, 0x01, 0x01, 0x00]);
    let n = &rsa_spki[33..289];
    let message = b"signed in the vault";
    let digest = strongroom_crypto::hash::sha256(message);
    let ec_sig = keys::sign(EC, &ec, SignInput::Digest(&digest)).unwrap();
    let replay = Replay::start(vec![]);
    let v = replay.url.clone();
    let kid = |name: &str| format!("{v}/keys/{name}/{VERSION}");
    let ec_jwk = json!({
        "kid": kid("ec"), "kty": "EC-HSM", "crv": "P-256", "key_ops": ["sign", "verify"],
        "x": B64URL.encode(&ec_spki[ec_spki.len() - 64..ec_spki.len() - 32]),
        "y": B64URL.encode(&ec_spki[ec_spki.len() - 32..]),
    });
    let rsa_jwk = json!({
        "kid": kid("rsa"), "kty": "RSA", "key_ops": ["sign", "verify"],
        "n": B64URL.encode(n), "e": B64URL.encode([1u8, 0, 1]),
    });
    let attrs = json!({"enabled": true});
    for ex in [
        token(None),
        api(
            "get key (EC)",
            "GET",
            "/keys/ec?api-version=7.5",
            200,
            json!({"key": ec_jwk, "attributes": attrs}),
        ),
        api(
            "get key (RSA)",
            "GET",
            "/keys/rsa?api-version=7.5",
            200,
            json!({"key": rsa_jwk, "attributes": attrs}),
        ),
        api(
            "get key (EC, current version)",
            "GET",
            "/keys/ec?api-version=7.5",
            200,
            json!({"key": ec_jwk, "attributes": attrs}),
        ),
        api(
            "sign (ES256)",
            "POST",
            &format!("/keys/ec/{VERSION}/sign?api-version=7.5"),
            200,
            json!({"kid": kid("ec"), "value": B64URL.encode(raw_ecdsa(&ec_sig, 32))}),
        )
        .with_json(json!({"alg": "ES256", "value": B64URL.encode(digest)}))
        .answer_header("x-ms-request-id", "sig-request-1"),
    ] {
        replay.push(ex);
    }
    let (_dir, cred) = secret_file();
    let p = provider(&replay, &cred);
    assert_eq!(p.public_key("ec").await.unwrap(), ec_spki);
    assert_eq!(p.public_key("rsa").await.unwrap(), rsa_spki);
    let s = p.sign("ec", EC, SignInput::Message(message)).await.unwrap();
    assert_eq!(s.request_id.as_deref(), Some("sig-request-1"));
    // The raw r || s came back as DER, and it verifies with the key's SPKI.
    assert!(keys::verify(EC, &ec_spki, SignInput::Message(message), &s.signature).unwrap());
    replay.finish();
}
