//! Request ids: generated for every request, returned in `X-Request-Id` and in error bodies,
//! and recorded in the audit log.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
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

/// Middleware: assigns an id, runs the request inside its scope and its tracing span (core
/// records the operation, outcome and error code in it), stamps the response.
pub(crate) async fn middleware(req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let id = strongroom_core::new_request_id();
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("HTTP {}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        request_id = %id,
        operation = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error_code = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let mut resp = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    span.record("http.response.status_code", resp.status().as_u16());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}
