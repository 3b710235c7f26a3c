//! Per-principal request quotas: a token bucket per (principal, class of operation).
//! Over quota, an operation fails with `Throttled` and a retry hint, before any work is done.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, Result};

/// Classes of operations that share a quota.
pub const CLASSES: [&str; 4] = ["crypto", "read", "write", "keygen"];

/// The class an operation (by its audit name) counts against.
pub fn class_of(operation: &str) -> &'static str {
    match operation {
        "encrypt"
        | "decrypt"
        | "generate-data-key"
        | "re-encrypt"
        | "asymmetric-decrypt"
        | "asymmetric-encrypt"
        | "derive-shared-secret"
        | "get-public-key"
        | "sign"
        | "verify"
        | "mac"
        | "mac-verify"
        | "generate-random"
        | "hash"
        | "key-set-generate-data-key"
        | "key-set-wrap"
        | "key-set-decrypt" => "crypto",
        "create-key" | "create-version" | "generate-data-key-pair" | "get-import-parameters" => {
            "keygen"
        }
        o if o.starts_with("get-")
            || o.starts_with("list-")
            || matches!(
                o,
                "lookup-token" | "query-audit" | "read-metrics" | "test-policy" | "validate-policy"
            ) =>
        {
            "read"
        }
        _ => "write",
    }
}

/// Requests per second allowed per principal, per class. 0 means unlimited. Bursts of twice
/// the rate are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaConfig {
    /// Rates by class.
    pub rates: BTreeMap<&'static str, u32>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            rates: BTreeMap::from([
                ("crypto", 1000),
                ("read", 200),
                ("write", 50),
                ("keygen", 10),
            ]),
        }
    }
}

impl QuotaConfig {
    /// Parses `crypto=1000,keygen=5` (unnamed classes keep their defaults).
    pub fn parse(s: &str) -> Result<Self> {
        let mut c = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                Error::invalid(
                    "rate-limit",
                    "expected class=requests-per-second pairs, e.g. crypto=1000,keygen=5",
                )
            })?;
            let class = CLASSES.iter().find(|c| **c == k.trim()).ok_or_else(|| {
                Error::invalid("rate-limit", "classes are crypto, read, write, keygen")
            })?;
            let n: u32 = v.trim().parse().map_err(|_| {
                Error::invalid(
                    "rate-limit",
                    "rates are whole requests per second (0 = unlimited)",
                )
            })?;
            c.rates.insert(class, n);
        }
        Ok(c)
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets.
#[derive(Debug)]
pub(crate) struct Limiter {
    config: QuotaConfig,
    buckets: Mutex<HashMap<(String, &'static str), Bucket>>,
}

const MAX_BUCKETS: usize = 100_000;

impl Limiter {
    pub(crate) fn new(config: QuotaConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the principal's bucket for `class`; `overrides` are the
    /// principal's own rates, which win over the defaults.
    pub(crate) fn take(
        &self,
        principal: &str,
        overrides: &BTreeMap<String, u32>,
        class: &'static str,
    ) -> Result<()> {
        let rate = overrides
            .get(class)
            .copied()
            .or_else(|| self.config.rates.get(class).copied())
            .unwrap_or(0);
        if rate == 0 {
            return Ok(());
        }
        let burst = f64::from(rate) * 2.0;
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| Error::Internal("quota lock poisoned".into()))?;
        if buckets.len() >= MAX_BUCKETS {
            // Idle buckets are full anyway; forgetting them only forgives, never over-charges.
            buckets
                .retain(|_, b| now.duration_since(b.last).as_secs_f64() < burst / f64::from(rate));
        }
        let b = buckets
            .entry((principal.to_string(), class))
            .or_insert(Bucket {
                tokens: burst,
                last: now,
            });
        b.tokens =
            (b.tokens + now.duration_since(b.last).as_secs_f64() * f64::from(rate)).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - b.tokens) / f64::from(rate)).ceil().max(1.0) as u64;
        Err(Error::Throttled {
            class,
            retry_after_secs: wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_parsing() {
        assert_eq!(class_of("decrypt"), "crypto");
        assert_eq!(class_of("create-key"), "keygen");
        assert_eq!(class_of("list-keys"), "read");
        assert_eq!(class_of("disable-key"), "write");
        let c = QuotaConfig::parse("crypto=5, keygen=0").unwrap();
        assert_eq!(
            (c.rates["crypto"], c.rates["keygen"], c.rates["read"]),
            (5, 0, 200)
        );
        assert!(QuotaConfig::parse("bogus=1").is_err());
        assert!(QuotaConfig::parse("crypto=-1").is_err());
        assert!(QuotaConfig::parse("crypto").is_err());
    }

    #[test]
    fn bursts_then_throttles_per_principal_and_class() {
        let l = Limiter::new(QuotaConfig::parse("crypto=2").unwrap());
        let none = BTreeMap::new();
        for _ in 0..4 {
            l.take("a", &none, "crypto").unwrap();
        }
        let e = l.take("a", &none, "crypto").unwrap_err();
        assert!(
            matches!(
                e,
                Error::Throttled {
                    class: "crypto",
                    retry_after_secs: 1
                }
            ),
            "{e:?}"
        );
        l.take("b", &none, "crypto").unwrap();
        l.take("a", &none, "read").unwrap();
        let generous = BTreeMap::from([("crypto".to_string(), 1000)]);
        for _ in 0..10 {
            l.take("c", &generous, "crypto").unwrap();
        }
        let unlimited = BTreeMap::from([("crypto".to_string(), 0)]);
        for _ in 0..100 {
            l.take("a", &unlimited, "crypto").unwrap();
        }
    }
}
