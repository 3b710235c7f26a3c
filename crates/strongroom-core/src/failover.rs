//! Calls to key providers with a deadline, jittered retries of retryable failures, and a
//! circuit breaker per provider, so that a dead provider costs one deadline and then
//! nothing until it may be back (`docs/key-sets.md`, settings in `docs/providers.md`).
//!
//! Breaker: **closed** (calls pass) → after `breaker_failures` calls in a row fail as
//! unavailable → **open** (calls are refused at once) → after `breaker_open_for` →
//! **half-open** (one trial call passes; others are refused) → closed if it succeeds, open
//! again if it fails as unavailable. Refusals by the provider (not found, access denied, a
//! ciphertext that does not open) are answers: they count as healthy.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strongroom_providers::{FailoverPolicy, KeyProvider, ProviderError};

/// The state of a provider's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused without reaching the provider.
    Open,
    /// The open period is over: the next call is a trial.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open`, `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    /// The gauge value (`strongroom_provider_breaker_state`): 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
struct Breaker {
    /// Calls failed as unavailable in a row.
    failures: u32,
    /// While open: until when.
    open_until: Option<Instant>,
    /// A half-open trial call is running.
    trial: bool,
    /// How many times it opened since start.
    opened: u64,
}

/// A provider with its failover policy and breaker. Core calls providers only through this.
#[derive(Debug)]
pub struct Guarded {
    inner: Arc<dyn KeyProvider>,
    policy: FailoverPolicy,
    breaker: Mutex<Breaker>,
}

/// Whether a call may go to the provider, and whether it is the half-open trial.
enum Admission {
    Normal,
    Trial,
}

impl Guarded {
    /// Guards `inner` with `policy`; the breaker starts closed.
    pub fn new(inner: Arc<dyn KeyProvider>, policy: FailoverPolicy) -> Self {
        crate::metrics::provider_breaker(inner.name(), BreakerState::Closed);
        Self {
            inner,
            policy,
            breaker: Mutex::new(Breaker {
                failures: 0,
                open_until: None,
                trial: false,
                opened: 0,
            }),
        }
    }

    /// The provider itself (health probes bypass the breaker).
    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.inner
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The policy in force.
    pub fn policy(&self) -> &FailoverPolicy {
        &self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // A panic while holding this lock cannot leave it inconsistent: take it anyway.
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The breaker's state now.
    pub fn state(&self) -> BreakerState {
        let b = self.lock();
        match b.open_until {
            None => BreakerState::Closed,
            Some(t) if Instant::now() < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// How many times the breaker has opened since this node started.
    pub fn times_opened(&self) -> u64 {
        self.lock().opened
    }

    fn admit(&self) -> Result<Admission, ProviderError> {
        let mut b = self.lock();
        match b.open_until {
            None => Ok(Admission::Normal),
            Some(t) => {
                let now = Instant::now();
                if now < t || b.trial {
                    let wait = t.saturating_duration_since(now);
                    Err(ProviderError::Unavailable {
                        provider: self.name().to_string(),
                        detail: format!(
                            "circuit breaker open after repeated failures; next trial in {} s",
                            wait.as_secs()
                        ),
                        retryable: false,
                    })
                } else {
                    b.trial = true;
                    crate::metrics::provider_breaker(self.name(), BreakerState::HalfOpen);
                    Ok(Admission::Trial)
                }
            }
        }
    }

    fn record(&self, admission: &Admission, healthy: bool) {
        let mut b = self.lock();
        if matches!(admission, Admission::Trial) {
            b.trial = false;
        }
        if healthy {
            b.failures = 0;
            if b.open_until.take().is_some() {
                tracing::info!(
                    provider = self.name(),
                    "provider answers again: circuit breaker closed"
                );
                crate::metrics::provider_breaker(self.name(), BreakerState::Closed);
            }
            return;
        }
        b.failures = b.failures.saturating_add(1);
        let reopen = matches!(admission, Admission::Trial);
        if reopen || (b.open_until.is_none() && b.failures >= self.policy.breaker_failures) {
            b.open_until = Some(Instant::now() + self.policy.breaker_open_for);
            b.opened += 1;
            tracing::warn!(
                provider = self.name(),
                open_for_secs = self.policy.breaker_open_for.as_secs(),
                "provider unavailable: circuit breaker open"
            );
            crate::metrics::provider_breaker(self.name(), BreakerState::Open);
            crate::metrics::provider_breaker_opened(self.name());
        }
    }

    /// Runs one provider operation under the policy: refused at once while the breaker is
    /// open; otherwise attempts until success, a non-retryable answer, the retries run out or
    /// the deadline passes (each attempt gets only what is left of the deadline).
    pub async fn call<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let started = Instant::now();
        let admission = match self.admit() {
            Ok(a) => a,
            Err(e) => {
                crate::metrics::provider_call(self.name(), operation, "rejected", Duration::ZERO);
                return Err(e);
            }
        };
        // If this future is dropped mid-call, a trial must not stay claimed forever.
        let mut claim = TrialClaim {
            guarded: self,
            armed: matches!(admission, Admission::Trial),
        };
        let deadline = started + self.policy.deadline;
        let mut attempt = 0u32;
        let res = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let res = match tokio::time::timeout(left, f()).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::Unavailable {
                    provider: self.name().to_string(),
                    detail: format!("no answer within {:?}", self.policy.deadline),
                    retryable: true,
                }),
            };
            match res {
                Err(e) if e.is_retryable() && attempt < self.policy.retries => {
                    let wait = backoff(self.policy.retry_backoff, attempt);
                    if Instant::now() + wait >= deadline {
                        break Err(e);
                    }
                    attempt += 1;
                    crate::metrics::provider_retry(self.name(), operation);
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };
        claim.armed = false;
        let healthy = !matches!(res, Err(ProviderError::Unavailable { .. }));
        self.record(&admission, healthy);
        crate::metrics::provider_call(
            self.name(),
            operation,
            if res.is_ok() { "ok" } else { "error" },
            started.elapsed(),
        );
        res
    }
}

struct TrialClaim<'a> {
    guarded: &'a Guarded,
    armed: bool,
}

impl Drop for TrialClaim<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.guarded.lock().trial = false;
        }
    }
}

/// Full jitter: a random wait between 0 and `base * 2^attempt` (capped at 5 s).
fn backoff(base: Duration, attempt: u32) -> Duration {
    let cap = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(Duration::from_secs(5));
    let r = strongroom_crypto::rand::array::<8>()
        .map(u64::from_le_bytes)
        .unwrap_or(u64::MAX / 2);
    let ms = cap.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(r % (ms + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use strongroom_crypto::EncryptionContext;
    use strongroom_providers::{ProviderKey, Unwrapped, Wrapped};

    /// A provider whose `wrap` fails as told.
    #[derive(Debug)]
    struct Flaky {
        calls: AtomicU32,
        mode: Mutex<&'static str>,
    }

    #[async_trait::async_trait]
    impl KeyProvider for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn kind(&self) -> &'static str {
            "test"
        }
        // Only `wrap` is exercised; the rest answer as a provider without them would.
        async fn describe(&self, _key: &str) -> strongroom_providers::Result<ProviderKey> {
            Err(ProviderError::Unsupported {
                provider: "flaky".into(),
                operation: "describe",
            })
        }
        async fn wrap(
            &self,
            key: &str,
            _pt: &[u8],
            _c: &EncryptionContext,
        ) -> strongroom_providers::Result<Wrapped> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mode = *self.mode.lock().unwrap();
            let down = |retryable| ProviderError::Unavailable {
                provider: "flaky".into(),
                detail: "down".into(),
                retryable,
            };
            match mode {
                "ok" => Ok(Wrapped {
                    ciphertext: b"w".to_vec(),
                    key_version: None,
                    request_id: None,
                }),
                "down" => Err(down(true)),
                "hang" => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Err(down(true))
                }
                "once" => {
                    *self.mode.lock().unwrap() = "ok";
                    Err(down(true))
                }
                _ => Err(ProviderError::NotFound {
                    provider: "flaky".into(),
                    key: key.into(),
                }),
            }
        }
        async fn unwrap(
            &self,
            _key: &str,
            _ct: &[u8],
            _c: &EncryptionContext,
        ) -> strongroom_providers::Result<Unwrapped> {
            Err(ProviderError::Unsupported {
                provider: "flaky".into(),
                operation: "unwrap",
            })
        }
        async fn health(&self) -> strongroom_providers::Result<()> {
            Ok(())
        }
    }

    fn guarded(mode: &'static str, policy: FailoverPolicy) -> (Arc<Flaky>, Guarded) {
        let p = Arc::new(Flaky {
            calls: AtomicU32::new(0),
            mode: Mutex::new(mode),
        });
        let g = Guarded::new(p.clone(), policy);
        (p, g)
    }

    fn fast() -> FailoverPolicy {
        FailoverPolicy {
            deadline: Duration::from_millis(300),
            retries: 2,
            retry_backoff: Duration::from_millis(5),
            breaker_failures: 1,
            breaker_open_for: Duration::from_millis(200),
        }
    }

    async fn wrap(g: &Guarded, p: &Flaky) -> Result<Wrapped, ProviderError> {
        let ctx = EncryptionContext::empty();
        g.call("wrap", || p.wrap("k", b"dk", &ctx)).await
    }

    #[tokio::test]
    async fn retries_retryable_failures_then_succeeds() {
        let (p, g) = guarded("once", fast());
        wrap(&g, &p).await.unwrap();
        assert_eq!(p.calls.load(Ordering::SeqCst), 2);
        assert_eq!(g.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn refusals_are_not_retried_and_do_not_open_the_breaker() {
        let (p, g) = guarded("missing", fast());
        for _ in 0..3 {
            assert!(matches!(
                wrap(&g, &p).await,
                Err(ProviderError::NotFound { .. })
            ));
        }
        assert_eq!(p.calls.load(Ordering::SeqCst), 3);
        assert_eq!(g.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_dead_provider_costs_one_call_then_the_breaker_refuses_at_once() {
        let (p, g) = guarded("down", fast());
        assert!(wrap(&g, &p).await.unwrap_err().is_retryable());
        assert_eq!(p.calls.load(Ordering::SeqCst), 3, "one call, two retries");
        assert_eq!(g.state(), BreakerState::Open);
        let t = Instant::now();
        let e = wrap(&g, &p).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_millis(50));
        assert!(e.to_string().contains("circuit breaker open"), "{e}");
        assert!(!e.is_retryable());
        assert_eq!(p.calls.load(Ordering::SeqCst), 3, "refused without a call");
        assert_eq!(g.times_opened(), 1);

        // Half-open after the open period: one trial; it fails, so open again.
        tokio::time::sleep(Duration::from_millis(220)).await;
        assert_eq!(g.state(), BreakerState::HalfOpen);
        wrap(&g, &p).await.unwrap_err();
        assert_eq!(g.state(), BreakerState::Open);
        assert_eq!(g.times_opened(), 2);

        // Back up: the next trial closes it.
        *p.mode.lock().unwrap() = "ok";
        tokio::time::sleep(Duration::from_millis(220)).await;
        wrap(&g, &p).await.unwrap();
        assert_eq!(g.state(), BreakerState::Closed);
        wrap(&g, &p).await.unwrap();
    }

    #[tokio::test]
    async fn a_hanging_provider_costs_the_deadline_once() {
        let (p, g) = guarded("hang", fast());
        let t = Instant::now();
        let e = wrap(&g, &p).await.unwrap_err();
        let took = t.elapsed();
        assert!(e.is_retryable(), "{e}");
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(600),
            "{took:?}"
        );
        assert_eq!(p.calls.load(Ordering::SeqCst), 1, "no time left to retry");
        let t = Instant::now();
        wrap(&g, &p).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn several_failures_in_a_row_when_so_configured() {
        let (p, g) = guarded(
            "down",
            FailoverPolicy {
                retries: 0,
                breaker_failures: 3,
                ..fast()
            },
        );
        for _ in 0..2 {
            wrap(&g, &p).await.unwrap_err();
            assert_eq!(g.state(), BreakerState::Closed);
        }
        wrap(&g, &p).await.unwrap_err();
        assert_eq!(g.state(), BreakerState::Open);
        assert_eq!(p.calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 0..20 {
            let w = backoff(Duration::from_millis(100), attempt);
            assert!(w <= Duration::from_secs(5));
            assert!(w <= Duration::from_millis(100 * (1u64 << attempt.min(16))));
        }
        assert_eq!(backoff(Duration::ZERO, 3), Duration::ZERO);
    }
}
