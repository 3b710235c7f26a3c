//! `strongroom bench`: a load generator against a running server. Every run measures a
//! baseline (`GET /v1/sys/health`: no authentication, no crypto, no audit) in the same run,
//! so results are reported as ratios that mean something on any machine. Never a test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use strongroom_client::aws::AwsCredentials;
use strongroom_client::{Client, Method};

use crate::output::{Format, line};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Operations to measure, comma-separated: health, lookup (an authenticated, audited
    /// read), encrypt, decrypt, data-key, sign, mac; through the AWS KMS API with SigV4
    /// aws-encrypt, aws-decrypt, aws-data-key (these need an access key pair); and over the
    /// Kubernetes KMS v2 plugin socket k8s-encrypt, k8s-decrypt (32-byte seeds, as the API
    /// server sends) and k8s-status (an encrypt and a decrypt each), which need
    /// --k8s-kms-socket on a server whose plugin key exists; and through the Vault Transit
    /// API (mount `transit`) transit-encrypt, transit-decrypt.
    #[arg(long, default_value = "health,lookup,encrypt,decrypt,data-key")]
    ops: String,
    /// The Kubernetes KMS plugin socket for the k8s-* operations (the server's
    /// --k8s-kms-socket; this machine only).
    #[arg(long, env = "STRONGROOM_K8S_KMS_SOCKET", value_name = "PATH")]
    k8s_kms_socket: Option<std::path::PathBuf>,
    /// Access key id for the aws-* operations.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", value_name = "ID")]
    aws_access_key_id: Option<String>,
    /// Secret access key for the aws-* operations.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    aws_secret_access_key: Option<String>,
    /// Region the aws-* operations sign for (the server's --aws-region).
    #[arg(
        long,
        env = "AWS_DEFAULT_REGION",
        default_value = "us-east-1",
        value_name = "REGION"
    )]
    aws_region: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to run each operation (e.g. 10s).
    #[arg(long, default_value = "5s")]
    duration: String,
    /// Plaintext size for encrypt/decrypt, in bytes.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Offer at most this many requests per second in total, spread evenly over the clients
    /// and in time (each client waits its turn; 0 = as fast as they go). To read latency at
    /// a given load, e.g. half of the peak; use enough clients that each one's interval is
    /// longer than a request takes, or the rate is not reached.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

struct Result_ {
    op: String,
    requests: usize,
    errors: usize,
    rps: f64,
    p50: f64,
    p95: f64,
    p99: f64,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn prepare(c: &Client, size: usize) -> anyhow::Result<(String, String)> {
    let _ = c
        .call(
            Method::Post,
            "/v1/keyrings",
            Some(&json!({"name": "bench"})),
        )
        .await;
    for (name, body) in [
        ("aes", json!({"name": "aes"})),
        (
            "ec",
            json!({"name": "ec", "algorithm": "ecdsa-p256-sha256"}),
        ),
        ("mac", json!({"name": "mac", "purpose": "mac"})),
    ] {
        if c.call(
            Method::Get,
            &format!("/v1/keyrings/bench/keys/{name}"),
            None,
        )
        .await
        .is_err()
        {
            c.call(Method::Post, "/v1/keyrings/bench/keys", Some(&body))
                .await
                .context("creating the bench keys (the token needs to manage keys)")?;
        }
    }
    let pt = base64::Engine::encode(&strongroom_client::B64, vec![0x5a; size]);
    let ct = c
        .call(
            Method::Post,
            "/v1/crypto/encrypt",
            Some(&json!({"key": "bench/aes", "plaintext": pt})),
        )
        .await?;
    Ok((
        pt,
        ct["ciphertext"].as_str().unwrap_or_default().to_string(),
    ))
}

/// One request of the load: the native API with the CLI's token, the AWS API signed, or a
/// call on the Kubernetes plugin socket.
#[derive(Clone)]
enum Request {
    Native(Method, &'static str, Option<Value>),
    Aws(&'static str, Value),
    K8s(K8sCall),
}

#[derive(Clone)]
enum K8sCall {
    Status,
    Encrypt,
    Decrypt(pb::EncryptResponse),
}

use strongroom_server::k8s_kms::client::UnixChannel;
use strongroom_server::k8s_kms::pb;
type K8sClient = pb::key_management_service_client::KeyManagementServiceClient<UnixChannel>;

/// A 32-byte seed, as the API server sends.
const K8S_SEED: [u8; 32] = [0x5a; 32];

async fn k8s_client(socket: Option<&std::path::Path>) -> anyhow::Result<K8sClient> {
    let path = socket.context("the k8s-* operations need --k8s-kms-socket")?;
    strongroom_server::k8s_kms::client::connect(path)
        .await
        .with_context(|| format!("cannot connect to {}", path.display()))
}

async fn k8s_once(c: &mut K8sClient, call: &K8sCall) -> bool {
    match call {
        K8sCall::Status => c
            .status(pb::StatusRequest {})
            .await
            .is_ok_and(|r| r.get_ref().healthz == "ok"),
        K8sCall::Encrypt => c
            .encrypt(pb::EncryptRequest {
                plaintext: K8S_SEED.to_vec(),
                uid: String::new(),
            })
            .await
            .is_ok(),
        K8sCall::Decrypt(e) => c
            .decrypt(pb::DecryptRequest {
                ciphertext: e.ciphertext.clone(),
                uid: String::new(),
                key_id: e.key_id.clone(),
                annotations: e.annotations.clone(),
            })
            .await
            .is_ok(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_op(
    c: &Client,
    aws: Option<&AwsCredentials>,
    k8s_socket: Option<&std::path::Path>,
    op: &str,
    concurrency: usize,
    dur: Duration,
    pt: &str,
    ct: &str,
    rate: f64,
) -> anyhow::Result<Result_> {
    use Request::{Aws, Native};
    let native = |m: Method, p: &'static str, b: Option<Value>| Native(m, p, b);
    let req = match op {
        "health" => native(Method::Get, "/v1/sys/health", None),
        "lookup" => native(Method::Get, "/v1/tokens/self", None),
        "encrypt" => native(
            Method::Post,
            "/v1/crypto/encrypt",
            Some(json!({"key": "bench/aes", "plaintext": pt})),
        ),
        "decrypt" => native(
            Method::Post,
            "/v1/crypto/decrypt",
            Some(json!({"ciphertext": ct})),
        ),
        "data-key" => native(
            Method::Post,
            "/v1/crypto/generate-data-key",
            Some(json!({"key": "bench/aes"})),
        ),
        "sign" => native(
            Method::Post,
            "/v1/crypto/sign",
            Some(json!({"key": "bench/ec", "message": pt})),
        ),
        "mac" => native(
            Method::Post,
            "/v1/crypto/mac",
            Some(json!({"key": "bench/mac", "message": pt})),
        ),
        // The AWS API names the same key by its native path (a Strongroom extension).
        "aws-encrypt" => Aws("Encrypt", json!({"KeyId": "bench/aes", "Plaintext": pt})),
        "aws-decrypt" => Aws("Decrypt", json!({"CiphertextBlob": ct})),
        "aws-data-key" => Aws(
            "GenerateDataKey",
            json!({"KeyId": "bench/aes", "KeySpec": "AES_256"}),
        ),
        // Transit's key `bench` is made by the first encrypt (upsert).
        "transit-encrypt" => native(
            Method::Post,
            "/v1/transit/encrypt/bench",
            Some(json!({"plaintext": pt})),
        ),
        "transit-decrypt" => {
            let out = c
                .call(
                    Method::Post,
                    "/v1/transit/encrypt/bench",
                    Some(&json!({"plaintext": pt})),
                )
                .await
                .context("transit-decrypt: the Transit encrypt failed")?;
            let ct = out["data"]["ciphertext"].as_str().unwrap_or_default();
            native(
                Method::Post,
                "/v1/transit/decrypt/bench",
                Some(json!({"ciphertext": ct})),
            )
        }
        "k8s-status" => Request::K8s(K8sCall::Status),
        "k8s-encrypt" => Request::K8s(K8sCall::Encrypt),
        "k8s-decrypt" => {
            let mut k = k8s_client(k8s_socket).await?;
            let e = k
                .encrypt(pb::EncryptRequest {
                    plaintext: K8S_SEED.to_vec(),
                    uid: String::new(),
                })
                .await
                .context("k8s-decrypt: the plugin's Encrypt failed (does its key exist?)")?;
            Request::K8s(K8sCall::Decrypt(e.into_inner()))
        }
        other => bail!("unknown operation {other:?}"),
    };
    if matches!(req, Aws(..)) && aws.is_none() {
        bail!(
            "{op} needs an access key pair: --aws-access-key-id and --aws-secret-access-key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        );
    }
    let aws = Arc::new(aws.cloned());
    let req = Arc::new(req);
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for client in 0..concurrency {
        let c = c.clone();
        let req = req.clone();
        let aws = aws.clone();
        // One socket connection per client, as each API server holds one.
        let mut k8s = match req.as_ref() {
            Request::K8s(_) => Some(k8s_client(k8s_socket).await?),
            _ => None,
        };
        // With a rate, each client sends on its own schedule (never two at once), the
        // clients' schedules spread evenly over one interval: started together, all of them
        // would send at the same instants, a burst of `concurrency` requests per interval
        // whose queueing the latencies would then measure.
        let gap = (rate > 0.0).then(|| Duration::from_secs_f64(concurrency as f64 / rate));
        let first = gap.map_or(start, |g| {
            start + g.mul_f64(client as f64 / concurrency as f64)
        });
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut next = first;
            while Instant::now() < deadline {
                if let Some(g) = gap {
                    tokio::time::sleep_until(next.into()).await;
                    next += g;
                }
                let t = Instant::now();
                let ok = match (req.as_ref(), aws.as_ref(), k8s.as_mut()) {
                    (Native(m, p, b), _, _) => c.call(*m, p, b.as_ref()).await.is_ok(),
                    (Aws(op, b), Some(creds), _) => c.aws_call(creds, op, b).await.is_ok(),
                    (Request::K8s(call), _, Some(k)) => k8s_once(k, call).await,
                    _ => false,
                };
                if ok {
                    lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    Ok(Result_ {
        op: op.to_string(),
        requests: all.len(),
        errors,
        rps: all.len() as f64 / dur.as_secs_f64(),
        p50: pct(&all, 0.5),
        p95: pct(&all, 0.95),
        p99: pct(&all, 0.99),
    })
}

pub(crate) async fn run(c: &Client, fmt: Format, args: BenchArgs) -> anyhow::Result<()> {
    let dur = Duration::from_secs(
        strongroom_core::types::parse_duration(&args.duration, "duration")
            .map_err(|e| anyhow::anyhow!("--{e}"))? as u64,
    );
    if args.concurrency == 0 || args.concurrency > 1024 {
        bail!("--concurrency must be 1 to 1024");
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be a number of requests per second, 0 or more");
    }
    let (pt, ct) = prepare(c, args.size).await?;
    let mut ops: Vec<String> = args
        .ops
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !ops.iter().any(|o| o == "health") {
        ops.insert(0, "health".into());
    }
    let aws = match (&args.aws_access_key_id, &args.aws_secret_access_key) {
        (Some(id), Some(secret)) => Some(AwsCredentials {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            region: args.aws_region.clone(),
        }),
        _ => None,
    };
    let mut results = Vec::new();
    for op in &ops {
        results.push(
            run_op(
                c,
                aws.as_ref(),
                args.k8s_kms_socket.as_deref(),
                op,
                args.concurrency,
                dur,
                &pt,
                &ct,
                args.rate,
            )
            .await?,
        );
    }
    let base = results
        .iter()
        .find(|r| r.op == "health")
        .map(|r| r.rps)
        .unwrap_or(1.0)
        .max(1e-9);
    let rows: Vec<Value> = results
        .iter()
        .map(|r| json!({"op": r.op, "requests": r.requests, "errors": r.errors, "rps": (r.rps * 10.0).round() / 10.0, "p50_ms": r.p50, "p95_ms": r.p95, "p99_ms": r.p99, "throughput_vs_health": (r.rps / base * 1000.0).round() / 1000.0}))
        .collect();
    let report = json!({"concurrency": args.concurrency, "duration_s": dur.as_secs(), "plaintext_bytes": args.size, "results": rows});
    match fmt {
        Format::Json => line(&serde_json::to_string_pretty(&report)?),
        Format::Table => {
            line(&format!(
                "concurrency {}, {} s per operation, {}-byte plaintexts; baseline = health in this run",
                args.concurrency,
                dur.as_secs(),
                args.size
            ));
            crate::output::list(
                fmt,
                &json!({"items": report["results"]}),
                &[
                    "op",
                    "requests",
                    "errors",
                    "rps",
                    "p50_ms",
                    "p95_ms",
                    "p99_ms",
                    "throughput_vs_health",
                ],
            );
        }
    }
    Ok(())
}
