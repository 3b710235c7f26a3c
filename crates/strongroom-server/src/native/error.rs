//! Native API errors: `{"error": {"code", "message", "request_id"}}` with a matching HTTP
//! status. The codes are a contract, listed in `docs/api.md`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strongroom_core::Error;

use crate::request_id;

/// An error on the native API.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// From `KeyService` (which wrote the audit event).
    Core(Error),
    /// Refused while converting the request, before `KeyService` saw it (not yet audited:
    /// the audit middleware records it).
    Request(Error),
    /// Rejected by the HTTP layer before reaching `KeyService`.
    Http {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Core(e)
    }
}

impl ApiError {
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ApiError::Request(Error::invalid(field, reason))
    }

    /// A core validation error raised while converting the request (before `KeyService`).
    pub(crate) fn request(e: Error) -> Self {
        ApiError::Request(e)
    }

    pub(crate) fn http(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Http {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The HTTP status for each core error. Exhaustive: a new variant must be placed here.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Unauthenticated | Error::InvalidSignature(_) => StatusCode::UNAUTHORIZED,
        Error::AccessDenied => StatusCode::FORBIDDEN,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::AlreadyExists { .. } => StatusCode::CONFLICT,
        Error::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
        Error::InvalidState { .. } => StatusCode::CONFLICT,
        Error::InvalidKeyUsage { .. } => StatusCode::BAD_REQUEST,
        Error::InvalidCiphertext | Error::IncorrectKey => StatusCode::BAD_REQUEST,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
    request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = request_id::current();
        let (status, code, message) = match &self {
            // The native API gives one answer for every ciphertext that does not open under
            // the key named, whichever key it was made under.
            ApiError::Core(Error::IncorrectKey) | ApiError::Request(Error::IncorrectKey) => (
                StatusCode::BAD_REQUEST,
                Error::InvalidCiphertext.code(),
                Error::InvalidCiphertext.to_string(),
            ),
            ApiError::Core(e) | ApiError::Request(e) => {
                // Internal details are logged by KeyService with the request id; the client
                // sees only "internal error". Unavailable details name files, not secrets.
                (status_of(e), e.code(), e.to_string())
            }
            ApiError::Http {
                status,
                code,
                message,
            } => (*status, *code, message.clone()),
        };
        let body = Body {
            error: Inner {
                code,
                message,
                request_id,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::Core(Error::Throttled {
            retry_after_secs, ..
        }) = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if !matches!(self, ApiError::Core(_)) {
            resp.extensions_mut().insert(Unaudited { code });
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Marks a response refused before `KeyService` ran, so the audit middleware records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unaudited {
    pub(crate) code: &'static str,
}
