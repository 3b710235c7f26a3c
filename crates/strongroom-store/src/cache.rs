//! A read cache in front of a store, for the lookups every request makes: a token by its
//! hash, a key by path or id, a version, a principal, an alias, an access key (SigV4), a key ring.
//!
//! **Invariant:** a write through this store invalidates every entry before it returns, so
//! this process never reads older data than it wrote. Writes made by *other* processes
//! sharing the database (several nodes on PostgreSQL) are seen once the entry is older than
//! the cache's time to live: that is the bound on how long a disable, rotation, destruction
//! or revocation on one node takes to reach the others. A time to live of zero turns the
//! cache off.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use strongroom_crypto::KeyId;

use crate::model::*;
use crate::{AliasWrite, Result, Store, snapshot};

/// Entries per lookup kind before that map is emptied and refilled.
const CAP: usize = 10_000;

/// A cached answer: records are shared (`Arc`), so a hit costs a reference count, not a
/// copy of the record.
struct Entry<V> {
    at: Instant,
    generation: u64,
    value: Option<Arc<V>>,
}

type Map<K, V> = Mutex<HashMap<K, Entry<V>>>;

/// Where one lookup kind keeps its entries, found by a borrowed query `Q`.
trait Slots<Q: ?Sized, V> {
    fn slot(&self, q: &Q) -> Option<&Entry<V>>;
    /// Keeps `e` for `q`, emptying the slots first when [`CAP`] are held.
    fn keep(&mut self, q: &Q, e: Entry<V>);
}

impl<K, Q, V> Slots<Q, V> for HashMap<K, Entry<V>>
where
    K: Eq + Hash + Borrow<Q>,
    Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
{
    fn slot(&self, q: &Q) -> Option<&Entry<V>> {
        self.get(q)
    }

    fn keep(&mut self, q: &Q, e: Entry<V>) {
        if self.len() >= CAP {
            self.clear();
        }
        self.insert(q.to_owned(), e);
    }
}

/// Keys by ring, then name: a lookup borrows both names instead of building a pair.
#[derive(Default)]
struct ByPath {
    rings: HashMap<RingName, HashMap<KeyName, Entry<KeyRecord>>>,
    len: usize,
}

impl Slots<(&RingName, &KeyName), KeyRecord> for ByPath {
    fn slot(&self, &(ring, name): &(&RingName, &KeyName)) -> Option<&Entry<KeyRecord>> {
        self.rings.get(ring)?.get(name)
    }

    fn keep(&mut self, &(ring, name): &(&RingName, &KeyName), e: Entry<KeyRecord>) {
        if self.len >= CAP {
            *self = Self::default();
        }
        let names = self.rings.entry(ring.clone()).or_default();
        self.len += usize::from(names.insert(name.clone(), e).is_none());
    }
}

/// A [`Store`] that caches the hot lookups of another.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    ttl: Duration,
    /// Moves on every write; an entry is valid only while it equals the entry's.
    generation: AtomicU64,
    tokens: Map<[u8; 32], TokenRecord>,
    keys: Mutex<ByPath>,
    keys_by_id: Map<KeyId, KeyRecord>,
    versions: Map<(KeyId, u32), VersionRecord>,
    principals: Map<PrincipalName, PrincipalRecord>,
    aliases: Map<AliasName, AliasRecord>,
    access_keys: Map<String, AccessKeyRecord>,
    rings: Map<RingName, KeyRingRecord>,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl CachedStore {
    /// Caches `inner`'s lookups for at most `ttl` (zero: no caching).
    pub fn new(inner: Arc<dyn Store>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            generation: AtomicU64::new(0),
            tokens: Mutex::default(),
            keys: Mutex::default(),
            keys_by_id: Mutex::default(),
            versions: Mutex::default(),
            principals: Mutex::default(),
            aliases: Mutex::default(),
            access_keys: Mutex::default(),
            rings: Mutex::default(),
        }
    }

    /// Answers from `slots`, or runs `fetch` (only on a miss) and keeps its answer if no
    /// write started or finished meanwhile (it may predate that write).
    async fn cached<Q, V, S, F>(
        &self,
        slots: &Mutex<S>,
        q: &Q,
        cache_absent: bool,
        fetch: impl FnOnce() -> F,
    ) -> Result<Option<Arc<V>>>
    where
        Q: ?Sized,
        S: Slots<Q, V>,
        F: Future<Output = Result<Option<Arc<V>>>>,
    {
        if self.ttl.is_zero() {
            return fetch().await;
        }
        let generation = self.generation.load(Ordering::SeqCst);
        if let Ok(m) = slots.lock()
            && let Some(e) = m.slot(q)
            && e.generation == generation
            && e.at.elapsed() < self.ttl
        {
            return Ok(e.value.clone());
        }
        let value = fetch().await?;
        if (value.is_some() || cache_absent)
            && self.generation.load(Ordering::SeqCst) == generation
            && let Ok(mut m) = slots.lock()
        {
            let e = Entry {
                at: Instant::now(),
                generation,
                value: value.clone(),
            };
            m.keep(q, e);
        }
        Ok(value)
    }

    /// Runs a write; every cached entry is invalid from before it starts until after.
    async fn write<T>(&self, w: impl Future<Output = Result<T>>) -> Result<T> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let res = w.await;
        self.generation.fetch_add(1, Ordering::SeqCst);
        res
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.inner.meta(name).await
    }

    async fn put_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        self.write(self.inner.put_meta(name, value)).await
    }

    async fn put_meta_if_absent(&self, name: &str, value: &[u8]) -> Result<bool> {
        self.write(self.inner.put_meta_if_absent(name, value)).await
    }

    async fn create_key_ring(&self, ring: &KeyRingRecord) -> Result<()> {
        self.write(self.inner.create_key_ring(ring)).await
    }

    async fn key_ring(&self, name: &RingName) -> Result<Option<Arc<KeyRingRecord>>> {
        self.cached(&self.rings, name, true, || self.inner.key_ring(name))
            .await
    }

    async fn list_key_rings(&self, page: &PageRequest) -> Result<Page<KeyRingRecord>> {
        self.inner.list_key_rings(page).await
    }

    async fn create_key(&self, key: &KeyRecord, versions: &[VersionRecord]) -> Result<()> {
        self.write(self.inner.create_key(key, versions)).await
    }

    async fn key(&self, ring: &RingName, name: &KeyName) -> Result<Option<Arc<KeyRecord>>> {
        self.cached(&self.keys, &(ring, name), true, || {
            self.inner.key(ring, name)
        })
        .await
    }

    async fn key_by_id(&self, id: KeyId) -> Result<Option<Arc<KeyRecord>>> {
        self.cached(&self.keys_by_id, &id, true, || self.inner.key_by_id(id))
            .await
    }

    async fn list_keys(&self, ring: &RingName, page: &PageRequest) -> Result<Page<KeyRecord>> {
        self.inner.list_keys(ring, page).await
    }

    async fn list_all_keys(&self, page: &PageRequest) -> Result<Page<KeyRecord>> {
        self.inner.list_all_keys(page).await
    }

    async fn update_key(
        &self,
        expected_revision: i64,
        key: &KeyRecord,
        versions: &[VersionRecord],
    ) -> Result<()> {
        self.write(self.inner.update_key(expected_revision, key, versions))
            .await
    }

    async fn version(&self, key_id: KeyId, version: u32) -> Result<Option<Arc<VersionRecord>>> {
        self.cached(&self.versions, &(key_id, version), true, || {
            self.inner.version(key_id, version)
        })
        .await
    }

    async fn list_versions(
        &self,
        key_id: KeyId,
        page: &PageRequest,
    ) -> Result<Page<VersionRecord>> {
        self.inner.list_versions(key_id, page).await
    }

    async fn keys_due_for_rotation(&self, now: Timestamp, limit: u32) -> Result<Vec<KeyId>> {
        self.inner.keys_due_for_rotation(now, limit).await
    }

    async fn keys_due_for_deletion(&self, now: Timestamp, limit: u32) -> Result<Vec<KeyId>> {
        self.inner.keys_due_for_deletion(now, limit).await
    }

    async fn keys_due_for_material_expiry(&self, now: Timestamp, limit: u32) -> Result<Vec<KeyId>> {
        self.inner.keys_due_for_material_expiry(now, limit).await
    }

    async fn snapshot(&self) -> Result<snapshot::Snapshot> {
        self.inner.snapshot().await
    }

    async fn restore_snapshot(&self, snap: &snapshot::Snapshot) -> Result<()> {
        self.write(self.inner.restore_snapshot(snap)).await
    }

    async fn inventory(&self, now: Timestamp) -> Result<Inventory> {
        self.inner.inventory(now).await
    }

    async fn versions_due_for_destruction(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(KeyId, u32)>> {
        self.inner.versions_due_for_destruction(now, limit).await
    }

    async fn put_alias(&self, alias: &AliasRecord, mode: AliasWrite) -> Result<()> {
        self.write(self.inner.put_alias(alias, mode)).await
    }

    async fn alias(&self, name: &AliasName) -> Result<Option<Arc<AliasRecord>>> {
        self.cached(&self.aliases, name, true, || self.inner.alias(name))
            .await
    }

    async fn delete_alias(&self, name: &AliasName) -> Result<()> {
        self.write(self.inner.delete_alias(name)).await
    }

    async fn list_aliases(
        &self,
        key_id: Option<KeyId>,
        page: &PageRequest,
    ) -> Result<Page<AliasRecord>> {
        self.inner.list_aliases(key_id, page).await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        self.write(self.inner.insert_token(token)).await
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Arc<TokenRecord>>> {
        self.cached(&self.tokens, hash, false, || self.inner.token_by_hash(hash))
            .await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        self.inner.token(id).await
    }

    async fn revoke_token(&self, id: &str, at: Timestamp) -> Result<()> {
        self.write(self.inner.revoke_token(id, at)).await
    }

    async fn list_tokens(&self, page: &PageRequest) -> Result<Page<TokenRecord>> {
        self.inner.list_tokens(page).await
    }

    async fn put_principal(&self, p: &PrincipalRecord, mode: AliasWrite) -> Result<()> {
        self.write(self.inner.put_principal(p, mode)).await
    }

    async fn principal(&self, name: &PrincipalName) -> Result<Option<Arc<PrincipalRecord>>> {
        self.cached(&self.principals, name, true, || self.inner.principal(name))
            .await
    }

    async fn principal_by_cert(&self, fingerprint: &str) -> Result<Option<PrincipalRecord>> {
        self.inner.principal_by_cert(fingerprint).await
    }

    async fn list_principals(&self, page: &PageRequest) -> Result<Page<PrincipalRecord>> {
        self.inner.list_principals(page).await
    }

    async fn put_policy(
        &self,
        name: &str,
        text: Option<&str>,
        expected: Option<i64>,
        at: Timestamp,
        by: &str,
    ) -> Result<i64> {
        self.write(self.inner.put_policy(name, text, expected, at, by))
            .await
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>> {
        self.inner.policies().await
    }

    async fn policy_history(&self, name: &str) -> Result<Vec<PolicyRecord>> {
        self.inner.policy_history(name).await
    }

    async fn policy_generation(&self) -> Result<i64> {
        self.inner.policy_generation().await
    }

    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        self.inner.claim_lease(name, holder, now, until).await
    }

    async fn put_issuer(&self, issuer: &IssuerRecord) -> Result<()> {
        self.write(self.inner.put_issuer(issuer)).await
    }

    async fn issuer(&self, name: &str) -> Result<Option<IssuerRecord>> {
        self.inner.issuer(name).await
    }

    async fn issuers(&self) -> Result<Vec<IssuerRecord>> {
        self.inner.issuers().await
    }

    async fn delete_issuer(&self, name: &str) -> Result<()> {
        self.write(self.inner.delete_issuer(name)).await
    }

    async fn put_key_set(&self, set: &KeySetRecord, mode: AliasWrite) -> Result<()> {
        self.write(self.inner.put_key_set(set, mode)).await
    }

    async fn key_set(&self, name: &str) -> Result<Option<KeySetRecord>> {
        self.inner.key_set(name).await
    }

    async fn key_sets(&self) -> Result<Vec<KeySetRecord>> {
        self.inner.key_sets().await
    }

    async fn delete_key_set(&self, name: &str) -> Result<()> {
        self.write(self.inner.delete_key_set(name)).await
    }

    async fn insert_access_key(&self, key: &AccessKeyRecord) -> Result<()> {
        self.write(self.inner.insert_access_key(key)).await
    }

    async fn access_key(&self, id: &str) -> Result<Option<Arc<AccessKeyRecord>>> {
        self.cached(&self.access_keys, id, false, || self.inner.access_key(id))
            .await
    }

    async fn access_keys_of(&self, principal: &str) -> Result<Vec<AccessKeyRecord>> {
        self.inner.access_keys_of(principal).await
    }

    async fn revoke_access_key(&self, id: &str, at: Timestamp) -> Result<()> {
        self.write(self.inner.revoke_access_key(id, at)).await
    }

    async fn insert_import_token(&self, t: &ImportTokenRecord) -> Result<()> {
        self.write(self.inner.insert_import_token(t)).await
    }

    async fn import_token_by_hash(&self, hash: &[u8]) -> Result<Option<ImportTokenRecord>> {
        self.inner.import_token_by_hash(hash).await
    }

    async fn use_import_token(&self, id: &str, at: Timestamp) -> Result<()> {
        self.write(self.inner.use_import_token(id, at)).await
    }

    async fn insert_grant(&self, grant: &GrantRecord) -> Result<()> {
        self.write(self.inner.insert_grant(grant)).await
    }

    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>> {
        self.inner.grant(id).await
    }

    async fn grant_by_token_hash(&self, hash: &[u8]) -> Result<Option<GrantRecord>> {
        self.inner.grant_by_token_hash(hash).await
    }

    async fn grants_of_key(&self, key_id: KeyId) -> Result<Vec<GrantRecord>> {
        self.inner.grants_of_key(key_id).await
    }

    async fn grants_retirable_by(&self, principal: &str) -> Result<Vec<GrantRecord>> {
        self.inner.grants_retirable_by(principal).await
    }

    async fn grants_for(&self, grantee: &str, key_id: KeyId) -> Result<Vec<GrantRecord>> {
        self.inner.grants_for(grantee, key_id).await
    }

    async fn delete_grant(&self, id: &str) -> Result<()> {
        self.write(self.inner.delete_grant(id)).await
    }

    fn is_healthy(&self) -> bool {
        self.inner.is_healthy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<KeyRecord> {
        Entry {
            at: Instant::now(),
            generation: 0,
            value: None,
        }
    }

    #[test]
    fn keys_by_path_count_distinct_names_and_empty_when_full() {
        let mut m = ByPath::default();
        let ring: RingName = "r".parse().unwrap();
        let a: KeyName = "a".parse().unwrap();
        m.keep(&(&ring, &a), entry());
        m.keep(&(&ring, &a), entry());
        assert_eq!(m.len, 1, "a replaced entry is not counted twice");
        assert!(m.slot(&(&ring, &a)).is_some());
        for i in 1..CAP {
            let n: KeyName = format!("k{i}").parse().unwrap();
            m.keep(&(&ring, &n), entry());
        }
        assert_eq!(m.len, CAP);
        let last: KeyName = "last".parse().unwrap();
        m.keep(&(&ring, &last), entry());
        assert_eq!(m.len, 1, "a full map is emptied before the next entry");
        assert!(m.slot(&(&ring, &a)).is_none());
        assert!(m.slot(&(&ring, &last)).is_some());
    }
}
