//! `kind = "vault-transit"`: keys in HashiCorp Vault's or OpenBao's Transit engine.
//!
//! ```toml
//! [providers.vault-east]
//! kind = "vault-transit"
//! address = "https://vault.example:8200"
//! mount = "transit"                 # default
//! timeout = "5s"                    # per call; default 5s
//! token_env = "VAULT_TOKEN"         # or token_file = "/run/secrets/vault-token"
//! # or AppRole: approle_role_id = "…" and approle_secret_id_file = "/run/secrets/secret-id"
//! ```
//!
//! Data keys are wrapped with `encrypt/<key>` and unwrapped with `decrypt/<key>`; the
//! encryption context goes as `associated_data` (its canonical encoding), so a wrapped key
//! opens only under the same context (Transit AEAD key types: `aes256-gcm96`,
//! `chacha20-poly1305`). The wrapped form is Transit's own `vault:v<N>:…` text.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use strongroom_crypto::{EncryptionContext, KeyMaterial};

use crate::{
    KeyProvider, ProviderError, ProviderKey, ProviderVersion, Result, Signed, Unwrapped,
    VersionState, Wrapped,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The `[providers.<name>]` settings of a Transit provider.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultTransitConfig {
    /// The server, e.g. `https://vault.example:8200`.
    pub address: String,
    /// The Transit mount path.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Per-call timeout, e.g. `5s`.
    #[serde(default = "crate::default_timeout")]
    pub timeout: String,
    /// Read the token from this environment variable.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Read the token from this file.
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    /// AppRole: the role id.
    #[serde(default)]
    pub approle_role_id: Option<String>,
    /// AppRole: a file holding the secret id.
    #[serde(default)]
    pub approle_secret_id_file: Option<std::path::PathBuf>,
    /// AppRole: where the AppRole auth method is mounted.
    #[serde(default = "default_approle_mount")]
    pub approle_mount: String,
}

fn default_mount() -> String {
    "transit".into()
}
fn default_approle_mount() -> String {
    "approle".into()
}

enum Auth {
    Token,
    AppRole {
        role_id: String,
        secret_id: String,
        mount: String,
    },
}

/// A Transit provider.
pub struct VaultTransit {
    name: String,
    base: String,
    mount: String,
    namespace: Option<String>,
    http: reqwest::Client,
    auth: Auth,
    /// The token in use (for AppRole, the last login's; renewed on a 403).
    token: Mutex<Option<String>>,
}

impl std::fmt::Debug for VaultTransit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultTransit")
            .field("name", &self.name)
            .field("address", &self.base)
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl VaultTransit {
    /// Builds the provider `name` from its settings, reading its credentials.
    pub fn new(name: &str, c: &VaultTransitConfig) -> Result<Self> {
        let cfg = |m: String| ProviderError::Config(format!("providers.{name}: {m}"));
        let base = c.address.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(cfg("address must start with http:// or https://".into()));
        }
        let mount = c.mount.trim_matches('/').to_string();
        if !mount.split('/').all(segment_ok) {
            return Err(cfg(format!("mount {:?} is not a path of names", c.mount)));
        }
        let timeout: Duration =
            crate::parse_duration(&c.timeout, &format!("providers.{name}.timeout"))?;
        let read_file = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .map_err(|e| cfg(format!("cannot read {}: {e}", p.display())))
        };
        let (auth, token) = match (&c.token_env, &c.token_file, &c.approle_role_id) {
            (Some(var), None, None) => {
                let t =
                    std::env::var(var).map_err(|_| cfg(format!("token_env: {var} is not set")))?;
                (Auth::Token, Some(t))
            }
            (None, Some(p), None) => (Auth::Token, Some(read_file(p)?)),
            (None, None, Some(role)) => {
                let p = c
                    .approle_secret_id_file
                    .as_ref()
                    .ok_or_else(|| cfg("approle_role_id needs approle_secret_id_file".into()))?;
                (
                    Auth::AppRole {
                        role_id: role.clone(),
                        secret_id: read_file(p)?,
                        mount: c.approle_mount.trim_matches('/').to_string(),
                    },
                    None,
                )
            }
            _ => {
                return Err(cfg(
                    "give exactly one of token_env, token_file or approle_role_id".into(),
                ));
            }
        };
        if token.as_deref().is_some_and(str::is_empty) {
            return Err(cfg("the token is empty".into()));
        }
        let http = crate::http::client(name, timeout)?;
        Ok(Self {
            name: name.to_string(),
            base,
            mount,
            namespace: c.namespace.clone(),
            http,
            auth,
            token: Mutex::new(token),
        })
    }

    fn unavailable(&self, detail: impl Into<String>, retryable: bool) -> ProviderError {
        ProviderError::unavailable(&self.name, detail, retryable)
    }

    async fn login(&self) -> Result<String> {
        let Auth::AppRole {
            role_id,
            secret_id,
            mount,
        } = &self.auth
        else {
            return Err(ProviderError::AccessDenied {
                provider: self.name.clone(),
                detail: "the token was refused".into(),
            });
        };
        let (status, v) = self
            .send(
                reqwest::Method::POST,
                &format!("/v1/auth/{mount}/login"),
                Some(json!({"role_id": role_id, "secret_id": secret_id})),
                None,
            )
            .await?;
        let token = v["auth"]["client_token"].as_str().filter(|_| status == 200);
        let Some(token) = token else {
            return Err(ProviderError::AccessDenied {
                provider: self.name.clone(),
                detail: format!("AppRole login refused (HTTP {status})"),
            });
        };
        if let Ok(mut t) = self.token.lock() {
            *t = Some(token.to_string());
        }
        Ok(token.to_string())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| crate::http::transport_error(&self.name, &e))?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, v))
    }

    /// A call with the current token; with AppRole, logs in first or again after a 403.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let current = self.token.lock().ok().and_then(|t| t.clone());
        let token = match current {
            Some(t) => t,
            None => self.login().await?,
        };
        let (mut status, mut v) = self
            .send(method.clone(), path, body.clone(), Some(&token))
            .await?;
        if status == 403 && matches!(self.auth, Auth::AppRole { .. }) {
            let token = self.login().await?;
            (status, v) = self.send(method, path, body, Some(&token)).await?;
        }
        if (200..300).contains(&status) {
            return Ok(v);
        }
        let detail = v["errors"]
            .as_array()
            .and_then(|e| e.first())
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        Err(match status {
            403 => ProviderError::AccessDenied {
                provider: self.name.clone(),
                detail: if detail.is_empty() {
                    "permission denied".into()
                } else {
                    detail
                },
            },
            429 | 500..=599 => self.unavailable(format!("HTTP {status} {detail}"), true),
            _ => ProviderError::refused(&self.name, format!("HTTP {status} {detail}")),
        })
    }

    fn key_path(&self, op: &str, key: &str) -> Result<String> {
        if !segment_ok(key) {
            return Err(ProviderError::Config(format!(
                "providers.{}: key name {key:?} is not valid",
                self.name
            )));
        }
        Ok(format!("/v1/{}/{op}/{key}", self.mount))
    }

    /// A call that opens a ciphertext (`decrypt`, `rewrap`): Transit answers 400 for one
    /// that does not open.
    async fn opening_call(&self, op: &str, key: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, &self.key_path(op, key)?, Some(body))
            .await
            .map_err(|e| match self.not_found_or(e, key) {
                ProviderError::Refused { detail, .. } if detail.starts_with("HTTP 400") => {
                    ProviderError::InvalidCiphertext {
                        provider: self.name.clone(),
                    }
                }
                e => e,
            })
    }

    /// The `vault:v<N>:…` ciphertext, its version and the request id of an `encrypt`,
    /// `rewrap` or `datakey` answer.
    fn wrapped_of(&self, v: &Value, op: &str) -> Result<Wrapped> {
        let ct = v["data"]["ciphertext"]
            .as_str()
            .filter(|c| c.starts_with("vault:v"))
            .ok_or_else(|| self.unavailable(format!("the {op} answer has no ciphertext"), false))?;
        Ok(Wrapped {
            ciphertext: ct.as_bytes().to_vec(),
            key_version: v["data"]["key_version"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok()),
            request_id: v["request_id"].as_str().map(str::to_string),
        })
    }

    fn not_found_or(&self, e: ProviderError, key: &str) -> ProviderError {
        match &e {
            ProviderError::Refused { detail, .. }
                if detail.contains("not found") || detail.starts_with("HTTP 404") =>
            {
                ProviderError::NotFound {
                    provider: self.name.clone(),
                    key: key.to_string(),
                }
            }
            _ => e,
        }
    }
}

fn associated_data(context: &EncryptionContext) -> Option<String> {
    (!context.is_empty()).then(|| B64.encode(context.encode()))
}

#[async_trait::async_trait]
impl KeyProvider for VaultTransit {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "vault-transit"
    }

    async fn set_rotation_period(&self, key: &str, period: Option<Duration>) -> Result<()> {
        let secs = period.map_or(0, |p| p.as_secs());
        if secs != 0 && secs < 3600 {
            return Err(ProviderError::Config(format!(
                "providers.{}: Transit rotates at most hourly",
                self.name
            )));
        }
        let path = format!("{}/config", self.key_path("keys", key)?);
        self.call(
            reqwest::Method::POST,
            &path,
            Some(json!({"auto_rotate_period": format!("{secs}s")})),
        )
        .await
        .map_err(|e| self.not_found_or(e, key))?;
        Ok(())
    }

    async fn public_key(&self, key: &str) -> Result<Vec<u8>> {
        let v = self
            .call(reqwest::Method::GET, &self.key_path("keys", key)?, None)
            .await
            .map_err(|e| self.not_found_or(e, key))?;
        let d = &v["data"];
        let latest = d["latest_version"].as_u64().unwrap_or(0).to_string();
        let pem = d["keys"][&latest]["public_key"].as_str().unwrap_or("");
        crate::pem_der(pem, "PUBLIC KEY").ok_or_else(|| ProviderError::Unsupported {
            provider: self.name.clone(),
            operation: "get-public-key (not an asymmetric key)",
        })
    }

    async fn sign(
        &self,
        key: &str,
        algorithm: strongroom_crypto::Algorithm,
        input: strongroom_crypto::keys::SignInput<'_>,
    ) -> Result<Signed> {
        use strongroom_crypto::keys::SignInput;
        use strongroom_crypto::{Algorithm as A, Sha2};
        let hash = |h: Sha2| match h {
            Sha2::Sha256 => "sha2-256",
            Sha2::Sha384 => "sha2-384",
            Sha2::Sha512 => "sha2-512",
        };
        let (data, prehashed) = match input {
            SignInput::Message(m) => (m, false),
            SignInput::Digest(d) => (d, true),
        };
        let mut body = json!({"input": B64.encode(data), "prehashed": prehashed, "marshaling_algorithm": "asn1"});
        match algorithm {
            A::EcdsaP256Sha256 => body["hash_algorithm"] = "sha2-256".into(),
            A::EcdsaP384Sha384 => body["hash_algorithm"] = "sha2-384".into(),
            A::EcdsaP521Sha512 => body["hash_algorithm"] = "sha2-512".into(),
            A::RsaPss(_, h) => {
                body["hash_algorithm"] = hash(h).into();
                body["signature_algorithm"] = "pss".into();
                // As Strongroom verifies PSS: a salt as long as the hash.
                body["salt_length"] = "hash".into();
            }
            A::RsaPkcs1(_, h) => {
                body["hash_algorithm"] = hash(h).into();
                body["signature_algorithm"] = "pkcs1v15".into();
            }
            _ => {
                return Err(ProviderError::Unsupported {
                    provider: self.name.clone(),
                    operation: "sign with this algorithm",
                });
            }
        }
        let v = self
            .call(
                reqwest::Method::POST,
                &self.key_path("sign", key)?,
                Some(body),
            )
            .await
            .map_err(|e| self.not_found_or(e, key))?;
        let sig = v["data"]["signature"]
            .as_str()
            .and_then(|s| s.strip_prefix("vault:v"))
            .and_then(|s| s.split_once(':'))
            .and_then(|(_, b)| B64.decode(b).ok())
            .ok_or_else(|| {
                self.unavailable("sign answered without a vault:v<N>: signature", false)
            })?;
        Ok(Signed {
            signature: sig,
            request_id: v["request_id"].as_str().map(str::to_string),
        })
    }

    async fn describe(&self, key: &str) -> Result<ProviderKey> {
        let v = self
            .call(reqwest::Method::GET, &self.key_path("keys", key)?, None)
            .await
            .map_err(|e| self.not_found_or(e, key))?;
        let d = &v["data"];
        Ok(ProviderKey {
            name: key.to_string(),
            key_type: d["type"].as_str().unwrap_or_default().to_string(),
            latest_version: d["latest_version"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok()),
            can_encrypt: d["supports_encryption"].as_bool().unwrap_or(false),
            rotation_period: d["auto_rotate_period"]
                .as_u64()
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            // Transit has no switch for a key: its keys are always on.
            enabled: Some(true),
        })
    }

    async fn list_versions(&self, key: &str) -> Result<Vec<ProviderVersion>> {
        let v = self
            .call(reqwest::Method::GET, &self.key_path("keys", key)?, None)
            .await
            .map_err(|e| self.not_found_or(e, key))?;
        let d = &v["data"];
        let latest = d["latest_version"].as_u64().unwrap_or(0);
        let min_decrypt = d["min_decryption_version"].as_u64().unwrap_or(1);
        let min_available = d["min_available_version"].as_u64().unwrap_or(0);
        // `keys` lists the working set only: versions below min_decryption_version are
        // archived (they open nothing until the minimum is lowered again), those below
        // min_available_version trimmed for good.
        Ok((1..=latest.min(100_000))
            .map(|n| {
                let info = &d["keys"][n.to_string()];
                // Symmetric keys list a Unix time; asymmetric ones an object.
                let created_at = info
                    .as_u64()
                    .map(crate::rfc3339)
                    .or_else(|| info["creation_time"].as_str().map(str::to_string));
                ProviderVersion {
                    version: n.to_string(),
                    state: if n < min_available {
                        VersionState::Destroyed
                    } else if n < min_decrypt {
                        VersionState::Disabled
                    } else {
                        VersionState::Enabled
                    },
                    primary: n == latest,
                    created_at,
                }
            })
            .collect())
    }

    async fn wrap(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped> {
        let mut body = json!({"plaintext": B64.encode(plaintext)});
        if let Some(ad) = associated_data(context) {
            body["associated_data"] = ad.into();
        }
        let v = self
            .call(
                reqwest::Method::POST,
                &self.key_path("encrypt", key)?,
                Some(body),
            )
            .await
            .map_err(|e| self.not_found_or(e, key))?;
        self.wrapped_of(&v, "encrypt")
    }

    async fn unwrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Unwrapped> {
        let invalid = || ProviderError::InvalidCiphertext {
            provider: self.name.clone(),
        };
        let ct = std::str::from_utf8(ciphertext).map_err(|_| invalid())?;
        if !ct.starts_with("vault:v") {
            return Err(invalid());
        }
        let mut body = json!({"ciphertext": ct});
        if let Some(ad) = associated_data(context) {
            body["associated_data"] = ad.into();
        }
        let v = self.opening_call("decrypt", key, body).await?;
        let pt = v["data"]["plaintext"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
            .ok_or_else(invalid)?;
        Ok(Unwrapped {
            plaintext: KeyMaterial::new(pt),
            request_id: v["request_id"].as_str().map(str::to_string),
        })
    }

    async fn generate_data_key(
        &self,
        key: &str,
        len: usize,
        context: &EncryptionContext,
    ) -> Result<(Unwrapped, Wrapped)> {
        // Transit makes keys of 128, 256 or 512 bits; other lengths are made here.
        let bits = match len {
            16 => 128,
            32 => 256,
            64 => 512,
            _ => return crate::generate_here(self, key, len, context).await,
        };
        let mut body = json!({"bits": bits});
        if let Some(ad) = associated_data(context) {
            body["associated_data"] = ad.into();
        }
        let v = self
            .call(
                reqwest::Method::POST,
                &self.key_path("datakey/plaintext", key)?,
                Some(body),
            )
            .await
            .map_err(|e| self.not_found_or(e, key))?;
        let d = &v["data"];
        let plaintext = d["plaintext"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
            .filter(|p| p.len() == len)
            .map(KeyMaterial::new)
            .ok_or_else(|| {
                self.unavailable("datakey answered without a data key of that size", false)
            })?;
        let w = self.wrapped_of(&v, "datakey")?;
        Ok((
            Unwrapped {
                plaintext,
                request_id: w.request_id.clone(),
            },
            w,
        ))
    }

    async fn rewrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped> {
        // Transit's rewrap takes no associated data (OpenBao 2.x ignores it, and fails to
        // open what encrypt bound to it): with a context, unwrap and wrap here.
        if !context.is_empty() {
            return crate::rewrap_here(self, key, ciphertext, context).await;
        }
        let invalid = || ProviderError::InvalidCiphertext {
            provider: self.name.clone(),
        };
        let ct = std::str::from_utf8(ciphertext)
            .ok()
            .filter(|c| c.starts_with("vault:v"))
            .ok_or_else(invalid)?;
        let v = self
            .opening_call("rewrap", key, json!({"ciphertext": ct}))
            .await?;
        self.wrapped_of(&v, "rewrap")
    }

    async fn rotate(&self, key: &str) -> Result<String> {
        let path = format!("{}/rotate", self.key_path("keys", key)?);
        self.call(reqwest::Method::POST, &path, None)
            .await
            .map_err(|e| self.not_found_or(e, key))?;
        self.describe(key)
            .await?
            .latest_version
            .map(|v| v.to_string())
            .ok_or_else(|| self.unavailable("the key has no version after rotating", false))
    }

    async fn health(&self) -> Result<()> {
        // Checks the server and the credentials at once.
        self.call(reqwest::Method::GET, "/v1/auth/token/lookup-self", None)
            .await
            .map(|_| ())
    }
}
