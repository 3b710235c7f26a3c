//! The audit log (`docs/audit.md`): exactly one event per call, the right fields, no secrets
//! anywhere on disk or in `Debug` output, and fail-closed results when it cannot be written
//! (RELIABILITY U1, X1, X2).

use serde_json::Value;
use strongroom_core::types::{
    DecryptInput, EncryptInput, GenerateDataKeyInput, ReEncryptInput, SignData,
};
use strongroom_core::{AliasName, Error, Plaintext, RequestContext};

use crate::support::*;

const CANARY_PLAINTEXT: &[u8] = b"CANARY-PLAINTEXT-7f3a9c";
const CANARY_CONTEXT_VALUE: &str = "CANARY-CONTEXT-VALUE-51d2e8";

/// Records each call's request id, operation and expected error code, to compare with the log.
#[derive(Default)]
struct Calls(Vec<(String, &'static str, Option<&'static str>)>);

impl Calls {
    /// A request context from `token`, remembered with the operation it is for.
    fn ctx(&mut self, token: Option<&str>, op: &'static str) -> RequestContext {
        let ctx = as_token(token);
        self.0.push((ctx.request_id.clone(), op, None));
        ctx
    }

    /// Notes the outcome of the last call and passes the result through.
    fn outcome<T>(&mut self, r: strongroom_core::Result<T>) -> strongroom_core::Result<T> {
        if let Err(e) = &r {
            self.0.last_mut().unwrap().2 = Some(e.code());
        }
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_call_and_no_secret_on_disk() {
    let mut kms = Kms::new().await;
    let svc = kms.svc();
    let mut calls = Calls::default();
    let ring_ctx = ec(&[("tenant", CANARY_CONTEXT_VALUE)]);
    let root_tok = Some(ROOT_TOKEN);

    let c = calls.ctx(root_tok, "create-key-ring");
    calls
        .outcome(
            svc.create_key_ring(
                &c,
                strongroom_core::types::CreateKeyRingInput {
                    name: strongroom_core::RingName::try_new("r").unwrap(),
                    description: String::new(),
                    labels: Default::default(),
                },
            )
            .await,
        )
        .unwrap();
    let c = calls.ctx(root_tok, "create-key");
    calls
        .outcome(svc.create_key(&c, key_input("r", "k")).await)
        .unwrap();
    let c = calls.ctx(root_tok, "create-key");
    calls
        .outcome(svc.create_key(&c, key_input("r", "k")).await)
        .unwrap_err();
    let key = path("r", "k");

    let c = calls.ctx(root_tok, "encrypt");
    let ct = calls
        .outcome(
            svc.encrypt(
                &c,
                EncryptInput {
                    key: key.clone(),
                    plaintext: Plaintext::copy_from(CANARY_PLAINTEXT),
                    context: ring_ctx.clone(),
                },
            )
            .await,
        )
        .unwrap()
        .ciphertext;
    let c = calls.ctx(root_tok, "decrypt");
    let out = calls
        .outcome(
            svc.decrypt(
                &c,
                DecryptInput {
                    ciphertext: ct.clone(),
                    context: ring_ctx.clone(),
                    key: None,
                },
            )
            .await,
        )
        .unwrap();
    assert_eq!(out.plaintext.expose_secret(), CANARY_PLAINTEXT);
    assert!(!contains(format!("{out:?}").as_bytes(), CANARY_PLAINTEXT));
    let c = calls.ctx(root_tok, "decrypt");
    let e = calls
        .outcome(
            svc.decrypt(
                &c,
                DecryptInput {
                    ciphertext: ct.clone(),
                    context: ec(&[("tenant", "other")]),
                    key: None,
                },
            )
            .await,
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidCiphertext));
    let c = calls.ctx(root_tok, "encrypt");
    calls
        .outcome(
            svc.encrypt(
                &c,
                EncryptInput {
                    key: path("r", "missing"),
                    plaintext: Plaintext::copy_from(CANARY_PLAINTEXT),
                    context: ring_ctx.clone(),
                },
            )
            .await,
        )
        .unwrap_err();
    let c = calls.ctx(None, "encrypt");
    calls
        .outcome(
            svc.encrypt(
                &c,
                EncryptInput {
                    key: key.clone(),
                    plaintext: Plaintext::copy_from(CANARY_PLAINTEXT),
                    context: ring_ctx.clone(),
                },
            )
            .await,
        )
        .unwrap_err();
    let c = calls.ctx(Some("wrong-token"), "generate-random");
    calls.outcome(svc.generate_random(&c, 8).await).unwrap_err();

    let c = calls.ctx(root_tok, "create-token");
    let tok = calls
        .outcome(svc.create_token(&c, None, "audited".into()).await)
        .unwrap();
    let tok_secret = tok.secret.expose_secret().to_string();
    let c = calls.ctx(Some(&tok_secret), "generate-data-key");
    let dk = calls
        .outcome(
            svc.generate_data_key(
                &c,
                GenerateDataKeyInput {
                    key: key.clone(),
                    length: 32,
                    context: ring_ctx.clone(),
                    include_plaintext: true,
                },
            )
            .await,
        )
        .unwrap();
    let dk_plain = dk.plaintext.as_ref().unwrap().expose_secret().to_vec();
    let c = calls.ctx(Some(&tok_secret), "re-encrypt");
    calls
        .outcome(
            svc.re_encrypt(
                &c,
                ReEncryptInput {
                    source: None,
                    ciphertext: ct.clone(),
                    source_context: ring_ctx.clone(),
                    destination: None,
                    destination_context: ring_ctx.clone(),
                },
            )
            .await,
        )
        .unwrap();
    let c = calls.ctx(root_tok, "sign");
    calls
        .outcome(
            svc.sign(
                &c,
                &key,
                None,
                SignData::Message(Plaintext::copy_from(CANARY_PLAINTEXT)),
                None,
            )
            .await,
        )
        .unwrap_err();
    let c = calls.ctx(root_tok, "create-alias");
    let alias = AliasName::try_new("audited/alias").unwrap();
    calls
        .outcome(svc.put_alias(&c, &alias, &key, false).await)
        .unwrap();
    let c = calls.ctx(root_tok, "disable-version");
    calls
        .outcome(svc.disable_version(&c, &key, 1).await)
        .unwrap();
    let c = calls.ctx(root_tok, "encrypt");
    calls
        .outcome(
            svc.encrypt(
                &c,
                EncryptInput {
                    key: KeyRef::Alias(alias.clone()),
                    plaintext: Plaintext::copy_from(CANARY_PLAINTEXT),
                    context: ring_ctx.clone(),
                },
            )
            .await,
        )
        .unwrap_err();
    let c = calls.ctx(root_tok, "revoke-token");
    calls
        .outcome(svc.revoke_token(&c, "root").await)
        .unwrap_err();
    let c = calls.ctx(root_tok, "list-tokens");
    calls
        .outcome(
            svc.list_tokens(&c, &strongroom_core::PageRequest::default())
                .await,
        )
        .unwrap();
    let c = calls.ctx(root_tok, "generate-random");
    let random = calls.outcome(svc.generate_random(&c, 64).await).unwrap();
    let random = random.expose_secret().to_vec();

    // Exactly one line per call, in call order, with what happened.
    let events = kms.audit_events();
    assert_eq!(events.len(), calls.0.len(), "one event per call");
    for (ev, (request_id, op, code)) in events.iter().zip(&calls.0) {
        let what = format!("{op} {request_id}: {ev}");
        assert_eq!(ev["schema"], "strongroom.audit.v1", "{what}");
        assert_eq!(ev["request_id"], request_id.as_str(), "{what}");
        assert_eq!(ev["operation"], *op, "{what}");
        assert_eq!(ev["protocol"], "native", "{what}");
        assert!(
            ev["time"]
                .as_str()
                .unwrap()
                .starts_with("2027-01-15T08:00:00"),
            "{what}"
        );
        match code {
            None => {
                assert_eq!(ev["outcome"], "ok", "{what}");
                assert!(ev.get("error_code").is_none(), "{what}");
            }
            Some(code) => {
                assert_eq!(ev["outcome"], "error", "{what}");
                assert_eq!(ev["error_code"], *code, "{what}");
            }
        }
        if *code == Some("unauthenticated") {
            assert!(ev.get("principal").is_none(), "{what}");
            assert!(ev.get("token_id").is_none(), "{what}");
        } else {
            assert_eq!(ev["principal"], "root", "{what}");
            assert!(ev["token_id"].is_string(), "{what}");
        }
    }
    let codes: Vec<Option<&str>> = calls.0.iter().map(|c| c.2).collect();
    assert_eq!(
        codes,
        [
            None,
            None,
            Some("already_exists"),
            None,
            None,
            Some("invalid_ciphertext"),
            Some("not_found"),
            Some("unauthenticated"),
            Some("unauthenticated"),
            None,
            None,
            None,
            Some("invalid_key_usage"),
            None,
            None,
            Some("invalid_state"),
            Some("invalid_argument"),
            None,
            None,
        ]
    );
    // Key operations name the key and version; token operations name the token id only.
    let by_op = |op: &str, n: usize| -> &Value {
        events
            .iter()
            .filter(|e| e["operation"] == op)
            .nth(n)
            .unwrap()
    };
    let enc = by_op("encrypt", 0);
    assert_eq!(
        (enc["key_ring"].as_str(), enc["key"].as_str()),
        (Some("r"), Some("k"))
    );
    assert_eq!(enc["version"], 1);
    assert!(enc["key_id"].is_string());
    assert_eq!(
        by_op("generate-data-key", 0)["token_id"],
        tok.info.id.as_str()
    );
    assert_eq!(by_op("create-token", 0)["target"], tok.info.id.as_str());
    assert_eq!(by_op("re-encrypt", 0)["target"], "source r/k version 1");
    assert_eq!(by_op("encrypt", 3)["alias"], "audited/alias");
    assert_eq!(by_op("revoke-token", 0)["target"], "root");

    // No canary, context value, token or returned secret anywhere in the data dir: checked
    // while running (the WAL holds recent writes) and after shutdown (checkpointed).
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("plaintext", CANARY_PLAINTEXT.to_vec()),
        ("context value", CANARY_CONTEXT_VALUE.as_bytes().to_vec()),
        ("root token", ROOT_TOKEN.as_bytes().to_vec()),
        ("created token", tok_secret.as_bytes().to_vec()),
        ("data key", dk_plain),
        ("random bytes", random),
    ];
    scan(&kms.data_dir(), &needles, "running");
    drop((out, dk, tok));
    kms.shutdown().await;
    scan(&kms.data_dir(), &needles, "after shutdown");

    // After shutdown the log is one unbroken chain: seq 1, 2, 3, … (checkpoints count),
    // each line linked to the hash of the one before, ending in a signed checkpoint.
    let text = std::fs::read_to_string(kms.data_dir().join("audit.log")).unwrap();
    let raw: Vec<&str> = text.lines().collect();
    let lines = kms.audit_lines();
    assert_eq!(raw.len(), lines.len());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64 + 1, "line {}", i + 1);
        if i > 0 {
            let h = strongroom_crypto::hash::sha256(raw[i - 1].as_bytes());
            let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(l["prev"], hex.as_str(), "line {}", i + 1);
        }
    }
    assert_eq!(
        lines.last().unwrap()["schema"],
        "strongroom.audit.checkpoint.v1"
    );
    assert_eq!(kms.audit_events().len(), calls.0.len());
}

/// Asserts that no file under `dir` contains any of `needles`.
fn scan(dir: &std::path::Path, needles: &[(&str, Vec<u8>)], when: &str) {
    let files = files_under(dir);
    assert!(files.iter().any(|(p, _)| p.ends_with("audit.log")));
    assert!(files.iter().any(|(p, _)| p.ends_with("strongroom.db")));
    for (p, bytes) in &files {
        for (what, needle) in needles {
            assert!(
                !contains(bytes, needle),
                "{when}: {} contains the {what}",
                p.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_never_shows_secrets() {
    let kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let ctx = ec(&[("tenant", CANARY_CONTEXT_VALUE)]);
    let input = EncryptInput {
        key: key.clone(),
        plaintext: Plaintext::copy_from(CANARY_PLAINTEXT),
        context: ctx.clone(),
    };
    let shown_input = format!("{input:?}");
    let ct = kms.svc().encrypt(&root(), input).await.unwrap();
    let out = kms.decrypt(&ct.ciphertext, &ctx).await.unwrap();
    let dk = kms
        .svc()
        .generate_data_key(
            &root(),
            GenerateDataKeyInput {
                key: key.clone(),
                length: 48,
                context: ctx.clone(),
                include_plaintext: true,
            },
        )
        .await
        .unwrap();
    let dk_bytes = dk.plaintext.as_ref().unwrap().expose_secret().to_vec();
    let token = kms
        .svc()
        .create_token(&root(), None, String::new())
        .await
        .unwrap();
    let random = kms.svc().generate_random(&root(), 32).await.unwrap();
    let e = kms
        .decrypt(&ct.ciphertext, &ec(&[("tenant", "x")]))
        .await
        .unwrap_err();

    let shown = [
        shown_input,
        format!("{out:?} {out:#?}"),
        format!("{dk:?}"),
        format!("{token:?}"),
        format!("{random:?}"),
        format!("{e:?} {e}"),
        format!("{:?}", root()),
        format!("{:?}", kms.opened()),
        format!("{:?}", kms.svc()),
    ]
    .join("\n");
    for (what, needle) in [
        ("plaintext", CANARY_PLAINTEXT.to_vec()),
        ("context value", CANARY_CONTEXT_VALUE.as_bytes().to_vec()),
        ("root token", ROOT_TOKEN.as_bytes().to_vec()),
        (
            "new token",
            token.secret.expose_secret().as_bytes().to_vec(),
        ),
    ] {
        assert!(
            !contains(shown.as_bytes(), &needle),
            "Debug shows the {what}"
        );
    }
    // Binary secrets are not printed as byte lists either.
    let as_list = |b: &[u8]| format!("{:?}", &b[..8]).trim_end_matches(']').to_string();
    for (what, bytes) in [
        ("data key", &dk_bytes[..]),
        ("random", random.expose_secret()),
    ] {
        assert!(!shown.contains(&as_list(bytes)), "Debug shows the {what}");
    }
    assert!(shown.contains("REDACTED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_audit_log_withholds_every_result() {
    let mut kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let mut rotating = key_input("r", "rotating");
    rotating.rotation_period_secs = Some(DAY);
    kms.svc().create_key(&root(), rotating).await.unwrap();
    let ctx = ec(&[]);
    let ct = kms.encrypt(&key, b"secret", &ctx).await.unwrap().ciphertext;
    kms.shutdown().await;
    // /dev/full accepts the open and fails every write with ENOSPC, even for root.
    let audit = kms.data_dir().join("audit.log");
    let saved = kms.tmp.path().join("audit.log.saved");
    std::fs::rename(&audit, &saved).unwrap();
    std::os::unix::fs::symlink("/dev/full", &audit).unwrap();
    kms.reopen().await;
    assert!(kms.svc().health().audit_ok);

    let unavailable = |e: Error| {
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
        assert_eq!(e.code(), "unavailable");
    };
    // Results of reads and of cryptography are withheld: no plaintext leaves unaudited.
    unavailable(kms.decrypt(&ct, &ctx).await.unwrap_err());
    assert!(!kms.svc().health().audit_ok);
    unavailable(kms.encrypt(&key, b"x", &ctx).await.unwrap_err());
    unavailable(kms.svc().get_key(&root(), &key).await.unwrap_err());
    unavailable(kms.svc().generate_random(&root(), 16).await.unwrap_err());
    unavailable(kms.svc().lookup_self(&root()).await.unwrap_err());
    unavailable(
        kms.svc()
            .create_token(&root(), None, String::new())
            .await
            .unwrap_err(),
    );
    // Refusals are not upgraded to answers either.
    unavailable(kms.svc().lookup_self(&as_token(None)).await.unwrap_err());
    // Scheduled jobs fail (and are retried later) rather than run unaudited.
    kms.advance(DAY);
    let report = kms.svc().run_due_jobs().await.unwrap();
    assert_eq!((report.rotated, report.failed), (0, 1));
    assert!(!kms.svc().health().audit_ok);

    // Back to a real file: everything works again.
    kms.shutdown().await;
    std::fs::remove_file(&audit).unwrap();
    std::fs::rename(&saved, &audit).unwrap();
    kms.reopen().await;
    assert!(kms.svc().health().audit_ok);
    assert_eq!(
        kms.decrypt(&ct, &ctx)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_audit_log_refuses_state_changes_without_changing_state() {
    let mut kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    let before = kms.snapshot(&key).await;
    kms.shutdown().await;
    let audit = kms.data_dir().join("audit.log");
    let saved = kms.tmp.path().join("audit.log.saved");
    std::fs::rename(&audit, &saved).unwrap();
    std::os::unix::fs::symlink("/dev/full", &audit).unwrap();
    kms.reopen().await;

    let e = kms
        .svc()
        .disable_version(&root(), &key, 1)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    let e = kms
        .svc()
        .create_version(&root(), &key, true)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    let e = kms
        .svc()
        .create_key(&root(), key_input("r", "new"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");

    kms.shutdown().await;
    std::fs::remove_file(&audit).unwrap();
    std::fs::rename(&saved, &audit).unwrap();
    kms.reopen().await;
    // "Refused with Unavailable and no state change" (RELIABILITY U1).
    assert_eq!(kms.snapshot(&key).await, before);
    assert_err!(
        kms.svc().get_key(&root(), &path("r", "new")).await,
        Error::NotFound { .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_destruction_is_never_left_unaudited() {
    let mut kms = Kms::new().await;
    let key = kms.aes_key("r", "k").await;
    kms.svc().create_version(&root(), &key, true).await.unwrap();
    kms.svc()
        .schedule_version_destruction(&root(), &key, 1, Some(DAY))
        .await
        .unwrap();
    kms.shutdown().await;
    let audit = kms.data_dir().join("audit.log");
    let saved = kms.tmp.path().join("audit.log.saved");
    std::fs::rename(&audit, &saved).unwrap();
    std::os::unix::fs::symlink("/dev/full", &audit).unwrap();
    kms.reopen().await;
    kms.advance(DAY);
    let report = kms.svc().run_due_jobs().await.unwrap();
    assert_eq!((report.destroyed, report.failed), (0, 1));

    kms.shutdown().await;
    std::fs::remove_file(&audit).unwrap();
    std::fs::rename(&saved, &audit).unwrap();
    kms.reopen().await;
    // The failed job must be retried, and its event written, once the log works again.
    let report = kms.svc().run_due_jobs().await.unwrap();
    assert_eq!(report.destroyed, 1, "the destruction was not retried");
    let destructions = kms
        .audit_events()
        .into_iter()
        .filter(|e| e["operation"] == "scheduled-destruction" && e["outcome"] == "ok")
        .count();
    assert_eq!(destructions, 1, "the destruction has no audit event");
    assert_eq!(
        kms.version(&key, 1).await.state,
        strongroom_core::VersionState::Destroyed
    );
}
