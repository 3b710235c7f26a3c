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

/// Middleware: assigns an id, runs the request inside its scope, stamps the response.
pub(crate) async fn middleware(req: Request, next: Next) -> Response {
    let id = strongroom_core::new_request_id();
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
}
