//! Snapshots: a whole store read in one transaction and written back into an empty one, on
//! either backend and across them.

use strongroom_store::snapshot::{Cell, Snapshot, TABLES};
use strongroom_store::*;

use crate::{pg, sqlite, suite};

/// A store with rows in every table but `import_tokens` (its suite test reuses ring names).
async fn populate(s: &dyn Store) {
    suite::tokens(s).await;
    suite::principals(s).await;
    suite::policies(s).await;
    suite::issuers(s).await;
    suite::access_keys(s).await;
    suite::grants(s).await;
    s.put_meta("backup-test", &[0, 1, 2, 255]).await.unwrap();
    s.put_issuer(&IssuerRecord {
        name: "ci".into(),
        issuer: "https://issuer.example".into(),
        audiences: vec!["strongroom".into()],
        jwks: None,
        jwks_uri: Some("https://issuer.example/jwks".into()),
        rules: vec![],
        max_ttl_secs: 60,
        created_at: 1,
        updated_at: 2,
    })
    .await
    .unwrap();
}

fn rows(s: &Snapshot, table: &str) -> usize {
    s.table(table).unwrap().rows.len()
}

#[tokio::test]
async fn a_snapshot_restores_into_empty_stores_of_either_backend() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite(&dir).await;
    populate(&a).await;
    let snap = a.snapshot().await.unwrap();
    assert_eq!(
        snap.tables
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        TABLES.iter().map(|t| t.name).collect::<Vec<_>>()
    );
    for t in [
        "meta",
        "key_rings",
        "keys",
        "key_versions",
        "principals",
        "tokens",
        "access_keys",
        "policy_versions",
        "issuers",
        "grants",
    ] {
        assert!(rows(&snap, t) > 0, "{t} is empty: the test covers nothing");
    }
    assert!(snap.schema_version >= 13);
    assert_eq!(Snapshot::from_json(&snap.to_json()).unwrap(), snap);

    // SQLite to SQLite: the same rows, readable through the Store API.
    let dir_b = tempfile::tempdir().unwrap();
    let b = sqlite(&dir_b).await;
    b.restore_snapshot(&snap).await.unwrap();
    assert_eq!(b.snapshot().await.unwrap(), snap);
    let key = a
        .key(
            &RingName::try_new("r").unwrap(),
            &KeyName::try_new("k").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.key_by_id(key.id).await.unwrap().unwrap(), key);
    assert_eq!(
        b.meta("backup-test").await.unwrap().unwrap(),
        vec![0, 1, 2, 255]
    );
    // Into a store that holds anything: refused, and nothing written.
    assert!(matches!(
        b.restore_snapshot(&snap).await,
        Err(StoreError::AlreadyExists("data"))
    ));
    assert_eq!(b.snapshot().await.unwrap(), snap);

    // SQLite to PostgreSQL, and PostgreSQL back to SQLite.
    let p = pg::fresh().await;
    p.restore_snapshot(&snap).await.unwrap();
    let from_pg = p.snapshot().await.unwrap();
    assert_eq!(from_pg, snap);
    p.close().await;
    let dir_c = tempfile::tempdir().unwrap();
    let c = sqlite(&dir_c).await;
    c.restore_snapshot(&from_pg).await.unwrap();
    assert_eq!(c.snapshot().await.unwrap(), snap);
}

/// A snapshot from an older schema (fewer columns) restores; the rest take their defaults.
#[tokio::test]
async fn an_older_snapshot_without_newer_columns_restores() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite(&dir).await;
    suite::grants(&a).await;
    let mut snap = a.snapshot().await.unwrap();
    let keys = snap.table_mut("keys").unwrap();
    let i = keys
        .columns
        .iter()
        .position(|c| c == "material_expires_at")
        .unwrap();
    keys.columns.remove(i);
    for r in &mut keys.rows {
        r.remove(i);
    }
    let dir_b = tempfile::tempdir().unwrap();
    let b = sqlite(&dir_b).await;
    b.restore_snapshot(&snap).await.unwrap();
    let back = b.snapshot().await.unwrap();
    let keys = back.table("keys").unwrap();
    let i = keys
        .columns
        .iter()
        .position(|c| c == "material_expires_at")
        .unwrap();
    assert!(keys.rows.iter().all(|r| r[i] == Cell::Null));
}

#[test]
fn decoding_refuses_what_this_release_does_not_know() {
    let refuse = |doc: serde_json::Value, what: &str| {
        let err = Snapshot::from_json(doc.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    };
    refuse(
        serde_json::json!({"schema_version": 99, "tables": [{"name": "wormholes", "columns": [], "rows": []}]}),
        "table \"wormholes\" is unknown",
    );
    refuse(
        serde_json::json!({"schema_version": 99, "tables": [{"name": "meta", "columns": ["name", "colour"], "rows": []}]}),
        "column meta.colour is unknown",
    );
    refuse(
        serde_json::json!({"schema_version": 13, "tables": [{"name": "meta", "columns": ["name", "value"], "rows": [["a", 5]]}]}),
        "wrong type",
    );
    refuse(
        serde_json::json!({"schema_version": 13, "tables": [{"name": "meta", "columns": ["name", "value"], "rows": [["a"]]}]}),
        "wrong number",
    );
    refuse(serde_json::json!({"tables": []}), "schema_version");
    assert!(Snapshot::from_json(b"not json").is_err());
}

/// A column no snapshot covers (a migration added it, `TABLES` was not updated) makes the
/// snapshot fail rather than leave it out of a backup.
#[tokio::test]
async fn a_column_snapshots_do_not_cover_is_refused() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    sqlite(&dir).await.close().await;
    let url = format!("sqlite://{}", dir.path().join("strongroom.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("ALTER TABLE keys ADD COLUMN colour TEXT")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = sqlite(&dir).await.snapshot().await.unwrap_err();
    assert!(err.to_string().contains("keys.colour"), "{err}");
}
