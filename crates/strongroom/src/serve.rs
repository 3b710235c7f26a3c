//! `strongroom serve`: open the data dir, print first-start secrets once, serve HTTP, run the
//! scheduler, shut down cleanly on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use strongroom_core::bootstrap::{self, DataDirOptions};
use strongroom_core::{Clock, SystemClock};

use crate::output::{line, warn_line};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Run on a fresh temporary data dir that is deleted on exit. The root token is
    /// STRONGROOM_DEV_ROOT_TOKEN if set, otherwise random and printed. When
    /// STRONGROOM_DEV_AWS_ACCESS_KEY_ID and STRONGROOM_DEV_AWS_SECRET_ACCESS_KEY are set, root
    /// also signs AWS API requests with that pair (`aws --endpoint-url`). For development and
    /// tests only: nothing survives a restart.
    #[arg(long)]
    pub(crate) dev: bool,

    /// Address to listen on. Port 0 picks a free port; the address is printed either way.
    #[arg(long, default_value = "127.0.0.1:8400", value_name = "ADDR")]
    pub(crate) listen: SocketAddr,

    /// Data directory: the SQLite database, the audit log and (by default) the root key.
    #[arg(
        long,
        default_value = "./strongroom-data",
        value_name = "DIR",
        env = "STRONGROOM_DATA_DIR"
    )]
    pub(crate) data_dir: PathBuf,

    /// Keep keys in this PostgreSQL database instead of the data dir's SQLite file, shared
    /// with other Strongroom nodes (`postgres://user:password@host:5432/db?sslmode=require`).
    /// Every node needs the same root key (--root-key-file) and a data dir of its own (its
    /// lock and audit log). The first node to start initialises the database.
    #[arg(
        long,
        value_name = "URL",
        env = "STRONGROOM_DATABASE_URL",
        hide_env_values = true
    )]
    pub(crate) database_url: Option<String>,

    /// Most PostgreSQL connections this node holds (with --database-url).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub(crate) database_max_connections: u32,

    /// Root key file. Default: <data dir>/root.key. Production should keep the root key
    /// outside the data dir (another disk, a secrets mount) so a copy of the data dir alone
    /// opens nothing. Created on first start if missing; must be mode 0600.
    #[arg(long, value_name = "PATH", env = "STRONGROOM_ROOT_KEY_FILE")]
    pub(crate) root_key_file: Option<PathBuf>,

    /// Serve HTTPS with this certificate chain (PEM). Needs --tls-key.
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_key",
        env = "STRONGROOM_TLS_CERT"
    )]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM; PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_cert",
        env = "STRONGROOM_TLS_KEY"
    )]
    pub(crate) tls_key: Option<PathBuf>,

    /// Enable mutual TLS: accept client certificates issued by these CAs (PEM). A client
    /// certificate registered to a principal (`principal update --tls-cert`) authenticates
    /// requests that carry no token. Clients without a certificate can still use tokens.
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_cert",
        env = "STRONGROOM_TLS_CLIENT_CA"
    )]
    pub(crate) tls_client_ca: Option<PathBuf>,

    /// The AWS region the AWS KMS API answers as: requests must be signed for it (SigV4
    /// credential scope), and key ARNs name it.
    #[arg(
        long,
        default_value = "us-east-1",
        value_name = "REGION",
        env = "STRONGROOM_AWS_REGION"
    )]
    pub(crate) aws_region: String,

    /// The 12-digit account id key ARNs name on the AWS KMS API.
    #[arg(
        long,
        default_value = "000000000000",
        value_name = "ID",
        env = "STRONGROOM_AWS_ACCOUNT_ID"
    )]
    pub(crate) aws_account_id: String,

    /// The key ring that keys created through the AWS KMS API go in (created when first
    /// needed). Keys in other rings are reachable there by id or alias.
    #[arg(long, default_value = "aws", value_name = "RING")]
    pub(crate) aws_key_ring: String,

    /// The mount path of the Vault Transit API (`/v1/<mount>/encrypt/<key>`, …): what
    /// Vault clients call their Transit mount (docs/vault-compatibility.md).
    #[arg(
        long,
        default_value = "transit",
        value_name = "PATH",
        env = "STRONGROOM_VAULT_TRANSIT_MOUNT"
    )]
    pub(crate) vault_transit_mount: String,

    /// The key ring Transit keys live in (created when first needed); a Transit key is the
    /// key of the same name there.
    #[arg(long, default_value = "transit", value_name = "RING")]
    pub(crate) vault_transit_key_ring: String,

    /// Serve the Kubernetes KMS v2 plugin on this unix socket (created mode 0600; a stale
    /// socket is replaced, a live one is refused). The kube-apiserver's
    /// EncryptionConfiguration names it as `endpoint: unix://<path>` (docs/kubernetes.md).
    #[arg(
        long,
        value_name = "PATH",
        requires = "k8s_kms_key",
        env = "STRONGROOM_K8S_KMS_SOCKET"
    )]
    pub(crate) k8s_kms_socket: Option<PathBuf>,

    /// The key the Kubernetes plugin encrypts with (`<ring>/<key>`, `alias/<name>` or a key
    /// id; an encrypt-decrypt key). Rotating it makes the API server roll its data keys.
    #[arg(
        long,
        value_name = "KEY",
        requires = "k8s_kms_socket",
        env = "STRONGROOM_K8S_KMS_KEY"
    )]
    pub(crate) k8s_kms_key: Option<String>,

    /// The principal the Kubernetes plugin acts as: whoever can open the socket is this
    /// principal, under its policies. Required unless --dev (where it is root).
    #[arg(
        long,
        value_name = "NAME",
        requires = "k8s_kms_socket",
        env = "STRONGROOM_K8S_KMS_PRINCIPAL"
    )]
    pub(crate) k8s_kms_principal: Option<String>,

    /// How often to run due scheduled rotations and destructions (e.g. 30s, 5m).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub(crate) scheduler_interval: String,

    /// Key providers (TOML: `[providers.<name>] kind = "vault-transit" …`, see
    /// docs/providers.md). Each is built at start (credentials read then) and probed every
    /// 30 s; `GET /v1/providers` and `strongroom_provider_up` show their health.
    #[arg(long, value_name = "FILE", env = "STRONGROOM_PROVIDERS")]
    pub(crate) providers: Option<PathBuf>,

    /// How long this node reuses tokens, keys, versions, principals and aliases it read
    /// from the store (0s: never). Its own changes apply at once; with several nodes on one
    /// database, a change made on another node (a disable, a revocation) applies here within
    /// this time.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1s",
        env = "STRONGROOM_CACHE_TTL"
    )]
    pub(crate) cache_ttl: String,

    /// Also serve `GET /metrics` on this address, without a token, for a Prometheus scraper
    /// on a trusted network (e.g. 127.0.0.1:9464). On the API listener `/metrics` always needs
    /// a credential allowed `read-metrics`.
    #[arg(long, value_name = "ADDR", env = "STRONGROOM_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,

    /// Label key metrics with key names as well as key rings (one series per key and
    /// operation: mind the number of keys). For per-key dashboards.
    #[arg(long, env = "STRONGROOM_METRICS_PER_KEY")]
    pub(crate) metrics_per_key: bool,

    /// Per-principal request quotas, requests per second by class (0 = unlimited), e.g.
    /// `crypto=1000,read=200,write=50,keygen=10` (these are the defaults). The root token is
    /// never throttled; a principal's own `rate_limits` override these.
    #[arg(
        long,
        value_name = "CLASS=RPS,...",
        default_value = "",
        env = "STRONGROOM_RATE_LIMITS"
    )]
    pub(crate) rate_limit: String,

    /// Start even though the audit log is shorter than this data dir recorded (it was
    /// truncated or replaced by an older copy). Investigate first: events may have been removed.
    #[arg(long)]
    pub(crate) dangerous_accept_audit_rollback: bool,

    /// Export traces (a span per request) over OTLP/HTTP to this collector, e.g.
    /// http://127.0.0.1:4318 (`/v1/traces` is appended unless given). Off by default. Spans
    /// carry the method, path, request id, operation, outcome and error code; never tokens,
    /// plaintext or key material.
    #[arg(long, value_name = "URL", env = "STRONGROOM_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,

    /// The OTLP/HTTP encoding: http/protobuf or http/json.
    #[arg(long, value_name = "PROTOCOL", default_value = "http/protobuf", value_parser = ["http/protobuf", "http/json"])]
    pub(crate) otlp_protocol: String,

    /// Log format on stderr: text, or json (one JSON object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text", env = "STRONGROOM_LOG_FORMAT", value_parser = ["text", "json"])]
    pub(crate) log_format: String,

    /// Shift the server's clock by this many seconds. Only for tests that must observe
    /// scheduled rotation and destruction across restarts. Never use it in production.
    #[arg(long, hide = true, default_value_t = 0, allow_negative_numbers = true)]
    pub(crate) dangerous_clock_offset_secs: i64,
}

fn aws_options(args: &ServeArgs) -> anyhow::Result<strongroom_server::aws::AwsOptions> {
    let region_ok = !args.aws_region.is_empty()
        && args.aws_region.len() <= 32
        && args
            .aws_region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        bail!("--aws-region must be a region name such as us-east-1");
    }
    if args.aws_account_id.len() != 12 || !args.aws_account_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--aws-account-id must be 12 digits");
    }
    let key_ring = strongroom_core::RingName::try_new(&args.aws_key_ring)
        .map_err(|e| anyhow::anyhow!("--aws-key-ring: {e}"))?;
    Ok(strongroom_server::aws::AwsOptions {
        region: args.aws_region.clone(),
        account_id: args.aws_account_id.clone(),
        key_ring,
    })
}

fn vault_options(args: &ServeArgs) -> anyhow::Result<strongroom_server::vault::VaultOptions> {
    let key_ring = strongroom_core::RingName::try_new(&args.vault_transit_key_ring)
        .map_err(|e| anyhow::anyhow!("--vault-transit-key-ring: {e}"))?;
    let opts = strongroom_server::vault::VaultOptions {
        mount: args.vault_transit_mount.clone(),
        key_ring,
    };
    opts.validate()
        .map_err(|e| anyhow::anyhow!("--vault-transit-mount: {e}"))?;
    Ok(opts)
}

fn k8s_kms_options(
    args: &ServeArgs,
) -> anyhow::Result<Option<strongroom_server::k8s_kms::K8sKmsOptions>> {
    let (Some(socket), Some(key)) = (&args.k8s_kms_socket, &args.k8s_kms_key) else {
        return Ok(None);
    };
    let key = strongroom_core::types::KeyRef::parse(key, "k8s-kms-key")
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let principal = match (&args.k8s_kms_principal, args.dev) {
        (Some(p), _) => p.clone(),
        (None, true) => strongroom_core::ROOT_PRINCIPAL.to_string(),
        (None, false) => bail!(
            "--k8s-kms-socket needs --k8s-kms-principal: the principal the kube-apiserver acts as (whoever can open the socket is that principal)"
        ),
    };
    if principal != strongroom_core::ROOT_PRINCIPAL
        && strongroom_core::PrincipalName::try_new(&principal).is_err()
    {
        bail!("--k8s-kms-principal: {principal:?} is not a principal name");
    }
    Ok(Some(strongroom_server::k8s_kms::K8sKmsOptions {
        socket: socket.clone(),
        key,
        principal,
    }))
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let traces = init_tracing(&args)?;
    harden_process();
    let metrics = strongroom_server::observe::Metrics::install().map_err(|e| anyhow::anyhow!(e))?;
    let aws = aws_options(&args)?;
    let k8s = k8s_kms_options(&args)?;
    let vault = vault_options(&args)?;
    let interval =
        strongroom_core::types::parse_duration(&args.scheduler_interval, "scheduler-interval")
            .map_err(|e| anyhow::anyhow!("--{e}"))?;
    if interval < 1 {
        bail!("--scheduler-interval must be at least 1s");
    }
    let cache_ttl = strongroom_core::types::parse_duration(&args.cache_ttl, "cache-ttl")
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    if cache_ttl > 3600 {
        bail!(
            "--cache-ttl must be at most 1h: it bounds how long a disable or revocation made on another node takes to apply on this one"
        );
    }
    let cache_ttl = Duration::from_secs(cache_ttl as u64);
    let (providers, failover, key_set_prefer) = match &args.providers {
        None => Default::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the providers file {}", path.display()))?;
            strongroom_providers::Config::parse(&text)
                .and_then(|c| Ok((c.build()?, c.failover, c.key_sets.prefer)))
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
    };
    let clock: Arc<dyn Clock> = if args.dangerous_clock_offset_secs != 0 {
        warn_line(&format!(
            "WARNING: clock shifted by {}s (--dangerous-clock-offset-secs); for tests only",
            args.dangerous_clock_offset_secs
        ));
        Arc::new(SystemClock::dangerous_with_offset(
            args.dangerous_clock_offset_secs,
        ))
    } else {
        Arc::new(SystemClock::new())
    };

    // Dev mode: a temporary data dir that lives as long as this function.
    let dev_dir = if args.dev {
        Some(
            tempfile::Builder::new()
                .prefix("strongroom-dev-")
                .tempdir()
                .context("cannot create a temporary data dir")?,
        )
    } else {
        None
    };
    let data_dir = dev_dir
        .as_ref()
        .map(|d| d.path().to_path_buf())
        .unwrap_or_else(|| args.data_dir.clone());
    let initial_root_token = if args.dev {
        std::env::var("STRONGROOM_DEV_ROOT_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
    } else {
        None
    };
    let initial_root_access_key = if args.dev {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        match (
            var("STRONGROOM_DEV_AWS_ACCESS_KEY_ID"),
            var("STRONGROOM_DEV_AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => bail!(
                "set both STRONGROOM_DEV_AWS_ACCESS_KEY_ID and STRONGROOM_DEV_AWS_SECRET_ACCESS_KEY, or neither"
            ),
        }
    } else {
        None
    };

    let opened = bootstrap::open(DataDirOptions {
        data_dir: data_dir.clone(),
        root_key_file: args.root_key_file.clone(),
        initial_root_token,
        initial_root_access_key,
        clock,
        audit: strongroom_core::bootstrap::SinkOptions::default(),
        quotas: strongroom_core::quota::QuotaConfig::parse(&args.rate_limit)
            .map_err(|e| anyhow::anyhow!("--{e}"))?,
        jwks_fetcher: Some(Arc::new(HttpJwksFetcher::new()?)),
        dangerous_accept_audit_rollback: args.dangerous_accept_audit_rollback,
        scheduler_lease_secs: 3 * interval,
        per_key_metrics: args.metrics_per_key,
        read_cache_ttl: cache_ttl,
        providers,
        failover,
        key_set_prefer,
        database: match &args.database_url {
            None => None,
            Some(_) if args.dev => bail!(
                "--dev keeps everything in a temporary data dir; it cannot be combined with --database-url"
            ),
            Some(url) => Some(strongroom_core::PostgresOptions {
                url: url.clone(),
                max_connections: args.database_max_connections,
            }),
        },
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;

    if args.dev {
        warn_line(
            "WARNING: dev mode: in-memory-grade setup on a temporary data dir, deleted on exit. Do not store real keys.",
        );
    }
    if let Some(path) = &opened.wrote_root_key
        && !args.dev
    {
        {
            warn_line(&format!(
                "Initialised a new data dir at {}.\nWARNING: the root key was written to {} (mode 0600). Anyone with this file and a copy of the data dir can read every key.\n         In production keep the root key elsewhere (--root-key-file on another volume or a secrets mount) and back it up: without it the data dir cannot be opened.",
                data_dir.display(),
                path.display()
            ));
        }
    }
    if let Some(token) = &opened.new_root_token {
        // Exposed to show it once: only its hash is stored.
        line(&format!("Root token: {}", token.expose_secret()));
        if !args.dev {
            warn_line(
                "This is the only time the root token is shown. Store it safely; create day-to-day tokens with `strongroom token create`.",
            );
        }
    }

    // Bound before the HTTP listener, so a refused socket stops the start before anything
    // is announced.
    let k8s_socket = match &k8s {
        None => None,
        Some(opts) => Some(
            strongroom_server::k8s_kms::bind_socket(&opts.socket)
                .context("cannot create the Kubernetes KMS plugin socket")?,
        ),
    };
    let tls = tls_config(&args)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let metrics_listener = match args.metrics_listen {
        None => None,
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} for metrics"))?;
            let local = l
                .local_addr()
                .context("cannot read the metrics listening address")?;
            line(&format!("metrics listening on http://{local}/metrics"));
            Some(l)
        }
    };
    line(&format!("strongroom listening on {scheme}://{addr}"));
    tracing::info!(%addr, data_dir = %data_dir.display(), audit = %opened.audit_path.display(), "serving");

    let svc = opened.service.clone();
    // One shutdown signal, seen by every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let plugin = match (&k8s, k8s_socket) {
        (Some(opts), Some(socket)) => {
            line(&format!(
                "kubernetes kms plugin listening on unix://{} (key {}, principal {})",
                opts.socket.display(),
                opts.key,
                opts.principal
            ));
            let (svc, opts, stop) = (svc.clone(), opts.clone(), stopped(stop_rx.clone()));
            Some(tokio::spawn(async move {
                if let Err(e) = strongroom_server::k8s_kms::serve(svc, &opts, socket, stop).await {
                    tracing::error!(error = %e, "the Kubernetes KMS plugin stopped");
                }
            }))
        }
        _ => None,
    };
    let background =
        strongroom_server::spawn_background(svc.clone(), Duration::from_secs(interval as u64));
    let upkeep = metrics.spawn_upkeep();
    let metrics_server = match metrics_listener {
        None => None,
        Some(l) => {
            let app = strongroom_server::observe::metrics_only_router(metrics.clone());
            let stop = stopped(stop_rx.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = strongroom_server::serve(
                    l,
                    app,
                    strongroom_server::ServeOptions::default(),
                    stop,
                )
                .await
                {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            }))
        }
    };
    let app = strongroom_server::router(svc.clone(), aws, vault, Some(metrics));
    strongroom_server::serve(
        listener,
        app,
        strongroom_server::ServeOptions {
            tls,
            ..strongroom_server::ServeOptions::default()
        },
        stopped(stop_rx),
    )
    .await
    .context("server failed")?;
    if let Some(plugin) = plugin {
        let _ = tokio::time::timeout(Duration::from_secs(10), plugin).await;
    }
    if let Some(opts) = &k8s {
        strongroom_server::k8s_kms::remove_socket(&opts.socket);
    }
    background.abort();
    upkeep.abort();
    if let Some(m) = metrics_server {
        let _ = tokio::time::timeout(Duration::from_secs(10), m).await;
    }
    if let Err(e) = svc.close_audit().await {
        warn_line(&format!(
            "the final audit checkpoint could not be written: {e}"
        ));
    }
    if let Err(e) = svc.record_audit_position().await {
        warn_line(&format!("could not record the audit log position: {e}"));
    }
    drop(opened);
    drop(dev_dir);
    tracing::info!("stopped");
    if let Some(t) = traces {
        // Sends what is still buffered; blocking, so off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
    Ok(())
}

/// Keeps key material out of core dumps: no core files, and (Linux) not dumpable, which also
/// stops other processes of the same user from attaching a debugger.
fn harden_process() {
    #[cfg(unix)]
    if let Err(e) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0) {
        warn_line(&format!("WARNING: could not disable core dumps: {e}"));
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        warn_line(&format!(
            "WARNING: could not mark the process non-dumpable: {e}"
        ));
    }
}

/// Logs to stderr (text or JSON), and with --otlp-endpoint traces to an OTLP collector.
/// Returns the trace pipeline, to flush at shutdown.
fn init_tracing(
    args: &ServeArgs,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter =
        EnvFilter::try_from_env("STRONGROOM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if args.log_format == "json" {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let (otel, provider) = match &args.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            use opentelemetry::trace::TracerProvider;
            use opentelemetry_otlp::WithExportConfig;
            let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
                endpoint.clone()
            } else {
                format!("{}/v1/traces", endpoint.trim_end_matches('/'))
            };
            let protocol = if args.otlp_protocol == "http/json" {
                opentelemetry_otlp::Protocol::HttpJson
            } else {
                opentelemetry_otlp::Protocol::HttpBinary
            };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .with_endpoint(url)
                .build()
                .map_err(|e| anyhow::anyhow!("--otlp-endpoint: {e}"))?;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("strongroom")
                        .build(),
                )
                .build();
            let tracer = provider.tracer("strongroom");
            // Only Strongroom's own spans, not every dependency's.
            let only_ours = tracing_subscriber::filter::Targets::new()
                .with_target("strongroom", tracing::Level::INFO)
                .with_target("strongroom_server", tracing::Level::INFO)
                .with_target("strongroom_core", tracing::Level::INFO);
            (
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(only_ours),
                ),
                Some(provider),
            )
        }
    };
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    Ok(provider)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

/// Fetches trusted issuers' JWKS documents over HTTPS (bounded time and size).
struct HttpJwksFetcher(reqwest::Client);

impl HttpJwksFetcher {
    fn new() -> anyhow::Result<Self> {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .context("cannot build the JWKS HTTP client")?;
        Ok(Self(c))
    }
}

#[async_trait::async_trait]
impl strongroom_core::federation::JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self, uri: &str) -> Result<String, String> {
        const MAX: usize = 1024 * 1024;
        let resp = self.0.get(uri).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        if resp.content_length().is_some_and(|n| n > MAX as u64) {
            return Err("JWKS document larger than 1 MiB".into());
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX {
            return Err("JWKS document larger than 1 MiB".into());
        }
        String::from_utf8(body.to_vec()).map_err(|_| "JWKS document is not UTF-8".into())
    }
}

/// Builds the TLS configuration from --tls-cert/--tls-key (and --tls-client-ca for mTLS).
fn tls_config(args: &ServeArgs) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{} is not a PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &args.tls_client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("cannot read {}", ca.display()))?
            {
                roots
                    .add(c.with_context(|| format!("{} is not a PEM certificate", ca.display()))?)
                    .with_context(|| {
                        format!("{} holds an unusable CA certificate", ca.display())
                    })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key_der)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}
