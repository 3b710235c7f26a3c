//! The metrics Strongroom exports, through the `metrics` facade (the binary installs the
//! Prometheus exporter; without one these calls do nothing). Every metric name is here, once:
//! `docs/metrics.md` describes them, and the dashboards and alert rules under `deploy/` are
//! tested against [`ALL`].
//!
//! Labels carry protocol, operation, error code and key-ring names — never key material,
//! plaintext, tokens or encryption-context values. Key names appear only when the operator
//! turns per-key metrics on (their number is the number of keys).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::{Counter, Histogram, counter, gauge, histogram};
use strongroom_audit::{AuditEvent, Outcome};
use strongroom_store::{Inventory, Timestamp};

/// Operations handled, by `protocol`, `operation`, `outcome` (`ok`/`error`) and `code` (the
/// error code; empty on success).
pub const REQUESTS: &str = "strongroom_requests_total";
/// Time from authentication to audited result, by `protocol`, `operation`, `outcome`.
pub const REQUEST_DURATION: &str = "strongroom_request_duration_seconds";
/// Requests refused for who asked: `reason` is `unauthenticated`, `invalid_signature` or
/// `access_denied`; also by `protocol` and `operation`.
pub const AUTHZ_FAILURES: &str = "strongroom_authorization_failures_total";
/// Requests refused by a quota, by `protocol` and `operation`.
pub const THROTTLED: &str = "strongroom_throttled_requests_total";
/// Audit events written (each made durable), by `outcome`.
pub const AUDIT_WRITES: &str = "strongroom_audit_writes_total";
/// Time to make one audit event durable.
pub const AUDIT_WRITE_DURATION: &str = "strongroom_audit_write_duration_seconds";
/// Key operations by `key_ring`, `key` (empty unless per-key metrics are on), `operation`,
/// `outcome` and `code`: per-key rates and key-access anomalies.
pub const KEY_OPERATIONS: &str = "strongroom_key_operations_total";
/// Rotations attempted, by `trigger` (`manual`/`scheduled`) and `outcome`.
pub const ROTATIONS: &str = "strongroom_rotations_total";
/// Keys in the store, by `state` and `protection`.
pub const KEYS: &str = "strongroom_keys";
/// Key versions in the store, by `state`.
pub const KEY_VERSIONS: &str = "strongroom_key_versions";
/// Enabled keys whose rotation is overdue (lifecycle drift).
pub const ROTATION_OVERDUE: &str = "strongroom_keys_rotation_overdue";
/// Seconds until the soonest scheduled version destruction (100 years when none is).
pub const NEXT_DESTRUCTION: &str = "strongroom_next_version_destruction_seconds";
/// Seconds until the soonest scheduled key deletion (100 years when none is).
pub const NEXT_KEY_DELETION: &str = "strongroom_next_key_deletion_seconds";
/// 1 while this node holds the scheduler lease.
pub const SCHEDULER_LEADER: &str = "strongroom_scheduler_leader";
/// Scheduled jobs run, by `outcome`.
pub const SCHEDULED_JOBS: &str = "strongroom_scheduled_jobs_total";
/// Policy reloads because another node changed the policies.
pub const POLICY_RELOADS: &str = "strongroom_policy_reloads_total";
/// 1 while the provider's last health probe succeeded, by `provider` and `kind`.
pub const PROVIDER_UP: &str = "strongroom_provider_up";
/// Provider-held keys whose provider disagrees with Strongroom, by `provider` and `kind`
/// (the drift kinds of `GET …/keys/{key}/provider`), from the last drift pass.
pub const PROVIDER_KEY_DRIFT: &str = "strongroom_provider_key_drift";
/// Time a provider's health probe took, by `provider`.
pub const PROVIDER_PROBE_DURATION: &str = "strongroom_provider_probe_duration_seconds";
/// Provider calls (wrap, unwrap, describe), by `provider`, `operation` and `outcome`
/// (`ok`, `error`, `rejected` by an open breaker).
pub const PROVIDER_CALLS: &str = "strongroom_provider_calls_total";
/// Time a provider call took, retries included, by `provider` and `operation`.
pub const PROVIDER_CALL_DURATION: &str = "strongroom_provider_call_duration_seconds";
/// Retries of provider calls after a retryable failure, by `provider` and `operation`.
pub const PROVIDER_RETRIES: &str = "strongroom_provider_retries_total";
/// A provider's circuit breaker, by `provider`: 0 closed, 1 open, 2 half-open.
pub const PROVIDER_BREAKER_STATE: &str = "strongroom_provider_breaker_state";
/// Times a provider's circuit breaker opened, by `provider`.
pub const PROVIDER_BREAKER_OPENED: &str = "strongroom_provider_breaker_opened_total";
/// 1 while the node is sealed (it never serves sealed: a node that cannot unseal does not
/// start, so this is 0 on every node that answers).
pub const SEALED: &str = "strongroom_sealed";
/// 1 while the readiness check passes.
pub const READY: &str = "strongroom_ready";
/// Always 1, labelled with the `version`.
pub const BUILD_INFO: &str = "strongroom_build_info";

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (exported with `_bucket`, `_sum` and `_count` series).
    Histogram,
}

/// Every metric, its kind and its help text.
pub const ALL: &[(&str, Kind, &str)] = &[
    (
        REQUESTS,
        Kind::Counter,
        "Operations handled, by protocol, operation, outcome and error code.",
    ),
    (
        REQUEST_DURATION,
        Kind::Histogram,
        "Operation latency from authentication to audited result.",
    ),
    (
        AUTHZ_FAILURES,
        Kind::Counter,
        "Requests refused for who asked (unauthenticated, bad signature, access denied).",
    ),
    (THROTTLED, Kind::Counter, "Requests refused by a quota."),
    (
        AUDIT_WRITES,
        Kind::Counter,
        "Audit events written, by outcome; a failed write fails its operation.",
    ),
    (
        AUDIT_WRITE_DURATION,
        Kind::Histogram,
        "Time to make one audit event durable.",
    ),
    (
        KEY_OPERATIONS,
        Kind::Counter,
        "Key operations by key ring (and key, when per-key metrics are on) and outcome.",
    ),
    (
        ROTATIONS,
        Kind::Counter,
        "Key rotations attempted, by trigger and outcome.",
    ),
    (KEYS, Kind::Gauge, "Keys by state and protection level."),
    (KEY_VERSIONS, Kind::Gauge, "Key versions by state."),
    (
        ROTATION_OVERDUE,
        Kind::Gauge,
        "Enabled keys whose rotation is overdue (lifecycle drift).",
    ),
    (
        NEXT_DESTRUCTION,
        Kind::Gauge,
        "Seconds until the soonest scheduled key version destruction.",
    ),
    (
        NEXT_KEY_DELETION,
        Kind::Gauge,
        "Seconds until the soonest scheduled key deletion.",
    ),
    (
        SCHEDULER_LEADER,
        Kind::Gauge,
        "1 while this node holds the scheduler lease.",
    ),
    (
        SCHEDULED_JOBS,
        Kind::Counter,
        "Scheduled jobs (rotations, destructions, deletions, expiries) run, by outcome.",
    ),
    (
        POLICY_RELOADS,
        Kind::Counter,
        "Policy reloads after another node changed the policies.",
    ),
    (
        PROVIDER_UP,
        Kind::Gauge,
        "1 while the key provider's last health probe succeeded.",
    ),
    (
        PROVIDER_KEY_DRIFT,
        Kind::Gauge,
        "Provider-held keys whose provider disagrees with Strongroom, by provider and kind, at the last drift pass.",
    ),
    (
        PROVIDER_PROBE_DURATION,
        Kind::Histogram,
        "Time a key provider's health probe took.",
    ),
    (
        PROVIDER_CALLS,
        Kind::Counter,
        "Key provider calls, by provider, operation and outcome (rejected: breaker open).",
    ),
    (
        PROVIDER_CALL_DURATION,
        Kind::Histogram,
        "Time a key provider call took, retries included.",
    ),
    (
        PROVIDER_RETRIES,
        Kind::Counter,
        "Retries of key provider calls after a retryable failure.",
    ),
    (
        PROVIDER_BREAKER_STATE,
        Kind::Gauge,
        "A key provider's circuit breaker: 0 closed, 1 open, 2 half-open.",
    ),
    (
        PROVIDER_BREAKER_OPENED,
        Kind::Counter,
        "Times a key provider's circuit breaker opened.",
    ),
    (SEALED, Kind::Gauge, "1 while the node is sealed."),
    (READY, Kind::Gauge, "1 while the readiness check passes."),
    (
        BUILD_INFO,
        Kind::Gauge,
        "Always 1, labelled with the version.",
    ),
];

/// Registers the help texts (call once, after installing a recorder).
pub fn describe() {
    for (name, kind, help) in ALL {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => {
                metrics::describe_histogram!(*name, metrics::Unit::Seconds, *help)
            }
        }
    }
    HANDLES_CACHEABLE.store(true, Ordering::Release);
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!(SEALED).set(0.0);
    // Series that alerts and dashboards divide by or watch for a rise are exported from the
    // start, at zero, so "no data" never hides a failure.
    gauge!(READY).set(0.0);
    gauge!(SCHEDULER_LEADER).set(0.0);
    counter!(POLICY_RELOADS).absolute(0);
    for outcome in ["ok", "error"] {
        counter!(AUDIT_WRITES, "outcome" => outcome).absolute(0);
        for trigger in ["manual", "scheduled"] {
            counter!(ROTATIONS, "trigger" => trigger, "outcome" => outcome).absolute(0);
        }
    }
}

/// Set by [`describe`], once a recorder is installed: until then the facade hands out no-op
/// handles, which must not be remembered.
static HANDLES_CACHEABLE: AtomicBool = AtomicBool::new(false);

/// Most label sets a thread remembers handles for; past it, it forgets them all and starts
/// again (per-key metrics can name many keys).
const MAX_CACHED_SERIES: usize = 8192;

/// The series one finished operation updates, by (protocol, operation, outcome, code).
#[derive(Clone)]
struct OperationSeries {
    requests: Counter,
    duration: Histogram,
}

/// (operation, outcome, code) -> key ring -> key -> its `strongroom_key_operations_total`.
type KeySeries =
    HashMap<(&'static str, &'static str, &'static str), HashMap<String, HashMap<String, Counter>>>;

/// Metric handles resolved once per label set, per thread: resolving one builds its label
/// set, hashes it and looks it up in the recorder's registry, which was a few per cent of an
/// Encrypt's CPU. The handles share the recorder's storage, so every thread's increments
/// land in the same series.
#[derive(Default)]
struct HandleCache {
    operations: HashMap<(&'static str, &'static str, &'static str, &'static str), OperationSeries>,
    keys: KeySeries,
    key_entries: usize,
    audit: Option<(Histogram, Counter, Counter)>,
}

thread_local! {
    static HANDLES: RefCell<HandleCache> = RefCell::new(HandleCache::default());
}

/// Runs `f` on this thread's handle cache, or returns `None` when handles may not be
/// remembered (no recorder yet, or the thread is being torn down).
fn with_handles<T>(f: impl FnOnce(&mut HandleCache) -> T) -> Option<T> {
    if !HANDLES_CACHEABLE.load(Ordering::Acquire) {
        return None;
    }
    HANDLES
        .try_with(|c| c.try_borrow_mut().ok().map(|mut c| f(&mut c)))
        .ok()
        .flatten()
}

fn operation_series(
    protocol: &'static str,
    operation: &'static str,
    outcome: &'static str,
    code: &'static str,
) -> OperationSeries {
    let make = || OperationSeries {
        requests: counter!(REQUESTS, "protocol" => protocol, "operation" => operation,
            "outcome" => outcome, "code" => code),
        duration: histogram!(REQUEST_DURATION, "protocol" => protocol, "operation" => operation,
            "outcome" => outcome),
    };
    with_handles(|c| {
        if c.operations.len() >= MAX_CACHED_SERIES {
            c.operations.clear();
        }
        c.operations
            .entry((protocol, operation, outcome, code))
            .or_insert_with(make)
            .clone()
    })
    .unwrap_or_else(make)
}

fn key_series(
    ring: &str,
    key: &str,
    operation: &'static str,
    outcome: &'static str,
    code: &'static str,
) -> Counter {
    let make = || {
        counter!(KEY_OPERATIONS, "key_ring" => ring.to_string(), "key" => key.to_string(),
            "operation" => operation, "outcome" => outcome, "code" => code)
    };
    with_handles(|c| {
        let found = c
            .keys
            .get(&(operation, outcome, code))
            .and_then(|rings| rings.get(ring))
            .and_then(|keys| keys.get(key))
            .cloned();
        if let Some(h) = found {
            return h;
        }
        if c.key_entries >= MAX_CACHED_SERIES {
            c.keys.clear();
            c.key_entries = 0;
        }
        let h = make();
        c.keys
            .entry((operation, outcome, code))
            .or_default()
            .entry(ring.to_string())
            .or_default()
            .insert(key.to_string(), h.clone());
        c.key_entries += 1;
        h
    })
    .unwrap_or_else(make)
}

/// Records a finished operation from its audit event: in the metrics, and in the current
/// tracing span (the front-end's request span declares these fields).
pub(crate) fn operation(ev: &AuditEvent, per_key: bool) {
    let outcome = match ev.outcome {
        Outcome::Ok => "ok",
        Outcome::Error => "error",
    };
    let code = ev.error_code.unwrap_or("");
    let span = tracing::Span::current();
    span.record("operation", ev.operation);
    span.record("outcome", outcome);
    if !code.is_empty() {
        span.record("error_code", code);
    }
    let series = operation_series(ev.protocol, ev.operation, outcome, code);
    series.requests.increment(1);
    if let Some(t) = ev.started {
        series.duration.record(t.elapsed().as_secs_f64());
    }
    match code {
        "unauthenticated" | "invalid_signature" | "access_denied" => {
            counter!(AUTHZ_FAILURES, "protocol" => ev.protocol, "operation" => ev.operation,
                "reason" => code)
            .increment(1);
        }
        "throttled" => {
            counter!(THROTTLED, "protocol" => ev.protocol, "operation" => ev.operation)
                .increment(1);
        }
        _ => {}
    }
    match ev.operation {
        "create-version" => counter!(ROTATIONS, "trigger" => "manual", "outcome" => outcome),
        "scheduled-rotation" => {
            counter!(ROTATIONS, "trigger" => "scheduled", "outcome" => outcome)
        }
        _ => metrics::Counter::noop(),
    }
    .increment(1);
    if ev.protocol == "scheduler" {
        counter!(SCHEDULED_JOBS, "operation" => ev.operation, "outcome" => outcome).increment(1);
    }
    if let Some(ring) = &ev.key_ring {
        let key = match (per_key, &ev.key) {
            (true, Some(k)) => k.as_str(),
            _ => "",
        };
        key_series(ring, key, ev.operation, outcome, code).increment(1);
    }
}

/// Records one provider health probe.
pub(crate) fn provider_key_drift(provider: &str, kind: &'static str, keys: u64) {
    gauge!(PROVIDER_KEY_DRIFT, "provider" => provider.to_string(), "kind" => kind).set(keys as f64);
}

pub(crate) fn provider_probe(provider: &str, kind: &'static str, up: bool, took: Duration) {
    gauge!(PROVIDER_UP, "provider" => provider.to_string(), "kind" => kind).set(if up {
        1.0
    } else {
        0.0
    });
    histogram!(PROVIDER_PROBE_DURATION, "provider" => provider.to_string())
        .record(took.as_secs_f64());
}

/// Records one provider call (after its retries).
pub(crate) fn provider_call(
    provider: &str,
    operation: &'static str,
    outcome: &'static str,
    took: Duration,
) {
    counter!(PROVIDER_CALLS, "provider" => provider.to_string(), "operation" => operation, "outcome" => outcome)
        .increment(1);
    if outcome != "rejected" {
        histogram!(PROVIDER_CALL_DURATION, "provider" => provider.to_string(), "operation" => operation)
            .record(took.as_secs_f64());
    }
}

/// Records one retry of a provider call.
pub(crate) fn provider_retry(provider: &str, operation: &'static str) {
    counter!(PROVIDER_RETRIES, "provider" => provider.to_string(), "operation" => operation)
        .increment(1);
}

/// Sets a provider's breaker gauge.
pub(crate) fn provider_breaker(provider: &str, state: crate::failover::BreakerState) {
    gauge!(PROVIDER_BREAKER_STATE, "provider" => provider.to_string()).set(state.gauge());
}

/// Counts a breaker opening.
pub(crate) fn provider_breaker_opened(provider: &str) {
    counter!(PROVIDER_BREAKER_OPENED, "provider" => provider.to_string()).increment(1);
}

/// Records one audit write.
pub(crate) fn audit_write(took: Duration, ok: bool) {
    let make = || {
        (
            histogram!(AUDIT_WRITE_DURATION),
            counter!(AUDIT_WRITES, "outcome" => "ok"),
            counter!(AUDIT_WRITES, "outcome" => "error"),
        )
    };
    let (duration, ok_count, error_count) =
        with_handles(|c| c.audit.get_or_insert_with(make).clone()).unwrap_or_else(make);
    duration.record(took.as_secs_f64());
    if ok { ok_count } else { error_count }.increment(1);
}

/// The store's inventory as gauges. Remembers the label sets it has set, so a state whose
/// count fell to zero reads 0 rather than keeping its last value.
#[derive(Debug, Default)]
pub(crate) struct InventoryGauges {
    seen_keys: Mutex<BTreeSet<(String, String)>>,
    seen_versions: Mutex<BTreeSet<String>>,
}

impl InventoryGauges {
    pub(crate) fn set(&self, inv: &Inventory, now: Timestamp) {
        if let Ok(mut seen) = self.seen_keys.lock() {
            for (state, protection) in seen.iter() {
                if !inv
                    .keys
                    .iter()
                    .any(|(s, p, _)| s == state && p == protection)
                {
                    gauge!(KEYS, "state" => state.clone(), "protection" => protection.clone())
                        .set(0.0);
                }
            }
            for (state, protection, n) in &inv.keys {
                gauge!(KEYS, "state" => state.clone(), "protection" => protection.clone())
                    .set(*n as f64);
                seen.insert((state.clone(), protection.clone()));
            }
        }
        if let Ok(mut seen) = self.seen_versions.lock() {
            for state in seen.iter() {
                if !inv.versions.iter().any(|(s, _)| s == state) {
                    gauge!(KEY_VERSIONS, "state" => state.clone()).set(0.0);
                }
            }
            for (state, n) in &inv.versions {
                gauge!(KEY_VERSIONS, "state" => state.clone()).set(*n as f64);
                seen.insert(state.clone());
            }
        }
        gauge!(ROTATION_OVERDUE).set(inv.rotation_overdue as f64);
        let until = |t: Timestamp| (t.0 - now.0) as f64;
        // Nothing scheduled: a large value, so "less than a day" alerts stay quiet and
        // dashboards show that nothing is near.
        const NONE: f64 = 100.0 * 365.0 * 86_400.0;
        gauge!(NEXT_DESTRUCTION).set(inv.next_destruction.map_or(NONE, until));
        gauge!(NEXT_KEY_DELETION).set(inv.next_key_deletion.map_or(NONE, until));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `docs/metrics.md` lists exactly the metrics in `ALL`, with the same kinds.
    #[test]
    fn the_metrics_doc_lists_every_metric() {
        let doc = include_str!("../../../docs/metrics.md");
        let documented: BTreeSet<(String, String)> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `strongroom_"))
            .map(|rest| {
                let (name, rest) = rest.split_once('`').unwrap();
                let kind = rest.split('|').nth(1).unwrap().trim().to_string();
                (format!("strongroom_{name}"), kind)
            })
            .collect();
        let exported: BTreeSet<(String, String)> = ALL
            .iter()
            .map(|(n, k, _)| (n.to_string(), format!("{k:?}").to_lowercase()))
            .collect();
        assert_eq!(documented, exported);
    }

    /// Names follow Prometheus conventions: a `strongroom_` prefix, snake case, counters end
    /// in `_total`, histograms in their base unit.
    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = BTreeSet::new();
        for (name, kind, help) in ALL {
            assert!(seen.insert(*name), "{name} twice");
            assert!(name.starts_with("strongroom_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert_eq!(*kind == Kind::Counter, name.ends_with("_total"), "{name}");
            if *kind == Kind::Histogram {
                assert!(name.ends_with("_seconds"), "{name}");
            }
            assert!(help.ends_with('.'), "{name}: {help}");
        }
    }
}
