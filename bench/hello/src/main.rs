//! The baselines `bench/run.sh` measures beside Strongroom in the same run, on the same
//! machine, with the same load generator:
//!
//! - `GET /`: an axum hello-world, the ceiling of HTTP on this machine;
//! - `POST /aead`: JSON in, base64-decode, AES-256-GCM seal, base64, JSON out — a KMS's
//!   cryptography and encoding with no authentication, store, policy or audit;
//! - `POST /aead-durable` (only when a LOG path is given): the same, and then one line of
//!   about an audit event's size appended to LOG and made durable (`fdatasync`, one per
//!   batch of waiting requests, by one writer thread, with the audit writer's linger)
//!   before the answer: fail-closed audit in its plainest form (a group commit), with no
//!   chain, signature, policy or store.
//!
//! Usage: `strongroom-bench-hello [ADDR] [LOG]` (ADDR defaults to 127.0.0.1:0; LOG is
//! created or truncated); prints `listening on http://…`.

#![allow(clippy::print_stdout)] // the address is the binary's output

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Clone)]
struct App {
    key: Arc<LessSafeKey>,
    log: Option<Arc<Log>>,
}

async fn aead(State(app): State<App>, body: axum::body::Bytes) -> (StatusCode, String) {
    seal(&app.key, &body)
}

async fn aead_durable(State(app): State<App>, body: axum::body::Bytes) -> (StatusCode, String) {
    let (status, out) = seal(&app.key, &body);
    let Some(log) = app.log.as_ref().filter(|_| status == StatusCode::OK) else {
        return (status, out);
    };
    match log.append(body.len()).await {
        Ok(()) => (status, out),
        Err(()) => (StatusCode::SERVICE_UNAVAILABLE, "{}".into()),
    }
}

/// Lines waiting for the writer, and who waits on them.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    waiters: Vec<tokio::sync::oneshot::Sender<bool>>,
}

/// How long the writer lets a batch fill under load, and the size that ends the wait: the
/// values of Strongroom's audit writer (`crates/strongroom-audit/src/sink.rs`).
const LINGER: Duration = Duration::from_micros(150);
const LINGER_FULL: usize = 16;

/// A group-committed append-only file: callers add a line and wait until a sync covers it.
struct Log {
    pending: Mutex<Pending>,
    wake: Condvar,
    seq: AtomicU64,
}

impl Log {
    fn start(mut file: std::fs::File) -> Arc<Self> {
        let log = Arc::new(Log {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            seq: AtomicU64::new(0),
        });
        let writer = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut taken = Pending::default();
            let mut busy = false;
            loop {
                {
                    let mut p = writer.pending.lock().unwrap_or_else(|e| e.into_inner());
                    while p.waiters.is_empty() {
                        p = writer.wake.wait(p).unwrap_or_else(|e| e.into_inner());
                    }
                    // Under load, let a small batch fill as Strongroom's audit writer does
                    // (worth about 5 % here): fewer syncs for the same events.
                    let deadline = Instant::now() + LINGER;
                    while busy && p.waiters.len() < LINGER_FULL {
                        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                            break;
                        };
                        p = writer
                            .wake
                            .wait_timeout(p, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    busy = p.waiters.len() > 1;
                    std::mem::swap(&mut taken.lines, &mut p.lines);
                    std::mem::swap(&mut taken.waiters, &mut p.waiters);
                }
                let ok = file
                    .write_all(&taken.lines)
                    .and_then(|()| file.sync_data())
                    .is_ok();
                for w in taken.waiters.drain(..) {
                    let _ = w.send(ok);
                }
                taken.lines.clear();
            }
        });
        log
    }

    async fn append(&self, request_bytes: usize) -> Result<(), ()> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let line = format!(
            "{{\"seq\":{seq},\"op\":\"encrypt\",\"key\":\"bench/aes\",\"request_bytes\":{request_bytes}}}"
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            // Padded to about the size of one of Strongroom's audit events.
            let _ = writeln!(p.lines, "{line:<299}");
            p.waiters.push(tx);
        }
        self.wake.notify_one();
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(()),
        }
    }
}

fn seal(key: &LessSafeKey, body: &[u8]) -> (StatusCode, String) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (StatusCode::BAD_REQUEST, "{}".into());
    };
    let Some(Ok(mut data)) = v["plaintext"].as_str().map(|s| B64.decode(s)) else {
        return (StatusCode::BAD_REQUEST, "{}".into());
    };
    let mut nonce = [0u8; 12];
    if aws_lc_rs::rand::fill(&mut nonce).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}".into());
    }
    if key
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .is_err()
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}".into());
    }
    let out = [nonce.as_slice(), &data].concat();
    (
        StatusCode::OK,
        serde_json::json!({"ciphertext": B64.encode(out)}).to_string(),
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let log = match args.next() {
        Some(path) => Some(Log::start(std::fs::File::create(path)?)),
        None => None,
    };
    let mut k = [0u8; 32];
    aws_lc_rs::rand::fill(&mut k).map_err(|_| std::io::Error::other("no randomness"))?;
    let key = UnboundKey::new(&AES_256_GCM, &k).map_err(|_| std::io::Error::other("bad key"))?;
    let mut app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/aead", post(aead));
    if log.is_some() {
        app = app.route("/aead-durable", post(aead_durable));
    }
    let app = app.with_state(App {
        key: Arc::new(LessSafeKey::new(key)),
        log,
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
