//! Envelope encryption for applications (`docs/envelope-format.md`): data keys from
//! Strongroom, the data sealed locally, and an optional data-key cache so that high-volume
//! callers make few calls to the server.
//!
//! A cached data key is reused for several envelopes, within limits on its age, on the
//! number of envelopes and on the bytes they hold (as the AWS Encryption SDK's caching
//! materials manager does). Reuse is safe for the format: each envelope has its own salt,
//! hence its own chunk key. Decryption caches unwrapped data keys by their wrapped form.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Map, Value, json};
use strongroom_crypto::envelope::{self, Header, WrappedKey};
use strongroom_crypto::{EncryptionContext, KeyMaterial, hash};

use crate::{B64, Client, ClientError, Method};

/// Members that are Strongroom keys: `strongroom:<ring>/<key>`.
pub const STRONGROOM_MEMBER: &str = "strongroom:";
/// Members wrapped through a key set held by the server: `key-set:<set>/<provider>:<key>`
/// (`docs/key-sets.md`). As a key to encrypt with, `key-set:<set>` names the key set.
pub const KEY_SET_MEMBER: &str = "key-set:";

/// The key set a key argument names (`key-set:<name>`), if it names one.
pub fn key_set_of(key: &str) -> Option<&str> {
    key.strip_prefix(KEY_SET_MEMBER).filter(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    })
}

/// The key set and the member within it of an envelope member name.
fn key_set_member(member: &str) -> Option<(&str, &str)> {
    member.strip_prefix(KEY_SET_MEMBER)?.split_once('/')
}

fn key_set_path(name: &str, op: &str) -> String {
    // Key set names are a-z 0-9 - _ (the server refuses others): nothing to escape.
    format!("/v1/key-sets/{name}/{op}")
}

/// How long and how much one cached data key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Reuse a data key for at most this long.
    pub max_age: Duration,
    /// For at most this many envelopes.
    pub max_messages: u64,
    /// For at most this many plaintext bytes in total.
    pub max_bytes: u64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_messages: 1000,
            max_bytes: 1 << 30,
        }
    }
}

/// Hits and misses of a cache, for its hit rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that went to the server.
    pub misses: u64,
}

impl CacheStats {
    /// Hits over lookups (0 when there were none).
    pub fn hit_rate(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 {
            0.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

struct EncryptEntry {
    dk: Arc<KeyMaterial>,
    wrapped: Vec<WrappedKey>,
    created: Instant,
    messages: u64,
    bytes: u64,
}

struct DecryptEntry {
    dk: Arc<KeyMaterial>,
    member: String,
    created: Instant,
}

/// Data keys kept for reuse (see the module docs). Share one between envelope clients with
/// `Arc`.
pub struct DataKeyCache {
    policy: CachePolicy,
    encrypt: Mutex<HashMap<[u8; 32], EncryptEntry>>,
    decrypt: Mutex<HashMap<[u8; 32], DecryptEntry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyCache")
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The data-key cache's lookups, by `result` (`hit`, `miss`), through the `metrics` facade:
/// an application that installs a recorder exports its hit rate.
pub const CACHE_METRIC: &str = "strongroom_client_data_key_cache_lookups_total";

/// Most entries per direction before the cache is emptied.
const CACHE_CAP: usize = 1000;

impl DataKeyCache {
    /// An empty cache with these limits.
    pub fn new(policy: CachePolicy) -> Self {
        Self {
            policy,
            encrypt: Mutex::default(),
            decrypt: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    fn hit(&self, hit: bool) {
        if hit { &self.hits } else { &self.misses }.fetch_add(1, Ordering::Relaxed);
        // For applications that install a `metrics` recorder (e.g. a Prometheus exporter).
        metrics::counter!(CACHE_METRIC, "result" => if hit { "hit" } else { "miss" }).increment(1);
    }
}

/// Envelope encryption through one Strongroom server.
#[derive(Clone)]
pub struct Envelopes {
    client: Client,
    cache: Option<Arc<DataKeyCache>>,
}

impl std::fmt::Debug for Envelopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelopes")
            .field("client", &self.client)
            .field("cache", &self.cache)
            .finish()
    }
}

fn json_context(ctx: &EncryptionContext) -> Map<String, Value> {
    ctx.pairs()
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

fn member_name(v: &Value, asked: &str) -> String {
    format!("{STRONGROOM_MEMBER}{}", v["key"].as_str().unwrap_or(asked))
}

fn envelope_error(e: envelope::EnvelopeError) -> ClientError {
    ClientError::Envelope(e.to_string())
}

impl Envelopes {
    /// Envelopes through `client`, with an optional data-key cache.
    pub fn new(client: Client, cache: Option<Arc<DataKeyCache>>) -> Self {
        Self { client, cache }
    }

    /// A data key wrapped by every one of `keys` (GenerateDataKey under the first, Encrypt
    /// of it under the others, all under `context`). With a cache, and when the envelope's
    /// size is known (`bytes`), a cached key within its limits is reused.
    pub async fn data_key(
        &self,
        keys: &[String],
        context: &EncryptionContext,
        bytes: Option<u64>,
    ) -> Result<(Arc<KeyMaterial>, Vec<WrappedKey>), ClientError> {
        if keys.is_empty() || keys.len() > envelope::MAX_WRAPPED_KEYS {
            return Err(ClientError::Config(format!(
                "give 1 to {} keys",
                envelope::MAX_WRAPPED_KEYS
            )));
        }
        let slot = {
            let mut id = Vec::new();
            for k in keys {
                id.extend_from_slice(&(k.len() as u32).to_be_bytes());
                id.extend_from_slice(k.as_bytes());
            }
            context.encode_into(&mut id);
            hash::sha256(&id)
        };
        if let (Some(cache), Some(n)) = (&self.cache, bytes) {
            let p = cache.policy;
            if let Ok(mut m) = cache.encrypt.lock()
                && let Some(e) = m.get_mut(&slot)
            {
                if e.created.elapsed() < p.max_age
                    && e.messages < p.max_messages
                    && e.bytes.saturating_add(n) <= p.max_bytes
                {
                    e.messages += 1;
                    e.bytes += n;
                    cache.hit(true);
                    return Ok((e.dk.clone(), e.wrapped.clone()));
                }
                m.remove(&slot);
            }
            cache.hit(false);
        }
        let (dk, wrapped) = self.fresh_data_key(keys, context).await?;
        if let (Some(cache), Some(n)) = (&self.cache, bytes)
            && n <= cache.policy.max_bytes
            && let Ok(mut m) = cache.encrypt.lock()
        {
            if m.len() >= CACHE_CAP {
                m.clear();
            }
            m.insert(
                slot,
                EncryptEntry {
                    dk: dk.clone(),
                    wrapped: wrapped.clone(),
                    created: Instant::now(),
                    messages: 1,
                    bytes: n,
                },
            );
        }
        Ok((dk, wrapped))
    }

    async fn fresh_data_key(
        &self,
        keys: &[String],
        context: &EncryptionContext,
    ) -> Result<(Arc<KeyMaterial>, Vec<WrappedKey>), ClientError> {
        let ctx = json_context(context);
        let body = json!({"key": keys[0], "length": envelope::DATA_KEY_LEN, "context": ctx});
        let (dk, mut wrapped) = match key_set_of(&keys[0]) {
            Some(set) => {
                let body = json!({"length": envelope::DATA_KEY_LEN, "context": ctx});
                let v = self
                    .client
                    .call(
                        Method::Post,
                        &key_set_path(set, "generate-data-key"),
                        Some(&body),
                    )
                    .await?;
                let dk = KeyMaterial::new(self.client.bytes_field(&v, "plaintext")?);
                (dk, self.key_set_wrapped(set, &v)?)
            }
            None => {
                let v = self
                    .client
                    .call(Method::Post, "/v1/crypto/generate-data-key", Some(&body))
                    .await?;
                let dk = KeyMaterial::new(self.client.bytes_field(&v, "plaintext")?);
                let w = vec![WrappedKey {
                    member: member_name(&v, &keys[0]),
                    wrapped: self.client.bytes_field(&v, "ciphertext")?,
                }];
                (dk, w)
            }
        };
        wrapped.extend(self.wrap(&dk, &keys[1..], context).await?);
        Ok((Arc::new(dk), wrapped))
    }

    /// The `wrapped` array of a key set answer, as envelope members.
    fn key_set_wrapped(&self, set: &str, v: &Value) -> Result<Vec<WrappedKey>, ClientError> {
        let items = v["wrapped"].as_array().ok_or_else(|| {
            ClientError::Envelope("the key set answer has no wrapped keys".into())
        })?;
        items
            .iter()
            .map(|w| {
                let member = w["member"].as_str().ok_or_else(|| {
                    ClientError::Envelope("a key set's wrapped key names no member".into())
                })?;
                Ok(WrappedKey {
                    member: format!("{KEY_SET_MEMBER}{set}/{member}"),
                    wrapped: self.client.bytes_field(w, "ciphertext")?,
                })
            })
            .collect()
    }

    /// `dk` wrapped by each of `keys` under `context` (for more members, or a rewrap).
    pub async fn wrap(
        &self,
        dk: &KeyMaterial,
        keys: &[String],
        context: &EncryptionContext,
    ) -> Result<Vec<WrappedKey>, ClientError> {
        let ctx = json_context(context);
        let mut out = Vec::new();
        for k in keys {
            if let Some(set) = key_set_of(k) {
                // Exposed to send it to the server to wrap, as GenerateDataKey returned it.
                let body = json!({"plaintext": B64.encode(dk.expose_secret()), "context": ctx});
                let v = self
                    .client
                    .call(Method::Post, &key_set_path(set, "wrap"), Some(&body))
                    .await?;
                out.extend(self.key_set_wrapped(set, &v)?);
                continue;
            }
            // Exposed to send it to the server to wrap, as GenerateDataKey returned it.
            let body =
                json!({"key": k, "plaintext": B64.encode(dk.expose_secret()), "context": ctx});
            let v = self
                .client
                .call(Method::Post, "/v1/crypto/encrypt", Some(&body))
                .await?;
            out.push(WrappedKey {
                member: member_name(&v, k),
                wrapped: self.client.bytes_field(&v, "ciphertext")?,
            });
        }
        Ok(out)
    }

    /// The data key of an envelope, from the first member that unwraps it (in the
    /// envelope's order), checked against the envelope's commitment; cached by wrapped form
    /// with a cache. Returns the member that gave it.
    pub async fn unwrap(&self, header: &Header) -> Result<(Arc<KeyMaterial>, String), ClientError> {
        let ctx = json_context(&header.context);
        let mut failures = Vec::new();
        let mut sets_tried: Vec<&str> = Vec::new();
        for k in &header.keys {
            if let Some((set, _)) = key_set_member(&k.member) {
                if sets_tried.contains(&set) {
                    continue;
                }
                sets_tried.push(set);
                match self.unwrap_key_set(header, set, &ctx).await {
                    Ok(found) => return Ok(found),
                    Err(e) => failures.push(format!("key set {set}: {e}")),
                }
                continue;
            }
            if !k.member.starts_with(STRONGROOM_MEMBER) {
                failures.push(format!(
                    "{}: neither a Strongroom key nor a key set member",
                    k.member
                ));
                continue;
            }
            let slot = {
                let mut id = k.wrapped.clone();
                header.context.encode_into(&mut id);
                hash::sha256(&id)
            };
            if let Some(found) = self.cached_unwrap(&slot, header) {
                return Ok(found);
            }
            let body = json!({"ciphertext": B64.encode(&k.wrapped), "context": ctx});
            match self
                .client
                .call(Method::Post, "/v1/crypto/decrypt", Some(&body))
                .await
            {
                Ok(v) => {
                    let dk = Arc::new(KeyMaterial::new(self.client.bytes_field(&v, "plaintext")?));
                    header.check_data_key(&dk).map_err(envelope_error)?;
                    self.remember_unwrap(slot, &dk, &k.member);
                    return Ok((dk, k.member.clone()));
                }
                Err(e) => failures.push(format!("{}: {e}", k.member)),
            }
        }
        Err(ClientError::Envelope(format!(
            "no member could unwrap the data key: {}",
            failures.join("; ")
        )))
    }

    /// Opens the data key through key set `set`, sending every wrapped key of its members in
    /// one call (the server tries them in its preference order).
    async fn unwrap_key_set(
        &self,
        header: &Header,
        set: &str,
        ctx: &Map<String, Value>,
    ) -> Result<(Arc<KeyMaterial>, String), ClientError> {
        let mine: Vec<(&str, &[u8])> = header
            .keys
            .iter()
            .filter_map(|k| match key_set_member(&k.member) {
                Some((s, m)) if s == set => Some((m, k.wrapped.as_slice())),
                _ => None,
            })
            .collect();
        let slot = {
            let mut id = format!("{KEY_SET_MEMBER}{set}").into_bytes();
            for (m, w) in &mine {
                id.extend_from_slice(&(m.len() as u32).to_be_bytes());
                id.extend_from_slice(m.as_bytes());
                id.extend_from_slice(&(w.len() as u32).to_be_bytes());
                id.extend_from_slice(w);
            }
            header.context.encode_into(&mut id);
            hash::sha256(&id)
        };
        if let Some(found) = self.cached_unwrap(&slot, header) {
            return Ok(found);
        }
        let wrapped: Vec<Value> = mine
            .iter()
            .map(|(m, w)| json!({"member": m, "ciphertext": B64.encode(w)}))
            .collect();
        let v = self
            .client
            .call(
                Method::Post,
                &key_set_path(set, "decrypt"),
                Some(&json!({"wrapped": wrapped, "context": ctx})),
            )
            .await?;
        let dk = Arc::new(KeyMaterial::new(self.client.bytes_field(&v, "plaintext")?));
        header.check_data_key(&dk).map_err(envelope_error)?;
        let member = format!(
            "{KEY_SET_MEMBER}{set}/{}",
            v["member"].as_str().unwrap_or_default()
        );
        self.remember_unwrap(slot, &dk, &member);
        Ok((dk, member))
    }

    fn cached_unwrap(
        &self,
        slot: &[u8; 32],
        header: &Header,
    ) -> Option<(Arc<KeyMaterial>, String)> {
        let cache = self.cache.as_ref()?;
        let found = cache.decrypt.lock().ok().and_then(|m| {
            m.get(slot)
                .filter(|e| e.created.elapsed() < cache.policy.max_age)
                .map(|e| (e.dk.clone(), e.member.clone()))
        });
        cache.hit(found.is_some());
        found.filter(|(dk, _)| header.check_data_key(dk).is_ok())
    }

    fn remember_unwrap(&self, slot: [u8; 32], dk: &Arc<KeyMaterial>, member: &str) {
        if let Some(cache) = &self.cache
            && let Ok(mut m) = cache.decrypt.lock()
        {
            if m.len() >= CACHE_CAP {
                m.clear();
            }
            m.insert(
                slot,
                DecryptEntry {
                    dk: dk.clone(),
                    member: member.to_string(),
                    created: Instant::now(),
                },
            );
        }
    }

    /// Seals `plaintext` into an envelope in memory (for messages; stream large data with
    /// [`Envelopes::data_key`] and `strongroom_crypto::envelope::encrypt`).
    pub async fn encrypt(
        &self,
        keys: &[String],
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let (dk, wrapped) = self
            .data_key(keys, context, Some(plaintext.len() as u64))
            .await?;
        let header = Header::new(&dk, envelope::DEFAULT_CHUNK_SIZE, context.clone(), wrapped)
            .map_err(envelope_error)?;
        envelope::encrypt_to_vec(&dk, &header, plaintext).map_err(envelope_error)
    }

    /// Opens an envelope held in memory.
    pub async fn decrypt(&self, sealed: &[u8]) -> Result<Vec<u8>, ClientError> {
        let mut r = sealed;
        let header = Header::read(&mut r).map_err(envelope_error)?;
        let (dk, _) = self.unwrap(&header).await?;
        let mut out = Vec::with_capacity(r.len());
        envelope::decrypt(&dk, &header, &mut r, &mut out, |_| {}).map_err(envelope_error)?;
        Ok(out)
    }
}
