//! How hard Strongroom tries a provider before it gives up on it: the settings every
//! `[providers.<name>]` table may carry besides its kind's own (`docs/providers.md`).
//! Core applies them (timeouts, retries, the circuit breaker); this crate only reads them.

use std::time::Duration;

#[cfg(any(
    feature = "vault-transit",
    feature = "aws-kms",
    feature = "pkcs11",
    feature = "gcp-kms",
    feature = "azure-keyvault"
))]
use crate::{ProviderError, Result};

/// The keys of a provider table that belong to failover, not to the provider kind.
pub const KEYS: &[&str] = &[
    "deadline",
    "retries",
    "retry_backoff",
    "breaker_failures",
    "breaker_open_for",
];

/// Failover settings of one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverPolicy {
    /// The longest one call may take, retries included (`deadline`, default `10s`).
    pub deadline: Duration,
    /// Retries after a retryable failure (`retries`, default 2): timeouts, 5xx, refused
    /// connections. Never after a refusal (not found, access denied, bad ciphertext).
    pub retries: u32,
    /// The first retry waits a random time up to this, doubling each retry (`retry_backoff`,
    /// default `100ms`; "full jitter").
    pub retry_backoff: Duration,
    /// Calls that fail as unavailable in a row before the breaker opens (`breaker_failures`,
    /// default 1: a dead provider costs one deadline, not one per request).
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before it lets one trial call through
    /// (`breaker_open_for`, default `30s`).
    pub breaker_open_for: Duration,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            retries: 2,
            retry_backoff: Duration::from_millis(100),
            breaker_failures: 1,
            breaker_open_for: Duration::from_secs(30),
        }
    }
}

impl FailoverPolicy {
    /// Takes the failover keys out of one provider's TOML table (what is left is the kind's).
    #[cfg(any(
        feature = "vault-transit",
        feature = "aws-kms",
        feature = "pkcs11",
        feature = "gcp-kms",
        feature = "azure-keyvault"
    ))]
    pub(crate) fn take_from(name: &str, table: &mut toml::Table) -> Result<Self> {
        let mut p = Self::default();
        let field = |k: &str| format!("providers.{name}.{k}");
        let text = |table: &mut toml::Table, k: &str| -> Result<Option<String>> {
            match table.remove(k) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(ProviderError::Config(format!(
                    "{}: expected a duration such as \"5s\"",
                    field(k)
                ))),
            }
        };
        let count = |table: &mut toml::Table, k: &str, max: i64| -> Result<Option<u32>> {
            match table.remove(k) {
                None => Ok(None),
                Some(toml::Value::Integer(n)) if (0..=max).contains(&n) => Ok(Some(n as u32)),
                Some(_) => Err(ProviderError::Config(format!(
                    "{}: expected a whole number from 0 to {max}",
                    field(k)
                ))),
            }
        };
        if let Some(s) = text(table, "deadline")? {
            p.deadline = crate::parse_duration(&s, &field("deadline"))?;
        }
        if let Some(n) = count(table, "retries", 10)? {
            p.retries = n;
        }
        if let Some(s) = text(table, "retry_backoff")? {
            p.retry_backoff = crate::parse_duration(&s, &field("retry_backoff"))?;
        }
        if let Some(n) = count(table, "breaker_failures", 1000)? {
            if n == 0 {
                return Err(ProviderError::Config(format!(
                    "{}: at least 1",
                    field("breaker_failures")
                )));
            }
            p.breaker_failures = n;
        }
        if let Some(s) = text(table, "breaker_open_for")? {
            p.breaker_open_for = crate::parse_duration(&s, &field("breaker_open_for"))?;
        }
        Ok(p)
    }
}
