//! The store suite's PostgreSQL: databases on the testkit's throw-away cluster.

use strongroom_store::{PostgresOptions, PostgresStore};

pub(crate) use strongroom_testkit::postgres::fresh_database_url as fresh_url;

/// A store on a new, empty database.
pub(crate) async fn fresh() -> PostgresStore {
    open(&fresh_url().await).await
}

/// Opens a store on `url` (another node on the same database).
pub(crate) async fn open(url: &str) -> PostgresStore {
    PostgresStore::open(&PostgresOptions {
        url: url.to_string(),
        max_connections: 4,
    })
    .await
    .unwrap()
}
