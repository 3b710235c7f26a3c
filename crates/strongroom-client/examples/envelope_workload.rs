//! A synthetic envelope workload against a running server, for `bench/run.sh`: many small
//! messages sealed with data keys from a Strongroom key, first without and then with the
//! data-key cache; prints one JSON line with envelopes per second, the cache's hit rate and
//! how many data keys the server made.
//!
//!   STRONGROOM_TOKEN=… cargo run --release -p strongroom-client --example envelope_workload -- \
//!       http://127.0.0.1:8400 bench/aes 20000 4096 8

#![allow(clippy::print_stdout)] // its output is one JSON line for bench/run.py

use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom_client::Client;
use strongroom_client::envelope::{CachePolicy, DataKeyCache, Envelopes};
use strongroom_crypto::EncryptionContext;

async fn run(
    env: Envelopes,
    key: String,
    messages: usize,
    size: usize,
    workers: usize,
) -> anyhow::Result<f64> {
    let per = messages / workers;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (env, key) = (env.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let ctx = EncryptionContext::empty();
            let msg = vec![w as u8; size];
            for _ in 0..per {
                env.encrypt(std::slice::from_ref(&key), &ctx, &msg).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per * workers) as f64 / t.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let addr = arg(1, "http://127.0.0.1:8400");
    let key = arg(2, "bench/aes");
    let messages: usize = arg(3, "20000").parse()?;
    let size: usize = arg(4, "4096").parse()?;
    let workers: usize = arg(5, "8").parse()?;
    let client = Client::new(&addr, std::env::var("STRONGROOM_TOKEN").ok())?;
    let uncached = run(
        Envelopes::new(client.clone(), None),
        key.clone(),
        messages / 4,
        size,
        workers,
    )
    .await?;
    // As the AWS Encryption SDK's caching materials manager is often set up: a data key
    // lives 5 minutes or 1000 messages or 1 GiB, whichever comes first.
    let cache = Arc::new(DataKeyCache::new(CachePolicy {
        max_age: Duration::from_secs(300),
        max_messages: 1000,
        max_bytes: 1 << 30,
    }));
    let cached = run(
        Envelopes::new(client, Some(cache.clone())),
        key,
        messages,
        size,
        workers,
    )
    .await?;
    let s = cache.stats();
    println!(
        "{}",
        serde_json::json!({
            "messages": messages,
            "size": size,
            "workers": workers,
            "uncached_per_s": uncached,
            "cached_per_s": cached,
            "hit_rate": s.hit_rate(),
            "data_keys_made": s.misses,
        })
    );
    Ok(())
}
