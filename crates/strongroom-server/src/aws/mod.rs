//! The AWS KMS API: JSON 1.1 at `POST /` with `X-Amz-Target: TrentService.<Operation>`,
//! authenticated with SigV4 against principals' access key pairs. Each operation converts
//! the request, makes one `KeyService` call and converts the result; errors are AWS's
//! exceptions. Keys created here live in one key ring (`aws` by default), named by their id,
//! and every key in Strongroom is reachable here by its id or through an alias.
//!
//! Reference and deviations: `docs/aws-compatibility.md`.

mod error;
mod ops;
mod policy;
mod sigv4;
mod wire;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use strongroom_core::{KeyService, Protocol, RequestContext, RingName};

pub(crate) use error::AwsError;

/// The content type of AWS JSON 1.1 requests and responses.
pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Largest request body accepted. The largest AWS KMS request fields are a 6144-byte
/// ciphertext and a 32 KiB key policy, base64 and JSON included.
pub const MAX_BODY: usize = 64 * 1024;

/// How the AWS API presents Strongroom.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// The region requests must be signed for, and that ARNs name.
    pub region: String,
    /// The account id ARNs name (12 digits).
    pub account_id: String,
    /// The key ring keys created through this API go in (created when first needed).
    pub key_ring: RingName,
}

impl Default for AwsOptions {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            // Invariant: "aws" is a valid key ring name.
            key_ring: RingName::try_new("aws").unwrap_or_else(|_| unreachable!()),
        }
    }
}

/// What an operation handler has to hand: the service, the settings and the request.
pub(crate) struct Call<'a> {
    pub(crate) svc: &'a KeyService,
    pub(crate) opts: &'a AwsOptions,
    pub(crate) ctx: RequestContext,
}

pub(crate) type AwsState = (Arc<KeyService>, Arc<AwsOptions>);

/// `POST /`: checks the request's shape and signature, then runs the operation named in
/// `X-Amz-Target`. A request refused before it reaches `KeyService` is audited here as a
/// `rejected-request`.
pub(crate) async fn handle(State((svc, opts)): State<AwsState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let client_addr = crate::ClientAddr::of(&parts.extensions);
    let mut ctx = RequestContext {
        request_id: crate::request_id::current(),
        token: None,
        protocol: Protocol::Aws,
        client_addr,
        client_cert: None,
        sigv4: None,
        socket_principal: None,
        client_request_id: None,
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let op = target
        .strip_prefix("TrentService.")
        .unwrap_or("")
        .to_string();
    let what = if op.is_empty() {
        "aws (no operation)".to_string()
    } else {
        format!("aws {op}")
    };

    let too_large = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64);
    let body = if too_large {
        None
    } else {
        axum::body::to_bytes(body, MAX_BODY).await.ok()
    };
    let Some(body) = body else {
        let e = AwsError::validation(format!("request body is larger than {MAX_BODY} bytes"));
        return reject(&svc, &ctx, what, e, false).await;
    };

    match sigv4::read(
        &parts.method,
        &parts.uri,
        &parts.headers,
        &body,
        &opts.region,
        "kms",
    ) {
        Ok(s) => ctx.sigv4 = Some(s),
        Err(sigv4::SigError::Missing) => {
            let e = AwsError::request(
                "MissingAuthenticationTokenException",
                "the request is not signed: sign it with SigV4 and an access key pair",
            );
            return reject(&svc, &ctx, what, e, false).await;
        }
        Err(sigv4::SigError::Incomplete(m)) => {
            let e = AwsError::request("IncompleteSignatureException", m);
            return reject(&svc, &ctx, what, e, false).await;
        }
        Err(sigv4::SigError::WrongScope(m)) => {
            let e = AwsError::request("InvalidSignatureException", m);
            return reject(&svc, &ctx, what, e, false).await;
        }
    }
    let mime = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !target.starts_with("TrentService.") || !mime.eq_ignore_ascii_case(CONTENT_TYPE) {
        let e = AwsError::request(
            "UnknownOperationException",
            "send POST / with X-Amz-Target: TrentService.<Operation> and Content-Type: application/x-amz-json-1.1",
        );
        return reject(&svc, &ctx, what, e, true).await;
    }
    let call = Call {
        svc: &svc,
        opts: &opts,
        ctx,
    };
    let res = ops::dispatch(&call, &op, &body).await;
    match res {
        Ok(resp) => resp,
        Err(e @ (AwsError::Core(_) | AwsError::Audited { .. })) => e.into_response(),
        Err(e) => reject(&svc, &call.ctx, what, e, true).await,
    }
}

/// Audits a request refused before any operation ran, then answers it. When `needs_auth`,
/// the caller must first prove who it is: a request with a bad signature learns only that.
async fn reject(
    svc: &KeyService,
    ctx: &RequestContext,
    what: String,
    e: AwsError,
    needs_auth: bool,
) -> Response {
    let code = rejection_code(e.kind());
    match svc.audit_rejected(ctx, what, code, needs_auth).await {
        Ok(()) => e.into_response(),
        Err(core) => AwsError::Core(core).into_response(),
    }
}

/// The audit error code of a front-end refusal (the audit log's codes are snake_case).
fn rejection_code(kind: &str) -> &'static str {
    match kind {
        "MissingAuthenticationTokenException" => "unauthenticated",
        "IncompleteSignatureException" | "InvalidSignatureException" => "invalid_signature",
        "UnrecognizedClientException" => "unauthenticated",
        "UnknownOperationException" => "unknown_operation",
        "UnsupportedOperationException" => "unsupported_operation",
        "SerializationException" => "malformed_request",
        "InvalidMarkerException" => "invalid_argument",
        _ => "invalid_argument",
    }
}

/// Parses a request body: JSON, with errors that name the field and never the value.
/// Invalid JSON is AWS's `SerializationException`; wrong fields are `ValidationException`.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    // The SDKs send `{}` for operations without parameters; an empty body means the same.
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    crate::json::parse(body).map_err(|e| {
        if e.syntax {
            AwsError::request("SerializationException", e.message)
        } else {
            AwsError::validation(e.message)
        }
    })
}

/// A 200 response with a JSON body.
pub(crate) fn ok<T: Serialize>(v: &T) -> Result<Response, AwsError> {
    let json = serde_json::to_vec(v).map_err(|_| {
        AwsError::Core(strongroom_core::Error::Internal("response encoding".into()))
    })?;
    let mut resp = json.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(&crate::request_id::current()) {
        h.insert("x-amzn-requestid", v);
    }
    Ok(resp)
}

/// Routes for the AWS API.
pub(crate) fn routes(svc: Arc<KeyService>, opts: AwsOptions) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::post(handle))
        .with_state((svc, Arc::new(opts)))
}
