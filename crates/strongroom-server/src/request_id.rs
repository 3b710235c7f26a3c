//! Request ids: generated for every request, returned in `X-Request-Id` and in error bodies,
//! and recorded in the audit log.

use axum::http::HeaderValue;
use axum::response::Response;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled (empty outside a request).
pub(crate) fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Response header carrying the id.
pub const HEADER: &str = "x-request-id";

/// Runs `handle` as request `id`: inside its scope (for [`current`]) and its tracing span
/// (core records the operation, outcome and error code in it); stamps the response with the
/// id and the span with its status.
pub(crate) async fn run_as(
    id: String,
    method: &axum::http::Method,
    path: &str,
    handle: impl Future<Output = Response>,
) -> Response {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("HTTP {method}"),
        otel.kind = "server",
        http.request.method = %method,
        url.path = %path,
        request_id = %id,
        operation = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error_code = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let header = HeaderValue::from_str(&id);
    let mut resp = REQUEST_ID.scope(id, handle.instrument(span.clone())).await;
    span.record("http.response.status_code", resp.status().as_u16());
    if let Ok(v) = header {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}
