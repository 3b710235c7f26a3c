//! The store's behaviour, written against `&dyn Store` so every backend runs the same suite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod cache;
mod pg;
mod snapshot;
mod suite;

use std::sync::Arc;

use strongroom_store::{SqliteOptions, SqliteStore};

async fn sqlite(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&SqliteOptions {
        path: dir.path().join("strongroom.db"),
        create_if_missing: true,
    })
    .await
    .unwrap()
}

macro_rules! sqlite_suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = sqlite(&dir).await;
                suite::$name(&store).await;
            }
        )*
    };
}

/// The same suite through the read cache (a long time to live, so every read that can be
/// served from it is): a process must always read what it wrote.
macro_rules! cached_suite {
    ($($name:ident),* $(,)?) => {
        mod cached {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = strongroom_store::CachedStore::new(
                        std::sync::Arc::new(sqlite(&dir).await),
                        std::time::Duration::from_secs(3600),
                    );
                    suite::$name(&store).await;
                }
            )*
        }
    };
}

/// Every backend, and the cache, runs the whole suite.
macro_rules! suites {
    ($($name:ident),* $(,)?) => {
        sqlite_suite!($($name),*);
        postgres_suite!($($name),*);
        cached_suite!($($name),*);
    };
}

/// The same suite on PostgreSQL (tests/it/pg.rs starts one when none is given).
macro_rules! postgres_suite {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let store = pg::fresh().await;
                    suite::$name(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

suites!(
    key_rings,
    keys_and_versions,
    optimistic_concurrency,
    pagination,
    due_lists,
    aliases,
    tokens,
    meta,
    principals,
    policies,
    issuers,
    key_sets,
    external_keys,
    access_keys,
    key_deletion,
    grants,
    import_tokens,
    material_expiry,
    leases,
    policy_generation,
    inventory
);

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let (key, versions) = suite::sample_key("ring", "k", 1);
    suite::ensure_ring(&store, "ring").await;
    use strongroom_store::Store;
    store.create_key(&key, &versions).await.unwrap();
    store.close().await;
    drop(store);
    let store = sqlite(&dir).await;
    assert_eq!(
        store.key_by_id(key.id).await.unwrap(),
        Some(Arc::new(key.clone()))
    );
    assert_eq!(
        store.version(key.id, 1).await.unwrap(),
        Some(Arc::new(versions[0].clone()))
    );
}

#[tokio::test]
async fn missing_file_is_not_created_when_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let err = SqliteStore::open(&SqliteOptions {
        path: path.clone(),
        create_if_missing: false,
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot open"), "{err}");
    assert!(!path.exists());
}

/// Destroyed material must not linger in the database file, its WAL or its shared memory
/// file (RELIABILITY L2).
#[tokio::test]
async fn destroyed_material_leaves_no_trace_on_disk() {
    use strongroom_store::{Store, Timestamp, VersionState};
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    suite::ensure_ring(&store, "ring").await;
    let canary: Vec<u8> = b"CANARY-SEALED-MATERIAL-7f3a9c"
        .iter()
        .cycle()
        .take(600)
        .copied()
        .collect();
    let (key, mut versions) = suite::sample_key("ring", "k", 1);
    versions[0].sealed_material = Some(canary.clone());
    store.create_key(&key, &versions).await.unwrap();

    let files = |dir: &std::path::Path| -> Vec<u8> {
        let mut all = Vec::new();
        for f in ["strongroom.db", "strongroom.db-wal", "strongroom.db-shm"] {
            if let Ok(b) = std::fs::read(dir.join(f)) {
                all.extend(b);
            }
        }
        all
    };
    let contains = |hay: &[u8]| hay.windows(29).any(|w| w == &canary[..29]);
    assert!(
        contains(&files(dir.path())),
        "the canary should be on disk before destruction"
    );

    let mut v = versions[0].clone();
    v.state = VersionState::Destroyed;
    v.sealed_material = None;
    v.destroyed_at = Some(Timestamp(1));
    let mut k2 = key.clone();
    k2.revision += 1;
    k2.primary_version = None;
    store.update_key(key.revision, &k2, &[v]).await.unwrap();
    assert!(
        !contains(&files(dir.path())),
        "destroyed material is still on disk"
    );
}

/// Several nodes starting at once on a new database: the migrations run once, under an
/// advisory lock, and every node opens.
#[tokio::test]
async fn postgres_nodes_migrate_a_new_database_together() {
    let url = pg::fresh_url().await;
    let nodes = futures_join_all((0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { pg::open(&url).await })
    }))
    .await;
    use strongroom_store::Store;
    suite::ensure_ring(&nodes[0], "shared").await;
    for n in &nodes {
        assert!(
            n.key_ring(&"shared".parse().unwrap())
                .await
                .unwrap()
                .is_some()
        );
    }
}

/// Two nodes racing to update one key from the same revision: exactly one wins, the other
/// gets `Conflict` (optimistic concurrency holds across nodes, not only within one).
#[tokio::test]
async fn postgres_nodes_racing_on_a_key_cannot_both_win() {
    use strongroom_store::{KeyRecord, Store, StoreError};
    let url = pg::fresh_url().await;
    let (a, b) = (pg::open(&url).await, pg::open(&url).await);
    suite::ensure_ring(&a, "r").await;
    let (k, v) = suite::sample_key("r", "contended", 1);
    a.create_key(&k, &v).await.unwrap();
    for round in 0..20 {
        let cur = a.key_by_id(k.id).await.unwrap().unwrap();
        let next = |who: &str| KeyRecord {
            description: format!("{who} {round}"),
            revision: cur.revision + 1,
            ..(*cur).clone()
        };
        let (na, nb) = (next("a"), next("b"));
        let (ra, rb) = tokio::join!(
            a.update_key(cur.revision, &na, &[]),
            b.update_key(cur.revision, &nb, &[])
        );
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
        assert!(
            [ra, rb]
                .into_iter()
                .any(|r| matches!(r, Err(StoreError::Conflict))),
            "round {round}"
        );
        let stored = b.key_by_id(k.id).await.unwrap().unwrap();
        assert_eq!(stored.revision, cur.revision + 1);
    }
}

async fn futures_join_all<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
