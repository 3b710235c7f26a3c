//! A whole store as data: every table that holds state, read in one consistent transaction
//! ([`crate::Store::snapshot`]) and written back into an empty store in one transaction
//! ([`crate::Store::restore_snapshot`]). The same on SQLite and PostgreSQL, so a snapshot of
//! one restores into the other. Its JSON encoding is the body of a backup
//! (`docs/formats/backup-v1.md`); key material in it is sealed as it is in the store.

use base64::Engine;
use serde_json::{Map, Value as Json, json};

use crate::{Result, StoreError};

/// A column's type, the same on both backends (SQLite `INTEGER`/`BLOB`, PostgreSQL
/// `BIGINT`/`BYTEA`/`BOOLEAN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text.
    Text,
    /// A 64-bit integer.
    Int,
    /// Bytes (base64 in JSON).
    Bytes,
    /// A boolean.
    Bool,
}

/// A table in snapshots: its name, its columns, and the order rows are read in.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// The table.
    pub name: &'static str,
    /// Every column, with its type.
    pub columns: &'static [(&'static str, ColumnType)],
    /// `ORDER BY` of the read (the primary key), so a snapshot of a store is deterministic.
    pub order_by: &'static str,
}

use ColumnType::{Bool, Bytes, Int, Text};

/// Every table that holds state, parents before children (the order rows are restored in).
/// `schema_migrations` (made by opening the store) and `leases` (who runs the scheduler now)
/// are not state. A column added by a migration must be added here: `snapshot` refuses a
/// store with a column this list lacks, so nothing is left out of a backup silently.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "meta",
        columns: &[("name", Text), ("value", Bytes)],
        order_by: "name",
    },
    TableSpec {
        name: "key_rings",
        columns: &[
            ("name", Text),
            ("description", Text),
            ("labels", Text),
            ("created_at", Int),
        ],
        order_by: "name",
    },
    TableSpec {
        name: "keys",
        columns: &[
            ("id", Bytes),
            ("ring", Text),
            ("name", Text),
            ("purpose", Text),
            ("algorithm", Text),
            ("protection", Text),
            ("exportable", Bool),
            ("description", Text),
            ("labels", Text),
            ("state", Text),
            ("primary_version", Int),
            ("version_count", Int),
            ("rotation_period_secs", Int),
            ("next_rotation_time", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("revision", Int),
            ("deletion_time", Int),
            ("origin", Text),
            ("material_expires_at", Int),
            ("provider", Text),
            ("provider_key", Text),
        ],
        order_by: "id",
    },
    TableSpec {
        name: "key_versions",
        columns: &[
            ("key_id", Bytes),
            ("version", Int),
            ("state", Text),
            ("sealed_material", Bytes),
            ("public_key", Bytes),
            ("created_at", Int),
            ("destroy_time", Int),
            ("destroyed_at", Int),
            ("origin", Text),
        ],
        order_by: "key_id, version",
    },
    TableSpec {
        name: "aliases",
        columns: &[
            ("name", Text),
            ("key_id", Bytes),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "name",
    },
    TableSpec {
        name: "principals",
        columns: &[
            ("name", Text),
            ("kind", Text),
            ("roles", Text),
            ("labels", Text),
            ("description", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("disabled_at", Int),
            ("rate_limits", Text),
            ("tls_certs", Text),
        ],
        order_by: "name",
    },
    TableSpec {
        name: "principal_certs",
        columns: &[("fingerprint", Text), ("principal", Text)],
        order_by: "fingerprint",
    },
    TableSpec {
        name: "tokens",
        columns: &[
            ("id", Text),
            ("hash", Bytes),
            ("principal", Text),
            ("description", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
        ],
        order_by: "id",
    },
    TableSpec {
        name: "access_keys",
        columns: &[
            ("id", Text),
            ("principal", Text),
            ("sealed_secret", Bytes),
            ("description", Text),
            ("created_at", Int),
            ("revoked_at", Int),
            ("expires_at", Int),
            ("session_token_hash", Bytes),
        ],
        order_by: "id",
    },
    TableSpec {
        name: "policy_versions",
        columns: &[
            ("name", Text),
            ("version", Int),
            ("text", Text),
            ("created_at", Int),
            ("created_by", Text),
        ],
        order_by: "name, version",
    },
    TableSpec {
        name: "issuers",
        columns: &[("name", Text), ("config", Text)],
        order_by: "name",
    },
    TableSpec {
        name: "key_sets",
        columns: &[("name", Text), ("config", Text)],
        order_by: "name",
    },
    TableSpec {
        name: "grants",
        columns: &[
            ("id", Text),
            ("key_id", Bytes),
            ("grantee", Text),
            ("retiring", Text),
            ("token_hash", Bytes),
            ("spec", Text),
            ("created_at", Int),
        ],
        order_by: "id",
    },
    TableSpec {
        name: "import_tokens",
        columns: &[
            ("id", Text),
            ("key_id", Bytes),
            ("token_hash", Bytes),
            ("wrapping", Text),
            ("wrapping_algorithm", Text),
            ("sealed_private", Bytes),
            ("expires_at", Int),
            ("used_at", Int),
        ],
        order_by: "id",
    },
];

/// Tables that exist in a store but are not state (see [`TABLES`]).
pub const NOT_STATE: &[&str] = &["schema_migrations", "leases"];

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL `NULL`.
    Null,
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A boolean.
    Bool(bool),
}

/// The rows of one table, with the columns they hold (a snapshot of an older schema holds
/// fewer columns; the store gives the rest their defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRows {
    /// The table.
    pub name: String,
    /// The columns each row holds, in order.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<Cell>>,
}

/// A whole store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The schema version (newest migration) of the store it was read from.
    pub schema_version: i64,
    /// Every table of [`TABLES`], in that order.
    pub tables: Vec<TableRows>,
}

fn bad(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(format!("snapshot: {}", what.into()))
}

pub(crate) fn spec(table: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == table)
}

pub(crate) fn column_type(table: &TableSpec, column: &str) -> Option<ColumnType> {
    table
        .columns
        .iter()
        .find(|(c, _)| *c == column)
        .map(|(_, t)| *t)
}

impl Snapshot {
    /// The table named `name`, if the snapshot has it.
    pub fn table(&self, name: &str) -> Option<&TableRows> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The table named `name`, to change it before restoring.
    pub fn table_mut(&mut self, name: &str) -> Option<&mut TableRows> {
        self.tables.iter_mut().find(|t| t.name == name)
    }

    /// Rows per table, for reports.
    pub fn counts(&self) -> Vec<(String, usize)> {
        self.tables
            .iter()
            .map(|t| (t.name.clone(), t.rows.len()))
            .collect()
    }

    /// The JSON encoding (`docs/formats/backup-v1.md`, "Body"): bytes in standard base64,
    /// integers as numbers, booleans as booleans, `NULL` as null.
    pub fn to_json(&self) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let tables: Vec<Json> = self
            .tables
            .iter()
            .map(|t| {
                let rows: Vec<Json> = t
                    .rows
                    .iter()
                    .map(|r| {
                        Json::Array(
                            r.iter()
                                .map(|c| match c {
                                    Cell::Null => Json::Null,
                                    Cell::Text(s) => Json::String(s.clone()),
                                    Cell::Int(i) => json!(i),
                                    Cell::Bytes(b) => Json::String(b64.encode(b)),
                                    Cell::Bool(b) => Json::Bool(*b),
                                })
                                .collect(),
                        )
                    })
                    .collect();
                json!({"name": t.name, "columns": t.columns, "rows": rows})
            })
            .collect();
        let doc = json!({"schema_version": self.schema_version, "tables": tables});
        // Invariant: a tree of JSON values always serialises.
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    /// Decodes [`Snapshot::to_json`], checking every table and column against [`TABLES`]:
    /// an unknown table or column (a backup from a newer Strongroom) is refused, as is a
    /// value of the wrong type.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let doc: Map<String, Json> =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let schema_version = doc
            .get("schema_version")
            .and_then(Json::as_i64)
            .ok_or_else(|| bad("schema_version is missing"))?;
        let mut tables = Vec::new();
        for t in doc
            .get("tables")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("tables is missing"))?
        {
            let name = t
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("a table has no name"))?;
            let table = spec(name).ok_or_else(|| {
                bad(format!(
                    "table {name:?} is unknown to this strongroom (a backup from a newer release?)"
                ))
            })?;
            let columns: Vec<String> = t
                .get("columns")
                .and_then(Json::as_array)
                .ok_or_else(|| bad(format!("{name}: columns is missing")))?
                .iter()
                .map(|c| c.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad(format!("{name}: a column name is not a string")))?;
            let types: Vec<ColumnType> = columns
                .iter()
                .map(|c| {
                    column_type(table, c).ok_or_else(|| {
                        bad(format!(
                            "column {name}.{c} is unknown to this strongroom (a backup from a newer release?)"
                        ))
                    })
                })
                .collect::<Result<_>>()?;
            let mut rows = Vec::new();
            for r in t
                .get("rows")
                .and_then(Json::as_array)
                .ok_or_else(|| bad(format!("{name}: rows is missing")))?
            {
                let r = r
                    .as_array()
                    .filter(|r| r.len() == types.len())
                    .ok_or_else(|| bad(format!("{name}: a row has the wrong number of values")))?;
                let cells = r
                    .iter()
                    .zip(&types)
                    .map(|(v, ty)| match (v, ty) {
                        (Json::Null, _) => Some(Cell::Null),
                        (Json::String(s), Text) => Some(Cell::Text(s.clone())),
                        (Json::String(s), Bytes) => b64.decode(s).ok().map(Cell::Bytes),
                        (Json::Number(n), Int) => n.as_i64().map(Cell::Int),
                        (Json::Bool(b), Bool) => Some(Cell::Bool(*b)),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(format!("{name}: a value has the wrong type")))?;
                rows.push(cells);
            }
            tables.push(TableRows {
                name: name.to_string(),
                columns,
                rows,
            });
        }
        Ok(Self {
            schema_version,
            tables,
        })
    }
}
