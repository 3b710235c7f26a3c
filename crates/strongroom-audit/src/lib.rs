//! Audit events and where they go.
//!
//! One event per operation, allowed or refused, written before the response leaves: if the
//! event cannot be written the operation fails (fail closed). Schema: `docs/audit.md`
//! (`strongroom.audit.v1`). This first cut is a JSON-lines file; hash chaining and signed
//! checkpoints come later and will keep these fields.
//!
//! **Invariant:** events carry names, ids, outcomes and error codes — never plaintext, key
//! material, tokens or encryption-context values.

#![warn(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// The schema identifier every event carries.
pub const SCHEMA: &str = "strongroom.audit.v1";

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The operation succeeded.
    Ok,
    /// The operation was refused or failed; `error_code` says why.
    Error,
}

/// One audit event. Field names and meanings are specified in `docs/audit.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// RFC 3339 UTC time the operation was decided.
    pub time: String,
    /// The request id returned to the client.
    pub request_id: String,
    /// The authenticated principal, if authentication succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The id (not the secret) of the token used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Which front-end received the request (`native`, `scheduler`, …).
    pub protocol: &'static str,
    /// The operation name, e.g. `encrypt`.
    pub operation: &'static str,
    /// The key ring involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ring: Option<String>,
    /// The key name involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key id involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The key version involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The alias named in the request, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Another resource (a token id) for operations that are not about keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Success or failure.
    pub outcome: Outcome,
    /// The stable error code when `outcome` is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    /// The client's address, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
}

impl AuditEvent {
    /// A new event with the outcome not yet known (set to `Ok` until `fail` is called).
    pub fn new(
        time: String,
        request_id: String,
        protocol: &'static str,
        operation: &'static str,
    ) -> Self {
        Self {
            schema: SCHEMA,
            time,
            request_id,
            principal: None,
            token_id: None,
            protocol,
            operation,
            key_ring: None,
            key: None,
            key_id: None,
            version: None,
            alias: None,
            target: None,
            outcome: Outcome::Ok,
            error_code: None,
            client_addr: None,
        }
    }
}

/// The audit trail could not be written.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path} is not writable: {source}")]
pub struct AuditError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Where events go. Implementations must either persist the event or return an error.
pub trait AuditSink: Send + Sync + 'static {
    /// Appends one event.
    fn append(&self, event: &AuditEvent) -> Result<(), AuditError>;
    /// Whether the last write succeeded (for readiness checks).
    fn is_healthy(&self) -> bool;
    /// Flushes written events to stable storage.
    fn sync(&self) -> Result<(), AuditError>;
}

/// An append-only JSON-lines file, created with mode 0600.
///
/// Each event is one `write` of one line to a file opened with `O_APPEND`, so lines never
/// interleave. Events reach the operating system before the response is sent; `sync` (called
/// periodically by the server and at shutdown) makes them durable.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: Mutex<File>,
    healthy: AtomicBool,
}

impl FileSink {
    /// Opens (or creates) the audit file for appending.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(path).map_err(|source| AuditError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            healthy: AtomicBool::new(true),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        self.healthy.store(false, Ordering::SeqCst);
        tracing::error!(path = %self.path.display(), error = %source, "audit write failed; operations are refused until it succeeds");
        AuditError {
            path: self.path.clone(),
            source,
        }
    }
}

impl AuditSink for FileSink {
    fn append(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(event).map_err(|e| self.io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut f = self
            .file
            .lock()
            .map_err(|_| self.io(std::io::Error::other("audit lock poisoned")))?;
        f.write_all(&line).map_err(|e| self.io(e))?;
        self.healthy.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    fn sync(&self) -> Result<(), AuditError> {
        let f = self
            .file
            .lock()
            .map_err(|_| self.io(std::io::Error::other("audit lock poisoned")))?;
        f.sync_data().map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_json_lines_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = FileSink::open(&path).unwrap();
        let mut e = AuditEvent::new(
            "2026-11-22T00:00:00Z".into(),
            "req-1".into(),
            "native",
            "encrypt",
        );
        e.key = Some("k".into());
        sink.append(&e).unwrap();
        e.outcome = Outcome::Error;
        e.error_code = Some("invalid_state");
        sink.append(&e).unwrap();
        sink.sync().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["schema"], "strongroom.audit.v1");
        assert_eq!(lines[0]["outcome"], "ok");
        assert!(lines[0].get("error_code").is_none());
        assert_eq!(lines[1]["error_code"], "invalid_state");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn write_failure_is_reported_not_swallowed() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let sink = FileSink::open(Path::new("/dev/full")).unwrap();
        let e = AuditEvent::new("t".into(), "r".into(), "native", "encrypt");
        let err = sink.append(&e).unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
        assert!(!sink.is_healthy());
    }
}
