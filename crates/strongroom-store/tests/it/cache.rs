//! The read cache: this process reads its own writes at once; another process's writes
//! (written here straight to the inner store, as another node would) appear once the entry
//! is older than the time to live.

use std::sync::Arc;
use std::time::Duration;

use strongroom_store::*;

use crate::{sqlite, suite};

#[tokio::test]
async fn other_writers_are_seen_within_the_time_to_live() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Store> = Arc::new(sqlite(&dir).await);
    let cached = CachedStore::new(inner.clone(), Duration::from_millis(300));
    suite::ensure_ring(&cached, "r").await;
    let (k, v) = suite::sample_key("r", "k", 1);
    cached.create_key(&k, &v).await.unwrap();
    assert_eq!(
        cached.key_by_id(k.id).await.unwrap().unwrap().state,
        KeyState::Enabled
    );

    // Another node disables it: not seen yet from the cache, seen after the time to live.
    let disabled = KeyRecord {
        state: KeyState::Disabled,
        revision: k.revision + 1,
        ..k.clone()
    };
    inner.update_key(k.revision, &disabled, &[]).await.unwrap();
    assert_eq!(
        cached.key_by_id(k.id).await.unwrap().unwrap().state,
        KeyState::Enabled
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        cached.key_by_id(k.id).await.unwrap().unwrap().state,
        KeyState::Disabled
    );

    // A write through the cache is read back at once.
    let enabled = KeyRecord {
        state: KeyState::Enabled,
        revision: disabled.revision + 1,
        ..disabled.clone()
    };
    cached
        .update_key(disabled.revision, &enabled, &[])
        .await
        .unwrap();
    assert_eq!(
        cached.key_by_id(k.id).await.unwrap().unwrap().state,
        KeyState::Enabled
    );
}

#[tokio::test]
async fn an_unknown_token_is_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Store> = Arc::new(sqlite(&dir).await);
    let cached = CachedStore::new(inner.clone(), Duration::from_secs(3600));
    let t = TokenRecord {
        id: "srt-id".into(),
        hash: [7; 32],
        principal: "root".into(),
        description: String::new(),
        created_at: Timestamp(1),
        expires_at: None,
        revoked_at: None,
    };
    assert!(cached.token_by_hash(&t.hash).await.unwrap().is_none());
    // Issued by another node: found at once, since a miss is not remembered.
    inner.insert_token(&t).await.unwrap();
    assert_eq!(
        cached.token_by_hash(&t.hash).await.unwrap().unwrap().id,
        "srt-id"
    );
}

#[tokio::test]
async fn a_zero_time_to_live_caches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Store> = Arc::new(sqlite(&dir).await);
    let cached = CachedStore::new(inner.clone(), Duration::ZERO);
    suite::ensure_ring(&cached, "r").await;
    let (k, v) = suite::sample_key("r", "k", 1);
    cached.create_key(&k, &v).await.unwrap();
    cached.key_by_id(k.id).await.unwrap();
    let disabled = KeyRecord {
        state: KeyState::Disabled,
        revision: k.revision + 1,
        ..k.clone()
    };
    inner.update_key(k.revision, &disabled, &[]).await.unwrap();
    assert_eq!(
        cached.key_by_id(k.id).await.unwrap().unwrap().state,
        KeyState::Disabled
    );
}
