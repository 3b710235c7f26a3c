//! The PostgreSQL store: several Strongroom nodes share one database, which users make
//! highly available with their usual tooling. The SQL is the SQLite store's
//! (`sql_common.rs`); what differs is here: column types (`BYTEA`, `BIGINT`, `BOOLEAN`, and
//! `COLLATE "C"` text so that ordering, and so pagination, is by bytes as in SQLite), a
//! connection pool shared by reads and writes, migrations serialised across nodes by an
//! advisory lock, and errors: a lost connection is `Unavailable` and retried by the next
//! request, never a reason to stop (PostgreSQL, not Strongroom, owns durability here).
//!
//! Key updates stay optimistic (`revision`), so two nodes racing on one key cannot both win.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

/// Migrations, the SQLite store's in PostgreSQL's types, with the same numbers: a new
/// migration is added to both lists. Never edit a released entry.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE meta (name TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE key_rings (
    name TEXT COLLATE "C" PRIMARY KEY,
    description TEXT COLLATE "C" NOT NULL,
    labels TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE keys (
    id BYTEA PRIMARY KEY,
    ring TEXT COLLATE "C" NOT NULL REFERENCES key_rings(name),
    name TEXT COLLATE "C" NOT NULL,
    purpose TEXT COLLATE "C" NOT NULL,
    algorithm TEXT COLLATE "C" NOT NULL,
    protection TEXT COLLATE "C" NOT NULL,
    exportable BOOLEAN NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    labels TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    primary_version BIGINT,
    version_count BIGINT NOT NULL,
    rotation_period_secs BIGINT,
    next_rotation_time BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    UNIQUE (ring, name)
);
CREATE INDEX keys_next_rotation ON keys (next_rotation_time) WHERE next_rotation_time IS NOT NULL;
CREATE TABLE key_versions (
    key_id BYTEA NOT NULL REFERENCES keys(id),
    version BIGINT NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    sealed_material BYTEA,
    public_key BYTEA,
    created_at BIGINT NOT NULL,
    destroy_time BIGINT,
    destroyed_at BIGINT,
    PRIMARY KEY (key_id, version)
);
CREATE INDEX key_versions_destroy ON key_versions (destroy_time) WHERE state = 'destroy_scheduled';
CREATE TABLE aliases (
    name TEXT COLLATE "C" PRIMARY KEY,
    key_id BYTEA NOT NULL REFERENCES keys(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX aliases_key ON aliases (key_id);
CREATE TABLE tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    hash BYTEA NOT NULL UNIQUE,
    principal TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE principals (
    name TEXT COLLATE "C" PRIMARY KEY,
    kind TEXT COLLATE "C" NOT NULL,
    roles TEXT COLLATE "C" NOT NULL,
    labels TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    disabled_at BIGINT
);
CREATE TABLE policy_versions (
    name TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    text TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (name, version)
);
"#,
    ),
    (
        3,
        r#"
ALTER TABLE principals ADD COLUMN rate_limits TEXT COLLATE "C" NOT NULL DEFAULT '{}';
"#,
    ),
    (
        4,
        r#"
CREATE TABLE issuers (
    name TEXT COLLATE "C" PRIMARY KEY,
    config TEXT COLLATE "C" NOT NULL
);
"#,
    ),
    (
        5,
        r#"
ALTER TABLE principals ADD COLUMN tls_certs TEXT COLLATE "C" NOT NULL DEFAULT '[]';
CREATE TABLE principal_certs (
    fingerprint TEXT COLLATE "C" PRIMARY KEY,
    principal TEXT COLLATE "C" NOT NULL REFERENCES principals(name)
);
"#,
    ),
    (
        6,
        r#"
CREATE TABLE access_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    principal TEXT COLLATE "C" NOT NULL,
    sealed_secret BYTEA NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX access_keys_principal ON access_keys (principal);
"#,
    ),
    (
        7,
        r#"
ALTER TABLE keys ADD COLUMN deletion_time BIGINT;
CREATE INDEX keys_deletion_time ON keys (deletion_time) WHERE state = 'deletion_scheduled';
"#,
    ),
    (
        8,
        r#"
ALTER TABLE access_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE access_keys ADD COLUMN session_token_hash BYTEA;
"#,
    ),
    (
        9,
        r#"
CREATE TABLE grants (
    id TEXT COLLATE "C" PRIMARY KEY,
    key_id BYTEA NOT NULL,
    grantee TEXT COLLATE "C" NOT NULL,
    retiring TEXT COLLATE "C",
    token_hash BYTEA NOT NULL UNIQUE,
    spec TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX grants_key ON grants (key_id, grantee);
CREATE INDEX grants_retiring ON grants (retiring);
"#,
    ),
    (
        10,
        r#"
ALTER TABLE keys ADD COLUMN origin TEXT COLLATE "C" NOT NULL DEFAULT 'generated';
CREATE TABLE import_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    key_id BYTEA NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    wrapping TEXT COLLATE "C" NOT NULL,
    wrapping_algorithm TEXT COLLATE "C" NOT NULL,
    sealed_private BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
"#,
    ),
    (
        11,
        r#"
ALTER TABLE key_versions ADD COLUMN origin TEXT COLLATE "C" NOT NULL DEFAULT 'creation';
UPDATE key_versions SET origin = 'rotation' WHERE version > 1;
"#,
    ),
    (
        12,
        r#"
ALTER TABLE keys ADD COLUMN material_expires_at BIGINT;
CREATE INDEX keys_material_expiry ON keys (material_expires_at) WHERE material_expires_at IS NOT NULL;
"#,
    ),
    (
        13,
        r#"
CREATE TABLE leases (
    name TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);
"#,
    ),
    (
        14,
        r#"
CREATE TABLE key_sets (
    name TEXT COLLATE "C" PRIMARY KEY,
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

/// Any number, the same on every node: migrations run under this advisory lock.
const MIGRATION_LOCK: Option<i64> = Some(0x5354_524f_4e47_0001);

/// How to open a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database?sslmode=…`
    pub url: String,
    /// Most connections this node holds.
    pub max_connections: u32,
}

/// The PostgreSQL implementation of [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    writer: PgPool,
    reader: PgPool,
    /// Never set: a PostgreSQL failure is not this node's to stop on (see the module docs).
    failed: Arc<AtomicBool>,
    /// The server, without credentials, for messages.
    target: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish()
    }
}

impl PostgresStore {
    /// Connects and applies pending migrations (one node at a time).
    pub async fn open(opts: &PostgresOptions) -> Result<Self> {
        let connect: PgConnectOptions = opts
            .url
            .parse()
            .map_err(|_| StoreError::Unavailable("the PostgreSQL URL does not parse".into()))?;
        let target = format!(
            "{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or("")
        );
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            // While the database is down a request fails (retryably) after this, rather than
            // hanging for as long as the outage lasts.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to {target}: {e}")))?;
        let store = Self {
            reader: pool.clone(),
            writer: pool,
            failed: Arc::new(AtomicBool::new(false)),
            target,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes the pool, waiting for in-flight work.
    pub async fn close(&self) {
        self.writer.close().await;
    }

    fn check(&self) -> Result<()> {
        Ok(())
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.writer
            .begin()
            .await
            .map_err(|e| self.err(e, "transaction"))
    }

    /// Maps a sqlx error. Nothing here is fatal: the next request tries again.
    fn err(&self, e: sqlx::Error, what: &'static str) -> StoreError {
        match &e {
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    return StoreError::AlreadyExists(what);
                }
                if db.is_foreign_key_violation() {
                    return StoreError::NotFound(what);
                }
                match db.code().as_deref() {
                    // serialization_failure, deadlock_detected: another node won the race.
                    Some("40001" | "40P01") => StoreError::Conflict,
                    // The server is shutting down or out of resources.
                    Some(c)
                        if c.starts_with("57") || c.starts_with("53") || c.starts_with("08") =>
                    {
                        StoreError::Unavailable(format!(
                            "PostgreSQL at {} is unavailable",
                            self.target
                        ))
                    }
                    _ => {
                        tracing::warn!(target_db = %self.target, code = ?db.code(), what, "PostgreSQL refused a statement");
                        StoreError::Unavailable(format!("database error on {what}"))
                    }
                }
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(format!("{what}: {e}"))
            }
            _ => StoreError::Unavailable(format!(
                "PostgreSQL at {} is unavailable ({what})",
                self.target
            )),
        }
    }

    /// PostgreSQL reclaims dead rows itself; nothing to do after a destruction.
    async fn checkpoint(&self) {}
}

/// The migrations table, in PostgreSQL's types.
const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";
/// Seconds since the epoch, in SQL.
const NOW_SQL: &str = "CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)";

/// One snapshot for the whole read, and no writes.
const SNAPSHOT_ISOLATION: Option<&str> =
    Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
/// (table, column) of every table in the schema in use.
const CATALOG_COLUMNS: &str = "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position";

type Db = Postgres;
type DbRow = PgRow;
type ThisStore = PostgresStore;

include!("sql_common.rs");
