//! The Vault Transit API: `/v1/<mount>/…` (mount `transit` by default) with Strongroom tokens
//! in `X-Vault-Token` or `Authorization: Bearer`, plus the few `/v1/sys/mounts` and
//! `/v1/auth/token/lookup-self` paths Vault clients call. Each endpoint converts the request,
//! makes `KeyService` calls and converts the result into Vault's envelope; errors are
//! Vault's `{"errors": […]}` with its status codes. A Transit key is a Strongroom key in one
//! key ring (`transit` by default), named as in Vault.
//!
//! Reference and deviations: `docs/vault-compatibility.md`.

mod ops;
mod params;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use strongroom_core::{BearerToken, Error, KeyService, Protocol, RequestContext, RingName};

use params::Params;

/// Largest request body accepted (batches of up to [`MAX_BATCH`] items).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Most items in one `batch_input`.
pub const MAX_BATCH: usize = 1000;

/// Top-level `/v1/` names the native API uses; a Transit mount may not take one.
const RESERVED_MOUNTS: &[&str] = &[
    "keyrings",
    "crypto",
    "tokens",
    "principals",
    "policies",
    "policy",
    "audit",
    "aliases",
    "access-keys",
    "issuers",
    "openapi.json",
    "sys",
    "auth",
];

/// How the Transit API presents Strongroom.
#[derive(Debug, Clone)]
pub struct VaultOptions {
    /// The mount path (`transit` in `/v1/transit/encrypt/k`).
    pub mount: String,
    /// The key ring Transit keys live in (created when first needed).
    pub key_ring: RingName,
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self {
            mount: "transit".into(),
            // Invariant: "transit" is a valid key ring name.
            key_ring: RingName::try_new("transit").unwrap_or_else(|_| unreachable!()),
        }
    }
}

impl VaultOptions {
    /// Checks the mount path: one path segment of `a-z 0-9 _ -`, not a native API name.
    pub fn validate(&self) -> Result<(), String> {
        let m = &self.mount;
        let ok = !m.is_empty()
            && m.len() <= 64
            && m.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(format!(
                "mount {m:?} must be 1-64 characters of a-z 0-9 _ -"
            ));
        }
        if RESERVED_MOUNTS.contains(&m.as_str()) {
            return Err(format!("mount {m:?} is a path of the native API"));
        }
        Ok(())
    }
}

/// A Vault error: the status and the `errors` list. `audited` when `KeyService` already
/// wrote the request's event.
#[derive(Debug)]
pub(crate) struct VaultError {
    pub(crate) status: StatusCode,
    pub(crate) errors: Vec<String>,
    pub(crate) audited: bool,
    /// The front-end code written to the audit log when it was not audited yet.
    pub(crate) code: &'static str,
}

impl VaultError {
    /// A bad request refused by the front-end (400).
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            errors: vec![msg.into()],
            audited: false,
            code: "invalid_argument",
        }
    }

    fn path() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            errors: vec!["1 error occurred:\n\t* unsupported path\n\n".into()],
            audited: false,
            code: "not_found",
        }
    }

    fn operation() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            errors: vec!["1 error occurred:\n\t* unsupported operation\n\n".into()],
            audited: false,
            code: "method_not_allowed",
        }
    }

    /// A read that found nothing: 404 with an empty `errors` list, as Vault answers.
    pub(crate) fn none() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            errors: vec![],
            audited: true,
            code: "not_found",
        }
    }

    /// A `KeyService` refusal with another message (the event is already written).
    pub(crate) fn core_as(e: &Error, msg: impl Into<String>) -> Self {
        let mut v = Self::from(e);
        v.errors = vec![msg.into()];
        v
    }

    pub(crate) fn message(&self) -> String {
        self.errors.join(", ")
    }
}

impl From<&Error> for VaultError {
    fn from(e: &Error) -> Self {
        let (status, msg) = match e {
            Error::Unauthenticated | Error::InvalidSignature(_) | Error::AccessDenied => {
                (StatusCode::FORBIDDEN, "permission denied".to_string())
            }
            Error::InvalidCiphertext => (
                StatusCode::BAD_REQUEST,
                "cipher: message authentication failed".to_string(),
            ),
            Error::IncorrectKey => (
                StatusCode::BAD_REQUEST,
                "invalid ciphertext: it was made by another key".to_string(),
            ),
            Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::InvalidArgument { .. }
            | Error::InvalidState { .. }
            | Error::InvalidKeyUsage { .. } => (StatusCode::BAD_REQUEST, e.to_string()),
            Error::Conflict(_) => (StatusCode::CONFLICT, e.to_string()),
            Error::Throttled { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "request path \"transit\": rate limit quota exceeded".to_string(),
            ),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            Error::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the server log has details".to_string(),
            ),
        };
        Self {
            status,
            errors: vec![msg],
            audited: true,
            code: e.code(),
        }
    }
}

impl From<Error> for VaultError {
    fn from(e: Error) -> Self {
        Self::from(&e)
    }
}

/// What an endpoint answers.
pub(crate) enum Reply {
    /// 200 with `data` (and warnings).
    Data(Value, Vec<String>),
    /// 204, no body.
    NoContent,
    /// A batch answer with its own status (Vault's 400 for encrypt/decrypt batches with
    /// failed items still carries `batch_results` in the normal envelope).
    Batch(StatusCode, Value, Vec<String>),
    /// `sys/` answers: `data` is also copied to the top level.
    Sys(Value),
}

pub(crate) type VaultResult = Result<Reply, VaultError>;

/// What every endpoint has to hand.
pub(crate) struct Call<'a> {
    pub(crate) svc: &'a KeyService,
    pub(crate) opts: &'a VaultOptions,
    pub(crate) ctx: RequestContext,
}

type VaultState = (Arc<KeyService>, Arc<VaultOptions>);

/// The Transit routes, plus `sys/mounts` and `auth/token/lookup-self`.
pub(crate) fn routes(svc: Arc<KeyService>, opts: VaultOptions) -> Router {
    let state: VaultState = (svc, Arc::new(opts.clone()));
    Router::new()
        .route(
            &format!("/v1/{}/{{*rest}}", opts.mount),
            axum::routing::any(transit),
        )
        .route("/v1/sys/mounts", axum::routing::any(sys))
        .route("/v1/sys/mounts/{*rest}", axum::routing::any(sys))
        .route("/v1/auth/token/lookup-self", axum::routing::any(sys))
        .with_state(state)
}

fn envelope(request_id: &str, data: Value, warnings: &[String]) -> Value {
    json!({
        "request_id": request_id,
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) },
        "auth": null,
    })
}

/// Vault's JSON content type, exactly (hvac reads `errors` only from `application/json`).
fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn render(request_id: &str, res: VaultResult) -> Response {
    match res {
        Ok(Reply::Data(data, warnings)) => {
            json_response(StatusCode::OK, &envelope(request_id, data, &warnings))
        }
        Ok(Reply::Batch(status, data, warnings)) => {
            json_response(status, &envelope(request_id, data, &warnings))
        }
        Ok(Reply::Sys(data)) => {
            let mut body = envelope(request_id, data.clone(), &[]);
            if let (Value::Object(top), Value::Object(d)) = (&mut body, data) {
                for (k, v) in d {
                    top.entry(k).or_insert(v);
                }
            }
            json_response(StatusCode::OK, &body)
        }
        Ok(Reply::NoContent) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => json_response(e.status, &json!({ "errors": e.errors })),
    }
}

/// The request as Vault clients send it: method (LIST, or GET with `?list=true`), token
/// and parameters (the JSON body, or the query string for reads).
struct Parsed {
    method: Method,
    ctx: RequestContext,
    params: Params,
    what: String,
}

async fn parse_request(req: Request) -> Result<Parsed, (RequestContext, String, VaultError)> {
    let (parts, body) = req.into_parts();
    let client_addr = crate::ClientAddr::of(&parts.extensions);
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let token = header("x-vault-token")
        .map(|t| BearerToken::new(t.to_string()))
        .or_else(|| crate::bearer_token(&parts.headers));
    let ctx = RequestContext {
        request_id: crate::request_id::current(),
        token,
        protocol: Protocol::VaultTransit,
        client_addr,
        client_cert: None,
        sigv4: None,
        socket_principal: None,
        client_request_id: None,
    };
    let what = format!("{} {}", parts.method, parts.uri.path());
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    let list_query = query.iter().any(|(k, v)| k == "list" && v == "true");
    let method = match parts.method.as_str() {
        "GET" if list_query => Method::from_bytes(b"LIST").unwrap_or(Method::GET),
        "PUT" => Method::POST,
        _ => parts.method.clone(),
    };
    let too_large = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64);
    let bytes = if too_large {
        None
    } else {
        axum::body::to_bytes(body, MAX_BODY).await.ok()
    };
    let Some(bytes) = bytes else {
        let e = VaultError::bad(format!("request body is larger than {MAX_BODY} bytes"));
        return Err((ctx, what, e));
    };
    let map = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match crate::json::parse::<Value>(&bytes) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                let e = VaultError::bad("failed to parse JSON input: expected an object");
                return Err((ctx, what, e));
            }
            Err(e) => {
                let e = VaultError::bad(format!("failed to parse JSON input: {}", e.message));
                return Err((ctx, what, e));
            }
        }
    };
    let mut params = Params::new(map);
    // Reads take their parameters from the query string.
    for (k, v) in query {
        if k != "list" && !params.has(&k) {
            params.set_from_path(&k, &v);
        }
    }
    Ok(Parsed {
        method,
        ctx,
        params,
        what,
    })
}

/// Audits a request refused before it reached `KeyService` and answers it. An
/// unauthenticated caller gets `permission denied` rather than learning what was wrong.
async fn refuse(svc: &KeyService, ctx: &RequestContext, what: String, e: VaultError) -> VaultError {
    match svc.audit_rejected(ctx, what, e.code, true).await {
        Ok(()) => e,
        Err(core) => VaultError::from(&core),
    }
}

/// Which group of paths a request is for.
enum Route {
    /// Under the Transit mount: the path after it.
    Transit(String),
    /// `sys/mounts…` or `auth/token/lookup-self`: the whole path.
    Sys(String),
}

async fn dispatch(c: &mut Call<'_>, m: &Method, route: &Route, p: &mut Params) -> VaultResult {
    match route {
        Route::Transit(rest) => {
            let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
            ops::transit(c, m, &segs, p).await
        }
        Route::Sys(path) => ops::sys(c, m, path, p).await,
    }
}

async fn run(svc: &KeyService, opts: &VaultOptions, req: Request, route: Route) -> Response {
    let (ctx, what, res) = match parse_request(req).await {
        Err((ctx, what, e)) => {
            let e = refuse(svc, &ctx, what.clone(), e).await;
            return render(&ctx.request_id, Err(e));
        }
        Ok(Parsed {
            method,
            ctx,
            mut params,
            what,
        }) => {
            let mut call = Call { svc, opts, ctx };
            let res = dispatch(&mut call, &method, &route, &mut params).await;
            let res = match (res, params.unknown_warning()) {
                (Ok(Reply::Data(d, mut w)), Some(u)) => {
                    w.push(u);
                    Ok(Reply::Data(d, w))
                }
                (Ok(Reply::Batch(s, d, mut w)), Some(u)) => {
                    w.push(u);
                    Ok(Reply::Batch(s, d, w))
                }
                (other, _) => other,
            };
            (call.ctx, what, res)
        }
    };
    let res = match res {
        Err(e) if !e.audited => Err(refuse(svc, &ctx, what, e).await),
        other => other,
    };
    render(&ctx.request_id, res)
}

async fn transit(State((svc, opts)): State<VaultState>, req: Request) -> Response {
    let prefix = format!("/v1/{}/", opts.mount);
    let rest = req
        .uri()
        .path()
        .strip_prefix(&prefix)
        .unwrap_or("")
        .to_string();
    run(&svc, &opts, req, Route::Transit(rest)).await
}

async fn sys(State((svc, opts)): State<VaultState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    run(&svc, &opts, req, Route::Sys(path)).await
}

pub(crate) fn unsupported_path() -> VaultError {
    VaultError::path()
}

pub(crate) fn unsupported_operation() -> VaultError {
    VaultError::operation()
}
