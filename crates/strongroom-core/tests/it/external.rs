//! External keys through the service: a Strongroom key bound to a provider key, used through
//! the ordinary operations (encrypt, decrypt, data keys, re-encrypt) while the material stays
//! at the provider; state, binding, failover and refusals.

use std::sync::atomic::Ordering;

use strongroom_core::types::{EncryptInput, GenerateDataKeyInput, ReEncryptInput, UpdateKeyInput};
use strongroom_core::{Error, ExternalKey, Plaintext, Protection, Purpose};

use crate::key_sets::{Fake, with_fakes};
use crate::support::*;

fn external(provider: &str, key: &str) -> Option<ExternalKey> {
    Some(ExternalKey {
        provider: provider.into(),
        key: key.into(),
    })
}

async fn external_key(kms: &Kms, name: &str, provider_key: &str) -> KeyRef {
    let input = strongroom_core::types::CreateKeyInput {
        external: external("cloud", provider_key),
        ..key_input("ext", name)
    };
    let (k, v) = kms.svc().create_key(&root(), input).await.unwrap();
    assert_eq!(k.protection, Protection::External);
    assert_eq!(v.version, 1);
    path("ext", name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_key_encrypts_and_decrypts_at_its_provider() {
    let cloud = Fake::new("cloud");
    let kms = with_fakes(std::slice::from_ref(&cloud)).await;
    kms.ring("ext").await;
    let key = external_key(&kms, "pay", "k1").await;
    let svc = kms.svc();
    let c = ec(&[("tenant", "acme")]);
    let before = cloud.calls.load(Ordering::SeqCst);
    let out = kms.encrypt(&key, b"card 4111", &c).await.unwrap();
    assert_eq!(cloud.calls.load(Ordering::SeqCst), before + 1, "one wrap");
    // Ciphertext v1, suite 0x10: the header then the provider's bytes, which are bound to
    // the key id (the fake's wrapped form starts with the key name and the context it saw).
    assert_eq!(&out.ciphertext[..4], &[b'S', b'R', 1, 0x10]);
    let body = &out.ciphertext[52..];
    assert!(body.starts_with(b"k1\0"));
    let id = svc.get_key(&root(), &key).await.unwrap().id.to_string();
    assert!(
        body.windows(id.len()).any(|w| w == id.as_bytes()),
        "the provider saw strongroom:key-id"
    );
    let back = kms.decrypt(&out.ciphertext, &c).await.unwrap();
    assert_eq!(back.plaintext.expose_secret(), b"card 4111");
    assert_err!(
        kms.decrypt(&out.ciphertext, &ec(&[("tenant", "globex")]))
            .await,
        Error::InvalidCiphertext
    );
    // Data keys and re-encryption work as with any key.
    let dk = svc
        .generate_data_key(
            &root(),
            GenerateDataKeyInput {
                key: key.clone(),
                length: 32,
                context: c.clone(),
                include_plaintext: true,
            },
        )
        .await
        .unwrap();
    let opened = kms.decrypt(&dk.wrapped.ciphertext, &c).await.unwrap();
    assert_eq!(
        opened.plaintext.expose_secret(),
        dk.plaintext.unwrap().expose_secret()
    );
    let soft = kms.aes_key("soft", "k").await;
    let moved = svc
        .re_encrypt(
            &root(),
            ReEncryptInput {
                ciphertext: out.ciphertext.clone(),
                source_context: c.clone(),
                source: None,
                destination: Some(soft.clone()),
                destination_context: c.clone(),
            },
        )
        .await
        .unwrap();
    let back = svc
        .re_encrypt(
            &root(),
            ReEncryptInput {
                ciphertext: moved.output.ciphertext,
                source_context: c.clone(),
                source: None,
                destination: Some(key.clone()),
                destination_context: c.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(&back.output.ciphertext[..4], &[b'S', b'R', 1, 0x10]);
    assert_eq!(
        kms.decrypt(&back.output.ciphertext, &c)
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"card 4111"
    );
    // The audit events name the provider call and its request id.
    let events = kms.audit_events();
    let enc = events
        .iter()
        .find(|e| e["operation"] == "encrypt" && e["key"] == "pay")
        .unwrap();
    assert_eq!(enc["providers"][0]["provider"], "cloud");
    assert_eq!(enc["providers"][0]["key"], "k1");
    assert!(
        enc["providers"][0]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("cloud-req-")
    );
    let create = events
        .iter()
        .find(|e| e["operation"] == "create-key" && e["key"] == "pay")
        .unwrap();
    assert_eq!(create["providers"][0]["outcome"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strongroom_state_and_binding_govern_external_keys() {
    let cloud = Fake::new("cloud");
    let kms = with_fakes(std::slice::from_ref(&cloud)).await;
    kms.ring("ext").await;
    let a = external_key(&kms, "a", "shared").await;
    let _b = external_key(&kms, "b", "shared").await;
    let svc = kms.svc();
    let c = ec(&[]);
    let ct = kms.encrypt(&a, b"x", &c).await.unwrap().ciphertext;
    // Another Strongroom key on the same provider key cannot open it: the key id in the
    // header is bound to the provider's bytes.
    let b_id = svc.get_key(&root(), &path("ext", "b")).await.unwrap().id;
    let mut forged = ct.clone();
    forged[4..20].copy_from_slice(b_id.as_bytes());
    assert_err!(kms.decrypt(&forged, &c).await, Error::InvalidCiphertext);
    // Disabled in Strongroom: refused without asking the provider.
    svc.set_key_enabled(&root(), &a, false).await.unwrap();
    let calls = cloud.calls.load(Ordering::SeqCst);
    assert_err!(kms.decrypt(&ct, &c).await, Error::InvalidState { .. });
    assert_err!(kms.encrypt(&a, b"x", &c).await, Error::InvalidState { .. });
    assert_eq!(cloud.calls.load(Ordering::SeqCst), calls);
    svc.set_key_enabled(&root(), &a, true).await.unwrap();
    // Versions and rotation belong to the provider.
    assert_err!(
        svc.create_version(&root(), &a, true).await,
        Error::InvalidState { .. }
    );
    assert_err!(
        svc.update_key(
            &root(),
            &a,
            UpdateKeyInput {
                rotation_period_secs: Some(Some(86_400)),
                ..Default::default()
            }
        )
        .await,
        Error::InvalidArgument { .. }
    );
    // The provider is down: a retryable error, and the breaker spares it the next calls.
    cloud.down.store(true, Ordering::SeqCst);
    let e = assert_err!(kms.decrypt(&ct, &c).await, Error::Unavailable(_));
    assert!(e.to_string().contains("cloud"), "{e}");
    let calls = cloud.calls.load(Ordering::SeqCst);
    assert_err!(kms.decrypt(&ct, &c).await, Error::Unavailable(_));
    assert_eq!(cloud.calls.load(Ordering::SeqCst), calls, "breaker open");
    cloud.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    kms.decrypt(&ct, &c).await.unwrap();
    // A software ciphertext with its header pointed at an external key is refused.
    let soft = kms.aes_key("soft", "k").await;
    let mut local = kms.encrypt(&soft, b"y", &c).await.unwrap().ciphertext;
    let a_id = svc.get_key(&root(), &a).await.unwrap().id;
    local[4..20].copy_from_slice(a_id.as_bytes());
    assert_err!(kms.decrypt(&local, &c).await, Error::InvalidCiphertext);
    assert_err!(
        svc.encrypt(
            &root(),
            EncryptInput {
                key: a.clone(),
                plaintext: Plaintext::copy_from(b"z"),
                context: ec(&[("strongroom:key-id", "forged")]),
            },
        )
        .await,
        Error::InvalidArgument { .. }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_external_keys_are_refused_and_nothing_is_created() {
    let cloud = Fake::new("cloud");
    let kms = with_fakes(std::slice::from_ref(&cloud)).await;
    kms.ring("ext").await;
    let svc = kms.svc();
    let make = |name: &str, x: Option<ExternalKey>| strongroom_core::types::CreateKeyInput {
        external: x,
        ..key_input("ext", name)
    };
    let cases = [
        (
            strongroom_core::types::CreateKeyInput {
                purpose: Some(Purpose::SignVerify),
                ..make("s", external("cloud", "k"))
            },
            "get-public-key is not supported",
        ),
        (make("a", external("nosuch", "k")), "no provider \"nosuch\""),
        (
            make("b", external("software", "ext/x")),
            "no provider \"software\"",
        ),
        (
            make("c", external("cloud", "missing")),
            "cannot use this provider key",
        ),
        (make("d", external("cloud", "")), "1 to 2048 bytes"),
        (
            strongroom_core::types::CreateKeyInput {
                rotation_period_secs: Some(86_400),
                ..make("e", external("cloud", "k"))
            },
            "rotates at its provider",
        ),
        (
            strongroom_core::types::CreateKeyInput {
                exportable: true,
                ..make("f", external("cloud", "k"))
            },
            "never leaves its provider",
        ),
        (
            strongroom_core::types::CreateKeyInput {
                purpose: Some(Purpose::Mac),
                ..make("g", external("cloud", "k"))
            },
            "encrypt-decrypt",
        ),
    ];
    for (input, needle) in cases {
        let e = assert_err!(
            svc.create_key(&root(), input).await,
            Error::InvalidArgument { .. }
        );
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
    let e = assert_err!(
        svc.create_key_for_import(&root(), make("h", external("cloud", "k")))
            .await,
        Error::InvalidArgument { .. }
    );
    assert!(e.to_string().contains("nothing to import"), "{e}");
    let listed = svc
        .list_keys(
            &root(),
            &strongroom_core::RingName::try_new("ext").unwrap(),
            &Default::default(),
            &strongroom_core::PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_hsm_key_destroys_its_material_at_the_provider() {
    let cloud = Fake::new("cloud");
    let kms = with_fakes(std::slice::from_ref(&cloud)).await;
    kms.ring("ext").await;
    let svc = kms.svc();
    let (made, _) = svc
        .create_key(
            &root(),
            strongroom_core::types::CreateKeyInput {
                hsm: Some("cloud".into()),
                ..key_input("ext", "in-hsm")
            },
        )
        .await
        .unwrap();
    assert_eq!(made.protection, Protection::Hsm);
    let label = format!("strongroom-{}", made.id);
    assert_eq!(
        cloud.made.lock().unwrap().as_slice(),
        std::slice::from_ref(&label)
    );
    // A bound (external) key is someone else's: deleting it leaves the provider's key.
    let bound = external_key(&kms, "bound", "theirs").await;
    let key = path("ext", "in-hsm");
    for k in [&key, &bound] {
        svc.schedule_key_deletion(&root(), k, Some(7 * DAY))
            .await
            .unwrap();
    }
    kms.advance(8 * DAY);
    // The provider is down: the hsm key stays scheduled (nothing destroyed, nothing lost).
    cloud.down.store(true, Ordering::SeqCst);
    svc.run_due_jobs().await.unwrap();
    assert_eq!(
        svc.get_key(&root(), &key).await.unwrap().state,
        strongroom_core::KeyState::DeletionScheduled
    );
    assert!(cloud.destroyed.lock().unwrap().is_empty());
    // Back: the next run destroys it at the provider, then deletes the key.
    cloud.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    svc.run_due_jobs().await.unwrap();
    assert_eq!(
        svc.get_key(&root(), &key).await.unwrap().state,
        strongroom_core::KeyState::Deleted
    );
    assert_eq!(
        svc.get_key(&root(), &bound).await.unwrap().state,
        strongroom_core::KeyState::Deleted
    );
    assert_eq!(*cloud.destroyed.lock().unwrap(), [label]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_view_shows_drift_and_at_provider_switches_the_provider_key() {
    let cloud = Fake::new("cloud");
    let kms = with_fakes(std::slice::from_ref(&cloud)).await;
    kms.ring("ext").await;
    let key = external_key(&kms, "pay", "k1").await;
    let svc = kms.svc();
    let drift = |v: &strongroom_core::external::ProviderView| {
        v.drift.iter().map(|d| d.kind).collect::<Vec<_>>()
    };
    // In step: the provider's description, schedule and versions, and no drift.
    let v = svc.provider_view(&root(), &key).await.unwrap();
    assert_eq!(
        (v.provider.as_str(), v.provider_key.as_str()),
        ("cloud", "k1")
    );
    assert_eq!(v.described.as_ref().unwrap().enabled, Some(true));
    assert_eq!(v.rotation_schedule, Ok(None));
    let versions = v.versions.as_ref().unwrap();
    assert_eq!(versions.len(), 1);
    assert!(versions[0].primary);
    assert!(drift(&v).is_empty(), "{:?}", v.drift);
    // Disabling in Strongroom only leaves the provider key alone (it may be shared).
    svc.set_key_enabled(&root(), &key, false).await.unwrap();
    assert!(cloud.disabled.lock().unwrap().is_empty());
    svc.set_key_enabled(&root(), &key, true).await.unwrap();
    // With at_provider the provider key is switched too: both off, no drift.
    let k = svc
        .set_key_enabled_at(&root(), &key, false, true)
        .await
        .unwrap();
    assert_eq!(k.state, strongroom_core::KeyState::Disabled);
    assert_eq!(*cloud.disabled.lock().unwrap(), vec!["k1".to_string()]);
    assert!(drift(&svc.provider_view(&root(), &key).await.unwrap()).is_empty());
    // Enabled in Strongroom only: the view names the disagreement.
    svc.set_key_enabled(&root(), &key, true).await.unwrap();
    let v = svc.provider_view(&root(), &key).await.unwrap();
    assert_eq!(drift(&v), vec!["provider-disabled"]);
    assert_eq!(
        v.versions.as_ref().unwrap()[0].state,
        strongroom_providers::VersionState::Disabled
    );
    svc.set_key_enabled_at(&root(), &key, true, true)
        .await
        .unwrap();
    assert!(cloud.disabled.lock().unwrap().is_empty());
    // A schedule at the provider that Strongroom does not record.
    *cloud.schedule.lock().unwrap() = Some(std::time::Duration::from_secs(30 * 86_400));
    let v = svc.provider_view(&root(), &key).await.unwrap();
    assert_eq!(drift(&v), vec!["rotation-schedule"]);
    assert!(
        v.drift[0].detail.contains("2592000s"),
        "{}",
        v.drift[0].detail
    );
    *cloud.schedule.lock().unwrap() = None;
    // The provider refuses the switch: Strongroom changes nothing either.
    let locked = external_key(&kms, "locked", "locked").await;
    assert_err!(
        svc.set_key_enabled_at(&root(), &locked, false, true).await,
        Error::InvalidState { .. }
    );
    assert_eq!(
        svc.get_key(&root(), &locked).await.unwrap().state,
        strongroom_core::KeyState::Enabled
    );
    // The provider is down: unavailable, and still nothing changes.
    cloud.down.store(true, Ordering::SeqCst);
    assert_err!(
        svc.set_key_enabled_at(&root(), &key, false, true).await,
        Error::Unavailable(_)
    );
    cloud.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(
        svc.get_key(&root(), &key).await.unwrap().state,
        strongroom_core::KeyState::Enabled
    );
    // The provider key is gone: drift, not an error.
    let gone = external_key(&kms, "gone", "k2").await;
    cloud.destroyed.lock().unwrap().push("k2".into());
    let v = svc.provider_view(&root(), &gone).await.unwrap();
    assert_eq!(drift(&v), vec!["provider-key-missing"]);
    assert!(v.described.is_err() && v.versions.is_err());
    // The periodic pass finds the same over every enabled provider-held key (and skips
    // Strongroom's own keys and disabled ones); a provider that is down is skipped.
    cloud.disabled.lock().unwrap().push("k1".into());
    let mut found: Vec<(String, &str)> = svc
        .observe_provider_drift()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, d)| (k, d.kind))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("ext/gone".to_string(), "provider-key-missing"),
            ("ext/pay".to_string(), "provider-disabled"),
        ]
    );
    svc.set_key_enabled(&root(), &key, false).await.unwrap();
    assert_eq!(svc.observe_provider_drift().await.unwrap().len(), 1);
    svc.set_key_enabled(&root(), &key, true).await.unwrap();
    cloud.disabled.lock().unwrap().clear();
    cloud.down.store(true, Ordering::SeqCst);
    assert!(svc.observe_provider_drift().await.unwrap().is_empty());
    cloud.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    // Strongroom's own keys have no provider view and no provider switch.
    let soft = kms.aes_key("soft", "k").await;
    assert_err!(
        svc.provider_view(&root(), &soft).await,
        Error::InvalidState { .. }
    );
    assert_err!(
        svc.set_key_enabled_at(&root(), &soft, false, true).await,
        Error::InvalidArgument { .. }
    );
    assert_eq!(
        svc.get_key(&root(), &soft).await.unwrap().state,
        strongroom_core::KeyState::Enabled
    );
    // Reading the view is a read permission (key-user has it, no role is nobody), audited.
    let user = principal(&kms, "svc", &["key-user"], &[]).await;
    let nobody = principal(&kms, "eve", &[], &[]).await;
    svc.provider_view(&user, &key).await.unwrap();
    assert_err!(svc.provider_view(&nobody, &key).await, Error::AccessDenied);
    let events = kms.audit_events();
    let seen: Vec<_> = events
        .iter()
        .filter(|e| e["operation"] == "get-provider-view")
        .collect();
    assert!(
        seen.iter()
            .any(|e| e["outcome"] == "ok" && e["providers"][0]["provider"] == "cloud")
    );
    assert!(seen.iter().any(|e| e["outcome"] == "error"));
    let switched = events
        .iter()
        .find(|e| e["operation"] == "disable-key" && e["providers"][0]["key"] == "k1")
        .unwrap();
    assert_eq!(switched["providers"][0]["outcome"], "ok");
}
