//! The SQLite store: one file in the data dir, WAL mode, `synchronous=FULL` (an acknowledged
//! write survives power loss), `secure_delete=ON` (freed pages are zeroed, so destroyed key
//! material does not linger), and a TRUNCATE checkpoint after every destruction so the old
//! pages leave the WAL too.
//!
//! Writes go through a pool of exactly one connection, so they are serialised in-process and
//! never meet `SQLITE_BUSY` from each other; reads use a separate pool. An I/O error, a full
//! disk or corruption reported by SQLite marks the store failed: every later call returns
//! `Unavailable` until restart. An fsync failure is never retried.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

/// Migrations, applied in order, each once, in a transaction. Never edit a released entry:
/// append a new one.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE key_rings (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    labels TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE keys (
    id BLOB PRIMARY KEY,
    ring TEXT NOT NULL REFERENCES key_rings(name),
    name TEXT NOT NULL,
    purpose TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    protection TEXT NOT NULL,
    exportable INTEGER NOT NULL,
    description TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    primary_version INTEGER,
    version_count INTEGER NOT NULL,
    rotation_period_secs INTEGER,
    next_rotation_time INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    UNIQUE (ring, name)
);
CREATE INDEX keys_next_rotation ON keys (next_rotation_time) WHERE next_rotation_time IS NOT NULL;
CREATE TABLE key_versions (
    key_id BLOB NOT NULL REFERENCES keys(id),
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    sealed_material BLOB,
    public_key BLOB,
    created_at INTEGER NOT NULL,
    destroy_time INTEGER,
    destroyed_at INTEGER,
    PRIMARY KEY (key_id, version)
);
CREATE INDEX key_versions_destroy ON key_versions (destroy_time) WHERE state = 'destroy_scheduled';
CREATE TABLE aliases (
    name TEXT PRIMARY KEY,
    key_id BLOB NOT NULL REFERENCES keys(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX aliases_key ON aliases (key_id);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    principal TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE principals (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    roles TEXT NOT NULL,
    labels TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    disabled_at INTEGER
);
CREATE TABLE policy_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    text TEXT,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
"#,
    ),
    (
        3,
        r#"
ALTER TABLE principals ADD COLUMN rate_limits TEXT NOT NULL DEFAULT '{}';
"#,
    ),
    (
        4,
        r#"
CREATE TABLE issuers (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL
);
"#,
    ),
    (
        5,
        r#"
ALTER TABLE principals ADD COLUMN tls_certs TEXT NOT NULL DEFAULT '[]';
CREATE TABLE principal_certs (
    fingerprint TEXT PRIMARY KEY,
    principal TEXT NOT NULL REFERENCES principals(name)
);
"#,
    ),
    (
        6,
        r#"
CREATE TABLE access_keys (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX access_keys_principal ON access_keys (principal);
"#,
    ),
    (
        7,
        r#"
ALTER TABLE keys ADD COLUMN deletion_time INTEGER;
CREATE INDEX keys_deletion_time ON keys (deletion_time) WHERE state = 'deletion_scheduled';
"#,
    ),
    (
        8,
        r#"
ALTER TABLE access_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE access_keys ADD COLUMN session_token_hash BLOB;
"#,
    ),
    (
        9,
        r#"
CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    key_id BLOB NOT NULL,
    grantee TEXT NOT NULL,
    retiring TEXT,
    token_hash BLOB NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX grants_key ON grants (key_id, grantee);
CREATE INDEX grants_retiring ON grants (retiring);
"#,
    ),
    (
        10,
        r#"
ALTER TABLE keys ADD COLUMN origin TEXT NOT NULL DEFAULT 'generated';
CREATE TABLE import_tokens (
    id TEXT PRIMARY KEY,
    key_id BLOB NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    wrapping TEXT NOT NULL,
    wrapping_algorithm TEXT NOT NULL,
    sealed_private BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
"#,
    ),
    (
        11,
        r#"
ALTER TABLE key_versions ADD COLUMN origin TEXT NOT NULL DEFAULT 'creation';
UPDATE key_versions SET origin = 'rotation' WHERE version > 1;
"#,
    ),
    (
        12,
        r#"
ALTER TABLE keys ADD COLUMN material_expires_at INTEGER;
CREATE INDEX keys_material_expiry ON keys (material_expires_at) WHERE material_expires_at IS NOT NULL;
"#,
    ),
    (
        13,
        r#"
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"#,
    ),
    (
        14,
        r#"
CREATE TABLE key_sets (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL
);
"#,
    ),
    (
        15,
        r#"
ALTER TABLE keys ADD COLUMN provider TEXT;
ALTER TABLE keys ADD COLUMN provider_key TEXT;
"#,
    ),
];

/// How to open a SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file.
    pub path: PathBuf,
    /// Create the file if it does not exist. When false, a missing file is an error.
    pub create_if_missing: bool,
}

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    failed: Arc<AtomicBool>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn connect_options(path: &Path, create: bool) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        .pragma("secure_delete", "ON")
}

impl SqliteStore {
    /// Opens (and if allowed creates) the database and applies pending migrations.
    pub async fn open(opts: &SqliteOptions) -> Result<Self> {
        let failed = Arc::new(AtomicBool::new(false));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect_options(&opts.path, opts.create_if_missing))
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", opts.path.display()))
            })?;
        let store_for_migrate = Self {
            reader: writer.clone(),
            writer,
            failed: failed.clone(),
            path: opts.path.clone(),
        };
        store_for_migrate.migrate().await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect_options(&opts.path, false))
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", opts.path.display()))
            })?;
        Ok(Self {
            reader,
            ..store_for_migrate
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes both pools, waiting for in-flight work.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    fn check(&self) -> Result<()> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(format!(
                "the store at {} failed after an I/O error; restart strongroom once the cause is fixed",
                self.path.display()
            )));
        }
        Ok(())
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        self.check()?;
        self.writer
            .begin()
            .await
            .map_err(|e| self.err(e, "transaction"))
    }

    /// Maps a sqlx error; fatal I/O conditions mark the store failed.
    fn err(&self, e: sqlx::Error, what: &'static str) -> StoreError {
        match &e {
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    return StoreError::AlreadyExists(what);
                }
                if db.is_foreign_key_violation() {
                    return StoreError::NotFound(what);
                }
                let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
                match code & 0xff {
                    // SQLITE_BUSY, SQLITE_LOCKED: transient.
                    5 | 6 => StoreError::Unavailable("database is busy".into()),
                    // SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB.
                    10 | 11 | 13 | 14 | 26 => self.fail(&e),
                    _ => StoreError::Unavailable(format!("database error on {what}")),
                }
            }
            sqlx::Error::Io(_) => self.fail(&e),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                StoreError::Unavailable("database connection pool exhausted or closed".into())
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(format!("{what}: {e}"))
            }
            _ => StoreError::Unavailable(format!("database error on {what}")),
        }
    }

    fn fail(&self, e: &sqlx::Error) -> StoreError {
        self.failed.store(true, Ordering::SeqCst);
        tracing::error!(path = %self.path.display(), error = %e, "store I/O failure; refusing further operations until restart");
        StoreError::Unavailable(format!(
            "I/O failure on {}; strongroom stopped using the store",
            self.path.display()
        ))
    }

    async fn checkpoint(&self) {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            let _ = self.err(e, "checkpoint");
        }
    }
}

/// The migrations table, in SQLite's types.
const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)";
/// No advisory lock: the single writer connection serialises migrations (and the data dir
/// is locked to one process).
const MIGRATION_LOCK: Option<i64> = None;
/// Seconds since the epoch, in SQL.
const NOW_SQL: &str = "unixepoch()";

/// A read transaction in WAL mode already sees one snapshot of the database.
const SNAPSHOT_ISOLATION: Option<&str> = None;
/// (table, column) of every table.
const CATALOG_COLUMNS: &str = "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid";

type Db = Sqlite;
type DbRow = SqliteRow;
type ThisStore = SqliteStore;

include!("sql_common.rs");
