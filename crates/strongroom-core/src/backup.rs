//! Backups: a snapshot of the whole store, taken while serving, sealed under the root key in
//! a versioned file (`docs/formats/backup-v1.md`), and restored offline into an empty data
//! dir or database (`bootstrap::restore`).
//!
//! **Invariant:** a backup is opened completely — format, header, and the seal over header
//! and body — before anything is written anywhere, so a wrong root key or a changed byte is
//! refused with nothing touched.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strongroom_crypto::RootKey;
use strongroom_store::snapshot::{Cell, Snapshot};

use crate::error::{Error, Result};
use crate::request::{Operation, RequestContext};
use crate::service::KeyService;

/// The first 8 bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"SRBACKUP";
/// The format version this release writes (and the only one it reads).
pub const FORMAT_VERSION: u8 = 1;
/// The `format` field of the header.
pub const FORMAT_NAME: &str = "strongroom-backup";
/// Longest header accepted.
const MAX_HEADER: usize = 64 * 1024;
/// Bytes before the header: magic, version, header length.
const PREFIX: usize = 8 + 1 + 4;
/// The seal binding is this followed by the SHA-256 of everything before the sealed body.
const BINDING_PREFIX: &[u8] = b"backup-v1\0";

/// The readable part of a backup: what it holds and when it was made. Authenticated (a
/// changed header fails the seal), not encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// When the snapshot was read (RFC 3339, UTC).
    pub created_at: String,
    /// The release that wrote it.
    pub strongroom_version: String,
    /// The store's schema version (its newest migration).
    pub schema_version: i64,
    /// The audit log position of the node that took it, at that moment.
    pub audit: AuditCheckpoint,
    /// Rows per table.
    pub counts: BTreeMap<String, usize>,
}

/// Where the audit trail stood when a backup was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCheckpoint {
    /// The node that took the backup (`local` for SQLite).
    pub node: String,
    /// The sequence number of that node's last durable audit line.
    pub seq: u64,
}

/// Why a backup file was refused. Never says more than which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// The file does not start with the magic bytes.
    #[error("not a Strongroom backup (the file does not start with {MAGIC:?})")]
    NotABackup,
    /// A format version this release does not read.
    #[error("backup format version {0} is not supported by this strongroom (it reads version 1)")]
    UnsupportedVersion(u8),
    /// The file is cut short or its header is not valid.
    #[error("the backup is malformed: {0}")]
    Malformed(String),
    /// The seal did not open: another root key, or a byte was changed.
    #[error(
        "the backup was not made with this root key, or it was changed since (its seal does not verify)"
    )]
    SealBroken,
}

/// Writes a backup file's bytes: the header, then the snapshot sealed under the root key
/// with a binding over the header.
pub fn encode(root: &RootKey, header: &BackupHeader, snap: &Snapshot) -> Result<Vec<u8>> {
    let header_json =
        serde_json::to_vec(header).map_err(|e| Error::Internal(format!("backup header: {e}")))?;
    let len = u32::try_from(header_json.len())
        .ok()
        .filter(|n| (*n as usize) <= MAX_HEADER)
        .ok_or_else(|| Error::Internal("backup header too long".into()))?;
    let mut out = Vec::with_capacity(PREFIX + header_json.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header_json);
    let body = root
        .seal(&binding(&out), &snap.to_json())
        .map_err(|e| Error::Internal(format!("cannot seal the backup: {e}")))?;
    out.extend_from_slice(&body);
    Ok(out)
}

fn binding(authenticated: &[u8]) -> Vec<u8> {
    [
        BINDING_PREFIX,
        &strongroom_crypto::hash::sha256(authenticated),
    ]
    .concat()
}

/// Reads a backup's header without the root key (to show what a file is). Not a check of
/// integrity: only [`decode`] is.
pub fn peek_header(bytes: &[u8]) -> std::result::Result<BackupHeader, BackupError> {
    split(bytes).map(|(h, _, _)| h)
}

fn split(bytes: &[u8]) -> std::result::Result<(BackupHeader, &[u8], &[u8]), BackupError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    if bytes.len() < PREFIX {
        return Err(BackupError::Malformed("the file is cut short".into()));
    }
    if bytes[8] != FORMAT_VERSION {
        return Err(BackupError::UnsupportedVersion(bytes[8]));
    }
    let len = u32::from_be_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]) as usize;
    if len > MAX_HEADER || bytes.len() < PREFIX + len {
        return Err(BackupError::Malformed(
            "the header length is out of range".into(),
        ));
    }
    let header: BackupHeader = serde_json::from_slice(&bytes[PREFIX..PREFIX + len])
        .map_err(|e| BackupError::Malformed(format!("the header is not valid: {e}")))?;
    if header.format != FORMAT_NAME {
        return Err(BackupError::Malformed(format!(
            "the header's format is {:?}",
            header.format
        )));
    }
    let (authenticated, body) = bytes.split_at(PREFIX + len);
    Ok((header, authenticated, body))
}

/// Opens a backup: checks the format, verifies the seal over header and body with the root
/// key, and decodes the snapshot.
pub fn decode(
    root: &RootKey,
    bytes: &[u8],
) -> std::result::Result<(BackupHeader, Snapshot), BackupError> {
    let (header, authenticated, body) = split(bytes)?;
    let plain = root
        .unseal(&binding(authenticated), body)
        .map_err(|_| BackupError::SealBroken)?;
    let snap = Snapshot::from_json(plain.expose_secret())
        .map_err(|e| BackupError::Malformed(e.to_string()))?;
    if snap.schema_version != header.schema_version {
        return Err(BackupError::Malformed(
            "the header's schema version differs from the body's".into(),
        ));
    }
    Ok((header, snap))
}

/// Settings that belong to one node or one store, not to the state a backup carries: the
/// audit log positions (a restored instance starts a new audit log) and, on PostgreSQL, the
/// root key check and the initialised mark (`bootstrap::restore` writes them anew).
pub(crate) fn is_node_setting(name: &str) -> bool {
    name == crate::bootstrap::AUDIT_SEQ_META
        || name.starts_with(&format!("{}/", crate::bootstrap::AUDIT_SEQ_META))
        || name == crate::bootstrap::ROOT_CHECK_META
        || name == crate::bootstrap::INITIALISED_META
}

pub(crate) fn drop_node_settings(snap: &mut Snapshot) {
    if let Some(meta) = snap.table_mut("meta") {
        meta.rows
            .retain(|r| !matches!(r.first(), Some(Cell::Text(n)) if is_node_setting(n)));
    }
}

impl KeyService {
    /// Takes a backup while serving (needs `create-backup`; audited): a consistent snapshot
    /// of the store, sealed under the root key. Key material in it stays sealed as in the
    /// store; restoring needs the same root key.
    pub async fn create_backup(&self, ctx: &RequestContext) -> Result<(BackupHeader, Vec<u8>)> {
        let mut ev = self.event(ctx, Operation::CreateBackup);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "create-backup")?;
            let mut snap = self.store.snapshot().await?;
            drop_node_settings(&mut snap);
            let header = BackupHeader {
                format: FORMAT_NAME.into(),
                created_at: self.clock.now().to_rfc3339(),
                strongroom_version: env!("CARGO_PKG_VERSION").into(),
                schema_version: snap.schema_version,
                audit: AuditCheckpoint {
                    node: self.node_id.clone(),
                    seq: self.audit.durable_seq(),
                },
                counts: snap.counts().into_iter().collect(),
            };
            let bytes = encode(&self.root, &header, &snap)?;
            Ok((header, bytes))
        }
        .await;
        self.finish(ev, res).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strongroom_store::snapshot::TableRows;

    fn sample() -> (RootKey, BackupHeader, Snapshot) {
        let snap = Snapshot {
            schema_version: 13,
            tables: vec![TableRows {
                name: "meta".into(),
                columns: vec!["name".into(), "value".into()],
                rows: vec![
                    vec![Cell::Text("x".into()), Cell::Bytes(vec![1, 2, 3])],
                    vec![Cell::Text("audit_seq/n1".into()), Cell::Bytes(vec![0; 8])],
                ],
            }],
        };
        let header = BackupHeader {
            format: FORMAT_NAME.into(),
            created_at: "2026-12-01T00:00:00Z".into(),
            strongroom_version: "0.1.0".into(),
            schema_version: 13,
            audit: AuditCheckpoint {
                node: "local".into(),
                seq: 7,
            },
            counts: snap.counts().into_iter().collect(),
        };
        (RootKey::generate().unwrap(), header, snap)
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let (root, header, snap) = sample();
        let bytes = encode(&root, &header, &snap).unwrap();
        assert_eq!(decode(&root, &bytes).unwrap(), (header.clone(), snap));
        assert_eq!(peek_header(&bytes).unwrap(), header);
        // Another root key.
        let other = RootKey::generate().unwrap();
        assert_eq!(decode(&other, &bytes), Err(BackupError::SealBroken));
        // Every single-byte change anywhere is refused, whichever check catches it.
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(decode(&root, &b).is_err(), "byte {i} changed and accepted");
        }
        // The header changed in a way that still parses: the seal catches it.
        let h = String::from_utf8_lossy(&bytes[PREFIX..]).into_owned();
        let i = PREFIX + h.find("\"seq\":7").unwrap() + 6;
        let mut b = bytes.clone();
        b[i] = b'8';
        assert_eq!(decode(&root, &b), Err(BackupError::SealBroken));
        // Truncated anywhere.
        for n in [0, 7, 8, 12, PREFIX + 3, bytes.len() - 1] {
            assert!(decode(&root, &bytes[..n]).is_err(), "cut at {n} accepted");
        }
        assert_eq!(
            decode(&root, b"PK\x03\x04zip"),
            Err(BackupError::NotABackup)
        );
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert_eq!(decode(&root, &v2), Err(BackupError::UnsupportedVersion(2)));
    }

    #[test]
    fn node_settings_stay_behind() {
        let (_, _, mut snap) = sample();
        drop_node_settings(&mut snap);
        let names: Vec<_> = snap
            .table("meta")
            .unwrap()
            .rows
            .iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(names, vec![Cell::Text("x".into())]);
        for n in [
            "audit_seq",
            "audit_seq/abc",
            "root_key_check",
            "initialised",
        ] {
            assert!(is_node_setting(n), "{n}");
        }
        for n in ["audit_signing_key", "audit_sequence", "x"] {
            assert!(!is_node_setting(n), "{n}");
        }
    }
}
