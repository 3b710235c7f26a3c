//! `Kms`: a `KeyService` over a fresh data dir in a temp dir, with a hand-driven clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom_core::bootstrap::{self, DataDirOptions, Opened, SinkOptions};
use strongroom_core::types::{
    CreateKeyInput, CreateKeyRingInput, DecryptInput, DecryptOutput, EncryptInput, EncryptOutput,
    VersionInfo,
};
use strongroom_core::{
    Algorithm, BearerToken, EncryptionContext, KeyName, KeyRecord, KeyService, Labels, ManualClock,
    PageRequest, Plaintext, PrincipalInput, PrincipalName, Protocol, RequestContext, Result,
    RingName, Timestamp,
};

pub(crate) use strongroom_core::types::KeyRef;

/// The root token every `Kms` is initialised with.
pub(crate) const ROOT_TOKEN: &str = "test-root-token";
/// An AWS-style access key pair for root, as dev mode configures one.
pub(crate) const DEV_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
pub(crate) const DEV_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// Where every test's clock starts (2027-01-15T08:00:00Z).
pub(crate) const T0: i64 = 1_800_000_000;
pub(crate) const DAY: i64 = 86_400;

/// Asserts that `$res` is an `Err` matching `$pat` and returns the error.
macro_rules! assert_err {
    ($res:expr, $pat:pat $(if $guard:expr)? $(,)?) => {
        match $res {
            Err(e) => {
                assert!(matches!(e, $pat $(if $guard)?), "unexpected error: {e:?} ({e})");
                e
            }
            Ok(v) => panic!("expected an error matching {}, got Ok({v:?})", stringify!($pat)),
        }
    };
}

/// A data dir opened through `bootstrap::open`, as a server would.
pub(crate) struct Kms {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) clock: Arc<ManualClock>,
    opened: Option<Opened>,
}

impl Kms {
    /// A fresh data dir with root token [`ROOT_TOKEN`], clock at [`T0`].
    pub(crate) async fn new() -> Kms {
        Self::new_with(|o| o).await
    }

    /// A fresh data dir opened with `options` changed by `change` (first start only).
    pub(crate) async fn new_with(change: impl FnOnce(DataDirOptions) -> DataDirOptions) -> Kms {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp(T0)));
        let mut kms = Kms {
            tmp,
            clock,
            opened: None,
        };
        let opened = bootstrap::open(change(kms.options())).await.unwrap();
        assert!(
            opened.new_root_token.is_none(),
            "the root token was supplied"
        );
        kms.opened = Some(opened);
        kms
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    pub(crate) fn db_path(&self) -> PathBuf {
        self.data_dir().join("strongroom.db")
    }

    /// The options this data dir is opened with.
    pub(crate) fn options(&self) -> DataDirOptions {
        options(&self.data_dir(), self.clock.clone())
    }

    pub(crate) fn svc(&self) -> &KeyService {
        &self.opened.as_ref().expect("the data dir is open").service
    }

    pub(crate) fn opened(&self) -> &Opened {
        self.opened.as_ref().expect("the data dir is open")
    }

    pub(crate) fn advance(&self, secs: i64) {
        self.clock.advance(secs);
    }

    /// Shuts down as `serve` does (final audit checkpoint, then drop), and waits until
    /// SQLite has closed the database.
    pub(crate) async fn shutdown(&mut self) {
        let opened = self.opened.take().expect("the data dir is open");
        let Opened { service, lock, .. } = opened;
        assert_eq!(
            Arc::strong_count(&service),
            1,
            "a test still holds the service"
        );
        // Fails only when a test has made the audit log unwritable on purpose.
        let _ = service.close_audit().await;
        drop(service);
        drop(lock);
        wait_for_close(&self.db_path());
    }

    /// Shuts down and opens the same data dir again with the same clock.
    pub(crate) async fn reopen(&mut self) {
        if self.opened.is_some() {
            self.shutdown().await;
        }
        let opened = bootstrap::open(self.options()).await.unwrap();
        assert!(opened.new_root_token.is_none());
        assert!(opened.wrote_root_key.is_none());
        self.opened = Some(opened);
    }

    /// The bytes of the database and of its write-ahead log (which, after a shutdown, may
    /// still hold recent writes: see [`checkpoint`]).
    pub(crate) fn db_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        db_bytes(&self.data_dir())
    }

    /// Every line of the audit log, parsed: events, checkpoints and recovery lines.
    pub(crate) fn audit_lines(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.data_dir().join("audit.log")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The event lines of the audit log (without checkpoints).
    pub(crate) fn audit_events(&self) -> Vec<serde_json::Value> {
        self.audit_lines()
            .into_iter()
            .filter(|l| l["schema"] == strongroom_audit::SCHEMA)
            .collect()
    }

    pub(crate) async fn ring(&self, name: &str) -> RingName {
        let name = RingName::try_new(name).unwrap();
        self.svc()
            .create_key_ring(
                &root(),
                CreateKeyRingInput {
                    name: name.clone(),
                    description: String::new(),
                    labels: Labels::new(),
                },
            )
            .await
            .unwrap();
        name
    }

    /// Creates `ring/name` (the ring must exist) with `algorithm` (default AES-256-GCM).
    pub(crate) async fn key(
        &self,
        ring: &str,
        name: &str,
        algorithm: Option<Algorithm>,
    ) -> (KeyRecord, KeyRef) {
        let mut input = key_input(ring, name);
        input.algorithm = algorithm;
        let (k, v) = self.svc().create_key(&root(), input).await.unwrap();
        assert_eq!(v.version, 1);
        (k, path(ring, name))
    }

    /// A ring and an AES key in it.
    pub(crate) async fn aes_key(&self, ring: &str, name: &str) -> KeyRef {
        if self
            .svc()
            .get_key_ring(&root(), &RingName::try_new(ring).unwrap())
            .await
            .is_err()
        {
            self.ring(ring).await;
        }
        self.key(ring, name, None).await.1
    }

    pub(crate) async fn encrypt(
        &self,
        key: &KeyRef,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<EncryptOutput> {
        self.svc()
            .encrypt(
                &root(),
                EncryptInput {
                    key: key.clone(),
                    plaintext: Plaintext::copy_from(plaintext),
                    context: context.clone(),
                },
            )
            .await
    }

    pub(crate) async fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<DecryptOutput> {
        self.svc()
            .decrypt(
                &root(),
                DecryptInput {
                    ciphertext: ciphertext.to_vec(),
                    context: context.clone(),
                    key: None,
                },
            )
            .await
    }

    /// The key record and all its versions: compared before and after a refused call to show
    /// that nothing changed.
    pub(crate) async fn snapshot(&self, key: &KeyRef) -> (KeyRecord, Vec<VersionInfo>) {
        let (k, page) = self
            .svc()
            .list_versions(
                &root(),
                key,
                &PageRequest {
                    after: None,
                    limit: 1000,
                },
            )
            .await
            .unwrap();
        assert!(page.next.is_none());
        (k, page.items)
    }

    pub(crate) async fn version(&self, key: &KeyRef, n: u32) -> VersionInfo {
        self.svc().get_version(&root(), key, n).await.unwrap().1
    }
}

/// Options for opening `data_dir` with root token [`ROOT_TOKEN`].
pub(crate) fn options(data_dir: &Path, clock: Arc<ManualClock>) -> DataDirOptions {
    DataDirOptions {
        data_dir: data_dir.to_path_buf(),
        root_key_file: None,
        initial_root_token: Some(ROOT_TOKEN.into()),
        initial_root_access_key: None,
        clock,
        audit: SinkOptions::default(),
        quotas: strongroom_core::quota::QuotaConfig::default(),
        jwks_fetcher: None,
        dangerous_accept_audit_rollback: false,
        database: None,
        scheduler_lease_secs: 90,
        per_key_metrics: false,
        read_cache_ttl: std::time::Duration::from_secs(1),
        providers: Default::default(),
        failover: Default::default(),
        key_set_prefer: Vec::new(),
    }
}

/// Waits until this process has no file open under `db`'s name (the database, `-wal`,
/// `-shm`). `KeyService` has no `close`: the store's connections close on their own worker
/// threads some time after the last handle drops, so a test that compares file bytes or
/// reopens the data dir waits here first. (The `-wal` file's disappearance is no signal: two
/// connections closing at once can each see the other and both leave it in place.)
pub(crate) fn wait_for_close(db: &Path) {
    let prefix = db.as_os_str().to_owned();
    let is_open = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .any(|target| {
                target
                    .as_os_str()
                    .as_encoded_bytes()
                    .starts_with(prefix.as_encoded_bytes())
            })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_open() {
        assert!(
            Instant::now() < deadline,
            "SQLite did not close {} within 10 s",
            db.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The bytes of `<dir>/strongroom.db` and of its `-wal` file (empty when there is none: an
/// empty log holds nothing).
pub(crate) fn db_bytes(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let wal = dir.join("strongroom.db-wal");
    (
        std::fs::read(dir.join("strongroom.db")).unwrap(),
        std::fs::read(&wal).unwrap_or_default(),
    )
}

/// Opens the database on its own and closes it in order, so the last connection checkpoints
/// and removes the `-wal` and `-shm` files: a known starting state for tests that look at
/// which files exist. (Dropping a `KeyService` closes its reader and writer connections
/// concurrently, and then sometimes neither of them checkpoints.)
pub(crate) async fn checkpoint(db: &Path) {
    let store = strongroom_store::SqliteStore::open(&strongroom_store::SqliteOptions {
        path: db.to_path_buf(),
        create_if_missing: false,
    })
    .await
    .unwrap();
    store.close().await;
    drop(store);
    wait_for_close(db);
}

/// A request from the root token.
pub(crate) fn root() -> RequestContext {
    as_token(Some(ROOT_TOKEN))
}

/// A request presenting `token` (or none).
pub(crate) fn as_token(token: Option<&str>) -> RequestContext {
    RequestContext {
        request_id: strongroom_core::new_request_id(),
        token: token.map(|t| BearerToken::new(t.to_string())),
        protocol: Protocol::Native,
        client_addr: None,
        client_cert: None,
        sigv4: None,
        socket_principal: None,
        client_request_id: None,
    }
}

pub(crate) fn path(ring: &str, key: &str) -> KeyRef {
    KeyRef::Path(
        RingName::try_new(ring).unwrap(),
        KeyName::try_new(key).unwrap(),
    )
}

pub(crate) fn key_input(ring: &str, name: &str) -> CreateKeyInput {
    CreateKeyInput {
        ring: RingName::try_new(ring).unwrap(),
        name: Some(KeyName::try_new(name).unwrap()),
        purpose: None,
        algorithm: None,
        description: String::new(),
        labels: Labels::new(),
        exportable: false,
        rotation_period_secs: None,
        next_rotation_time: None,
        external: None,
        hsm: None,
    }
}

/// An encryption context from pairs.
pub(crate) fn ec(pairs: &[(&str, &str)]) -> EncryptionContext {
    let m: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    EncryptionContext::try_new(m).unwrap()
}

pub(crate) fn alg(name: &str) -> Algorithm {
    name.parse().unwrap()
}

/// Whether `needle` occurs in `hay`.
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir`, recursively, with its bytes.
pub(crate) fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// A principal with `roles` and `labels`, and a request context presenting a fresh token of it.
pub(crate) async fn principal(
    kms: &Kms,
    name: &str,
    roles: &[&str],
    labels: &[(&str, &str)],
) -> RequestContext {
    let name = PrincipalName::try_new(name).unwrap();
    kms.svc()
        .create_principal(
            &root(),
            PrincipalInput {
                name: name.clone(),
                kind: "workload".into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Labels>(),
                description: String::new(),
                rate_limits: Default::default(),
                tls_certs: vec![],
            },
        )
        .await
        .unwrap();
    let t = kms
        .svc()
        .create_token_for(&root(), &name, Some(3600), "test".into())
        .await
        .unwrap();
    as_token(Some(t.secret.expose_secret()))
}
