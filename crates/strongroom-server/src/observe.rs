//! Prometheus metrics: the recorder behind core's `metrics` calls, `GET /metrics` on the API
//! listener (needs the `read-metrics` permission, audited) and the optional metrics-only
//! listener (no token, for a scraper on a trusted network). Names: `strongroom_core::metrics`
//! and `docs/metrics.md`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use strongroom_core::KeyService;

/// Latency buckets (seconds): fine below 10 ms, where a KMS operation should be, and coarse
/// up to 10 s, where timeouts are.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// The installed recorder; renders the exposition text.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Installs the process-wide recorder (once per process) and registers the help texts.
    pub fn install() -> Result<Self, String> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .map_err(|e| e.to_string())?
            .install_recorder()
            .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
        strongroom_core::metrics::describe();
        Ok(Self { handle })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets every few seconds, so memory stays flat
    /// between scrapes (or with none).
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    }
}

fn exposition(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /metrics` on the API listener: a token (or other credential) allowed `read-metrics`.
pub(crate) fn routes(svc: Arc<KeyService>, metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(authorised_metrics))
        .with_state((svc, metrics))
}

async fn authorised_metrics(
    State((svc, metrics)): State<(Arc<KeyService>, Metrics)>,
    crate::native::Ctx(ctx): crate::native::Ctx,
) -> Response {
    match svc.authorize_metrics(&ctx).await {
        Ok(()) => exposition(metrics.render()),
        Err(e) => crate::native::ApiError::Core(e).into_response(),
    }
}

/// The metrics-only listener's app: `GET /metrics` without a token, 404 for anything else.
pub fn metrics_only_router(metrics: Metrics) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Metrics>| async move { exposition(m.render()) }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") })
        .with_state(metrics)
}
