//! Key sets through the service: members across providers, generate under all, decrypt
//! through any, failover with a circuit breaker, binding to the key set, roles and audit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use strongroom_core::keysets::{KeySetDecryptInput, KeySetSpec};
use strongroom_core::{Error, Labels};
use strongroom_crypto::{EncryptionContext, KeyMaterial};
use strongroom_providers::{
    FailoverPolicy, KeyProvider, ProviderError, ProviderKey, Unwrapped, Wrapped,
};

use crate::support::*;

/// A provider in memory: wraps by prefixing the key name and the context's encoding
/// (enough to check what it is given), and can be switched off.
#[derive(Debug)]
pub(crate) struct Fake {
    pub(crate) name: &'static str,
    pub(crate) down: AtomicBool,
    pub(crate) calls: AtomicU32,
    /// Keys made and destroyed through create_key / destroy_key.
    pub(crate) made: std::sync::Mutex<Vec<String>>,
    pub(crate) destroyed: std::sync::Mutex<Vec<String>>,
    /// Keys switched off through set_enabled (`locked` refuses to be switched).
    pub(crate) disabled: std::sync::Mutex<Vec<String>>,
    /// The automatic rotation the provider reports for every key.
    pub(crate) schedule: std::sync::Mutex<Option<Duration>>,
}

impl Fake {
    pub(crate) fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            down: AtomicBool::new(false),
            calls: AtomicU32::new(0),
            made: Default::default(),
            destroyed: Default::default(),
            disabled: Default::default(),
            schedule: Default::default(),
        })
    }

    fn check(&self) -> strongroom_providers::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(ProviderError::Unavailable {
                provider: self.name.into(),
                detail: "connection refused".into(),
                retryable: true,
            });
        }
        Ok(())
    }

    fn tag(key: &str, c: &EncryptionContext) -> Vec<u8> {
        let mut t = key.as_bytes().to_vec();
        t.push(0);
        t.extend(c.encode());
        t.push(0);
        t
    }
}

#[async_trait::async_trait]
impl KeyProvider for Fake {
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn describe(&self, key: &str) -> strongroom_providers::Result<ProviderKey> {
        self.check()?;
        if key == "missing" || self.destroyed.lock().unwrap().iter().any(|d| d == key) {
            return Err(ProviderError::NotFound {
                provider: self.name.into(),
                key: key.into(),
            });
        }
        let enabled = !self.disabled.lock().unwrap().iter().any(|d| d == key);
        Ok(ProviderKey {
            name: key.into(),
            key_type: "fake".into(),
            latest_version: Some(1),
            can_encrypt: enabled,
            rotation_period: *self.schedule.lock().unwrap(),
            enabled: Some(enabled),
        })
    }
    async fn list_versions(
        &self,
        key: &str,
    ) -> strongroom_providers::Result<Vec<strongroom_providers::ProviderVersion>> {
        let d = self.describe(key).await?;
        Ok(vec![strongroom_providers::ProviderVersion {
            version: "1".into(),
            state: if d.enabled == Some(true) {
                strongroom_providers::VersionState::Enabled
            } else {
                strongroom_providers::VersionState::Disabled
            },
            primary: true,
            created_at: Some("2026-12-01T00:00:00Z".into()),
        }])
    }
    async fn set_enabled(&self, key: &str, enabled: bool) -> strongroom_providers::Result<()> {
        self.check()?;
        if key == "locked" {
            return Err(ProviderError::refused(
                self.name,
                "KMSInvalidStateException",
            ));
        }
        let mut d = self.disabled.lock().unwrap();
        d.retain(|k| k != key);
        if !enabled {
            d.push(key.into());
        }
        Ok(())
    }
    async fn wrap(
        &self,
        key: &str,
        pt: &[u8],
        c: &EncryptionContext,
    ) -> strongroom_providers::Result<Wrapped> {
        self.check()?;
        let mut ct = Self::tag(key, c);
        ct.extend(pt.iter().map(|b| b ^ 0x5a));
        Ok(Wrapped {
            ciphertext: ct,
            key_version: Some(1),
            request_id: Some(format!(
                "{}-req-{}",
                self.name,
                self.calls.load(Ordering::SeqCst)
            )),
        })
    }
    async fn unwrap(
        &self,
        key: &str,
        ct: &[u8],
        c: &EncryptionContext,
    ) -> strongroom_providers::Result<Unwrapped> {
        self.check()?;
        let tag = Self::tag(key, c);
        let body = ct
            .strip_prefix(tag.as_slice())
            .ok_or(ProviderError::InvalidCiphertext {
                provider: self.name.into(),
            })?;
        Ok(Unwrapped {
            plaintext: KeyMaterial::new(body.iter().map(|b| b ^ 0x5a).collect()),
            request_id: None,
        })
    }
    async fn create_key(&self, key: &str) -> strongroom_providers::Result<ProviderKey> {
        self.check()?;
        self.made.lock().unwrap().push(key.into());
        self.describe(key).await
    }
    async fn destroy_key(&self, key: &str) -> strongroom_providers::Result<()> {
        self.check()?;
        self.destroyed.lock().unwrap().push(key.into());
        Ok(())
    }
    async fn health(&self) -> strongroom_providers::Result<()> {
        self.check()
    }
}

pub(crate) fn fast() -> FailoverPolicy {
    FailoverPolicy {
        deadline: Duration::from_secs(2),
        retries: 1,
        retry_backoff: Duration::from_millis(5),
        breaker_failures: 1,
        breaker_open_for: Duration::from_millis(300),
    }
}

pub(crate) async fn with_fakes(fakes: &[Arc<Fake>]) -> Kms {
    let mut providers: BTreeMap<String, Arc<dyn KeyProvider>> = BTreeMap::new();
    let mut failover = BTreeMap::new();
    for f in fakes {
        providers.insert(f.name.into(), f.clone());
        failover.insert(f.name.to_string(), fast());
    }
    Kms::new_with(|o| strongroom_core::bootstrap::DataDirOptions {
        providers,
        failover,
        ..o
    })
    .await
}

fn spec(members: &[&str]) -> KeySetSpec {
    KeySetSpec {
        members: members.iter().map(|m| m.to_string()).collect(),
        description: "test".into(),
        labels: Labels::new(),
        forget_retired: false,
    }
}

fn wrapped_of(dk: &strongroom_core::keysets::KeySetDataKey) -> Vec<(String, Vec<u8>)> {
    dk.wrapped
        .iter()
        .map(|w| (w.member.clone(), w.ciphertext.clone()))
        .collect()
}

fn open(wrapped: Vec<(String, Vec<u8>)>, c: &EncryptionContext) -> KeySetDecryptInput {
    KeySetDecryptInput {
        wrapped,
        context: c.clone(),
        prefer: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_data_key_wrapped_by_every_member_opens_through_any() {
    let cloud = Fake::new("cloud");
    let kms = with_fakes(std::slice::from_ref(&cloud)).await;
    kms.aes_key("pay", "a").await;
    kms.aes_key("pay", "b").await;
    let svc = kms.svc();
    let set = svc
        .create_key_set(
            &root(),
            "payments",
            spec(&["software:pay/a", "cloud:k1", "software:pay/b"]),
        )
        .await
        .unwrap();
    assert_eq!(set.members.len(), 3);
    assert_eq!(set.members[1].kind, Some("fake"));
    let c = ec(&[("tenant", "acme")]);
    let dk = svc
        .key_set_generate_data_key(&root(), "payments", &c, 32)
        .await
        .unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    let members: Vec<&str> = dk.wrapped.iter().map(|w| w.member.as_str()).collect();
    assert_eq!(members, ["software:pay/a", "cloud:k1", "software:pay/b"]);

    // Each member alone opens it.
    for w in &dk.wrapped {
        let out = svc
            .key_set_decrypt(
                &root(),
                "payments",
                open(vec![(w.member.clone(), w.ciphertext.clone())], &c),
            )
            .await
            .unwrap();
        assert_eq!(out.member, w.member);
        assert_eq!(out.plaintext.expose_secret(), dk.plaintext.expose_secret());
    }
    // Preference: the named provider first.
    let out = svc
        .key_set_decrypt(
            &root(),
            "payments",
            KeySetDecryptInput {
                prefer: vec!["cloud".into()],
                ..open(wrapped_of(&dk), &c)
            },
        )
        .await
        .unwrap();
    assert_eq!(out.member, "cloud:k1");

    // Another context does not open it, through any member.
    assert_err!(
        svc.key_set_decrypt(
            &root(),
            "payments",
            open(wrapped_of(&dk), &ec(&[("tenant", "globex")]))
        )
        .await,
        Error::InvalidCiphertext
    );

    // Disabling a software member fails over to the next member, and says why.
    svc.set_key_enabled(&root(), &path("pay", "a"), false)
        .await
        .unwrap();
    let out = svc
        .key_set_decrypt(&root(), "payments", open(wrapped_of(&dk), &c))
        .await
        .unwrap();
    assert_eq!(out.member, "cloud:k1");
    assert_eq!(out.failed.len(), 1);
    assert!(out.failed[0].error.contains("disabled"), "{:?}", out.failed);
    // ... and generating now fails, naming the member: every member must wrap.
    let e = assert_err!(
        svc.key_set_generate_data_key(&root(), "payments", &c, 32)
            .await,
        Error::InvalidState { .. }
    );
    assert!(e.to_string().contains("software:pay/a"), "{e}");

    // The audit events name the key set and every provider call, with request ids.
    let events = kms.audit_events();
    let generated = events
        .iter()
        .find(|e| e["operation"] == "key-set-generate-data-key" && e["outcome"] == "ok")
        .unwrap();
    assert_eq!(generated["key_set"], "payments");
    let calls = generated["providers"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1]["provider"], "cloud");
    assert_eq!(calls[1]["key"], "k1");
    assert!(
        calls[1]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("cloud-req-")
    );
    let failover = events
        .iter()
        .rfind(|e| e["operation"] == "key-set-decrypt" && e["outcome"] == "ok")
        .unwrap();
    assert_eq!(failover["providers"][0]["outcome"], "error");
    assert_eq!(failover["providers"][1]["outcome"], "ok");
    // No data key in the log.
    let log = std::fs::read_to_string(kms.data_dir().join("audit.log")).unwrap();
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        dk.plaintext.expose_secret(),
    );
    assert!(!log.contains(&b64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_provider_fails_over_and_its_breaker_opens_once_then_closes() {
    let cloud = Fake::new("cloud");
    let kms = with_fakes(std::slice::from_ref(&cloud)).await;
    kms.aes_key("pay", "a").await;
    let svc = kms.svc();
    svc.create_key_set(&root(), "ks", spec(&["cloud:k1", "software:pay/a"]))
        .await
        .unwrap();
    let c = ec(&[]);
    let dk = svc
        .key_set_generate_data_key(&root(), "ks", &c, 32)
        .await
        .unwrap();

    cloud.down.store(true, Ordering::SeqCst);
    let before = cloud.calls.load(Ordering::SeqCst);
    let out = svc
        .key_set_decrypt(&root(), "ks", open(wrapped_of(&dk), &c))
        .await
        .unwrap();
    assert_eq!(out.member, "software:pay/a");
    assert_eq!(
        cloud.calls.load(Ordering::SeqCst) - before,
        2,
        "one call and one retry"
    );
    let info = svc.get_key_set(&root(), "ks").await.unwrap();
    assert_eq!(
        info.members[0].breaker,
        Some(strongroom_core::failover::BreakerState::Open)
    );
    // While open: the dead provider is tried last and costs no call.
    let t = Instant::now();
    for _ in 0..5 {
        let out = svc
            .key_set_decrypt(&root(), "ks", open(wrapped_of(&dk), &c))
            .await
            .unwrap();
        assert_eq!(out.member, "software:pay/a");
    }
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(cloud.calls.load(Ordering::SeqCst) - before, 2);
    // Generating needs every member: refused at once, retryable, naming the provider.
    let e = assert_err!(
        svc.key_set_generate_data_key(&root(), "ks", &c, 32).await,
        Error::Unavailable(_)
    );
    assert!(e.to_string().contains("cloud:k1"), "{e}");
    assert!(e.to_string().contains("circuit breaker open"), "{e}");

    // Back up: after the open period the next call is a trial that closes the breaker.
    cloud.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let out = svc
        .key_set_decrypt(
            &root(),
            "ks",
            open(
                vec![("cloud:k1".into(), dk.wrapped[0].ciphertext.clone())],
                &c,
            ),
        )
        .await
        .unwrap();
    assert_eq!(out.member, "cloud:k1");
    let info = svc.get_key_set(&root(), "ks").await.unwrap();
    assert_eq!(
        info.members[0].breaker,
        Some(strongroom_core::failover::BreakerState::Closed)
    );
    svc.key_set_generate_data_key(&root(), "ks", &c, 32)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_opens_only_what_it_wrapped() {
    let kms = Kms::new().await;
    let key = kms.aes_key("pay", "a").await;
    let svc = kms.svc();
    svc.create_key_set(&root(), "ks", spec(&["software:pay/a"]))
        .await
        .unwrap();
    let c = ec(&[("tenant", "acme")]);
    // A ciphertext made by plain encrypt under the member key does not open through the
    // key set (the key set binds its own context pair).
    let plain = kms.encrypt(&key, &[7u8; 32], &c).await.unwrap();
    assert_err!(
        svc.key_set_decrypt(
            &root(),
            "ks",
            open(vec![("software:pay/a".into(), plain.ciphertext)], &c)
        )
        .await,
        Error::InvalidCiphertext
    );
    // Callers may not send the binding pair themselves.
    let forged = ec(&[("strongroom:key-set", "ks")]);
    assert_err!(
        svc.key_set_generate_data_key(&root(), "ks", &forged, 32)
            .await,
        Error::InvalidArgument { .. }
    );
    // A key set's wrapped key is a ciphertext of the member key under the bound context:
    // the key's own users can open it with that context, nobody without it.
    let dk = svc
        .key_set_generate_data_key(&root(), "ks", &c, 32)
        .await
        .unwrap();
    let ct = dk.wrapped[0].ciphertext.clone();
    assert_err!(kms.decrypt(&ct, &c).await, Error::InvalidCiphertext);
    let bound = ec(&[("tenant", "acme"), ("strongroom:key-set", "ks")]);
    let out = kms.decrypt(&ct, &bound).await.unwrap();
    assert_eq!(out.plaintext.expose_secret(), dk.plaintext.expose_secret());
    // Wrapped keys of non-members are ignored; none left is a clear error.
    let e = assert_err!(
        svc.key_set_decrypt(&root(), "ks", open(vec![("software:pay/b".into(), ct)], &c))
            .await,
        Error::InvalidArgument { .. }
    );
    assert!(
        e.to_string().contains("no wrapped key is from a member"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_and_requests_are_refused_and_change_nothing() {
    let cloud = Fake::new("cloud");
    let kms = with_fakes(std::slice::from_ref(&cloud)).await;
    kms.aes_key("pay", "a").await;
    kms.ring("other").await;
    let svc = kms.svc();
    let bad = |members: &[&str]| spec(members);
    for (name, s, needle) in [
        ("ks", bad(&[]), "1 to 16 members"),
        ("ks", bad(&["payments"]), "<provider>:<key>"),
        ("ks", bad(&["nosuch:k"]), "no provider \"nosuch\""),
        (
            "ks",
            bad(&["software:pay/a", "software:pay/a"]),
            "the same member twice",
        ),
        ("ks", bad(&["software:alias/x"]), "<ring>/<key>"),
        ("ks", bad(&["cloud:missing"]), "cannot use this member"),
        ("Bad/Name", bad(&["software:pay/a"]), "a-z 0-9"),
    ] {
        let e = assert_err!(
            svc.create_key_set(&root(), name, s).await,
            Error::InvalidArgument { .. }
        );
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
    let many: Vec<String> = (0..17).map(|i| format!("cloud:k{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_err!(
        svc.create_key_set(&root(), "ks", bad(&many)).await,
        Error::InvalidArgument { .. }
    );
    assert_err!(
        svc.create_key_set(&root(), "ks", bad(&["software:pay/nosuch"]))
            .await,
        Error::NotFound { .. }
    );
    assert!(svc.list_key_sets(&root()).await.unwrap().is_empty());

    svc.create_key_set(&root(), "ks", spec(&["software:pay/a"]))
        .await
        .unwrap();
    assert_err!(
        svc.create_key_set(&root(), "ks", spec(&["cloud:k"])).await,
        Error::AlreadyExists { .. }
    );
    assert_err!(
        svc.get_key_set(&root(), "nosuch").await,
        Error::NotFound { .. }
    );
    let c = ec(&[]);
    for n in [0, 15, 65] {
        assert_err!(
            svc.key_set_generate_data_key(&root(), "ks", &c, n).await,
            Error::InvalidArgument { .. }
        );
    }
    for wrapped in [
        vec![],
        vec![("software:pay/a".to_string(), vec![])],
        vec![("software:pay/a".to_string(), vec![1u8; 70_000])],
        (0..33)
            .map(|_| ("software:pay/a".to_string(), vec![1u8]))
            .collect(),
    ] {
        assert_err!(
            svc.key_set_decrypt(&root(), "ks", open(wrapped, &c)).await,
            Error::InvalidArgument { .. }
        );
    }
    // Garbage in a member's slot is an invalid ciphertext, not a server error.
    assert_err!(
        svc.key_set_decrypt(
            &root(),
            "ks",
            open(vec![("software:pay/a".into(), vec![9u8; 80])], &c)
        )
        .await,
        Error::InvalidCiphertext
    );
    // Updating replaces the members; deleting removes the set and nothing else.
    let u = svc
        .update_key_set(&root(), "ks", spec(&["cloud:k2", "software:pay/a"]))
        .await
        .unwrap();
    assert_eq!(u.members[0].member, "cloud:k2");
    assert_eq!(
        svc.get_key_set(&root(), "ks").await.unwrap().members.len(),
        2
    );
    svc.delete_key_set(&root(), "ks").await.unwrap();
    assert_err!(
        svc.delete_key_set(&root(), "ks").await,
        Error::NotFound { .. }
    );
    kms.encrypt(&path("pay", "a"), b"still here", &c)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_separate_managing_key_sets_from_using_them() {
    let kms = Kms::new().await;
    kms.aes_key("pay", "a").await;
    let svc = kms.svc();
    let admin = principal(&kms, "alice", &["key-admin"], &[]).await;
    let user = principal(&kms, "svc", &["key-user"], &[]).await;
    let nobody = principal(&kms, "eve", &[], &[]).await;
    let c = ec(&[]);

    assert_err!(
        svc.create_key_set(&user, "ks", spec(&["software:pay/a"]))
            .await,
        Error::AccessDenied
    );
    svc.create_key_set(&admin, "ks", spec(&["software:pay/a"]))
        .await
        .unwrap();
    assert_err!(
        svc.key_set_generate_data_key(&admin, "ks", &c, 32).await,
        Error::AccessDenied
    );
    let dk = svc
        .key_set_generate_data_key(&user, "ks", &c, 32)
        .await
        .unwrap();
    svc.key_set_decrypt(&user, "ks", open(wrapped_of(&dk), &c))
        .await
        .unwrap();
    assert_err!(
        svc.key_set_decrypt(&nobody, "ks", open(wrapped_of(&dk), &c))
            .await,
        Error::AccessDenied
    );
    // A caller without permission cannot tell a missing key set from a forbidden one.
    assert_err!(
        svc.get_key_set(&nobody, "nosuch").await,
        Error::AccessDenied
    );
    assert_err!(svc.get_key_set(&nobody, "ks").await, Error::AccessDenied);
    assert_err!(svc.list_key_sets(&nobody).await, Error::AccessDenied);
    assert_err!(svc.delete_key_set(&user, "ks").await, Error::AccessDenied);
    assert_eq!(svc.list_key_sets(&user).await.unwrap().len(), 1);
    let unauth = as_token(Some("srt_not-a-token"));
    assert_err!(
        svc.key_set_generate_data_key(&unauth, "ks", &c, 32).await,
        Error::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_data_key_is_rewrapped_under_new_members() {
    let kms = Kms::new().await;
    kms.aes_key("pay", "a").await;
    kms.aes_key("pay", "b").await;
    let svc = kms.svc();
    svc.create_key_set(&root(), "ks", spec(&["software:pay/a"]))
        .await
        .unwrap();
    let c = ec(&[("app", "x")]);
    let dk = svc
        .key_set_generate_data_key(&root(), "ks", &c, 32)
        .await
        .unwrap();
    // Replace the member: the old one is retired, still opening what it wrapped.
    let info = svc
        .update_key_set(&root(), "ks", spec(&["software:pay/b"]))
        .await
        .unwrap();
    assert_eq!(info.retired[0].member, "software:pay/a");
    let out = svc
        .key_set_decrypt(&root(), "ks", open(wrapped_of(&dk), &c))
        .await
        .unwrap();
    assert_eq!(out.member, "software:pay/a");
    let wrapped = svc
        .key_set_wrap(&root(), "ks", &c, &dk.plaintext)
        .await
        .unwrap();
    assert_eq!(wrapped.len(), 1, "retired members wrap nothing new");
    assert_eq!(wrapped[0].member, "software:pay/b");
    // Forgetting the retired members: the old copy no longer opens through the key set.
    let info = svc
        .update_key_set(
            &root(),
            "ks",
            KeySetSpec {
                forget_retired: true,
                ..spec(&["software:pay/b"])
            },
        )
        .await
        .unwrap();
    assert!(info.retired.is_empty());
    assert_err!(
        svc.key_set_decrypt(&root(), "ks", open(wrapped_of(&dk), &c))
            .await,
        Error::InvalidArgument { .. }
    );
    let out = svc
        .key_set_decrypt(
            &root(),
            "ks",
            open(
                vec![(wrapped[0].member.clone(), wrapped[0].ciphertext.clone())],
                &c,
            ),
        )
        .await
        .unwrap();
    assert_eq!(out.plaintext.expose_secret(), dk.plaintext.expose_secret());
    for n in [0usize, 8, 65] {
        assert_err!(
            svc.key_set_wrap(
                &root(),
                "ks",
                &c,
                &strongroom_core::Plaintext::new(vec![1; n])
            )
            .await,
            Error::InvalidArgument { .. }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_nodes_preference_orders_decryption_unless_the_request_says() {
    let cloud = Fake::new("cloud");
    let kms = Kms::new_with(|o| strongroom_core::bootstrap::DataDirOptions {
        providers: BTreeMap::from([("cloud".to_string(), cloud.clone() as Arc<dyn KeyProvider>)]),
        key_set_prefer: vec!["cloud".into()],
        ..o
    })
    .await;
    kms.aes_key("pay", "a").await;
    let svc = kms.svc();
    svc.create_key_set(&root(), "ks", spec(&["software:pay/a", "cloud:k1"]))
        .await
        .unwrap();
    let c = ec(&[]);
    let dk = svc
        .key_set_generate_data_key(&root(), "ks", &c, 32)
        .await
        .unwrap();
    // The key set lists software first; this node prefers the cloud.
    let out = svc
        .key_set_decrypt(&root(), "ks", open(wrapped_of(&dk), &c))
        .await
        .unwrap();
    assert_eq!(out.member, "cloud:k1");
    // A request's own preference wins.
    let out = svc
        .key_set_decrypt(
            &root(),
            "ks",
            KeySetDecryptInput {
                prefer: vec!["software".into()],
                ..open(wrapped_of(&dk), &c)
            },
        )
        .await
        .unwrap();
    assert_eq!(out.member, "software:pay/a");
}
