//! Audit events and the tamper-evident log they go to.
//!
//! One event per operation, allowed or refused, made durable before the response leaves: if
//! it cannot be written the operation fails (fail closed). Event fields: `docs/audit.md`.
//! Log format (hash chain, signed checkpoints, recovery): `docs/formats/audit-log-v1.md`.
//!
//! **Invariant:** events carry names, ids, outcomes and error codes — never plaintext, key
//! material, tokens or encryption-context values.

#![warn(missing_docs)]

pub mod chain;
pub mod merge;
pub mod query;
mod sink;
pub mod verify;

use serde::Serialize;

pub use chain::Signer;
pub use sink::{ChainedFileSink, SinkOptions};

/// The schema identifier of event lines.
pub const SCHEMA: &str = chain::EVENT_SCHEMA;

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The operation succeeded.
    Ok,
    /// The operation was refused or failed; `error_code` says why.
    Error,
}

/// One call an operation made to a key provider (`docs/audit.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderCall {
    /// The provider's configured name (`software` for Strongroom's own keys).
    pub provider: String,
    /// The provider's key.
    pub key: String,
    /// `ok`, or `error` with `error`.
    pub outcome: Outcome,
    /// Why it failed (the provider's answer, no secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The provider's own request id, for joining its logs (AWS, Vault) to ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One audit event. Field names and meanings are specified in `docs/audit.md`; the writer
/// adds `schema`, `seq` and `prev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
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
    /// How the principal authenticated (`token`; later `sigv4`, `jwt`, `mtls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'static str>,
    /// The policies that decided (comma-separated ids; `builtin:root` for the root token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
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
    /// The client's own id for the request, when its protocol carries one (the Kubernetes
    /// API server's `uid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// The key set the operation used, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_set: Option<String>,
    /// The provider calls the operation made (key sets, external keys), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderCall>,
    /// Set by core once this event was written ahead of a state change. Not serialised.
    #[serde(skip)]
    pub written_ahead: bool,
    /// When core started the operation, for its latency metric. Not serialised.
    #[serde(skip)]
    pub started: Option<std::time::Instant>,
}

impl AuditEvent {
    /// A new event with the outcome not yet known (set to `Ok` until changed).
    pub fn new(
        time: String,
        request_id: String,
        protocol: &'static str,
        operation: &'static str,
    ) -> Self {
        Self {
            time,
            request_id,
            principal: None,
            token_id: None,
            auth_method: None,
            policy: None,
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
            client_request_id: None,
            key_set: None,
            providers: Vec::new(),
            written_ahead: false,
            started: None,
        }
    }
}

/// The audit trail could not be written. The message names the file, never event contents.
#[derive(Debug, Clone, thiserror::Error)]
#[error("audit log {path}: {reason}")]
pub struct AuditError {
    /// The log file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// Where events go. `append` returns only once the event is durable (or failed).
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Appends one event and waits until it is on stable storage.
    async fn append(&self, event: &AuditEvent) -> Result<(), AuditError>;
    /// Whether the last write succeeded (for readiness checks).
    fn is_healthy(&self) -> bool;
    /// The sequence number of the last line known to be durable (0 for an empty log).
    fn durable_seq(&self) -> u64;
    /// Writes a checkpoint if events were written since the last one, and syncs. Called at
    /// shutdown.
    async fn close(&self) -> Result<(), AuditError>;
}
