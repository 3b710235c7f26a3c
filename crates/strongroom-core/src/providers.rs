//! The key providers this node is configured with (`serve --providers FILE`), and their
//! health. Core sees them only through `strongroom_providers::KeyProvider`: no HTTP here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom_providers::KeyProvider;

use strongroom_audit::{Outcome, ProviderCall};
use strongroom_crypto::EncryptionContext;

use crate::error::{Error, Result};
use crate::request::{Operation, RequestContext};
use crate::service::KeyService;

/// The longest a health probe may take before the provider counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One provider's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The configured name.
    pub name: String,
    /// The kind (`vault-transit`, …).
    pub kind: &'static str,
    /// Whether the last probe succeeded.
    pub healthy: bool,
    /// Why it failed (no secrets).
    pub error: Option<String>,
    /// How long the probe took.
    pub probe_ms: u64,
    /// The provider's circuit breaker (key set calls; probes do not go through it).
    pub breaker: crate::failover::BreakerState,
}

impl KeyService {
    /// Probes every configured provider (in parallel) and records the results in the
    /// metrics (`strongroom_provider_up`, `strongroom_provider_probe_duration_seconds`).
    pub async fn probe_providers(&self) -> Vec<ProviderStatus> {
        let probes = self.providers.values().map(|g| {
            let g = g.clone();
            let p: Arc<dyn KeyProvider> = g.provider().clone();
            async move {
                let t = Instant::now();
                let res = tokio::time::timeout(PROBE_TIMEOUT, p.health()).await;
                let took = t.elapsed();
                let error = match res {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!("{}: no answer within {PROBE_TIMEOUT:?}", p.name())),
                };
                crate::metrics::provider_probe(p.name(), p.kind(), error.is_none(), took);
                ProviderStatus {
                    name: p.name().to_string(),
                    kind: p.kind(),
                    healthy: error.is_none(),
                    error,
                    probe_ms: took.as_millis() as u64,
                    breaker: g.state(),
                }
            }
        });
        join_all(probes).await.into_iter().flatten().collect()
    }

    /// Lists the providers with a fresh health probe (needs `list-providers`; audited).
    pub async fn list_providers(&self, ctx: &RequestContext) -> Result<Vec<ProviderStatus>> {
        let mut ev = self.event(ctx, Operation::ListProviders);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "list-providers")?;
            Ok(self.probe_providers().await)
        }
        .await;
        self.finish(ev, res).await
    }
}

/// Runs futures concurrently (one task each) and collects their outcomes in order; an
/// `Err` is a task that panicked (a few providers: no need for a dependency).
pub(crate) async fn join_all<F>(
    fs: impl Iterator<Item = F>,
) -> Vec<std::result::Result<F::Output, tokio::task::JoinError>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await);
    }
    out
}

/// `context` plus the pair `key = value` that binds what a provider wraps to its use here
/// (a key set's name, an external key's id). Callers may not send `strongroom:` keys.
pub(crate) fn bind(
    context: &EncryptionContext,
    key: &str,
    value: &str,
) -> Result<EncryptionContext> {
    if context.pairs().keys().any(|k| k.starts_with("strongroom:")) {
        return Err(Error::invalid(
            "context",
            "keys starting with strongroom: are reserved",
        ));
    }
    let mut pairs = context.pairs().clone();
    pairs.insert(key.into(), value.into());
    EncryptionContext::try_new(pairs)
        .map_err(|e| Error::invalid("context", format!("{e} (with Strongroom's own pair)")))
}

/// The audit record of one provider call on `member` (`<provider>:<key>`): its request id
/// on success, the provider's answer on failure.
pub(crate) fn call_record(
    member: &str,
    res: std::result::Result<Option<String>, &strongroom_providers::ProviderError>,
) -> ProviderCall {
    let (provider, key) = member.split_once(':').unwrap_or((member, ""));
    match res {
        Ok(request_id) => ProviderCall {
            provider: provider.into(),
            key: key.into(),
            outcome: Outcome::Ok,
            error: None,
            request_id,
        },
        Err(e) => ProviderCall {
            provider: provider.into(),
            key: key.into(),
            outcome: Outcome::Error,
            error: Some(e.to_string()),
            request_id: None,
        },
    }
}
