//! Errors in AWS KMS's shape: `{"__type": "NotFoundException", "message": "…"}` with the HTTP
//! status AWS uses, so SDK retry and error handling behave as they do against AWS. Every core
//! error maps here exhaustively.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strongroom_core::Error;

use super::CONTENT_TYPE;
use crate::request_id;

/// An AWS error response.
#[derive(Debug)]
pub(crate) enum AwsError {
    /// From `KeyService`, which has already audited it.
    Core(Error),
    /// Refused by the front-end before any `KeyService` operation ran; audited as a
    /// rejected request by the dispatcher.
    Request { kind: &'static str, message: String },
    /// An answer AWS gives as an error after the operation ran and was audited (a
    /// signature that did not verify), or a core error AWS names differently.
    Audited { kind: &'static str, message: String },
}

impl From<Error> for AwsError {
    fn from(e: Error) -> Self {
        AwsError::Core(e)
    }
}

impl AwsError {
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::request("ValidationException", message)
    }

    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        Self::request("UnsupportedOperationException", message)
    }

    pub(crate) fn request(kind: &'static str, message: impl Into<String>) -> Self {
        AwsError::Request {
            kind,
            message: message.into(),
        }
    }

    /// The exception name (`__type`).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            AwsError::Request { kind, .. } | AwsError::Audited { kind, .. } => kind,
            AwsError::Core(e) => core_kind(e),
        }
    }

    /// The same answer, marked as already audited (the operation ran).
    pub(crate) fn already_audited(self) -> AwsError {
        match self {
            AwsError::Request { kind, message } => AwsError::Audited { kind, message },
            other => other,
        }
    }

    /// A core error (audited by core) reported under another AWS exception name.
    pub(crate) fn relabel(self, kind: &'static str) -> AwsError {
        match self {
            AwsError::Core(e) => AwsError::Audited {
                kind,
                message: e.to_string(),
            },
            other => other,
        }
    }
}

/// AWS's exception for each core error. Exhaustive: a new variant must be placed here.
fn core_kind(e: &Error) -> &'static str {
    match e {
        Error::Unauthenticated => "UnrecognizedClientException",
        Error::InvalidSignature(_) => "InvalidSignatureException",
        Error::AccessDenied => "AccessDeniedException",
        Error::NotFound { .. } => "NotFoundException",
        Error::AlreadyExists { .. } => "AlreadyExistsException",
        Error::InvalidArgument { .. } => "ValidationException",
        // Disabled where the operation needs it enabled; other wrong states (cancelling the
        // deletion of a disabled key, say) are KMSInvalidStateException, as in AWS.
        Error::InvalidState {
            state: "disabled",
            requirement: "needs it enabled",
            ..
        } => "DisabledException",
        // A deleted key no longer exists as far as AWS clients are concerned.
        Error::InvalidState { state, .. } if *state == "deleted" => "NotFoundException",
        Error::InvalidState { .. } => "KMSInvalidStateException",
        Error::InvalidKeyUsage { .. } => "InvalidKeyUsageException",
        Error::InvalidCiphertext => "InvalidCiphertextException",
        Error::IncorrectKey => "IncorrectKeyException",
        // A lost race with another change to the key: retryable, so a 5xx the SDKs retry.
        Error::Conflict(_) => "KMSInternalException",
        Error::Throttled { .. } => "ThrottlingException",
        Error::Unavailable(_) => "DependencyTimeoutException",
        Error::Internal(_) => "KMSInternalException",
    }
}

/// AWS KMS answers client errors with 400, its own failures with 500 and a dependency that
/// did not answer with 503.
fn status_of(kind: &str) -> StatusCode {
    match kind {
        "KMSInternalException" => StatusCode::INTERNAL_SERVER_ERROR,
        "DependencyTimeoutException" => StatusCode::SERVICE_UNAVAILABLE,
        "MissingAuthenticationTokenException" => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn message_of(e: &AwsError) -> String {
    match e {
        AwsError::Request { message, .. } | AwsError::Audited { message, .. } => message.clone(),
        AwsError::Core(Error::Unauthenticated) => {
            "the security token included in the request is invalid".into()
        }
        AwsError::Core(Error::Conflict(m)) => format!("{m} (retry the request)"),
        // Internal details are logged by KeyService with the request id, never sent.
        AwsError::Core(e) => e.to_string(),
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "__type")]
    kind: &'a str,
    message: String,
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let body = Body {
            kind,
            message: message_of(&self),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (status_of(kind), json).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Ok(v) = HeaderValue::from_str(&request_id::current()) {
            h.insert("x-amzn-requestid", v);
        }
        if let AwsError::Core(Error::Throttled {
            retry_after_secs, ..
        }) = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            h.insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
