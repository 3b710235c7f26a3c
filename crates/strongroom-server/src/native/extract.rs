//! Extractors that turn HTTP into core inputs with errors in the native API's shape: bounded
//! JSON bodies, query strings, and the request context (token, request id, client address).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use strongroom_core::{Protocol, RequestContext};

use super::error::ApiError;
use crate::request_id;

/// Largest request body accepted, in bytes. Plaintexts are capped at 64 KiB (about 87 KiB in
/// base64), so 1 MiB leaves room without letting a client make the server buffer much.
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON body: `Content-Type: application/json`, at most [`MAX_BODY`] bytes, parsed with
/// errors that name the field but never echo the value.
pub(crate) struct Json<T>(pub(crate) T);

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    crate::json::parse(bytes).map_err(|e| ApiError::invalid("body", e.message))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the request body as JSON with Content-Type: application/json",
            ));
        }
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > MAX_BODY as u64
        {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| too_large())?;
        parse_json(&bytes).map(Json)
    }
}

fn too_large() -> ApiError {
    ApiError::http(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request body is larger than {MAX_BODY} bytes (or could not be read)"),
    )
}

/// A JSON body that may be absent (an empty body means the default).
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // No body (whatever the headers say) means the defaults; a body must be JSON.
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|_| too_large())?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !has_type {
            return Err(ApiError::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the request body as JSON with Content-Type: application/json",
            ));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| OptionalJson(v))
    }
}

/// A query string, with errors in the native API's shape.
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        // Query fields are strings and integers, so these messages name parameters and
        // parse failures ("invalid digit found in string"), never values.
        serde_urlencoded::from_str(q)
            .map(Query)
            .map_err(|e| ApiError::invalid("query", e.to_string()))
    }
}

/// Path parameters, with errors in the native API's shape (e.g. `%FF` that is not UTF-8).
pub(crate) struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_| {
                ApiError::invalid(
                    "path",
                    "a path segment is not valid (percent-encoded UTF-8 expected)",
                )
            })
    }
}

/// The request context: bearer token, request id, client address.
pub(crate) struct Ctx(pub(crate) RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let token = crate::bearer_token(&parts.headers);
        let client_addr = crate::ClientAddr::of(&parts.extensions);
        Ok(Ctx(RequestContext {
            request_id: request_id::current(),
            token,
            protocol: Protocol::Native,
            client_addr,
            client_cert: parts.extensions.get::<crate::ClientCert>().map(|c| c.0),
            sigv4: None,
            socket_principal: None,
            client_request_id: None,
        }))
    }
}
