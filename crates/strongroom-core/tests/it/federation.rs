//! Workload identity federation: JWTs from a trusted issuer exchanged for Strongroom tokens,
//! and every way a JWT can be wrong (RELIABILITY A5).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use base64::Engine;
use jsonwebtoken::{Algorithm as JwtAlg, EncodingKey, Header};
use serde_json::{Value, json};
use strongroom_core::federation::{IssuerInput, JwksFetcher};
use strongroom_core::types::EncryptInput;
use strongroom_core::{
    Error, Labels, Plaintext, PrincipalInput, PrincipalName, PrincipalUpdate, RequestContext,
};
use strongroom_store::ClaimRule;

use crate::support::*;

const ISS: &str = "https://issuer.example";
const AUD: &str = "strongroom";

fn b64u(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The PKCS#1 key inside a PKCS#8 document (the OCTET STRING after the algorithm id).
fn pkcs8_inner(der: &[u8]) -> Vec<u8> {
    fn tlv(b: &[u8]) -> (usize, usize) {
        // (header length, content length)
        if b[1] < 0x80 {
            (2, b[1] as usize)
        } else {
            let n = (b[1] & 0x7f) as usize;
            (
                2 + n,
                b[2..2 + n]
                    .iter()
                    .fold(0usize, |a, x| (a << 8) | *x as usize),
            )
        }
    }
    let (h, _) = tlv(der);
    let mut rest = &der[h..];
    for _ in 0..2 {
        let (h, l) = tlv(rest);
        rest = &rest[h + l..];
    }
    let (h, l) = tlv(rest);
    rest[h..h + l].to_vec()
}

struct Keys {
    rsa: Vec<u8>,
    ec: Vec<u8>,
    ed: Vec<u8>,
    jwks: Value,
}

fn keys() -> Keys {
    use strongroom_crypto::{Algorithm, keys};
    let rsa = keys::generate(Algorithm::RsaPkcs1(
        strongroom_crypto::RsaBits::B2048,
        strongroom_crypto::Sha2::Sha256,
    ))
    .unwrap();
    let ec = keys::generate(Algorithm::EcdsaP256Sha256).unwrap();
    let ed = keys::generate(Algorithm::Ed25519).unwrap();
    let rk = RsaKeyPair::from_pkcs8(rsa.expose_secret()).unwrap();
    let pk = rk.public_key();
    let n = pk.modulus().big_endian_without_leading_zero().to_vec();
    let e = pk.exponent().big_endian_without_leading_zero().to_vec();
    let ek =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec.expose_secret()).unwrap();
    let point = ek.public_key().as_ref().to_vec();
    let dk = Ed25519KeyPair::from_pkcs8(ed.expose_secret()).unwrap();
    let x = dk.public_key().as_ref().to_vec();
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": b64u(&n), "e": b64u(&e)},
        {"kty": "EC", "kid": "ec1", "use": "sig", "crv": "P-256", "x": b64u(&point[1..33]), "y": b64u(&point[33..65])},
        {"kty": "OKP", "kid": "ed1", "use": "sig", "crv": "Ed25519", "x": b64u(&x)},
    ]});
    Keys {
        rsa: pkcs8_inner(rsa.expose_secret()),
        ec: ec.expose_secret().to_vec(),
        ed: ed.expose_secret().to_vec(),
        jwks,
    }
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": sub, "iat": T0, "exp": T0 + 600})
}

fn sign(k: &Keys, alg: JwtAlg, kid: &str, c: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    let key = match alg {
        JwtAlg::RS256 => EncodingKey::from_rsa_der(&k.rsa),
        JwtAlg::ES256 => EncodingKey::from_ec_der(&k.ec),
        JwtAlg::EdDSA => EncodingKey::from_ed_der(&k.ed),
        _ => unreachable!(),
    };
    jsonwebtoken::encode(&h, c, &key).unwrap()
}

async fn setup(kms: &Kms, jwks: Option<&Value>, jwks_uri: Option<&str>) {
    kms.svc()
        .create_principal(
            &root(),
            PrincipalInput {
                name: PrincipalName::try_new("payments").unwrap(),
                kind: "workload".into(),
                roles: vec!["key-user".into()],
                labels: Labels::new(),
                description: String::new(),
                rate_limits: BTreeMap::new(),
                tls_certs: vec![],
            },
        )
        .await
        .unwrap();
    kms.svc()
        .put_issuer(
            &root(),
            IssuerInput {
                name: "k8s".into(),
                issuer: ISS.into(),
                audiences: vec![AUD.into()],
                jwks: jwks.map(|j| j.to_string()),
                jwks_uri: jwks_uri.map(str::to_string),
                rules: vec![ClaimRule {
                    claims: BTreeMap::from([("sub".into(), "system:serviceaccount:pay:*".into())]),
                    principal: "payments".into(),
                }],
                max_ttl_secs: Some(3600),
            },
        )
        .await
        .unwrap();
}

fn anon() -> RequestContext {
    as_token(None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_jwts_of_each_algorithm_are_exchanged() {
    let kms = Kms::new().await;
    let k = keys();
    setup(&kms, Some(&k.jwks), None).await;
    let key = kms.aes_key("pay", "card").await;
    for (alg, kid) in [
        (JwtAlg::RS256, "rsa1"),
        (JwtAlg::ES256, "ec1"),
        (JwtAlg::EdDSA, "ed1"),
    ] {
        let jwt = sign(&k, alg, kid, &claims("system:serviceaccount:pay:api"));
        let t = kms
            .svc()
            .exchange_token(&anon(), None, &jwt, None)
            .await
            .unwrap();
        assert_eq!(t.info.principal, "payments", "{alg:?}");
        assert_eq!(
            t.info.expires_at,
            Some(strongroom_core::Timestamp(T0 + 600)),
            "never outlives the JWT"
        );
        let ctx = as_token(Some(t.secret.expose_secret()));
        kms.svc()
            .encrypt(
                &ctx,
                EncryptInput {
                    key: key.clone(),
                    plaintext: Plaintext::copy_from(b"x"),
                    context: ec(&[]),
                },
            )
            .await
            .unwrap();
    }
    // Named issuer, and a shorter requested lifetime.
    let jwt = sign(
        &k,
        JwtAlg::ES256,
        "ec1",
        &claims("system:serviceaccount:pay:api"),
    );
    let t = kms
        .svc()
        .exchange_token(&anon(), Some("k8s"), &jwt, Some(60))
        .await
        .unwrap();
    assert_eq!(t.info.expires_at, Some(strongroom_core::Timestamp(T0 + 60)));
    let ev: Vec<Value> = kms
        .audit_events()
        .into_iter()
        .filter(|e| e["operation"] == "exchange-token")
        .collect();
    assert!(ev.iter().all(|e| e["outcome"] == "ok"
        && e["auth_method"] == "jwt"
        && e["principal"] == "payments"));
    let all = std::fs::read_to_string(kms.opened().audit_path.clone()).unwrap();
    assert!(!all.contains(&jwt), "the JWT is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_jwt_is_refused_alike() {
    let kms = Kms::new().await;
    let k = keys();
    setup(&kms, Some(&k.jwks), None).await;
    let good = claims("system:serviceaccount:pay:api");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let rsa_pub_der = {
        let rk = RsaKeyPair::from_der(&k.rsa).unwrap();
        rk.public_key().as_ref().to_vec()
    };
    let hs_confusion = {
        let mut h = Header::new(JwtAlg::HS256);
        h.kid = Some("rsa1".into());
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(&rsa_pub_der)).unwrap()
    };
    let alg_none = format!(
        "{}.{}.",
        b64u(br#"{"alg":"none","kid":"rsa1","typ":"JWT"}"#),
        b64u(good.to_string().as_bytes())
    );
    let tampered = {
        let t = sign(&k, JwtAlg::ES256, "ec1", &good);
        let mut b = t.into_bytes();
        let i = b.len() - 20;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            sign(
                &k,
                JwtAlg::RS256,
                "rsa1",
                &with(&|c| c["exp"] = json!(T0 - 120)),
            ),
        ),
        (
            "not yet valid",
            sign(
                &k,
                JwtAlg::RS256,
                "rsa1",
                &with(&|c| c["nbf"] = json!(T0 + 300)),
            ),
        ),
        (
            "wrong audience",
            sign(
                &k,
                JwtAlg::RS256,
                "rsa1",
                &with(&|c| c["aud"] = json!("someone-else")),
            ),
        ),
        (
            "wrong issuer",
            sign(
                &k,
                JwtAlg::RS256,
                "rsa1",
                &with(&|c| c["iss"] = json!("https://evil.example")),
            ),
        ),
        (
            "exp as a string",
            sign(
                &k,
                JwtAlg::RS256,
                "rsa1",
                &with(&|c| c["exp"] = json!((T0 + 600).to_string())),
            ),
        ),
        (
            "no exp",
            sign(
                &k,
                JwtAlg::RS256,
                "rsa1",
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
        ),
        (
            "no sub",
            sign(
                &k,
                JwtAlg::RS256,
                "rsa1",
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }),
            ),
        ),
        ("unknown kid", sign(&k, JwtAlg::RS256, "rsa9", &good)),
        (
            "kid of another key type",
            sign(&k, JwtAlg::RS256, "ec1", &good),
        ),
        (
            "no matching rule",
            sign(
                &k,
                JwtAlg::RS256,
                "rsa1",
                &claims("system:serviceaccount:other:api"),
            ),
        ),
        ("HS256 signed with the RSA public key", hs_confusion),
        ("alg none", alg_none),
        ("tampered signature", tampered),
        ("garbage", "not.a.jwt".into()),
        ("empty", String::new()),
        ("oversized", "a".repeat(20_000)),
    ];
    let tokens_before = kms
        .svc()
        .list_tokens(
            &root(),
            &strongroom_core::PageRequest {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap()
        .items
        .len();
    for (what, jwt) in cases {
        let e = kms.svc().exchange_token(&anon(), None, &jwt, None).await;
        assert!(matches!(e, Err(Error::Unauthenticated)), "{what}: {e:?}");
    }
    let tokens_after = kms
        .svc()
        .list_tokens(
            &root(),
            &strongroom_core::PageRequest {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(tokens_before, tokens_after, "no token was issued");
    // A disabled principal cannot be reached through federation either.
    kms.svc()
        .update_principal(
            &root(),
            &PrincipalName::try_new("payments").unwrap(),
            PrincipalUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let jwt = sign(&k, JwtAlg::RS256, "rsa1", &good);
    assert!(matches!(
        kms.svc().exchange_token(&anon(), None, &jwt, None).await,
        Err(Error::Unauthenticated)
    ));
}

#[derive(Default)]
struct CountingFetcher {
    calls: AtomicUsize,
    body: std::sync::Mutex<String>,
}

#[async_trait::async_trait]
impl JwksFetcher for CountingFetcher {
    async fn fetch(&self, _uri: &str) -> Result<String, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.body.lock().unwrap().clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_jwks_is_fetched_and_refreshed_at_most_once_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(strongroom_core::ManualClock::new(
        strongroom_core::Timestamp(T0),
    ));
    let fetcher = Arc::new(CountingFetcher::default());
    let k = keys();
    *fetcher.body.lock().unwrap() = k.jwks.to_string();
    let mut opts = options(&dir.path().join("data"), clock.clone());
    opts.jwks_fetcher = Some(fetcher.clone());
    let opened = strongroom_core::bootstrap::open(opts).await.unwrap();
    let svc = opened.service.clone();
    svc.create_principal(
        &root(),
        PrincipalInput {
            name: PrincipalName::try_new("payments").unwrap(),
            kind: "workload".into(),
            roles: vec![],
            labels: Labels::new(),
            description: String::new(),
            rate_limits: BTreeMap::new(),
            tls_certs: vec![],
        },
    )
    .await
    .unwrap();
    svc.put_issuer(
        &root(),
        IssuerInput {
            name: "k8s".into(),
            issuer: ISS.into(),
            audiences: vec![AUD.into()],
            jwks: None,
            jwks_uri: Some("https://issuer.example/jwks".into()),
            rules: vec![ClaimRule {
                claims: BTreeMap::from([("sub".into(), "system:serviceaccount:pay:*".into())]),
                principal: "payments".into(),
            }],
            max_ttl_secs: None,
        },
    )
    .await
    .unwrap();
    let jwt = sign(
        &k,
        JwtAlg::ES256,
        "ec1",
        &claims("system:serviceaccount:pay:api"),
    );
    svc.exchange_token(&anon(), None, &jwt, None).await.unwrap();
    svc.exchange_token(&anon(), None, &jwt, None).await.unwrap();
    assert_eq!(
        fetcher.calls.load(Ordering::SeqCst),
        1,
        "cached after the first fetch"
    );
    // Unknown kids: at most one refresh a minute however many arrive.
    let bad = sign(
        &k,
        JwtAlg::ES256,
        "rotated-in",
        &claims("system:serviceaccount:pay:api"),
    );
    for _ in 0..5 {
        assert!(matches!(
            svc.exchange_token(&anon(), None, &bad, None).await,
            Err(Error::Unauthenticated)
        ));
    }
    assert_eq!(
        fetcher.calls.load(Ordering::SeqCst),
        1,
        "the keys were fetched less than a minute ago"
    );
    clock.advance(61);
    for _ in 0..5 {
        assert!(matches!(
            svc.exchange_token(&anon(), None, &bad, None).await,
            Err(Error::Unauthenticated)
        ));
    }
    assert_eq!(
        fetcher.calls.load(Ordering::SeqCst),
        2,
        "one refresh for the new kid"
    );
    // The issuer rotates in the new key: the next refresh picks it up.
    let mut jwks = k.jwks.clone();
    jwks["keys"][1]["kid"] = json!("rotated-in");
    *fetcher.body.lock().unwrap() = jwks.to_string();
    clock.advance(61);
    let t = svc.exchange_token(&anon(), None, &bad, None).await.unwrap();
    assert_eq!(t.info.principal, "payments");
    assert_eq!(fetcher.calls.load(Ordering::SeqCst), 3);
    drop(opened.lock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_configuration_is_validated() {
    let kms = Kms::new().await;
    let k = keys();
    let base = || IssuerInput {
        name: "k8s".into(),
        issuer: ISS.into(),
        audiences: vec![AUD.into()],
        jwks: Some(k.jwks.to_string()),
        jwks_uri: None,
        rules: vec![ClaimRule {
            claims: BTreeMap::from([("sub".into(), "x".into())]),
            principal: "nobody-yet".into(),
        }],
        max_ttl_secs: None,
    };
    assert!(
        matches!(
            kms.svc().put_issuer(&root(), base()).await,
            Err(Error::InvalidArgument { .. })
        ),
        "rules must name existing principals"
    );
    let root_rule = IssuerInput {
        rules: vec![ClaimRule {
            claims: BTreeMap::from([("sub".into(), "x".into())]),
            principal: "root".into(),
        }],
        ..base()
    };
    assert!(
        matches!(
            kms.svc().put_issuer(&root(), root_rule).await,
            Err(Error::InvalidArgument { .. })
        ),
        "root cannot be mapped"
    );
    let both = IssuerInput {
        jwks_uri: Some("https://x/jwks".into()),
        ..base()
    };
    assert!(matches!(
        kms.svc().put_issuer(&root(), both).await,
        Err(Error::InvalidArgument { .. })
    ));
    let bad_jwks = IssuerInput {
        jwks: Some("{}".into()),
        ..base()
    };
    assert!(matches!(
        kms.svc().put_issuer(&root(), bad_jwks).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(
        kms.svc().list_issuers(&root()).await.unwrap().is_empty(),
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_session_credentials_expire_with_the_exchange() {
    let kms = Kms::new().await;
    let k = keys();
    setup(&kms, Some(&k.jwks), None).await;
    let key = kms.aes_key("pay", "card").await;
    let jwt = sign(
        &k,
        JwtAlg::ES256,
        "ec1",
        &claims("system:serviceaccount:pay:api"),
    );
    let s = kms
        .svc()
        .exchange_for_aws_session(&anon(), None, &jwt, Some(120))
        .await
        .unwrap();
    assert_eq!(s.info.principal, "payments");
    assert_eq!(
        s.info.expires_at,
        Some(strongroom_core::Timestamp(T0 + 120))
    );
    assert!(s.info.id.starts_with("SRSK"));
    assert!(!format!("{s:?}").contains(s.session_token.expose_secret()));
    let signed = |token: Option<&str>, at: i64| {
        let scope_date = strongroom_core::Timestamp(at).to_rfc3339()[..10].replace('-', "");
        let sts = "AWS4-HMAC-SHA256\n...";
        let signature = strongroom_crypto::sigv4::signature(
            s.secret.expose_secret().as_bytes(),
            &scope_date,
            "us-east-1",
            "kms",
            sts.as_bytes(),
        );
        RequestContext {
            request_id: strongroom_core::new_request_id(),
            token: None,
            protocol: strongroom_core::Protocol::Aws,
            client_addr: None,
            client_cert: None,
            sigv4: Some(strongroom_core::SigV4Request {
                access_key_id: s.info.id.clone(),
                scope_date,
                region: "us-east-1".into(),
                service: "kms".into(),
                signed_at: at,
                string_to_sign: sts.into(),
                signature: signature.to_vec(),
                session_token: token.map(|t| strongroom_core::BearerToken::new(t.into())),
            }),
            socket_principal: None,
            client_request_id: None,
        }
    };
    let enc = |ctx: RequestContext| {
        let key = key.clone();
        let svc = kms.svc();
        async move {
            svc.encrypt(
                &ctx,
                EncryptInput {
                    key,
                    plaintext: Plaintext::copy_from(b"x"),
                    context: ec(&[]),
                },
            )
            .await
        }
    };
    let token = s.session_token.expose_secret().to_string();
    enc(signed(Some(&token), T0)).await.unwrap();
    assert_err!(enc(signed(None, T0)).await, Error::Unauthenticated);
    assert_err!(
        enc(signed(Some("srst_other"), T0)).await,
        Error::Unauthenticated
    );
    // Session pairs do not count against the principal's two long-term pairs.
    let p = strongroom_core::PrincipalName::try_new("payments").unwrap();
    for _ in 0..2 {
        kms.svc()
            .create_access_key(&root(), &p, String::new())
            .await
            .unwrap();
    }
    kms.advance(119);
    enc(signed(Some(&token), T0 + 119)).await.unwrap();
    kms.advance(1);
    assert_err!(
        enc(signed(Some(&token), T0 + 120)).await,
        Error::Unauthenticated
    );
}
