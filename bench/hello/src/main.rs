//! The baselines `bench/run.sh` measures beside Strongroom in the same run, on the same
//! machine, with the same load generator:
//!
//! - `GET /`: an axum hello-world, the ceiling of HTTP on this machine;
//! - `POST /aead`: JSON in, base64-decode, AES-256-GCM seal, base64, JSON out — a KMS's
//!   cryptography and encoding with no authentication, store, policy or audit.
//!
//! Usage: `strongroom-bench-hello [ADDR]` (default 127.0.0.1:0); prints `listening on http://…`.

#![allow(clippy::print_stdout)] // the address is the binary's output

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn aead(
    State(key): State<Arc<LessSafeKey>>,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
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
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let mut k = [0u8; 32];
    aws_lc_rs::rand::fill(&mut k).map_err(|_| std::io::Error::other("no randomness"))?;
    let key = UnboundKey::new(&AES_256_GCM, &k).map_err(|_| std::io::Error::other("bad key"))?;
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/aead", post(aead))
        .with_state(Arc::new(LessSafeKey::new(key)));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
