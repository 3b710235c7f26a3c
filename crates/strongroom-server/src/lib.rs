//! Strongroom's network front-ends over `KeyService`: the native REST API (`native/`), the
//! AWS KMS API (`aws/`) and the Kubernetes KMS v2 plugin (`k8s_kms/`); later Vault Transit. Front-ends translate,
//! never decide: no key logic, storage access or policy lives here.
//!
//! Also here: the HTTP listener (header-read timeout, connection cap, graceful shutdown) and
//! the background task that runs scheduled jobs.

pub mod aws;
mod json;
pub mod k8s_kms;
pub mod native;
pub mod observe;
mod request_id;
pub mod vault;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often provider-held keys are checked against their providers (two calls a key, at
/// most `strongroom_core::external::DRIFT_PASS_KEYS` keys a pass).
const DRIFT_INTERVAL: Duration = Duration::from_secs(300);

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use strongroom_core::KeyService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

pub use request_id::HEADER as REQUEST_ID_HEADER;

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// A client must finish sending request headers within this time (slowloris guard).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How often scheduled rotations and destructions are checked.
    pub scheduler_interval: Duration,
    /// Serve HTTPS with this configuration (its client verifier decides mutual TLS).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            scheduler_interval: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// The whole HTTP application: the native API under `/v1/`, the AWS KMS API at `POST /`
/// and the Vault Transit API under `/v1/<mount>/`.
/// With `metrics`, also `GET /metrics` (for callers allowed `read-metrics`).
pub fn router(
    svc: Arc<KeyService>,
    aws: aws::AwsOptions,
    vault: vault::VaultOptions,
    metrics: Option<observe::Metrics>,
) -> Router {
    let mut app = native::routes()
        .with_state(svc.clone())
        .merge(aws::routes(svc.clone(), aws))
        .merge(vault::routes(svc.clone(), vault));
    if let Some(m) = metrics {
        app = app.merge(observe::routes(svc.clone(), m));
    }
    app.fallback(native::not_found)
        .method_not_allowed_fallback(native::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(native::MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(svc.clone(), front))
}

/// The token of an `Authorization: Bearer …` header, if there is a non-empty one.
pub(crate) fn bearer_token(
    headers: &axum::http::HeaderMap,
) -> Option<strongroom_core::BearerToken> {
    bearer_token_of(headers.get(axum::http::header::AUTHORIZATION)?)
}

/// The token of an `Authorization` header value `Bearer …`, if it has a non-empty one.
fn bearer_token_of(
    authorization: &axum::http::HeaderValue,
) -> Option<strongroom_core::BearerToken> {
    authorization
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .map(strongroom_core::BearerToken::new)
}

/// Routes that answer without a token.
fn is_public(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    matches!(
        (method, path),
        (&Method::GET, "/v1/sys/health")
            | (&Method::GET, "/v1/sys/ready")
            | (&Method::GET, "/v1/openapi.json")
            | (&Method::GET, "/v1/policy/schema")
            | (&Method::POST, "/v1/auth/exchange")
    )
}

/// The one layer in front of every route (one layer, not two: each costs a boxed future
/// per request): gives the request its id (`request_id`), and audits requests refused before
/// they reached `KeyService`.
async fn front(
    axum::extract::State(svc): axum::extract::State<Arc<KeyService>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = strongroom_core::new_request_id();
    let method = req.method().clone();
    let uri = req.uri().clone();
    request_id::run_as(
        id,
        &method,
        uri.path(),
        audit_rejections(svc, &method, &uri, req, next),
    )
    .await
}

/// Audits requests refused before they reached `KeyService` (malformed bodies, bad paths,
/// unknown routes). On routes that need a token, an unauthenticated caller gets 401 rather
/// than learning what was wrong with the request. If the event cannot be written, 503.
async fn audit_rejections(
    svc: Arc<KeyService>,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // Only what is cheap to keep is kept here (handles, not strings): almost every request
    // is audited by `KeyService` itself, and this one's event is then never made.
    let authorization = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .cloned();
    let client_addr = req.extensions().get::<ClientAddr>().cloned();
    let req_cert = req.extensions().get::<ClientCert>().map(|c| c.0);
    let resp = next.run(req).await;
    let Some(u) = resp.extensions().get::<native::Unaudited>().copied() else {
        return resp;
    };
    let public = is_public(method, uri.path());
    let what = format!("{} {}", method, uri.path());
    let ctx = strongroom_core::RequestContext {
        request_id: request_id::current(),
        token: authorization.as_ref().and_then(bearer_token_of),
        protocol: strongroom_core::Protocol::Native,
        client_addr: client_addr.map(|a| a.0.to_string()),
        client_cert: req_cert,
        sigv4: None,
        socket_principal: None,
        client_request_id: None,
    };
    match svc.audit_rejected(&ctx, what, u.code, !public).await {
        Ok(()) => resp,
        Err(e) => native::ApiError::Core(e).into_response(),
    }
}

/// The client's address (`ip:port`), formatted once per connection and attached to every
/// request on it, for audit events.
#[derive(Debug, Clone)]
pub(crate) struct ClientAddr(Arc<str>);

impl ClientAddr {
    /// The address of the connection `extensions` came on, if it is known.
    pub(crate) fn of(extensions: &axum::http::Extensions) -> Option<String> {
        extensions.get::<ClientAddr>().map(|a| a.0.to_string())
    }
}

/// The SHA-256 of the client certificate a TLS connection presented (already verified
/// against the client CA by rustls), attached to every request on that connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientCert(pub(crate) [u8; 32]);

fn with_connection_info(
    app: Router,
    addr: SocketAddr,
    cert: Option<[u8; 32]>,
) -> impl tower::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    let client_addr = ClientAddr(Arc::from(addr.to_string()));
    app.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(client_addr.clone());
        if let Some(c) = cert {
            req.extensions_mut().insert(ClientCert(c));
        }
        req
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(opts.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(64 * 1024);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let app = app.clone();
        let http = http.clone();
        let graceful_watch = graceful.watcher();
        let handshake_timeout = opts.header_read_timeout;
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let svc = with_connection_info(app, addr, None);
                    let conn =
                        http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
                    graceful_watch.watch(conn).await
                }
                Some(acceptor) => {
                    // A client that never finishes the handshake holds a connection slot: bound it.
                    let tls_stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(client = %addr, error = %e, "TLS handshake failed");
                            drop(permit);
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(client = %addr, "TLS handshake timed out");
                            drop(permit);
                            return;
                        }
                    };
                    let cert = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|leaf| strongroom_crypto::hash::sha256(leaf.as_ref()));
                    let svc = with_connection_info(app, addr, cert);
                    let conn = http
                        .serve_connection(TokioIo::new(tls_stream), TowerToHyperService::new(svc));
                    graceful_watch.watch(conn).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(client = %addr, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(opts.shutdown_grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
    Ok(())
}

/// Runs scheduled jobs every `interval`, and once at once, so work that fell due while the
/// server was down happens on start; records the audit log's durable position every 10 s.
pub fn spawn_background(svc: Arc<KeyService>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut jobs = tokio::time::interval(interval);
        let mut audit_position = tokio::time::interval(Duration::from_secs(10));
        // Policies changed on another node sharing the store are picked up within this.
        let mut policies = tokio::time::interval(Duration::from_secs(2));
        // Key counts, lifecycle drift and readiness for the metrics.
        let mut inventory = tokio::time::interval(Duration::from_secs(15));
        // Key providers' health, for the metrics.
        let mut providers = tokio::time::interval(Duration::from_secs(30));
        // Provider-held keys against their providers (drift), for the metrics and the log.
        let mut drift = tokio::time::interval(DRIFT_INTERVAL);
        loop {
            tokio::select! {
                _ = jobs.tick() => match svc.run_due_jobs().await {
                    Ok(r) if r.rotated + r.destroyed + r.deleted + r.expired + r.failed > 0 => {
                        tracing::info!(rotated = r.rotated, destroyed = r.destroyed, deleted = r.deleted, expired = r.expired, failed = r.failed, "scheduled jobs ran");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "scheduled jobs could not run; will retry"),
                },
                _ = policies.tick() => {
                    match svc.refresh_policies().await {
                        Ok(true) => tracing::info!("policies changed in the store; reloaded"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "could not check the policies for changes"),
                    }
                }
                // On its own task: a slow provider must not hold up the scheduler.
                _ = providers.tick() => {
                    let svc = svc.clone();
                    tokio::spawn(async move {
                        for p in svc.probe_providers().await {
                            if let Some(e) = p.error {
                                tracing::warn!(provider = %p.name, error = %e, "key provider is not healthy");
                            }
                        }
                    });
                }
                _ = drift.tick() => {
                    let svc = svc.clone();
                    tokio::spawn(async move {
                        match svc.observe_provider_drift().await {
                            Ok(drifted) => {
                                for (key, d) in drifted {
                                    tracing::warn!(key = %key, kind = d.kind, detail = %d.detail, "a provider-held key drifts from its provider");
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "could not check provider-held keys for drift"),
                        }
                    });
                }
                _ = inventory.tick() => {
                    if let Err(e) = svc.observe_inventory().await {
                        tracing::warn!(error = %e, "could not count keys for the metrics");
                    }
                    svc.readiness().await;
                }
                // So a log truncated or replaced by an older copy is caught at the next start.
                _ = audit_position.tick() => {
                    if let Err(e) = svc.record_audit_position().await {
                        tracing::warn!(error = %e, "could not record the audit log position");
                    }
                }
            }
        }
    })
}
