//! The `Store` trait and its SQLite implementation (the embedded default).
//!
//! The store persists records and sealed bytes; it never sees plaintext key material (core
//! seals before writing) and makes no lifecycle decisions (core's state machine does). What it
//! owns is atomicity: each write method is one transaction, and key updates use optimistic
//! concurrency on `KeyRecord::revision`, so two writers racing on one key cannot both win.
//! PostgreSQL (`postgres.rs`) implements it with the same SQL (`sql_common.rs`) and runs the
//! same test suite.

#![warn(missing_docs)]

mod cache;
pub mod model;
mod postgres;
pub mod snapshot;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use strongroom_crypto::KeyId;

pub use cache::CachedStore;
pub use model::*;
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::{SqliteOptions, SqliteStore};

/// Store failures. Messages name what failed, never the data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name is taken.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The record to change does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The key changed since it was read; re-read and try again.
    #[error("concurrent modification")]
    Conflict,
    /// The store cannot serve now (busy, I/O failure, disk full). After an I/O failure on
    /// write the store stops accepting operations: an fsync error is never retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded.
    #[error("store record is corrupt: {0}")]
    Corrupt(String),
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How `put_alias` treats an existing alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasWrite {
    /// Fail with `AlreadyExists` if the name is taken.
    Create,
    /// Fail with `NotFound` if the name is free.
    Update,
}

/// Persistence for key rings, keys, versions, aliases, tokens and a few settings.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads a setting.
    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Writes a setting, replacing any value.
    async fn put_meta(&self, name: &str, value: &[u8]) -> Result<()>;
    /// Writes a setting if it is not set yet; returns whether it was written.
    async fn put_meta_if_absent(&self, name: &str, value: &[u8]) -> Result<bool>;

    /// Creates a key ring.
    async fn create_key_ring(&self, ring: &KeyRingRecord) -> Result<()>;
    /// Reads a key ring.
    async fn key_ring(&self, name: &RingName) -> Result<Option<Arc<KeyRingRecord>>>;
    /// Lists key rings by name.
    async fn list_key_rings(&self, page: &PageRequest) -> Result<Page<KeyRingRecord>>;

    /// Creates a key and its first versions in one transaction. The ring must exist.
    async fn create_key(&self, key: &KeyRecord, versions: &[VersionRecord]) -> Result<()>;
    /// Reads a key by ring and name.
    async fn key(&self, ring: &RingName, name: &KeyName) -> Result<Option<Arc<KeyRecord>>>;
    /// Reads a key by id.
    async fn key_by_id(&self, id: KeyId) -> Result<Option<Arc<KeyRecord>>>;
    /// Lists a ring's keys by name.
    async fn list_keys(&self, ring: &RingName, page: &PageRequest) -> Result<Page<KeyRecord>>;
    /// Lists every key of every ring, by id; the page cursor is the last key id (as text).
    async fn list_all_keys(&self, page: &PageRequest) -> Result<Page<KeyRecord>>;
    /// Replaces a key record and inserts or replaces the given versions, in one
    /// transaction, if the stored revision is still `expected_revision`; otherwise
    /// `Conflict`. The caller sets `key.revision` to `expected_revision + 1`.
    async fn update_key(
        &self,
        expected_revision: i64,
        key: &KeyRecord,
        versions: &[VersionRecord],
    ) -> Result<()>;

    /// Reads one version.
    async fn version(&self, key_id: KeyId, version: u32) -> Result<Option<Arc<VersionRecord>>>;
    /// Lists a key's versions by number.
    async fn list_versions(&self, key_id: KeyId, page: &PageRequest)
    -> Result<Page<VersionRecord>>;

    /// Keys whose `next_rotation_time` is at or before `now`.
    async fn keys_due_for_rotation(&self, now: Timestamp, limit: u32) -> Result<Vec<KeyId>>;
    /// Keys whose scheduled deletion is due (state `deletion_scheduled`, time passed).
    async fn keys_due_for_deletion(&self, now: Timestamp, limit: u32) -> Result<Vec<KeyId>>;
    /// Enabled or disabled keys whose imported material expires at or before `now`.
    async fn keys_due_for_material_expiry(&self, now: Timestamp, limit: u32) -> Result<Vec<KeyId>>;
    /// Every table that holds state, read in one consistent transaction while the store
    /// keeps serving (see [`snapshot`]).
    async fn snapshot(&self) -> Result<snapshot::Snapshot>;
    /// Writes a snapshot into this store, in one transaction. Refused with
    /// `AlreadyExists("data")` unless every state table is empty; nothing is written then.
    async fn restore_snapshot(&self, snap: &snapshot::Snapshot) -> Result<()>;
    /// Counts for monitoring, read in one pass (see [`Inventory`]).
    async fn inventory(&self, now: Timestamp) -> Result<Inventory>;
    /// Versions scheduled for destruction whose `destroy_time` is at or before `now`.
    async fn versions_due_for_destruction(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(KeyId, u32)>>;

    /// Creates or re-points an alias. The key must exist.
    async fn put_alias(&self, alias: &AliasRecord, mode: AliasWrite) -> Result<()>;
    /// Reads an alias.
    async fn alias(&self, name: &AliasName) -> Result<Option<Arc<AliasRecord>>>;
    /// Deletes an alias.
    async fn delete_alias(&self, name: &AliasName) -> Result<()>;
    /// Lists aliases by name, optionally only those of one key.
    async fn list_aliases(
        &self,
        key_id: Option<KeyId>,
        page: &PageRequest,
    ) -> Result<Page<AliasRecord>>;

    /// Stores a new token.
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    /// Finds a token by the hash of its secret.
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Arc<TokenRecord>>>;
    /// Finds a token by id.
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>>;
    /// Marks a token revoked (idempotent: the first revocation time is kept).
    async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<()>;
    /// Lists tokens by id.
    async fn list_tokens(&self, page: &PageRequest) -> Result<Page<TokenRecord>>;

    /// Creates (`AliasWrite::Create`) or replaces (`Update`) a principal.
    async fn put_principal(&self, p: &PrincipalRecord, mode: AliasWrite) -> Result<()>;
    /// Reads a principal.
    async fn principal(&self, name: &PrincipalName) -> Result<Option<Arc<PrincipalRecord>>>;
    /// The principal a client certificate fingerprint (lower-case hex SHA-256) belongs to.
    async fn principal_by_cert(&self, fingerprint: &str) -> Result<Option<PrincipalRecord>>;
    /// Lists principals by name.
    async fn list_principals(&self, page: &PageRequest) -> Result<Page<PrincipalRecord>>;

    /// Writes a new version of a policy document (`text: None` deletes it) if its current
    /// version is `expected` (`None` = must not exist yet, for a create; `Some(0)` is never
    /// current). Returns the new version. `Conflict` if someone changed it meanwhile.
    async fn put_policy(
        &self,
        name: &str,
        text: Option<&str>,
        expected: Option<i64>,
        at: Timestamp,
        by: &str,
    ) -> Result<i64>;
    /// The current version of every live policy document, by name.
    async fn policies(&self) -> Result<Vec<PolicyRecord>>;
    /// Every version of one document, oldest first.
    async fn policy_history(&self, name: &str) -> Result<Vec<PolicyRecord>>;
    /// A number that grows with every policy change (put or delete), so that a node can tell
    /// cheaply whether another changed the policies.
    async fn policy_generation(&self) -> Result<i64>;

    /// Takes or renews the lease `name` for `holder` until `until`: succeeds when nobody
    /// holds it, the holder is `holder`, or the lease expired at or before `now`. Used so
    /// that one node of several runs the scheduled jobs.
    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool>;

    /// Creates or replaces a trusted issuer.
    async fn put_issuer(&self, issuer: &IssuerRecord) -> Result<()>;
    /// Reads a trusted issuer.
    async fn issuer(&self, name: &str) -> Result<Option<IssuerRecord>>;
    /// Every trusted issuer, by name.
    async fn issuers(&self) -> Result<Vec<IssuerRecord>>;
    /// Removes a trusted issuer.
    async fn delete_issuer(&self, name: &str) -> Result<()>;

    /// Creates (`AlreadyExists` if taken) or replaces (`NotFound` if free) a key set.
    async fn put_key_set(&self, set: &KeySetRecord, mode: AliasWrite) -> Result<()>;
    /// Reads a key set.
    async fn key_set(&self, name: &str) -> Result<Option<KeySetRecord>>;
    /// Every key set, by name.
    async fn key_sets(&self) -> Result<Vec<KeySetRecord>>;
    /// Removes a key set (`NotFound` if there is none).
    async fn delete_key_set(&self, name: &str) -> Result<()>;

    /// Stores a new access key.
    async fn insert_access_key(&self, key: &AccessKeyRecord) -> Result<()>;
    /// Reads an access key by id.
    async fn access_key(&self, id: &str) -> Result<Option<Arc<AccessKeyRecord>>>;
    /// A principal's access keys (revoked ones included), by id.
    async fn access_keys_of(&self, principal: &str) -> Result<Vec<AccessKeyRecord>>;
    /// Marks an access key revoked (idempotent: the first time is kept).
    async fn revoke_access_key(&self, id: &str, at: Timestamp) -> Result<()>;

    /// Stores new import parameters.
    async fn insert_import_token(&self, t: &ImportTokenRecord) -> Result<()>;
    /// Finds import parameters by the SHA-256 of their token.
    async fn import_token_by_hash(&self, hash: &[u8]) -> Result<Option<ImportTokenRecord>>;
    /// Marks import parameters used; fails with `Conflict` when they already were (single
    /// use, even under races).
    async fn use_import_token(&self, id: &str, at: Timestamp) -> Result<()>;

    /// Stores a new grant.
    async fn insert_grant(&self, grant: &GrantRecord) -> Result<()>;
    /// Reads a grant by id.
    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>>;
    /// Finds a grant by the SHA-256 of its token.
    async fn grant_by_token_hash(&self, hash: &[u8]) -> Result<Option<GrantRecord>>;
    /// A key's grants, oldest first.
    async fn grants_of_key(&self, key_id: KeyId) -> Result<Vec<GrantRecord>>;
    /// The grants a principal may retire, oldest first.
    async fn grants_retirable_by(&self, principal: &str) -> Result<Vec<GrantRecord>>;
    /// The grants on a key for one grantee.
    async fn grants_for(&self, grantee: &str, key_id: KeyId) -> Result<Vec<GrantRecord>>;
    /// Deletes a grant.
    async fn delete_grant(&self, id: &str) -> Result<()>;

    /// Whether the store is still accepting operations (false after a fatal I/O error).
    fn is_healthy(&self) -> bool;
}
