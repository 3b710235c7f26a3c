// The SQL both stores share: row decoding and every `Store` method, written once and
// compiled into `sqlite` and `postgres`, which each `include!` this file after naming their
// `Db`, `DbRow` and `ThisStore` (with `reader`, `failed`, `check`, `begin`, `err` and
// `checkpoint`), and the constants `MIGRATIONS`, `SCHEMA_TABLE`, `MIGRATION_LOCK`,
// `NOW_SQL`, `SNAPSHOT_ISOLATION` and `CATALOG_COLUMNS`. The SQL text is the same on both databases: `$n` placeholders, standard
// types, `ON CONFLICT`. Keep it so.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use sqlx::{Row, Transaction};
use strongroom_crypto::{Algorithm, KeyId, Purpose};

use crate::model::*;
use crate::{AliasWrite, Result, Store, StoreError};

impl ThisStore {
    /// Applies the migrations this release knows and the database lacks, in one
    /// transaction (under the backend's `MIGRATION_LOCK`, if it has one); refuses a database
    /// migrated by a newer release.
    async fn migrate(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some(lock) = MIGRATION_LOCK {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e, "schema"))?;
        }
        sqlx::query(SCHEMA_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "schema"))?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err(e, "schema"))?;
        let newest_known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if let Some(newer) = applied.iter().find(|v| **v > newest_known) {
            return Err(StoreError::Unavailable(format!(
                "the database has schema version {newer}, newer than this strongroom knows ({newest_known}); upgrade strongroom"
            )));
        }
        let record = format!(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, {NOW_SQL})"
        );
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e, "schema"))?;
            sqlx::query(sqlx::AssertSqlSafe(record.clone()))
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e, "schema"))?;
        }
        tx.commit().await.map_err(|e| self.err(e, "schema"))?;
        Ok(())
    }
}

/// A table holding one JSON document per name (columns `name`, `config`).
#[derive(Clone, Copy)]
struct DocTable {
    table: &'static str,
    what: &'static str,
}

const ISSUERS: DocTable = DocTable {
    table: "issuers",
    what: "issuer",
};
const KEY_SETS: DocTable = DocTable {
    table: "key_sets",
    what: "key set",
};

/// How `put_doc` treats an existing document.
enum DocWrite {
    /// Create or replace.
    Upsert,
    /// `AlreadyExists` if the name is taken.
    Create,
    /// `NotFound` if the name is free.
    Update,
}

impl ThisStore {
    async fn put_doc<T: serde::Serialize>(
        &self,
        t: DocTable,
        name: &str,
        doc: &T,
        mode: DocWrite,
    ) -> Result<()> {
        let config = serde_json::to_string(doc)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", t.what)))?;
        let table = t.table;
        let sql = match mode {
            DocWrite::Upsert => format!(
                "INSERT INTO {table} (name, config) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET config = excluded.config"
            ),
            DocWrite::Create => format!("INSERT INTO {table} (name, config) VALUES ($1, $2)"),
            DocWrite::Update => format!("UPDATE {table} SET config = $2 WHERE name = $1"),
        };
        let mut tx = self.begin().await?;
        // The table name is one of the constants above, never input.
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(config)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, t.what))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound(t.what));
        }
        tx.commit().await.map_err(|e| self.err(e, t.what))
    }

    async fn doc<T: serde::de::DeserializeOwned>(
        &self,
        t: DocTable,
        name: &str,
    ) -> Result<Option<T>> {
        self.check()?;
        let sql = format!("SELECT config FROM {} WHERE name = $1", t.table);
        let c: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, t.what))?;
        c.map(|c| serde_json::from_str(&c).map_err(|_| corrupt(t.what)))
            .transpose()
    }

    async fn docs<T: serde::de::DeserializeOwned>(&self, t: DocTable) -> Result<Vec<T>> {
        self.check()?;
        let sql = format!("SELECT config FROM {} ORDER BY name", t.table);
        let cs: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, t.what))?;
        cs.iter()
            .map(|c| serde_json::from_str(c).map_err(|_| corrupt(t.what)))
            .collect()
    }

    async fn delete_doc(&self, t: DocTable, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let sql = format!("DELETE FROM {} WHERE name = $1", t.table);
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, t.what))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound(t.what));
        }
        tx.commit().await.map_err(|e| self.err(e, t.what))
    }
}

const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;

fn limit_of(page: &PageRequest) -> u32 {
    match page.limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

fn paginate<T>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Page<T> {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(&cursor)
    } else {
        None
    };
    Page { items, next }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn key_id_of(b: &[u8]) -> Result<KeyId> {
    let a: [u8; 16] = b.try_into().map_err(|_| corrupt("key id"))?;
    Ok(KeyId::from_bytes(a))
}

fn labels_of(s: &str) -> Result<Labels> {
    serde_json::from_str(s).map_err(|_| corrupt("labels"))
}

fn labels_text(l: &Labels) -> String {
    // Invariant: a map of strings always serialises.
    serde_json::to_string(l).unwrap_or_else(|_| "{}".into())
}

fn parse<T: FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse().map_err(|_| corrupt(what))
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

fn ring_of(r: &DbRow) -> Result<KeyRingRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("key ring row: {e}"));
    Ok(KeyRingRecord {
        name: parse(r.try_get::<&str, _>("name").map_err(g)?, "ring name")?,
        description: r.try_get("description").map_err(g)?,
        labels: labels_of(r.try_get("labels").map_err(g)?)?,
        created_at: Timestamp(r.try_get("created_at").map_err(g)?),
    })
}

fn key_of(r: &DbRow) -> Result<KeyRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("key row: {e}"));
    Ok(KeyRecord {
        id: key_id_of(r.try_get("id").map_err(g)?)?,
        ring: parse(r.try_get::<&str, _>("ring").map_err(g)?, "ring name")?,
        name: parse(r.try_get::<&str, _>("name").map_err(g)?, "key name")?,
        purpose: parse::<Purpose>(r.try_get::<&str, _>("purpose").map_err(g)?, "purpose")?,
        algorithm: parse::<Algorithm>(r.try_get::<&str, _>("algorithm").map_err(g)?, "algorithm")?,
        protection: parse(r.try_get::<&str, _>("protection").map_err(g)?, "protection")?,
        external: match (
            r.try_get::<Option<String>, _>("provider").map_err(g)?,
            r.try_get::<Option<String>, _>("provider_key").map_err(g)?,
        ) {
            (None, None) => None,
            (Some(provider), Some(key)) => Some(ExternalKey { provider, key }),
            _ => return Err(corrupt("external key binding")),
        },
        origin: parse(r.try_get::<&str, _>("origin").map_err(g)?, "key origin")?,
        exportable: r.try_get("exportable").map_err(g)?,
        description: r.try_get("description").map_err(g)?,
        labels: labels_of(r.try_get("labels").map_err(g)?)?,
        state: parse(r.try_get::<&str, _>("state").map_err(g)?, "key state")?,
        primary_version: r
            .try_get::<Option<i64>, _>("primary_version")
            .map_err(g)?
            .map(|v| u32::try_from(v).map_err(|_| corrupt("primary version")))
            .transpose()?,
        version_count: u32::try_from(r.try_get::<i64, _>("version_count").map_err(g)?)
            .map_err(|_| corrupt("version count"))?,
        rotation_period_secs: r.try_get("rotation_period_secs").map_err(g)?,
        next_rotation_time: ts(r.try_get("next_rotation_time").map_err(g)?),
        deletion_time: ts(r.try_get("deletion_time").map_err(g)?),
        material_expires_at: ts(r.try_get("material_expires_at").map_err(g)?),
        created_at: Timestamp(r.try_get("created_at").map_err(g)?),
        updated_at: Timestamp(r.try_get("updated_at").map_err(g)?),
        revision: r.try_get("revision").map_err(g)?,
    })
}

fn version_of(r: &DbRow) -> Result<VersionRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("version row: {e}"));
    Ok(VersionRecord {
        key_id: key_id_of(r.try_get("key_id").map_err(g)?)?,
        version: u32::try_from(r.try_get::<i64, _>("version").map_err(g)?)
            .map_err(|_| corrupt("version"))?,
        state: parse(r.try_get::<&str, _>("state").map_err(g)?, "version state")?,
        origin: parse(r.try_get::<&str, _>("origin").map_err(g)?, "version origin")?,
        sealed_material: r.try_get("sealed_material").map_err(g)?,
        public_key: r.try_get("public_key").map_err(g)?,
        created_at: Timestamp(r.try_get("created_at").map_err(g)?),
        destroy_time: ts(r.try_get("destroy_time").map_err(g)?),
        destroyed_at: ts(r.try_get("destroyed_at").map_err(g)?),
    })
}

fn alias_of(r: &DbRow) -> Result<AliasRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("alias row: {e}"));
    Ok(AliasRecord {
        name: parse(r.try_get::<&str, _>("name").map_err(g)?, "alias name")?,
        key_id: key_id_of(r.try_get("key_id").map_err(g)?)?,
        created_at: Timestamp(r.try_get("created_at").map_err(g)?),
        updated_at: Timestamp(r.try_get("updated_at").map_err(g)?),
    })
}

fn principal_of(r: &DbRow) -> Result<PrincipalRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("principal row: {e}"));
    Ok(PrincipalRecord {
        name: parse(r.try_get::<&str, _>("name").map_err(g)?, "principal name")?,
        kind: r.try_get("kind").map_err(g)?,
        roles: serde_json::from_str(r.try_get("roles").map_err(g)?)
            .map_err(|_| corrupt("roles"))?,
        labels: labels_of(r.try_get("labels").map_err(g)?)?,
        description: r.try_get("description").map_err(g)?,
        created_at: Timestamp(r.try_get("created_at").map_err(g)?),
        updated_at: Timestamp(r.try_get("updated_at").map_err(g)?),
        disabled_at: ts(r.try_get("disabled_at").map_err(g)?),
        rate_limits: serde_json::from_str(r.try_get("rate_limits").map_err(g)?)
            .map_err(|_| corrupt("rate limits"))?,
        tls_certs: serde_json::from_str(r.try_get("tls_certs").map_err(g)?)
            .map_err(|_| corrupt("tls certs"))?,
    })
}

fn policy_of(r: &DbRow) -> Result<PolicyRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("policy row: {e}"));
    Ok(PolicyRecord {
        name: r.try_get("name").map_err(g)?,
        version: r.try_get("version").map_err(g)?,
        text: r.try_get("text").map_err(g)?,
        created_at: Timestamp(r.try_get("created_at").map_err(g)?),
        created_by: r.try_get("created_by").map_err(g)?,
    })
}

fn access_key_of(r: &DbRow) -> Result<AccessKeyRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("access key row: {e}"));
    Ok(AccessKeyRecord {
        id: r.try_get("id").map_err(g)?,
        principal: r.try_get("principal").map_err(g)?,
        sealed_secret: r.try_get("sealed_secret").map_err(g)?,
        description: r.try_get("description").map_err(g)?,
        created_at: Timestamp(r.try_get("created_at").map_err(g)?),
        revoked_at: ts(r.try_get("revoked_at").map_err(g)?),
        expires_at: ts(r.try_get("expires_at").map_err(g)?),
        session_token_hash: r.try_get("session_token_hash").map_err(g)?,
    })
}

/// The parts of a grant kept as JSON in `grants.spec`.
#[derive(serde::Serialize, serde::Deserialize)]
struct GrantSpec {
    actions: Vec<String>,
    context_subset: Option<BTreeMap<String, String>>,
    context_equals: Option<BTreeMap<String, String>>,
    name: Option<String>,
    created_by: String,
}

fn grant_of(r: &DbRow) -> Result<GrantRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("grant row: {e}"));
    let spec: String = r.try_get("spec").map_err(g)?;
    let spec: GrantSpec = serde_json::from_str(&spec).map_err(|_| corrupt("grant"))?;
    Ok(GrantRecord {
        id: r.try_get("id").map_err(g)?,
        key_id: key_id_of(r.try_get("key_id").map_err(g)?)?,
        grantee: r.try_get("grantee").map_err(g)?,
        retiring_principal: r.try_get("retiring").map_err(g)?,
        actions: spec.actions,
        context_subset: spec.context_subset,
        context_equals: spec.context_equals,
        name: spec.name,
        token_hash: r.try_get("token_hash").map_err(g)?,
        created_at: Timestamp(r.try_get("created_at").map_err(g)?),
        created_by: spec.created_by,
    })
}

fn import_token_of(r: &DbRow) -> Result<ImportTokenRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("import token row: {e}"));
    Ok(ImportTokenRecord {
        id: r.try_get("id").map_err(g)?,
        key_id: key_id_of(r.try_get("key_id").map_err(g)?)?,
        token_hash: r.try_get("token_hash").map_err(g)?,
        wrapping: r.try_get("wrapping").map_err(g)?,
        wrapping_algorithm: parse::<Algorithm>(
            r.try_get::<&str, _>("wrapping_algorithm").map_err(g)?,
            "wrapping algorithm",
        )?,
        sealed_private: r.try_get("sealed_private").map_err(g)?,
        expires_at: Timestamp(r.try_get("expires_at").map_err(g)?),
        used_at: ts(r.try_get("used_at").map_err(g)?),
    })
}

fn token_of(r: &DbRow) -> Result<TokenRecord> {
    let g = |e: sqlx::Error| StoreError::Corrupt(format!("token row: {e}"));
    let hash: Vec<u8> = r.try_get("hash").map_err(g)?;
    Ok(TokenRecord {
        id: r.try_get("id").map_err(g)?,
        hash: hash.try_into().map_err(|_| corrupt("token hash"))?,
        principal: r.try_get("principal").map_err(g)?,
        description: r.try_get("description").map_err(g)?,
        created_at: Timestamp(r.try_get("created_at").map_err(g)?),
        expires_at: ts(r.try_get("expires_at").map_err(g)?),
        revoked_at: ts(r.try_get("revoked_at").map_err(g)?),
    })
}

async fn upsert_version(
    tx: &mut Transaction<'static, Db>,
    v: &VersionRecord,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO key_versions (key_id, version, state, sealed_material, public_key, created_at, destroy_time, destroyed_at, origin)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (key_id, version) DO UPDATE SET
           state = excluded.state,
           sealed_material = excluded.sealed_material,
           public_key = excluded.public_key,
           destroy_time = excluded.destroy_time,
           destroyed_at = excluded.destroyed_at",
    )
    .bind(v.key_id.as_bytes().as_slice())
    .bind(i64::from(v.version))
    .bind(v.state.as_str())
    .bind(v.sealed_material.as_deref())
    .bind(v.public_key.as_deref())
    .bind(v.created_at.0)
    .bind(v.destroy_time.map(|t| t.0))
    .bind(v.destroyed_at.map(|t| t.0))
    .bind(v.origin.as_str())
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

#[async_trait]
impl Store for ThisStore {
    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.check()?;
        sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "setting"))
    }

    async fn put_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "setting"))?;
        tx.commit().await.map_err(|e| self.err(e, "setting"))
    }

    async fn put_meta_if_absent(&self, name: &str, value: &[u8]) -> Result<bool> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e, "setting"))?;
        tx.commit().await.map_err(|e| self.err(e, "setting"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn create_key_ring(&self, ring: &KeyRingRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO key_rings (name, description, labels, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(ring.name.as_str())
        .bind(&ring.description)
        .bind(labels_text(&ring.labels))
        .bind(ring.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e, "key ring"))?;
        tx.commit().await.map_err(|e| self.err(e, "key ring"))
    }

    async fn key_ring(&self, name: &RingName) -> Result<Option<Arc<KeyRingRecord>>> {
        self.check()?;
        sqlx::query("SELECT * FROM key_rings WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "key ring"))?
            .as_ref()
            .map(|r| ring_of(r).map(Arc::new))
            .transpose()
    }

    async fn list_key_rings(&self, page: &PageRequest) -> Result<Page<KeyRingRecord>> {
        self.check()?;
        let limit = limit_of(page);
        let rows = sqlx::query("SELECT * FROM key_rings WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "key rings"))?;
        let items = rows.iter().map(ring_of).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |r| r.name.to_string()))
    }

    async fn create_key(&self, key: &KeyRecord, versions: &[VersionRecord]) -> Result<()> {
        let mut tx = self.begin().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM key_rings WHERE name = $1")
            .bind(key.ring.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e, "key ring"))?;
        if exists.is_none() {
            return Err(StoreError::NotFound("key ring"));
        }
        sqlx::query(
            "INSERT INTO keys (id, ring, name, purpose, algorithm, protection, exportable, description, labels, state,
                               primary_version, version_count, rotation_period_secs, next_rotation_time, created_at, updated_at, revision,
                               deletion_time, origin, material_expires_at, provider, provider_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
        )
        .bind(key.id.as_bytes().as_slice())
        .bind(key.ring.as_str())
        .bind(key.name.as_str())
        .bind(key.purpose.as_str())
        .bind(key.algorithm.name())
        .bind(key.protection.as_str())
        .bind(key.exportable)
        .bind(&key.description)
        .bind(labels_text(&key.labels))
        .bind(key.state.as_str())
        .bind(key.primary_version.map(i64::from))
        .bind(i64::from(key.version_count))
        .bind(key.rotation_period_secs)
        .bind(key.next_rotation_time.map(|t| t.0))
        .bind(key.created_at.0)
        .bind(key.updated_at.0)
        .bind(key.revision)
        .bind(key.deletion_time.map(|t| t.0))
        .bind(key.origin.as_str())
        .bind(key.material_expires_at.map(|t| t.0))
        .bind(key.external.as_ref().map(|e| e.provider.as_str()))
        .bind(key.external.as_ref().map(|e| e.key.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e, "key"))?;
        for v in versions {
            if v.key_id != key.id {
                return Err(StoreError::Corrupt("version of another key".into()));
            }
            upsert_version(&mut tx, v)
                .await
                .map_err(|e| self.err(e, "key version"))?;
        }
        tx.commit().await.map_err(|e| self.err(e, "key"))
    }

    async fn key(&self, ring: &RingName, name: &KeyName) -> Result<Option<Arc<KeyRecord>>> {
        self.check()?;
        sqlx::query("SELECT * FROM keys WHERE ring = $1 AND name = $2")
            .bind(ring.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "key"))?
            .as_ref()
            .map(|r| key_of(r).map(Arc::new))
            .transpose()
    }

    async fn key_by_id(&self, id: KeyId) -> Result<Option<Arc<KeyRecord>>> {
        self.check()?;
        sqlx::query("SELECT * FROM keys WHERE id = $1")
            .bind(id.as_bytes().as_slice())
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "key"))?
            .as_ref()
            .map(|r| key_of(r).map(Arc::new))
            .transpose()
    }

    async fn list_keys(&self, ring: &RingName, page: &PageRequest) -> Result<Page<KeyRecord>> {
        self.check()?;
        let limit = limit_of(page);
        let rows =
            sqlx::query("SELECT * FROM keys WHERE ring = $1 AND name > $2 ORDER BY name LIMIT $3")
                .bind(ring.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.reader)
                .await
                .map_err(|e| self.err(e, "keys"))?;
        let items = rows.iter().map(key_of).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |k| k.name.to_string()))
    }

    async fn list_all_keys(&self, page: &PageRequest) -> Result<Page<KeyRecord>> {
        self.check()?;
        let limit = limit_of(page);
        // Ids are stored as their 16 bytes, whose order is the order of their text.
        let after: Vec<u8> = match page.after.as_deref() {
            None | Some("") => Vec::new(),
            Some(a) => a
                .parse::<KeyId>()
                .map_err(|_| StoreError::Corrupt("page cursor is not a key id".into()))?
                .as_bytes()
                .to_vec(),
        };
        let rows = sqlx::query("SELECT * FROM keys WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after.as_slice())
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "keys"))?;
        let items = rows.iter().map(key_of).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |k| k.id.to_string()))
    }

    async fn update_key(
        &self,
        expected_revision: i64,
        key: &KeyRecord,
        versions: &[VersionRecord],
    ) -> Result<()> {
        if key.revision != expected_revision + 1 {
            return Err(StoreError::Corrupt(
                "update must bump the revision by one".into(),
            ));
        }
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "UPDATE keys SET exportable = $1, description = $2, labels = $3, state = $4, primary_version = $5,
                             version_count = $6, rotation_period_secs = $7, next_rotation_time = $8, updated_at = $9, revision = $10,
                             deletion_time = $13, material_expires_at = $14
             WHERE id = $11 AND revision = $12",
        )
        .bind(key.exportable)
        .bind(&key.description)
        .bind(labels_text(&key.labels))
        .bind(key.state.as_str())
        .bind(key.primary_version.map(i64::from))
        .bind(i64::from(key.version_count))
        .bind(key.rotation_period_secs)
        .bind(key.next_rotation_time.map(|t| t.0))
        .bind(key.updated_at.0)
        .bind(key.revision)
        .bind(key.id.as_bytes().as_slice())
        .bind(expected_revision)
        .bind(key.deletion_time.map(|t| t.0))
        .bind(key.material_expires_at.map(|t| t.0))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e, "key"))?;
        if r.rows_affected() != 1 {
            let exists: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM keys WHERE id = $1")
                .bind(key.id.as_bytes().as_slice())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e, "key"))?;
            return Err(if exists.is_some() {
                StoreError::Conflict
            } else {
                StoreError::NotFound("key")
            });
        }
        for v in versions {
            if v.key_id != key.id {
                return Err(StoreError::Corrupt("version of another key".into()));
            }
            upsert_version(&mut tx, v)
                .await
                .map_err(|e| self.err(e, "key version"))?;
        }
        tx.commit().await.map_err(|e| self.err(e, "key"))?;
        // Material was wiped (a destruction, or imported material deleted): make sure the
        // freed pages leave the WAL too.
        if versions.iter().any(|v| v.sealed_material.is_none()) {
            self.checkpoint().await;
        }
        Ok(())
    }

    async fn version(&self, key_id: KeyId, version: u32) -> Result<Option<Arc<VersionRecord>>> {
        self.check()?;
        sqlx::query("SELECT * FROM key_versions WHERE key_id = $1 AND version = $2")
            .bind(key_id.as_bytes().as_slice())
            .bind(i64::from(version))
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "key version"))?
            .as_ref()
            .map(|r| version_of(r).map(Arc::new))
            .transpose()
    }

    async fn list_versions(
        &self,
        key_id: KeyId,
        page: &PageRequest,
    ) -> Result<Page<VersionRecord>> {
        self.check()?;
        let limit = limit_of(page);
        let after: i64 = match &page.after {
            None => 0,
            Some(s) => s.parse().map_err(|_| StoreError::NotFound("page cursor"))?,
        };
        let rows = sqlx::query("SELECT * FROM key_versions WHERE key_id = $1 AND version > $2 ORDER BY version LIMIT $3")
            .bind(key_id.as_bytes().as_slice())
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "key versions"))?;
        let items = rows.iter().map(version_of).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |v| v.version.to_string()))
    }

    async fn keys_due_for_rotation(&self, now: Timestamp, limit: u32) -> Result<Vec<KeyId>> {
        self.check()?;
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT id FROM keys WHERE next_rotation_time IS NOT NULL AND next_rotation_time <= $1 ORDER BY next_rotation_time LIMIT $2",
        )
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| self.err(e, "keys"))?;
        rows.iter().map(|b| key_id_of(b)).collect()
    }

    async fn snapshot(&self) -> Result<crate::snapshot::Snapshot> {
        use crate::snapshot::{Cell, ColumnType, NOT_STATE, Snapshot, TABLES, TableRows};
        self.check()?;
        let e = |e| self.err(e, "snapshot");
        let mut tx = self.reader.begin().await.map_err(e)?;
        if let Some(sql) = SNAPSHOT_ISOLATION {
            sqlx::query(sql).execute(&mut *tx).await.map_err(e)?;
        }
        // Nothing may be left out silently: every table and column must be known.
        let catalog: Vec<(String, String)> = sqlx::query_as(CATALOG_COLUMNS)
            .fetch_all(&mut *tx)
            .await
            .map_err(e)?;
        for (table, column) in &catalog {
            if NOT_STATE.contains(&table.as_str()) {
                continue;
            }
            let known = crate::snapshot::spec(table)
                .is_some_and(|t| crate::snapshot::column_type(t, column).is_some());
            if !known {
                return Err(StoreError::Corrupt(format!(
                    "the store has {table}.{column}, which snapshots do not cover (snapshot::TABLES is out of date)"
                )));
            }
        }
        let schema_version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(e)?;
        let mut tables = Vec::new();
        for t in TABLES {
            let cols: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
            let sql = format!(
                "SELECT {} FROM {} ORDER BY {}",
                cols.join(", "),
                t.name,
                t.order_by
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await
                .map_err(e)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut cells = Vec::with_capacity(cols.len());
                for (i, (_, ty)) in t.columns.iter().enumerate() {
                    let cell = match ty {
                        ColumnType::Text => row
                            .try_get::<Option<String>, _>(i)
                            .map(|v| v.map_or(Cell::Null, Cell::Text)),
                        ColumnType::Int => row
                            .try_get::<Option<i64>, _>(i)
                            .map(|v| v.map_or(Cell::Null, Cell::Int)),
                        ColumnType::Bytes => row
                            .try_get::<Option<Vec<u8>>, _>(i)
                            .map(|v| v.map_or(Cell::Null, Cell::Bytes)),
                        ColumnType::Bool => row
                            .try_get::<Option<bool>, _>(i)
                            .map(|v| v.map_or(Cell::Null, Cell::Bool)),
                    }
                    .map_err(e)?;
                    cells.push(cell);
                }
                out.push(cells);
            }
            tables.push(TableRows {
                name: t.name.to_string(),
                columns: cols.iter().map(|c| c.to_string()).collect(),
                rows: out,
            });
        }
        tx.rollback().await.map_err(e)?;
        Ok(Snapshot {
            schema_version: schema_version.unwrap_or(0),
            tables,
        })
    }

    async fn restore_snapshot(&self, snap: &crate::snapshot::Snapshot) -> Result<()> {
        use crate::snapshot::{Cell, ColumnType, TABLES};
        let e = |e| self.err(e, "restore");
        let mut tx = self.begin().await?;
        for t in TABLES {
            let sql = format!("SELECT COUNT(*) FROM {}", t.name);
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *tx)
                .await
                .map_err(e)?;
            if n > 0 {
                return Err(StoreError::AlreadyExists("data"));
            }
        }
        // Parents before children: the order of TABLES, whatever the snapshot's order.
        for t in TABLES {
            let Some(rows) = snap.table(t.name) else {
                continue;
            };
            let types = rows
                .columns
                .iter()
                .map(|c| {
                    crate::snapshot::column_type(t, c).ok_or_else(|| {
                        StoreError::Corrupt(format!("snapshot: unknown column {}.{c}", t.name))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let params: Vec<String> = (1..=types.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                t.name,
                rows.columns.join(", "),
                params.join(", ")
            );
            for row in &rows.rows {
                if row.len() != types.len() {
                    return Err(StoreError::Corrupt(format!(
                        "snapshot: a row of {} has the wrong number of values",
                        t.name
                    )));
                }
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                for (cell, ty) in row.iter().zip(&types) {
                    // A NULL is bound with its column's type (PostgreSQL checks it).
                    q = match (cell, ty) {
                        (Cell::Null, ColumnType::Text) => q.bind(None::<String>),
                        (Cell::Null, ColumnType::Int) => q.bind(None::<i64>),
                        (Cell::Null, ColumnType::Bytes) => q.bind(None::<Vec<u8>>),
                        (Cell::Null, ColumnType::Bool) => q.bind(None::<bool>),
                        (Cell::Text(v), ColumnType::Text) => q.bind(v.clone()),
                        (Cell::Int(v), ColumnType::Int) => q.bind(*v),
                        (Cell::Bytes(v), ColumnType::Bytes) => q.bind(v.clone()),
                        (Cell::Bool(v), ColumnType::Bool) => q.bind(*v),
                        _ => {
                            return Err(StoreError::Corrupt(format!(
                                "snapshot: a value of {} has the wrong type",
                                t.name
                            )));
                        }
                    };
                }
                q.execute(&mut *tx).await.map_err(e)?;
            }
        }
        tx.commit().await.map_err(e)?;
        Ok(())
    }

    async fn inventory(&self, now: Timestamp) -> Result<Inventory> {
        self.check()?;
        let e = |e| self.err(e, "keys");
        let keys: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT state, protection, COUNT(*) FROM keys GROUP BY state, protection ORDER BY state, protection",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(e)?;
        let versions: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM key_versions GROUP BY state ORDER BY state",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(e)?;
        let rotation_overdue: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM keys k LEFT JOIN key_versions v
               ON v.key_id = k.id AND v.version = k.primary_version
             WHERE k.state = 'enabled' AND k.rotation_period_secs IS NOT NULL
               AND (k.next_rotation_time <= $1 OR v.created_at + k.rotation_period_secs <= $1)",
        )
        .bind(now.0)
        .fetch_one(&self.reader)
        .await
        .map_err(e)?;
        let next_destruction: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(destroy_time) FROM key_versions WHERE state = 'destroy_scheduled'",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(e)?;
        let next_key_deletion: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(deletion_time) FROM keys WHERE state = 'deletion_scheduled'",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(e)?;
        Ok(Inventory {
            keys,
            versions,
            rotation_overdue,
            next_destruction: next_destruction.map(Timestamp),
            next_key_deletion: next_key_deletion.map(Timestamp),
        })
    }

    async fn keys_due_for_deletion(&self, now: Timestamp, limit: u32) -> Result<Vec<KeyId>> {
        self.check()?;
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT id FROM keys WHERE state = 'deletion_scheduled' AND deletion_time <= $1 ORDER BY deletion_time LIMIT $2",
        )
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| self.err(e, "keys"))?;
        rows.iter().map(|b| key_id_of(b)).collect()
    }

    async fn keys_due_for_material_expiry(&self, now: Timestamp, limit: u32) -> Result<Vec<KeyId>> {
        self.check()?;
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT id FROM keys WHERE material_expires_at <= $1 AND state IN ('enabled', 'disabled')
             ORDER BY material_expires_at LIMIT $2",
        )
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| self.err(e, "keys"))?;
        rows.iter().map(|b| key_id_of(b)).collect()
    }

    async fn versions_due_for_destruction(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(KeyId, u32)>> {
        self.check()?;
        let rows = sqlx::query(
            "SELECT key_id, version FROM key_versions WHERE state = 'destroy_scheduled' AND destroy_time <= $1 ORDER BY destroy_time LIMIT $2",
        )
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| self.err(e, "key versions"))?;
        rows.iter()
            .map(|r| {
                let id = key_id_of(r.try_get("key_id").map_err(|_| corrupt("key id"))?)?;
                let v: i64 = r.try_get("version").map_err(|_| corrupt("version"))?;
                Ok((id, u32::try_from(v).map_err(|_| corrupt("version"))?))
            })
            .collect()
    }

    async fn put_alias(&self, alias: &AliasRecord, mode: AliasWrite) -> Result<()> {
        let mut tx = self.begin().await?;
        let key_exists: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM keys WHERE id = $1")
            .bind(alias.key_id.as_bytes().as_slice())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err(e, "key"))?;
        if key_exists.is_none() {
            return Err(StoreError::NotFound("key"));
        }
        match mode {
            AliasWrite::Create => {
                sqlx::query("INSERT INTO aliases (name, key_id, created_at, updated_at) VALUES ($1, $2, $3, $4)")
                    .bind(alias.name.as_str())
                    .bind(alias.key_id.as_bytes().as_slice())
                    .bind(alias.created_at.0)
                    .bind(alias.updated_at.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, "alias"))?;
            }
            AliasWrite::Update => {
                let r =
                    sqlx::query("UPDATE aliases SET key_id = $1, updated_at = $2 WHERE name = $3")
                        .bind(alias.key_id.as_bytes().as_slice())
                        .bind(alias.updated_at.0)
                        .bind(alias.name.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, "alias"))?;
                if r.rows_affected() != 1 {
                    return Err(StoreError::NotFound("alias"));
                }
            }
        }
        tx.commit().await.map_err(|e| self.err(e, "alias"))
    }

    async fn alias(&self, name: &AliasName) -> Result<Option<Arc<AliasRecord>>> {
        self.check()?;
        sqlx::query("SELECT * FROM aliases WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "alias"))?
            .as_ref()
            .map(|r| alias_of(r).map(Arc::new))
            .transpose()
    }

    async fn delete_alias(&self, name: &AliasName) -> Result<()> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("DELETE FROM aliases WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "alias"))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound("alias"));
        }
        tx.commit().await.map_err(|e| self.err(e, "alias"))
    }

    async fn list_aliases(
        &self,
        key_id: Option<KeyId>,
        page: &PageRequest,
    ) -> Result<Page<AliasRecord>> {
        self.check()?;
        let limit = limit_of(page);
        let after = page.after.as_deref().unwrap_or("");
        let rows =
            match key_id {
                Some(id) => sqlx::query(
                    "SELECT * FROM aliases WHERE key_id = $1 AND name > $2 ORDER BY name LIMIT $3",
                )
                .bind(id.as_bytes().as_slice())
                .bind(after)
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.reader)
                .await,
                None => {
                    sqlx::query("SELECT * FROM aliases WHERE name > $1 ORDER BY name LIMIT $2")
                        .bind(after)
                        .bind(i64::from(limit) + 1)
                        .fetch_all(&self.reader)
                        .await
                }
            }
            .map_err(|e| self.err(e, "aliases"))?;
        let items = rows.iter().map(alias_of).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |a| a.name.to_string()))
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO tokens (id, hash, principal, description, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(t.hash.as_slice())
        .bind(&t.principal)
        .bind(&t.description)
        .bind(t.created_at.0)
        .bind(t.expires_at.map(|x| x.0))
        .bind(t.revoked_at.map(|x| x.0))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e, "token"))?;
        tx.commit().await.map_err(|e| self.err(e, "token"))
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Arc<TokenRecord>>> {
        self.check()?;
        sqlx::query("SELECT * FROM tokens WHERE hash = $1")
            .bind(hash.as_slice())
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "token"))?
            .as_ref()
            .map(|r| token_of(r).map(Arc::new))
            .transpose()
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        self.check()?;
        sqlx::query("SELECT * FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "token"))?
            .as_ref()
            .map(token_of)
            .transpose()
    }

    async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        let r =
            sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(at.0)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e, "token"))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound("token"));
        }
        tx.commit().await.map_err(|e| self.err(e, "token"))
    }

    async fn list_tokens(&self, page: &PageRequest) -> Result<Page<TokenRecord>> {
        self.check()?;
        let limit = limit_of(page);
        let rows = sqlx::query("SELECT * FROM tokens WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "tokens"))?;
        let items = rows.iter().map(token_of).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |t| t.id.clone()))
    }

    async fn put_principal(&self, p: &PrincipalRecord, mode: AliasWrite) -> Result<()> {
        let mut tx = self.begin().await?;
        // Invariant: a list of strings always serialises.
        let roles = serde_json::to_string(&p.roles).unwrap_or_else(|_| "[]".into());
        let r = match mode {
            AliasWrite::Create => sqlx::query(
                "INSERT INTO principals (name, kind, roles, labels, description, created_at, updated_at, disabled_at, rate_limits, tls_certs)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            ),
            AliasWrite::Update => sqlx::query(
                "UPDATE principals SET kind = $2, roles = $3, labels = $4, description = $5, created_at = $6, updated_at = $7, disabled_at = $8, rate_limits = $9, tls_certs = $10
                 WHERE name = $1",
            ),
        }
        .bind(p.name.as_str())
        .bind(&p.kind)
        .bind(roles)
        .bind(labels_text(&p.labels))
        .bind(&p.description)
        .bind(p.created_at.0)
        .bind(p.updated_at.0)
        .bind(p.disabled_at.map(|t| t.0))
        .bind(serde_json::to_string(&p.rate_limits).unwrap_or_else(|_| "{}".into()))
        .bind(serde_json::to_string(&p.tls_certs).unwrap_or_else(|_| "[]".into()))
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e, "principal"))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound("principal"));
        }
        sqlx::query("DELETE FROM principal_certs WHERE principal = $1")
            .bind(p.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "principal"))?;
        for fp in &p.tls_certs {
            sqlx::query("INSERT INTO principal_certs (fingerprint, principal) VALUES ($1, $2)")
                .bind(fp)
                .bind(p.name.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e, "client certificate"))?;
        }
        tx.commit().await.map_err(|e| self.err(e, "principal"))
    }

    async fn principal(&self, name: &PrincipalName) -> Result<Option<Arc<PrincipalRecord>>> {
        self.check()?;
        sqlx::query("SELECT * FROM principals WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "principal"))?
            .as_ref()
            .map(|r| principal_of(r).map(Arc::new))
            .transpose()
    }

    async fn principal_by_cert(&self, fingerprint: &str) -> Result<Option<PrincipalRecord>> {
        self.check()?;
        sqlx::query("SELECT p.* FROM principals p JOIN principal_certs c ON c.principal = p.name WHERE c.fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "principal"))?
            .as_ref()
            .map(principal_of)
            .transpose()
    }

    async fn list_principals(&self, page: &PageRequest) -> Result<Page<PrincipalRecord>> {
        self.check()?;
        let limit = limit_of(page);
        let rows = sqlx::query("SELECT * FROM principals WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "principals"))?;
        let items = rows.iter().map(principal_of).collect::<Result<Vec<_>>>()?;
        Ok(paginate(items, limit, |p| p.name.to_string()))
    }

    async fn put_policy(
        &self,
        name: &str,
        text: Option<&str>,
        expected: Option<i64>,
        at: Timestamp,
        by: &str,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let current: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT version, text FROM policy_versions WHERE name = $1 ORDER BY version DESC LIMIT 1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e, "policy"))?;
        let live = current
            .as_ref()
            .filter(|(_, t)| t.is_some())
            .map(|(v, _)| *v);
        if live != expected {
            return Err(match (live, expected) {
                (Some(_), None) => StoreError::AlreadyExists("policy"),
                (None, Some(_)) => StoreError::NotFound("policy"),
                _ => StoreError::Conflict,
            });
        }
        let version = current.map(|(v, _)| v).unwrap_or(0) + 1;
        sqlx::query("INSERT INTO policy_versions (name, version, text, created_at, created_by) VALUES ($1, $2, $3, $4, $5)")
            .bind(name)
            .bind(version)
            .bind(text)
            .bind(at.0)
            .bind(by)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "policy"))?;
        tx.commit().await.map_err(|e| self.err(e, "policy"))?;
        Ok(version)
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>> {
        self.check()?;
        let rows = sqlx::query(
            "SELECT p.* FROM policy_versions p
             JOIN (SELECT name, MAX(version) AS v FROM policy_versions GROUP BY name) latest
               ON p.name = latest.name AND p.version = latest.v
             WHERE p.text IS NOT NULL ORDER BY p.name",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(|e| self.err(e, "policies"))?;
        rows.iter().map(policy_of).collect()
    }

    async fn policy_generation(&self) -> Result<i64> {
        self.check()?;
        // Every put and delete appends a version row, and rows are never removed.
        sqlx::query_scalar("SELECT COUNT(*) FROM policy_versions")
            .fetch_one(&self.reader)
            .await
            .map_err(|e| self.err(e, "policies"))
    }

    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until.0)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e, "lease"))?;
        tx.commit().await.map_err(|e| self.err(e, "lease"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn policy_history(&self, name: &str) -> Result<Vec<PolicyRecord>> {
        self.check()?;
        let rows = sqlx::query("SELECT * FROM policy_versions WHERE name = $1 ORDER BY version")
            .bind(name)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "policy"))?;
        rows.iter().map(policy_of).collect()
    }

    async fn put_issuer(&self, issuer: &IssuerRecord) -> Result<()> {
        self.put_doc(ISSUERS, &issuer.name, issuer, DocWrite::Upsert)
            .await
    }

    async fn issuer(&self, name: &str) -> Result<Option<IssuerRecord>> {
        self.doc(ISSUERS, name).await
    }

    async fn issuers(&self) -> Result<Vec<IssuerRecord>> {
        self.docs(ISSUERS).await
    }

    async fn delete_issuer(&self, name: &str) -> Result<()> {
        self.delete_doc(ISSUERS, name).await
    }

    async fn put_key_set(&self, set: &KeySetRecord, mode: AliasWrite) -> Result<()> {
        let mode = match mode {
            AliasWrite::Create => DocWrite::Create,
            AliasWrite::Update => DocWrite::Update,
        };
        self.put_doc(KEY_SETS, &set.name, set, mode).await
    }

    async fn key_set(&self, name: &str) -> Result<Option<KeySetRecord>> {
        self.doc(KEY_SETS, name).await
    }

    async fn key_sets(&self) -> Result<Vec<KeySetRecord>> {
        self.docs(KEY_SETS).await
    }

    async fn delete_key_set(&self, name: &str) -> Result<()> {
        self.delete_doc(KEY_SETS, name).await
    }

    async fn insert_access_key(&self, k: &AccessKeyRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO access_keys (id, principal, sealed_secret, description, created_at, revoked_at, expires_at, session_token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&k.id)
            .bind(&k.principal)
            .bind(k.sealed_secret.as_slice())
            .bind(&k.description)
            .bind(k.created_at.0)
            .bind(k.revoked_at.map(|t| t.0))
            .bind(k.expires_at.map(|t| t.0))
            .bind(k.session_token_hash.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "access key"))?;
        tx.commit().await.map_err(|e| self.err(e, "access key"))
    }

    async fn access_key(&self, id: &str) -> Result<Option<Arc<AccessKeyRecord>>> {
        self.check()?;
        sqlx::query("SELECT * FROM access_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "access key"))?
            .as_ref()
            .map(|r| access_key_of(r).map(Arc::new))
            .transpose()
    }

    async fn access_keys_of(&self, principal: &str) -> Result<Vec<AccessKeyRecord>> {
        self.check()?;
        let rows = sqlx::query("SELECT * FROM access_keys WHERE principal = $1 ORDER BY id")
            .bind(principal)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "access keys"))?;
        rows.iter().map(access_key_of).collect()
    }

    async fn revoke_access_key(&self, id: &str, at: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "UPDATE access_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(at.0)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e, "access key"))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound("access key"));
        }
        tx.commit().await.map_err(|e| self.err(e, "access key"))
    }

    async fn insert_import_token(&self, t: &ImportTokenRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO import_tokens (id, key_id, token_hash, wrapping, wrapping_algorithm, sealed_private, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&t.id)
            .bind(t.key_id.as_bytes().as_slice())
            .bind(t.token_hash.as_slice())
            .bind(&t.wrapping)
            .bind(t.wrapping_algorithm.name())
            .bind(t.sealed_private.as_slice())
            .bind(t.expires_at.0)
            .bind(t.used_at.map(|u| u.0))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "import token"))?;
        tx.commit().await.map_err(|e| self.err(e, "import token"))
    }

    async fn import_token_by_hash(&self, hash: &[u8]) -> Result<Option<ImportTokenRecord>> {
        self.check()?;
        sqlx::query("SELECT * FROM import_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "import token"))?
            .as_ref()
            .map(import_token_of)
            .transpose()
    }

    async fn use_import_token(&self, id: &str, at: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        let r =
            sqlx::query("UPDATE import_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(at.0)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e, "import token"))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }
        tx.commit().await.map_err(|e| self.err(e, "import token"))
    }

    async fn insert_grant(&self, gr: &GrantRecord) -> Result<()> {
        let spec = serde_json::to_string(&GrantSpec {
            actions: gr.actions.clone(),
            context_subset: gr.context_subset.clone(),
            context_equals: gr.context_equals.clone(),
            name: gr.name.clone(),
            created_by: gr.created_by.clone(),
        })
        .map_err(|e| StoreError::Corrupt(format!("grant: {e}")))?;
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO grants (id, key_id, grantee, retiring, token_hash, spec, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&gr.id)
            .bind(gr.key_id.as_bytes().as_slice())
            .bind(&gr.grantee)
            .bind(gr.retiring_principal.as_deref())
            .bind(gr.token_hash.as_slice())
            .bind(spec)
            .bind(gr.created_at.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "grant"))?;
        tx.commit().await.map_err(|e| self.err(e, "grant"))
    }

    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>> {
        self.check()?;
        sqlx::query("SELECT * FROM grants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "grant"))?
            .as_ref()
            .map(grant_of)
            .transpose()
    }

    async fn grant_by_token_hash(&self, hash: &[u8]) -> Result<Option<GrantRecord>> {
        self.check()?;
        sqlx::query("SELECT * FROM grants WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.err(e, "grant"))?
            .as_ref()
            .map(grant_of)
            .transpose()
    }

    async fn grants_of_key(&self, key_id: KeyId) -> Result<Vec<GrantRecord>> {
        self.check()?;
        let rows = sqlx::query("SELECT * FROM grants WHERE key_id = $1 ORDER BY created_at, id")
            .bind(key_id.as_bytes().as_slice())
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "grants"))?;
        rows.iter().map(grant_of).collect()
    }

    async fn grants_retirable_by(&self, principal: &str) -> Result<Vec<GrantRecord>> {
        self.check()?;
        let rows = sqlx::query("SELECT * FROM grants WHERE retiring = $1 ORDER BY created_at, id")
            .bind(principal)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "grants"))?;
        rows.iter().map(grant_of).collect()
    }

    async fn grants_for(&self, grantee: &str, key_id: KeyId) -> Result<Vec<GrantRecord>> {
        self.check()?;
        let rows = sqlx::query("SELECT * FROM grants WHERE key_id = $1 AND grantee = $2")
            .bind(key_id.as_bytes().as_slice())
            .bind(grantee)
            .fetch_all(&self.reader)
            .await
            .map_err(|e| self.err(e, "grants"))?;
        rows.iter().map(grant_of).collect()
    }

    async fn delete_grant(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("DELETE FROM grants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "grant"))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound("grant"));
        }
        tx.commit().await.map_err(|e| self.err(e, "grant"))
    }

    fn is_healthy(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
    }
}
