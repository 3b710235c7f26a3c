//! The PKCS#11 provider against SoftHSM2 (Debian `softhsm2`; `pkcs11-tool` from `opensc`).
//!
//! No libtest harness (`harness = false`): SoftHSM2 reads `SOFTHSM2_CONF` when the module is
//! initialised, once per process, and a test may not set environment variables in its own
//! process. So `main` makes a token in a temporary directory, then runs itself again with
//! `SOFTHSM2_CONF` naming it, and that child runs the tests one after another (PKCS#11
//! initialisation is process-wide anyway). Arguments that do not start with `-` filter the
//! tests by name, as libtest's do.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
#![allow(clippy::print_stdout)] // its own harness reports as libtest does

use std::future::Future;
use std::pin::Pin;
use std::process::{Command, ExitCode};
use std::sync::Arc;

use strongroom_crypto::EncryptionContext;
use strongroom_providers::pkcs11::{Pkcs11Config, Pkcs11Provider};
use strongroom_providers::{Config, KeyProvider, ProviderError};
use strongroom_testkit::peers::SoftHsm;

const CHILD: &str = "STRONGROOM_PKCS11_TEST_CHILD";

type Test = fn(Env) -> Pin<Box<dyn Future<Output = ()>>>;

/// What the parent hands the child.
#[derive(Clone)]
struct Env {
    module: String,
    token: String,
    pin_file: String,
}

impl Env {
    fn config(&self, sessions: usize) -> Pkcs11Config {
        Pkcs11Config {
            module: self.module.clone().into(),
            token_label: self.token.clone(),
            pin_env: None,
            pin_file: Some(self.pin_file.clone().into()),
            sessions,
            timeout: "10s".into(),
        }
    }

    fn provider(&self) -> Pkcs11Provider {
        Pkcs11Provider::new("hsm", &self.config(2)).unwrap()
    }
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    EncryptionContext::try_new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap()
}

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: &[(&str, Test)] = &[
        ("keys_made_in_the_token_wrap_and_unwrap", |e| {
            Box::pin(keys_made_in_the_token_wrap_and_unwrap(e))
        }),
        ("what_does_not_open_is_refused", |e| {
            Box::pin(what_does_not_open_is_refused(e))
        }),
        ("rotation_keeps_old_copies_opening", |e| {
            Box::pin(rotation_keeps_old_copies_opening(e))
        }),
        ("a_key_made_by_pkcs11_tool_works", |e| {
            Box::pin(a_key_made_by_pkcs11_tool_works(e))
        }),
        ("sessions_are_pooled_under_load", |e| {
            Box::pin(sessions_are_pooled_under_load(e))
        }),
        ("configuration_errors_say_what_is_wrong", |e| {
            Box::pin(configuration_errors_say_what_is_wrong(e))
        }),
        ("a_wrong_pin_is_access_denied", |e| {
            Box::pin(a_wrong_pin_is_access_denied(e))
        }),
        ("signing_keys_are_made_and_used_in_the_token", |e| {
            Box::pin(signing_keys_are_made_and_used_in_the_token(e))
        }),
    ];
    let chosen: Vec<&(&str, Test)> = tests
        .iter()
        .filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        println!("pkcs11: 0 tests match the filter");
        return ExitCode::SUCCESS;
    }
    let Ok(env) = std::env::var(CHILD) else {
        // Parent: a fresh token, then each test in a child process of its own that can see
        // it (the PKCS#11 login state is per process: a test of a wrong PIN needs one where
        // nobody logged in yet).
        let hsm = SoftHsm::init("strongroom-test");
        hsm.create_aes_key("made-by-tool", 1);
        let env = format!(
            "{}\n{}\n{}",
            hsm.module.display(),
            hsm.token_label,
            hsm.pin_file().display()
        );
        let mut failed = Vec::new();
        for (name, _) in &chosen {
            println!("test pkcs11::{name} ...");
            let status = Command::new(std::env::current_exe().unwrap())
                .arg(format!("--child={name}"))
                .env("SOFTHSM2_CONF", &hsm.conf)
                .env(CHILD, &env)
                .status()
                .unwrap();
            if status.success() {
                println!("test pkcs11::{name} ... ok");
            } else {
                println!("test pkcs11::{name} ... FAILED");
                failed.push(*name);
            }
        }
        println!(
            "test result: {}. {} passed; {} failed (pkcs11, SoftHSM2)",
            if failed.is_empty() { "ok" } else { "FAILED" },
            chosen.len() - failed.len(),
            failed.len()
        );
        return if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    };
    let mut parts = env.lines().map(str::to_string);
    let env = Env {
        module: parts.next().unwrap(),
        token: parts.next().unwrap(),
        pin_file: parts.next().unwrap(),
    };
    let only = std::env::args()
        .find_map(|a| a.strip_prefix("--child=").map(str::to_string))
        .unwrap();
    let (_, test) = tests.iter().find(|(n, _)| *n == only).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(test(env));
    ExitCode::SUCCESS
}

async fn keys_made_in_the_token_wrap_and_unwrap(env: Env) {
    let p = env.provider();
    let d = p.create_key("dk").await.unwrap();
    assert_eq!((d.latest_version, d.can_encrypt), (Some(1), true));
    assert!(
        p.create_key("dk")
            .await
            .unwrap_err()
            .to_string()
            .contains("already exists")
    );
    p.health().await.unwrap();
    let c = ctx(&[("tenant", "acme")]);
    let dk = [7u8; 32];
    let w = p.wrap("dk", &dk, &c).await.unwrap();
    assert_eq!(w.key_version, Some(1));
    assert_eq!(w.ciphertext.len(), 1 + 4 + 12 + 32 + 16);
    let u = p.unwrap("dk", &w.ciphertext, &c).await.unwrap();
    assert_eq!(u.plaintext.expose_secret(), dk);
    // Two wraps of the same key differ (fresh IVs).
    assert_ne!(
        p.wrap("dk", &dk, &c).await.unwrap().ciphertext,
        w.ciphertext
    );
    // Built from the configuration file too.
    let toml = format!(
        "[providers.hsm]\nkind = \"pkcs11\"\nmodule = \"{}\"\ntoken_label = \"{}\"\npin_file = \"{}\"\nsessions = 1\n",
        env.module, env.token, env.pin_file
    );
    let q: Arc<dyn KeyProvider> = Config::parse(&toml)
        .unwrap()
        .build()
        .unwrap()
        .remove("hsm")
        .unwrap();
    assert_eq!((q.name(), q.kind()), ("hsm", "pkcs11"));
    let u = q.unwrap("dk", &w.ciphertext, &c).await.unwrap();
    assert_eq!(u.plaintext.expose_secret(), dk);
    // The key is sensitive and cannot leave the token.
    let (sensitive, extractable) = key_flags(&env, "dk");
    assert!(sensitive && !extractable);
    assert!(!format!("{p:?}").contains("1234"), "{p:?}");
}

/// CKA_SENSITIVE and CKA_EXTRACTABLE of the first key labelled `label`, read with cryptoki.
fn key_flags(env: &Env, label: &str) -> (bool, bool) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let ctx = Pkcs11::new(&env.module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == env.token)
        .unwrap();
    let s = ctx.open_ro_session(slot).unwrap();
    let pin = std::fs::read_to_string(&env.pin_file).unwrap();
    let _ = s.login(UserType::User, Some(&AuthPin::new(pin.trim().into())));
    let h = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    let mut flags = (false, true);
    for a in s
        .get_attributes(h, &[AttributeType::Sensitive, AttributeType::Extractable])
        .unwrap()
    {
        match a {
            Attribute::Sensitive(v) => flags.0 = v,
            Attribute::Extractable(v) => flags.1 = v,
            _ => {}
        }
    }
    flags
}

async fn what_does_not_open_is_refused(env: Env) {
    let p = env.provider();
    p.create_key("refusals").await.unwrap();
    let c = ctx(&[("tenant", "acme")]);
    let w = p.wrap("refusals", &[1u8; 32], &c).await.unwrap().ciphertext;
    let refused =
        |r: Result<_, ProviderError>| matches!(r, Err(ProviderError::InvalidCiphertext { .. }));
    assert!(refused(
        p.unwrap("refusals", &w, &ctx(&[("tenant", "globex")]))
            .await
    ));
    assert!(refused(
        p.unwrap("refusals", &w, &EncryptionContext::empty()).await
    ));
    for i in [0, 3, 10, w.len() - 1] {
        let mut bad = w.clone();
        bad[i] ^= 1;
        assert!(refused(p.unwrap("refusals", &bad, &c).await), "byte {i}");
    }
    assert!(refused(p.unwrap("refusals", &w[..w.len() - 1], &c).await));
    assert!(refused(p.unwrap("refusals", &[], &c).await));
    // Under another key of the token.
    p.create_key("other").await.unwrap();
    assert!(refused(p.unwrap("other", &w, &c).await));
    assert!(matches!(
        p.wrap("nosuch", &[1u8; 32], &c).await,
        Err(ProviderError::NotFound { .. })
    ));
    assert!(matches!(
        p.describe("nosuch").await,
        Err(ProviderError::NotFound { .. })
    ));
}

async fn rotation_keeps_old_copies_opening(env: Env) {
    let p = env.provider();
    p.create_key("rot").await.unwrap();
    let c = ctx(&[]);
    let old = p.wrap("rot", &[2u8; 32], &c).await.unwrap();
    assert_eq!(p.rotate("rot").await.unwrap(), "2");
    assert_eq!(p.describe("rot").await.unwrap().latest_version, Some(2));
    let new = p.wrap("rot", &[3u8; 32], &c).await.unwrap();
    assert_eq!(new.key_version, Some(2));
    assert_eq!(
        p.unwrap("rot", &old.ciphertext, &c)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        [2u8; 32]
    );
    assert_eq!(
        p.unwrap("rot", &new.ciphertext, &c)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        [3u8; 32]
    );
    assert!(matches!(
        p.rotate("nosuch").await,
        Err(ProviderError::NotFound { .. })
    ));
    // Both versions listed by CKA_ID, the highest wrapping; no key switch in a token.
    let vs = p.list_versions("rot").await.unwrap();
    assert_eq!(
        vs.iter()
            .map(|v| (v.version.as_str(), v.primary, v.state.as_str()))
            .collect::<Vec<_>>(),
        vec![("1", false, "enabled"), ("2", true, "enabled")]
    );
    assert!(matches!(
        p.list_versions("nosuch").await,
        Err(ProviderError::NotFound { .. })
    ));
    assert!(matches!(
        p.set_enabled("rot", false).await,
        Err(ProviderError::Unsupported { .. })
    ));
    assert_eq!(p.rotation_schedule("rot").await.unwrap(), None);
}

async fn a_key_made_by_pkcs11_tool_works(env: Env) {
    let p = env.provider();
    let d = p.describe("made-by-tool").await.unwrap();
    assert_eq!(d.latest_version, Some(1));
    let c = ctx(&[("a", "b")]);
    let w = p.wrap("made-by-tool", &[9u8; 16], &c).await.unwrap();
    let u = p.unwrap("made-by-tool", &w.ciphertext, &c).await.unwrap();
    assert_eq!(u.plaintext.expose_secret(), [9u8; 16]);
}

async fn sessions_are_pooled_under_load(env: Env) {
    let p = Arc::new(Pkcs11Provider::new("hsm", &env.config(2)).unwrap());
    p.create_key("load").await.unwrap();
    let c = ctx(&[]);
    let tasks: Vec<_> = (0..48u8)
        .map(|i| {
            let (p, c) = (p.clone(), c.clone());
            tokio::spawn(async move {
                let w = p.wrap("load", &[i; 32], &c).await.unwrap();
                let u = p.unwrap("load", &w.ciphertext, &c).await.unwrap();
                assert_eq!(u.plaintext.expose_secret(), [i; 32]);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn configuration_errors_say_what_is_wrong(env: Env) {
    let err = |c: Pkcs11Config| Pkcs11Provider::new("hsm", &c).unwrap_err().to_string();
    let e = err(Pkcs11Config {
        token_label: "nosuch".into(),
        ..env.config(1)
    });
    assert!(
        e.contains("no token labelled \"nosuch\"") && e.contains(&env.token),
        "{e}"
    );
    let e = err(Pkcs11Config {
        module: "/nonexistent/libpkcs11.so".into(),
        ..env.config(1)
    });
    assert!(e.contains("cannot load the PKCS#11 module"), "{e}");
    let e = err(env.config(0));
    assert!(e.contains("sessions"), "{e}");
    let e = err(Pkcs11Config {
        pin_file: None,
        ..env.config(1)
    });
    assert!(e.contains("exactly one of pin_env and pin_file"), "{e}");
    let e = err(Pkcs11Config {
        pin_file: Some("/nonexistent/pin".into()),
        ..env.config(1)
    });
    assert!(e.contains("cannot read /nonexistent/pin"), "{e}");
    assert!(
        Config::parse("[providers.hsm]\nkind = \"pkcs11\"\nmodule = \"/x.so\"\n")
            .unwrap_err()
            .to_string()
            .contains("token_label")
    );
}

async fn a_wrong_pin_is_access_denied(env: Env) {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("pin");
    std::fs::write(&wrong, "0000-wrong").unwrap();
    // This test runs in a process of its own, where nobody logged in before.
    let p = Pkcs11Provider::new(
        "hsm",
        &Pkcs11Config {
            pin_file: Some(wrong),
            ..env.config(1)
        },
    )
    .unwrap();
    match p.health().await {
        Err(ProviderError::AccessDenied { detail, .. }) => {
            assert!(!detail.contains("0000-wrong"), "{detail}")
        }
        other => panic!("a wrong PIN must be access denied: {other:?}"),
    }
    assert!(matches!(
        p.wrap("made-by-tool", &[1u8; 32], &EncryptionContext::empty())
            .await,
        Err(ProviderError::AccessDenied { .. })
    ));
}

async fn signing_keys_are_made_and_used_in_the_token(env: Env) {
    use strongroom_crypto::Algorithm;
    use strongroom_crypto::keys::{self, SignInput};
    let p = env.provider();
    use strongroom_crypto::{RsaBits, Sha2};
    for alg in [
        Algorithm::EcdsaP256Sha256,
        Algorithm::EcdsaP384Sha384,
        Algorithm::RsaPkcs1(RsaBits::B2048, Sha2::Sha256),
        Algorithm::RsaPss(RsaBits::B2048, Sha2::Sha384),
        Algorithm::RsaPkcs1(RsaBits::B3072, Sha2::Sha512),
    ] {
        let label = format!("sig-{alg}");
        let d = p.create_signing_key(&label, alg).await.unwrap();
        assert_eq!(d.latest_version, Some(1));
        let vs = p.list_versions(&label).await.unwrap();
        assert_eq!((vs.len(), vs[0].primary), (1, true));
        let spki = p.public_key(&label).await.unwrap();
        let s = p
            .sign(&label, alg, SignInput::Message(b"signed in the token"))
            .await
            .unwrap();
        assert!(
            keys::verify(
                alg,
                &spki,
                SignInput::Message(b"signed in the token"),
                &s.signature
            )
            .unwrap()
        );
        assert!(
            !keys::verify(
                alg,
                &spki,
                SignInput::Message(b"another message"),
                &s.signature
            )
            .unwrap()
        );
        // A digest signs as its message does.
        let digest = keys::signing_digest(alg, SignInput::Message(b"signed in the token"))
            .unwrap()
            .unwrap();
        let d = p
            .sign(&label, alg, SignInput::Digest(&digest))
            .await
            .unwrap();
        assert!(
            keys::verify(
                alg,
                &spki,
                SignInput::Message(b"signed in the token"),
                &d.signature
            )
            .unwrap()
        );
        assert!(
            p.create_signing_key(&label, alg)
                .await
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
    }
    // A key of another type signs nothing (the token refuses); Ed25519 is not offered.
    assert!(
        p.sign(
            "sig-ecdsa-p256-sha256",
            Algorithm::RsaPkcs1(RsaBits::B2048, Sha2::Sha256),
            SignInput::Message(b"x")
        )
        .await
        .is_err()
    );
    assert!(matches!(
        p.create_signing_key("ed", Algorithm::Ed25519).await,
        Err(ProviderError::Unsupported { .. })
    ));
    assert!(matches!(
        p.public_key("nosuch").await,
        Err(ProviderError::NotFound { .. })
    ));
    // Destroying removes every object of the label (key pair or secret key); twice is fine.
    p.create_key("to-destroy").await.unwrap();
    for label in ["sig-ecdsa-p256-sha256", "to-destroy"] {
        p.destroy_key(label).await.unwrap();
        p.destroy_key(label).await.unwrap();
    }
    assert!(matches!(
        p.public_key("sig-ecdsa-p256-sha256").await,
        Err(ProviderError::NotFound { .. })
    ));
    assert!(matches!(
        p.describe("to-destroy").await,
        Err(ProviderError::NotFound { .. })
    ));
}
