//! Opening a data dir: the root key file, the store, the audit log, and on first start the
//! root token. Specified in `docs/sealing.md` ("Root key") and `docs/operations.md`.
//!
//! **Invariant:** an existing data dir is never re-initialised. A missing, unreadable,
//! world-readable or wrong root key refuses to start, names the file, and writes nothing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use strongroom_audit::SinkOptions;
use strongroom_audit::{ChainedFileSink, Signer};
use strongroom_crypto::{Algorithm, RootKey, keys};
use strongroom_store::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store};

use crate::clock::Clock;
use crate::request::BearerToken;
use crate::service::KeyService;

const DB_FILE: &str = "strongroom.db";
const ROOT_KEY_FILE: &str = "root.key";
const AUDIT_FILE: &str = "audit.log";
const LOCK_FILE: &str = "strongroom.lock";
const INIT_FILE: &str = "strongroom.init";
const INIT_HEADER: &str = "strongroom-data-dir-v1";
const CHECK_BINDING: &[u8] = b"root-key-check";
const CHECK_VALUE: &[u8] = b"strongroom root key check v1";
const AUDIT_KEY_META: &str = "audit_signing_key";
const AUDIT_KEY_BINDING: &[u8] = b"audit-signing-key";
const AUDIT_PUBLIC_KEY_FILE: &str = "audit-signing.pub";
/// Store setting: the highest audit log sequence number known durable (on PostgreSQL, one
/// per node: `audit_seq/<node id>`).
pub(crate) const AUDIT_SEQ_META: &str = "audit_seq";
/// PostgreSQL: the root key check, in the store shared by every node (SQLite keeps it in
/// the data dir's init file).
pub(crate) const ROOT_CHECK_META: &str = "root_key_check";
/// PostgreSQL: written last by the node that initialised the database.
pub(crate) const INITIALISED_META: &str = "initialised";
/// PostgreSQL: this node's id, for its own settings in the shared store.
const NODE_ID_FILE: &str = "node.id";

/// How to open a data dir.
#[derive(Clone)]
pub struct DataDirOptions {
    /// The data dir (created if missing).
    pub data_dir: PathBuf,
    /// Where the root key lives; `<data dir>/root.key` when `None`.
    pub root_key_file: Option<PathBuf>,
    /// On first start, use this root token instead of a random one (dev mode).
    pub initial_root_token: Option<String>,
    /// On first start, give root this AWS-style access key pair (id, secret): dev mode's
    /// `STRONGROOM_DEV_AWS_ACCESS_KEY_ID` / `STRONGROOM_DEV_AWS_SECRET_ACCESS_KEY`.
    pub initial_root_access_key: Option<(String, String)>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Audit log writer settings (checkpoint cadence, write timeout).
    pub audit: SinkOptions,
    /// Default request quotas per principal.
    pub quotas: crate::quota::QuotaConfig,
    /// How trusted issuers' JWKS documents are fetched (none: inline JWKS only).
    pub jwks_fetcher: Option<Arc<dyn crate::federation::JwksFetcher>>,
    /// Start even if the audit log is shorter than the data dir recorded (it was truncated
    /// or replaced by an older copy). Dangerous: only after investigating.
    pub dangerous_accept_audit_rollback: bool,
    /// Keep keys in this PostgreSQL database, shared with other nodes, instead of the data
    /// dir's SQLite file. The data dir still holds this node's lock and audit log.
    pub database: Option<PostgresOptions>,
    /// How long this node's scheduler lease lasts (seconds): with several nodes, another
    /// takes the scheduled jobs over that long after this one stops. Three scheduler
    /// intervals is a good value.
    pub scheduler_lease_secs: i64,
    /// Label key metrics with key names (one series per key and operation).
    pub per_key_metrics: bool,
    /// How long tokens, keys, versions, principals and aliases read from the store may be
    /// reused (zero: never). This node's own writes are seen at once; another node's within
    /// this time.
    pub read_cache_ttl: std::time::Duration,
    /// The key providers this node uses, by name (from the providers file).
    pub providers: std::collections::BTreeMap<String, Arc<dyn strongroom_providers::KeyProvider>>,
    /// Their failover settings, by provider name (defaults where absent).
    pub failover: std::collections::BTreeMap<String, strongroom_providers::FailoverPolicy>,
    /// Providers key set decryption tries first on this node (`[key_sets] prefer`).
    pub key_set_prefer: Vec<String>,
}

/// An opened data dir.
#[derive(Debug)]
pub struct Opened {
    /// The service.
    pub service: Arc<KeyService>,
    /// Set on first start: the root token, to be shown once. `None` on later starts and when
    /// the token was supplied by the caller.
    pub new_root_token: Option<BearerToken>,
    /// Set on first start when the root key file was written into the data dir.
    pub wrote_root_key: Option<PathBuf>,
    /// The audit log.
    pub audit_path: PathBuf,
    /// Keeps the data dir locked against a second process while alive.
    pub lock: File,
}

/// Why a data dir could not be opened. Messages name files, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A clear, user-facing refusal.
    #[error("{0}")]
    Refused(String),
    /// Filesystem trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn refused(s: impl Into<String>) -> BootstrapError {
    BootstrapError::Refused(s.into())
}

fn read_root_key(path: &Path) -> Result<RootKey, BootstrapError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(io(path))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(refused(format!(
                "root key file {} is accessible by other users (mode {mode:o}); run `chmod 600 {}` and start again",
                path.display(),
                path.display()
            )));
        }
    }
    let text = fs::read_to_string(path).map_err(io(path))?;
    RootKey::from_file_text(&text)
        .map_err(|e| refused(format!("root key file {}: {e}", path.display())))
}

fn write_root_key(path: &Path, key: &RootKey) -> Result<(), BootstrapError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    // Exposed to write the root key file, the one place it is meant to live.
    f.write_all(key.to_file_text().expose_secret())
        .map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(())
}

fn lock_data_dir(dir: &Path) -> Result<File, BootstrapError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    f.try_lock().map_err(|_| {
        refused(format!(
            "data dir {} is in use by another strongroom process (lock {} is held)",
            dir.display(),
            path.display()
        ))
    })?;
    Ok(f)
}

/// Opens a data dir, initialising it on first start.
pub async fn open(opts: DataDirOptions) -> Result<Opened, BootstrapError> {
    let dir = &opts.data_dir;
    if !dir.exists() {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(io(dir))?;
    }
    let lock = lock_data_dir(dir)?;
    if let Some(t) = &opts.initial_root_token
        && (t.is_empty() || t.len() > crate::service::MAX_TOKEN_LEN)
    {
        return Err(refused(format!(
            "the root token must be 1 to {} bytes (a token nobody can present would lock everyone out)",
            crate::service::MAX_TOKEN_LEN
        )));
    }
    let key_path = opts
        .root_key_file
        .clone()
        .unwrap_or_else(|| dir.join(ROOT_KEY_FILE));
    let (store, root, existing, wrote_root_key, node) = match &opts.database {
        None => {
            let (store, root, existing, wrote) = open_sqlite(dir, &key_path).await?;
            (store, root, existing, wrote, None)
        }
        Some(pg) => {
            let (store, root, existing, wrote) = open_postgres(&key_path, pg).await?;
            (store, root, existing, wrote, Some(node_id(dir)?))
        }
    };
    let seq_meta = match &node {
        None => AUDIT_SEQ_META.to_string(),
        Some(n) => format!("{AUDIT_SEQ_META}/{n}"),
    };
    let audit_path = dir.join(AUDIT_FILE);
    let signer = audit_signer(store.as_ref(), &root, dir).await?;
    let audit = ChainedFileSink::open(&audit_path, signer, opts.audit.clone())
        .map_err(|e| refused(e.to_string()))?;
    {
        use strongroom_audit::AuditSink;
        let recorded = store
            .meta(&seq_meta)
            .await
            .map_err(|e| refused(e.to_string()))?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let have = audit.durable_seq();
        if have < recorded {
            let msg = format!(
                "audit log {} ends at sequence {have}, but this data dir recorded sequence {recorded}: the log was truncated or replaced by an older copy",
                audit_path.display()
            );
            if !opts.dangerous_accept_audit_rollback {
                return Err(refused(format!(
                    "{msg}; refusing to start. Restore the log, or start with --dangerous-accept-audit-rollback after investigating"
                )));
            }
            tracing::error!("{msg}; starting anyway (--dangerous-accept-audit-rollback)");
            store
                .put_meta(&seq_meta, &have.to_be_bytes())
                .await
                .map_err(|e| refused(e.to_string()))?;
        }
    }

    let mut new_root_token = None;
    let check = if existing || opts.database.is_some() {
        None
    } else {
        Some(
            root.seal(CHECK_BINDING, CHECK_VALUE)
                .map_err(|e| refused(e.to_string()))?,
        )
    };
    // Every read from here on may come from the cache; every write goes through it.
    let store: Arc<dyn Store> = Arc::new(strongroom_store::CachedStore::new(
        store,
        opts.read_cache_ttl,
    ));
    // Root key verified (or just created): the service may unseal from here on.
    let mut service = KeyService::new(store.clone(), root, Arc::new(audit), opts.clock.clone())
        .with_audit_path(audit_path.clone())
        .with_audit_position_meta(seq_meta)
        .with_node(
            node.unwrap_or_else(|| "local".into()),
            opts.scheduler_lease_secs,
        )
        .with_quotas(opts.quotas.clone())
        .with_per_key_metrics(opts.per_key_metrics)
        .with_providers(opts.providers.clone(), &opts.failover)
        .with_key_set_preference(opts.key_set_prefer.clone());
    if let Some(f) = &opts.jwks_fetcher {
        service = service.with_jwks_fetcher(f.clone());
    }
    let service = service.into_shared();
    if !existing {
        service
            .install_default_policies()
            .await
            .map_err(|e| refused(format!("cannot install the default policies: {e}")))?;
    }
    // A stored policy that no longer compiles must stop the start: leaving out a `forbid`
    // would silently allow more than the operator wrote.
    service.load_policies().await.map_err(|e| {
        refused(format!(
            "{e}; fix or delete the policy with an older strongroom, then start again"
        ))
    })?;
    if !existing {
        let (secret, show) = match &opts.initial_root_token {
            Some(t) => (BearerToken::new(t.clone()), false),
            None => (
                crate::tokens::new_secret().map_err(|e| refused(e.to_string()))?,
                true,
            ),
        };
        service
            .insert_root_token(&secret)
            .await
            .map_err(|e| refused(e.to_string()))?;
        if let Some((id, key)) = &opts.initial_root_access_key {
            service
                .insert_root_access_key(id, crate::SecretAccessKey::new(key.clone()))
                .await
                .map_err(|e| refused(format!("the dev access key: {e}")))?;
        }
        // Written last: its presence is what marks the data dir (or, on PostgreSQL, the
        // database) initialised.
        if let Some(check) = &check {
            write_init_file(dir, check)?;
        }
        if opts.database.is_some() {
            store
                .put_meta(INITIALISED_META, b"1")
                .await
                .map_err(|e| refused(e.to_string()))?;
        }
        if show {
            new_root_token = Some(secret);
        }
    }
    Ok(Opened {
        service,
        new_root_token,
        wrote_root_key,
        audit_path,
        lock,
    })
}

/// The data dir's SQLite store and root key. `existing`: the data dir was initialised.
async fn open_sqlite(
    dir: &Path,
    key_path: &Path,
) -> Result<(Arc<dyn Store>, RootKey, bool, Option<PathBuf>), BootstrapError> {
    let db_path = dir.join(DB_FILE);
    let existing = db_path.exists();
    if !existing && dir.join(AUDIT_FILE).exists() {
        return Err(refused(format!(
            "data dir {} has an audit log but no database ({}); refusing to initialise over it. \
             Restore the database, or move the audit log aside to start a new data dir",
            dir.display(),
            db_path.display()
        )));
    }

    let mut wrote_root_key = None;
    let root = if existing {
        if !key_path.exists() {
            return Err(refused(format!(
                "data dir {} is initialised but its root key file {} does not exist; refusing to start (nothing was changed). \
                 Point --root-key-file at the root key this data dir was created with",
                dir.display(),
                key_path.display()
            )));
        }
        let root = read_root_key(key_path)?;
        // The check lives in its own small file so a wrong key is caught before SQLite opens
        // anything (opening a WAL database, even read-only, creates files).
        let init_path = dir.join(INIT_FILE);
        let check = match fs::read_to_string(&init_path) {
            Ok(text) => parse_init_file(&text).ok_or_else(|| {
                refused(format!(
                    "{} is damaged; it must be `{INIT_HEADER}` and one base64 line",
                    init_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refused(format!(
                    "data dir {} holds an interrupted first start (no root token was ever issued, so it holds no keys); \
                     move it aside and start again",
                    dir.display()
                )));
            }
            Err(e) => {
                return Err(BootstrapError::Io {
                    path: init_path,
                    source: e,
                });
            }
        };
        match root.unseal(CHECK_BINDING, &check) {
            Ok(v) if v.expose_secret() == CHECK_VALUE => {}
            _ => {
                return Err(refused(format!(
                    "the root key in {} does not match data dir {}; refusing to start (nothing was changed)",
                    key_path.display(),
                    dir.display()
                )));
            }
        }
        root
    } else if key_path.exists() {
        read_root_key(key_path)?
    } else {
        let root =
            RootKey::generate().map_err(|e| refused(format!("cannot generate a root key: {e}")))?;
        write_root_key(key_path, &root)?;
        wrote_root_key = Some(key_path.to_path_buf());
        root
    };

    let store = SqliteStore::open(&SqliteOptions {
        path: db_path.clone(),
        create_if_missing: !existing,
    })
    .await
    .map_err(|e| refused(e.to_string()))?;
    Ok((Arc::new(store), root, existing, wrote_root_key))
}

/// A PostgreSQL store shared by several nodes, and the root key every node must hold. The
/// first node to claim the root key check initialises the database; the others join it,
/// and only with the same root key.
async fn open_postgres(
    key_path: &Path,
    pg: &PostgresOptions,
) -> Result<(Arc<dyn Store>, RootKey, bool, Option<PathBuf>), BootstrapError> {
    let store = PostgresStore::open(pg)
        .await
        .map_err(|e| refused(e.to_string()))?;
    let meta = |name: &'static str| {
        let store = store.clone();
        async move { store.meta(name).await.map_err(|e| refused(e.to_string())) }
    };
    let verify = |root: &RootKey, check: &[u8]| match root.unseal(CHECK_BINDING, check) {
        Ok(v) if v.expose_secret() == CHECK_VALUE => Ok(()),
        _ => Err(refused(format!(
            "the root key in {} is not the one the database was initialised with; refusing to start (nothing was changed)",
            key_path.display()
        ))),
    };
    let joined = |root: RootKey| async {
        if meta(INITIALISED_META).await?.is_none() {
            return Err(refused(
                "the database's first start has not finished (another node is initialising it, or was interrupted); \
                 start again in a moment, or, if nothing ever finished, drop the database and start again",
            ));
        }
        Ok(root)
    };
    if let Some(check) = meta(ROOT_CHECK_META).await? {
        if !key_path.exists() {
            return Err(refused(format!(
                "the database is initialised but this node's root key file {} does not exist; give every node the root key (--root-key-file)",
                key_path.display()
            )));
        }
        let root = read_root_key(key_path)?;
        verify(&root, &check)?;
        let root = joined(root).await?;
        return Ok((Arc::new(store), root, true, None));
    }
    // A new database: claim it with this node's root key (read, or made here).
    let (root, wrote) = if key_path.exists() {
        (read_root_key(key_path)?, None)
    } else {
        let root =
            RootKey::generate().map_err(|e| refused(format!("cannot generate a root key: {e}")))?;
        write_root_key(key_path, &root)?;
        (root, Some(key_path.to_path_buf()))
    };
    let check = root
        .seal(CHECK_BINDING, CHECK_VALUE)
        .map_err(|e| refused(e.to_string()))?;
    let claimed = store
        .put_meta_if_absent(ROOT_CHECK_META, &check)
        .await
        .map_err(|e| refused(e.to_string()))?;
    if claimed {
        return Ok((Arc::new(store), root, false, wrote));
    }
    // Another node claimed it first.
    let theirs = meta(ROOT_CHECK_META)
        .await?
        .ok_or_else(|| refused("the database's root key check vanished"))?;
    verify(&root, &theirs)?;
    let root = joined(root).await?;
    Ok((Arc::new(store), root, true, wrote))
}

/// This node's id (made on first use; its own settings in a shared store are named by it).
fn node_id(dir: &Path) -> Result<String, BootstrapError> {
    let path = dir.join(NODE_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BootstrapError::Io { path, source: e }),
    }
    let id: String = strongroom_crypto::rand::bytes(8)
        .map_err(|e| refused(e.to_string()))?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::write(&path, format!("{id}\n")).map_err(io(&path))?;
    Ok(id)
}

/// Loads (or on first start creates) the audit signing key, sealed under the root key in the
/// store, and publishes its public key as `<data dir>/audit-signing.pub` for verifiers.
async fn audit_signer(
    store: &dyn Store,
    root: &RootKey,
    dir: &Path,
) -> Result<Signer, BootstrapError> {
    let sealed = match store
        .meta(AUDIT_KEY_META)
        .await
        .map_err(|e| refused(e.to_string()))?
    {
        Some(s) => s,
        None => {
            let m = keys::generate(Algorithm::Ed25519).map_err(|e| refused(e.to_string()))?;
            // Exposed to seal it for the store.
            let s = root
                .seal(AUDIT_KEY_BINDING, m.expose_secret())
                .map_err(|e| refused(e.to_string()))?;
            store
                .put_meta_if_absent(AUDIT_KEY_META, &s)
                .await
                .map_err(|e| refused(e.to_string()))?;
            // Another process cannot have raced us (the data dir is locked); read back what
            // is stored so the key in use is the key on disk.
            store
                .meta(AUDIT_KEY_META)
                .await
                .map_err(|e| refused(e.to_string()))?
                .unwrap_or(s)
        }
    };
    let material = root
        .unseal(AUDIT_KEY_BINDING, &sealed)
        .map_err(|_| refused("the audit signing key in the store failed its integrity check"))?;
    let signer = Signer::new(material)
        .map_err(|_| refused("the audit signing key in the store is not an Ed25519 key"))?;
    let pem = keys::pem("PUBLIC KEY", signer.public_key_der());
    let pub_path = dir.join(AUDIT_PUBLIC_KEY_FILE);
    if fs::read_to_string(&pub_path).ok().as_deref() != Some(pem.as_str()) {
        fs::write(&pub_path, pem).map_err(io(&pub_path))?;
    }
    Ok(signer)
}

fn parse_init_file(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let mut lines = text.lines();
    if lines.next()?.trim() != INIT_HEADER {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(lines.next()?.trim())
        .ok()
}

/// Writes `strongroom.init` atomically (temporary file, fsync, rename, fsync of the dir).
fn write_init_file(dir: &Path, check: &[u8]) -> Result<(), BootstrapError> {
    use base64::Engine;
    let tmp = dir.join(format!("{INIT_FILE}.tmp"));
    let path = dir.join(INIT_FILE);
    let text = format!(
        "{INIT_HEADER}\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(check)
    );
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Where a backup is restored to.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The backup file.
    pub backup: PathBuf,
    /// The root key the backup was made with (the original data dir's or cluster's).
    pub root_key_file: PathBuf,
    /// With no `database`: the new data dir (must not exist, or be empty).
    pub data_dir: PathBuf,
    /// Restore into this PostgreSQL database (must be empty) instead of a data dir.
    pub database: Option<PostgresOptions>,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup's header.
    pub header: crate::backup::BackupHeader,
    /// Rows restored per table.
    pub counts: Vec<(String, usize)>,
}

/// Restores a backup into an empty data dir or an empty PostgreSQL database. The backup is
/// opened and verified with the root key first; a wrong key, a changed byte or a target
/// that is not empty is refused before anything is written. A data dir is built under a
/// temporary name next to the target and renamed into place only when complete.
pub async fn restore(opts: RestoreOptions) -> Result<Restored, BootstrapError> {
    let root = read_root_key(&opts.root_key_file)?;
    let bytes = fs::read(&opts.backup).map_err(io(&opts.backup))?;
    let (header, mut snap) = crate::backup::decode(&root, &bytes).map_err(|e| {
        refused(format!(
            "{}: {e}; nothing was changed",
            opts.backup.display()
        ))
    })?;
    crate::backup::drop_node_settings(&mut snap);
    let counts = snap.counts();
    let check = root
        .seal(CHECK_BINDING, CHECK_VALUE)
        .map_err(|e| refused(e.to_string()))?;
    let not_empty = |what: String| {
        refused(format!(
            "{what} is not empty; restore only into an empty one (nothing was changed)"
        ))
    };
    match &opts.database {
        Some(pg) => {
            // The root key check and the initialised mark go in with the rows, in the one
            // transaction: nodes see a complete database or none.
            if let Some(meta) = snap.table_mut("meta") {
                use strongroom_store::snapshot::Cell;
                meta.rows
                    .push(vec![Cell::Text(ROOT_CHECK_META.into()), Cell::Bytes(check)]);
                meta.rows.push(vec![
                    Cell::Text(INITIALISED_META.into()),
                    Cell::Bytes(b"1".to_vec()),
                ]);
            }
            let store = PostgresStore::open(pg)
                .await
                .map_err(|e| refused(e.to_string()))?;
            let res = store.restore_snapshot(&snap).await;
            store.close().await;
            match res {
                Err(strongroom_store::StoreError::AlreadyExists(_)) => {
                    return Err(not_empty("the database".into()));
                }
                other => other.map_err(|e| refused(format!("restore failed: {e}")))?,
            }
        }
        None => {
            let dir = &opts.data_dir;
            let empty = match fs::read_dir(dir) {
                Ok(mut entries) => entries.next().is_none(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => return Err(io(dir)(e)),
            };
            if !empty {
                return Err(not_empty(format!("data dir {}", dir.display())));
            }
            let name = dir
                .file_name()
                .ok_or_else(|| refused(format!("{} is not a directory name", dir.display())))?;
            let suffix: String = strongroom_crypto::rand::bytes(4)
                .map_err(|e| refused(e.to_string()))?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let parent = dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = parent.join(format!(".{}.restoring-{suffix}", name.to_string_lossy()));
            let built = build_data_dir(&tmp, &snap, &check).await;
            if let Err(e) = built {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
            if let Err(e) = fs::rename(&tmp, dir) {
                let _ = fs::remove_dir_all(&tmp);
                return Err(io(dir)(e));
            }
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io(parent))?;
        }
    }
    Ok(Restored { header, counts })
}

/// A complete data dir at `dir`: the database with the snapshot's rows, then the init file
/// that marks it initialised (written last, as on a first start).
async fn build_data_dir(
    dir: &Path,
    snap: &strongroom_store::snapshot::Snapshot,
    check: &[u8],
) -> Result<(), BootstrapError> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(io(dir))?;
    let store = SqliteStore::open(&SqliteOptions {
        path: dir.join(DB_FILE),
        create_if_missing: true,
    })
    .await
    .map_err(|e| refused(e.to_string()))?;
    let res = store.restore_snapshot(snap).await;
    store.close().await;
    res.map_err(|e| refused(format!("restore failed: {e}")))?;
    write_init_file(dir, check)
}
