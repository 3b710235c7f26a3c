//! Azure Key Vault (and Managed HSM) keys through the Key Vault REST API: `wrapkey` /
//! `unwrapkey` wrap and unwrap data keys, `GET /keys/{name}` describes, `rotate` rotates,
//! `GET /keys?maxresults=1` is the health probe.
//!
//! ```toml
//! [providers.azure]
//! kind = "azure-keyvault"
//! vault_url = "https://my-vault.vault.azure.net"
//! tenant_id = "…"
//! client_id = "…"
//! client_secret_file = "/run/secrets/azure-secret"   # or client_secret_env = "AZURE_CLIENT_SECRET"
//! # or workload identity: federated_token_file = "/var/run/secrets/azure/tokens/azure-identity-token"
//! timeout = "5s"
//! ```
//!
//! Key Vault's key wrapping (RSA-OAEP-256 for vault keys; `A256KW` for Managed HSM `oct`
//! keys) has no associated data, so Strongroom binds the encryption context itself: it
//! wraps `"SR1" || SHA-256(context encoding) || data key` and, on unwrap, refuses a result
//! whose digest is not that of the context given. The wrapped form is
//! `0x01 || version length (u8) || key version (ASCII) || Key Vault's value`, so unwrapping
//! names the version that wrapped. Wrapping uses the key's current version, learned from
//! `GET /keys/{name}` and kept for a minute (a rotation applies within that).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use strongroom_crypto::{EncryptionContext, KeyMaterial};

use crate::der::{self, OID_P256, OID_P384, OID_P521};
use crate::http::{self, Answer, TokenCache};
use crate::{
    KeyProvider, ProviderError, ProviderKey, ProviderVersion, Result, Signed, Unwrapped,
    VersionState, Wrapped,
};

const KIND: &str = "azure-keyvault";
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const BINDING: &[u8] = b"SR1";
const FORMAT: u8 = 0x01;
/// The wrapped form of `A256GCM` (Managed HSM `encrypt`): also carries the IV and the tag.
const FORMAT_GCM: u8 = 0x02;
const GCM: &str = "A256GCM";
const REQUEST_ID: &str = "x-ms-request-id";
const VERSION_TTL: Duration = Duration::from_secs(60);

/// The `[providers.<name>]` settings of an Azure Key Vault provider.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureKeyVaultConfig {
    /// The vault, e.g. `https://my-vault.vault.azure.net` (or a Managed HSM's URL).
    pub vault_url: String,
    /// The Microsoft Entra tenant.
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret, from this environment variable.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The client secret, from this file.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Workload identity: a federated token file, read at each token request (it rotates).
    #[serde(default)]
    pub federated_token_file: Option<PathBuf>,
    /// The identity endpoint.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// The token scope.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// The wrapping algorithm: `RSA-OAEP-256` (RSA keys), `A256KW` (Managed HSM oct keys,
    /// `wrapkey`), or `A256GCM` (Managed HSM oct keys, `encrypt` with the context as AAD).
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// The REST API version.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Per-call timeout, e.g. `5s`.
    #[serde(default = "crate::default_timeout")]
    pub timeout: String,
}

fn default_authority() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_scope() -> String {
    "https://vault.azure.net/.default".into()
}
fn default_algorithm() -> String {
    "RSA-OAEP-256".into()
}
fn default_api_version() -> String {
    "7.5".into()
}

enum Secret {
    Client(String),
    Federated(PathBuf),
}

/// An Azure Key Vault as a key provider.
pub struct AzureKeyVault {
    name: String,
    vault: String,
    tenant: String,
    client_id: String,
    secret: Secret,
    authority: String,
    scope: String,
    algorithm: String,
    api_version: String,
    http: reqwest::Client,
    token: TokenCache,
    /// Current version per key, and when it was learned.
    current: Mutex<std::collections::HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for AzureKeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKeyVault")
            .field("name", &self.name)
            .field("vault", &self.vault)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn version_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A base64url field of a Key Vault answer (padded or not), decoded; `None` if absent,
/// malformed or empty.
fn b64url_field(v: &Value, field: &str) -> Option<Vec<u8>> {
    v[field]
        .as_str()
        .and_then(|s| B64URL.decode(s.trim_end_matches('=')).ok())
        .filter(|b| !b.is_empty())
}

/// The SubjectPublicKeyInfo of a JWK (EC P-256/384/521 or RSA), or `None`.
fn spki_of_jwk(jwk: &Value) -> Option<Vec<u8>> {
    let b = |k: &str| b64url_field(jwk, k);
    match jwk["kty"].as_str()? {
        "EC" | "EC-HSM" => {
            let (curve, size) = match jwk["crv"].as_str()? {
                "P-256" => (OID_P256, 32),
                "P-384" => (OID_P384, 48),
                "P-521" => (OID_P521, 66),
                _ => return None,
            };
            let (x, y) = (b("x")?, b("y")?);
            if x.len() > size || y.len() > size {
                return None;
            }
            let mut point = vec![0x04];
            point.extend(std::iter::repeat_n(0, size - x.len()));
            point.extend_from_slice(&x);
            point.extend(std::iter::repeat_n(0, size - y.len()));
            point.extend_from_slice(&y);
            Some(der::ec_spki(curve, &point))
        }
        "RSA" | "RSA-HSM" => Some(der::rsa_spki(&b("n")?, &b("e")?)),
        _ => None,
    }
}

/// The JWS algorithm Key Vault signs `algorithm` with, and whether its signature is a raw
/// ECDSA `r || s`.
fn jws_alg(algorithm: strongroom_crypto::Algorithm) -> Option<(&'static str, bool)> {
    use strongroom_crypto::{Algorithm as A, Sha2};
    Some(match algorithm {
        A::EcdsaP256Sha256 => ("ES256", true),
        A::EcdsaP384Sha384 => ("ES384", true),
        A::EcdsaP521Sha512 => ("ES512", true),
        A::EcdsaSecp256k1Sha256 => ("ES256K", true),
        A::RsaPss(_, Sha2::Sha256) => ("PS256", false),
        A::RsaPss(_, Sha2::Sha384) => ("PS384", false),
        A::RsaPss(_, Sha2::Sha512) => ("PS512", false),
        A::RsaPkcs1(_, Sha2::Sha256) => ("RS256", false),
        A::RsaPkcs1(_, Sha2::Sha384) => ("RS384", false),
        A::RsaPkcs1(_, Sha2::Sha512) => ("RS512", false),
        _ => return None,
    })
}

/// The bytes Key Vault wraps: the binding label, the context's digest, the data key.
fn bound(context: &EncryptionContext, dk: &[u8]) -> Vec<u8> {
    let mut v = BINDING.to_vec();
    v.extend_from_slice(&strongroom_crypto::hash::sha256(&context.encode()));
    v.extend_from_slice(dk);
    v
}

impl AzureKeyVault {
    /// Builds the provider, reading the client secret now (a federated token file is read at
    /// each token request).
    pub fn new(name: &str, c: &AzureKeyVaultConfig) -> Result<Self> {
        let cfg = |m: String| ProviderError::Config(format!("providers.{name}: {m}"));
        let vault = c.vault_url.trim_end_matches('/').to_string();
        if !(vault.starts_with("https://") || vault.starts_with("http://")) {
            return Err(cfg("vault_url must be an https:// URL".into()));
        }
        if !(c.authority.starts_with("https://") || c.authority.starts_with("http://")) {
            return Err(cfg("authority must be an https:// URL".into()));
        }
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if !id_ok(&c.tenant_id) || !id_ok(&c.client_id) {
            return Err(cfg("tenant_id and client_id are ids (GUIDs)".into()));
        }
        if !matches!(
            c.algorithm.as_str(),
            "RSA-OAEP-256" | "RSA-OAEP" | "A256KW" | GCM
        ) {
            return Err(cfg(
                "algorithm: RSA-OAEP-256, RSA-OAEP, A256KW or A256GCM".into()
            ));
        }
        let timeout: Duration =
            crate::parse_duration(&c.timeout, &format!("providers.{name}.timeout"))?;
        let secret = match (
            &c.client_secret_env,
            &c.client_secret_file,
            &c.federated_token_file,
        ) {
            (Some(v), None, None) => Secret::Client(
                std::env::var(v)
                    .ok()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| cfg(format!("{v} is not set")))?,
            ),
            (None, Some(p), None) => Secret::Client(
                std::fs::read_to_string(p)
                    .map_err(|e| cfg(format!("cannot read {}: {e}", p.display())))?
                    .trim()
                    .to_string(),
            ),
            (None, None, Some(p)) => {
                if !p.exists() {
                    return Err(cfg(format!(
                        "federated_token_file {} does not exist",
                        p.display()
                    )));
                }
                Secret::Federated(p.clone())
            }
            _ => {
                return Err(cfg(
                    "give exactly one of client_secret_env, client_secret_file and federated_token_file"
                        .into(),
                ));
            }
        };
        Ok(Self {
            name: name.into(),
            vault,
            tenant: c.tenant_id.clone(),
            client_id: c.client_id.clone(),
            secret,
            authority: c.authority.trim_end_matches('/').to_string(),
            scope: c.scope.clone(),
            algorithm: c.algorithm.clone(),
            api_version: c.api_version.clone(),
            http: http::client(name, timeout)?,
            token: TokenCache::default(),
            current: Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn unavailable(&self, detail: impl Into<String>, retryable: bool) -> ProviderError {
        ProviderError::unavailable(&self.name, detail, retryable)
    }

    fn key_name<'a>(&self, key: &'a str) -> Result<&'a str> {
        if name_ok(key) {
            Ok(key)
        } else {
            Err(ProviderError::Config(format!(
                "providers.{}: key name {key:?}: 1-127 of a-z A-Z 0-9 -",
                self.name
            )))
        }
    }

    async fn access_token(&self) -> Result<String> {
        if let Some(t) = self.token.get() {
            return Ok(t);
        }
        let assertion;
        let mut pairs = vec![
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope.as_str()),
            ("grant_type", "client_credentials"),
        ];
        match &self.secret {
            Secret::Client(s) => pairs.push(("client_secret", s.as_str())),
            Secret::Federated(p) => {
                assertion = std::fs::read_to_string(p)
                    .map_err(|e| ProviderError::AccessDenied {
                        provider: self.name.clone(),
                        detail: format!("cannot read the federated token {}: {e}", p.display()),
                    })?
                    .trim()
                    .to_string();
                pairs.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                pairs.push(("client_assertion", assertion.as_str()));
            }
        }
        let req = self
            .http
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                self.authority, self.tenant
            ))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(http::form(&pairs));
        let a = http::send(&self.name, req, None).await?;
        let (token, expires_in) = http::token_of(&self.name, &a)?;
        self.token.put(&token, expires_in);
        Ok(token)
    }

    /// One call to `{vault}{path}?api-version=…`; on 401 the token is fetched again once.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        // A `nextLink` path already carries the api-version it was listed with.
        let url = if path.contains("api-version=") {
            format!("{}{path}", self.vault)
        } else {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{}{path}{sep}api-version={}", self.vault, self.api_version)
        };
        http::with_token(
            &self.token,
            || self.access_token(),
            |token| {
                let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
                if let Some(b) = body {
                    req = req.json(b);
                }
                http::send(&self.name, req, Some(REQUEST_ID))
            },
        )
        .await
    }

    fn refusal(&self, a: &Answer, key: &str, opening: bool) -> ProviderError {
        let code = a.json["error"]["code"].as_str().unwrap_or("");
        let detail = format!("HTTP {} {code}: {}", a.status, http::message(&a.json));
        match (a.status, code) {
            (400, _) if opening => ProviderError::InvalidCiphertext {
                provider: self.name.clone(),
            },
            (401 | 403, _) => ProviderError::AccessDenied {
                provider: self.name.clone(),
                detail,
            },
            (404, _) => ProviderError::NotFound {
                provider: self.name.clone(),
                key: key.into(),
            },
            (429 | 500..=599, _) => self.unavailable(detail, true),
            _ => ProviderError::refused(&self.name, detail),
        }
    }

    fn ok(&self, a: Answer, key: &str, opening: bool) -> Result<(Value, Option<String>)> {
        if (200..300).contains(&a.status) {
            Ok((a.json, a.request_id))
        } else {
            Err(self.refusal(&a, key, opening))
        }
    }

    /// The version in a `kid` (`https://…/keys/<name>/<version>`).
    fn version_in(kid: &str) -> Option<String> {
        kid.rsplit('/')
            .next()
            .filter(|v| version_ok(v))
            .map(str::to_string)
    }

    async fn current_version(&self, key: &str) -> Result<String> {
        if let Ok(m) = self.current.lock()
            && let Some((v, at)) = m.get(key)
            && at.elapsed() < VERSION_TTL
        {
            return Ok(v.clone());
        }
        self.fresh_version(key).await
    }

    /// `GET /keys/{key}`: the key bundle (JWK, attributes) of its current version.
    async fn get_key(&self, key: &str) -> Result<Value> {
        let (v, _) = self.ok(
            self.call(reqwest::Method::GET, &format!("/keys/{key}"), None)
                .await?,
            key,
            false,
        )?;
        Ok(v)
    }

    /// The current version, read now (not from the cache), and remembered for wraps.
    async fn fresh_version(&self, key: &str) -> Result<String> {
        let version = self.get_key(key).await?["key"]["kid"]
            .as_str()
            .and_then(Self::version_in)
            .ok_or_else(|| self.unavailable("the key has no kid", false))?;
        self.remember_version(key, &version);
        Ok(version)
    }

    fn remember_version(&self, key: &str, version: &str) {
        if let Ok(mut m) = self.current.lock() {
            m.insert(key.to_string(), (version.to_string(), Instant::now()));
        }
    }
}

impl AzureKeyVault {
    /// `A256GCM`: `POST /keys/{key}/{version}/encrypt` with the context's encoding as AAD,
    /// so Key Vault itself binds the copy to the context. The wrapped form is
    /// `0x02 || version length || version || IV length || IV || tag length || tag || value`.
    async fn gcm_encrypt(
        &self,
        key: &str,
        version: &str,
        dk: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped> {
        let body =
            json!({"alg": GCM, "value": B64URL.encode(dk), "aad": B64URL.encode(context.encode())});
        let (v, request_id) = self.ok(
            self.call(
                reqwest::Method::POST,
                &format!("/keys/{key}/{version}/encrypt"),
                Some(&body),
            )
            .await?,
            key,
            false,
        )?;
        let field = |f: &str| b64url_field(&v, f).filter(|b| b.len() < 256);
        let missing = || self.unavailable("encrypt answered without value, iv and tag", false);
        let (value, iv, tag) = (
            field("value").ok_or_else(missing)?,
            field("iv").ok_or_else(missing)?,
            field("tag").ok_or_else(missing)?,
        );
        let used = v["kid"]
            .as_str()
            .and_then(Self::version_in)
            .unwrap_or_else(|| version.to_string());
        let mut out = vec![FORMAT_GCM, used.len() as u8];
        out.extend_from_slice(used.as_bytes());
        for part in [&iv, &tag] {
            out.push(part.len() as u8);
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&value);
        Ok(Wrapped {
            ciphertext: out,
            key_version: None,
            request_id,
        })
    }

    /// Opens what [`AzureKeyVault::gcm_encrypt`] made (`rest`: after the format byte).
    async fn gcm_decrypt(
        &self,
        key: &str,
        rest: &[u8],
        context: &EncryptionContext,
    ) -> Result<Unwrapped> {
        let bad = || ProviderError::InvalidCiphertext {
            provider: self.name.clone(),
        };
        let mut rest = rest;
        let mut take = || -> Result<&[u8]> {
            let (&n, r) = rest.split_first().ok_or_else(bad)?;
            if r.len() <= n as usize || n == 0 {
                return Err(bad());
            }
            let (part, r) = r.split_at(n as usize);
            rest = r;
            Ok(part)
        };
        let version = std::str::from_utf8(take()?)
            .ok()
            .filter(|v| version_ok(v))
            .ok_or_else(bad)?
            .to_string();
        let (iv, tag) = (take()?.to_vec(), take()?.to_vec());
        let body = json!({
            "alg": GCM,
            "value": B64URL.encode(rest),
            "iv": B64URL.encode(iv),
            "tag": B64URL.encode(tag),
            "aad": B64URL.encode(context.encode()),
        });
        let (v, request_id) = self.ok(
            self.call(
                reqwest::Method::POST,
                &format!("/keys/{key}/{version}/decrypt"),
                Some(&body),
            )
            .await?,
            key,
            true,
        )?;
        let plaintext = b64url_field(&v, "value")
            .map(KeyMaterial::new)
            .ok_or_else(|| self.unavailable("decrypt answered without a value", false))?;
        Ok(Unwrapped {
            plaintext,
            request_id,
        })
    }

    /// `POST /keys/{key}/{version}/{op}` (wrapkey, unwrapkey, sign) with `alg` and `value`:
    /// Key Vault's `value` answer (base64url, decoded; wrapped in `KeyMaterial` as it may be
    /// a data key), the version its `kid` names, and the request id. `opening`: an unwrap,
    /// where a refused value means it does not open.
    async fn key_op(
        &self,
        key: &str,
        version: &str,
        op: &str,
        alg: &str,
        value: &[u8],
        opening: bool,
    ) -> Result<(KeyMaterial, Option<String>, Option<String>)> {
        let body = json!({"alg": alg, "value": B64URL.encode(value)});
        let (v, request_id) = self.ok(
            self.call(
                reqwest::Method::POST,
                &format!("/keys/{key}/{version}/{op}"),
                Some(&body),
            )
            .await?,
            key,
            opening,
        )?;
        let out = b64url_field(&v, "value")
            .map(KeyMaterial::new)
            .ok_or_else(|| self.unavailable(format!("{op} answered without a value"), false))?;
        let kid = v["kid"].as_str().and_then(Self::version_in);
        Ok((out, kid, request_id))
    }
}

#[async_trait::async_trait]
impl KeyProvider for AzureKeyVault {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    async fn describe(&self, key: &str) -> Result<ProviderKey> {
        let key = self.key_name(key)?;
        let v = self.get_key(key).await?;
        let ops: Vec<&str> = v["key"]["key_ops"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        Ok(ProviderKey {
            name: v["key"]["kid"].as_str().unwrap_or(key).to_string(),
            key_type: v["key"]["kty"].as_str().unwrap_or("").to_string(),
            latest_version: None,
            can_encrypt: v["attributes"]["enabled"] == true
                && if self.algorithm == GCM {
                    ops.contains(&"encrypt") && ops.contains(&"decrypt")
                } else {
                    ops.contains(&"wrapKey") && ops.contains(&"unwrapKey")
                },
            rotation_period: None,
            enabled: v["attributes"]["enabled"].as_bool(),
        })
    }

    async fn list_versions(&self, key: &str) -> Result<Vec<ProviderVersion>> {
        let key = self.key_name(key)?;
        let v = self.get_key(key).await?;
        let current = v["key"]["kid"].as_str().and_then(Self::version_in);
        let mut out = Vec::new();
        let mut path = format!("/keys/{key}/versions?maxresults=25");
        for _ in 0..100 {
            let (v, _) = self.ok(
                self.call(reqwest::Method::GET, &path, None).await?,
                key,
                false,
            )?;
            for item in v["value"].as_array().into_iter().flatten() {
                let Some(version) = item["kid"].as_str().and_then(Self::version_in) else {
                    continue;
                };
                let a = &item["attributes"];
                out.push((
                    a["created"].as_u64().unwrap_or(0),
                    ProviderVersion {
                        primary: current.as_deref() == Some(version.as_str()),
                        version,
                        state: if a["enabled"] == true {
                            VersionState::Enabled
                        } else {
                            VersionState::Disabled
                        },
                        created_at: a["created"].as_u64().map(crate::rfc3339),
                    },
                ));
            }
            // The next page, only on this vault: the token goes nowhere else.
            match v["nextLink"]
                .as_str()
                .and_then(|l| l.strip_prefix(self.vault.as_str()))
            {
                Some(next) if next.starts_with('/') => path = next.to_string(),
                _ => break,
            }
        }
        out.sort_by_key(|(created, _)| *created);
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    async fn set_enabled(&self, key: &str, enabled: bool) -> Result<()> {
        // Key Vault switches versions: the current one, which wraps new data keys — read
        // afresh, not from the wrap cache, so a rotation elsewhere is not missed.
        let key = self.key_name(key)?;
        let version = self.fresh_version(key).await?;
        self.ok(
            self.call(
                reqwest::Method::PATCH,
                &format!("/keys/{key}/{version}"),
                Some(&json!({"attributes": {"enabled": enabled}})),
            )
            .await?,
            key,
            false,
        )?;
        Ok(())
    }

    async fn wrap(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped> {
        let key = self.key_name(key)?;
        let version = self.current_version(key).await?;
        if self.algorithm == GCM {
            return self.gcm_encrypt(key, &version, plaintext, context).await;
        }
        // Exposed to send it to Key Vault to wrap.
        let (value, kid, request_id) = self
            .key_op(
                key,
                &version,
                "wrapkey",
                &self.algorithm,
                &bound(context, plaintext),
                false,
            )
            .await?;
        let value = value.expose_secret().to_vec();
        let used = kid.unwrap_or(version);
        let mut out = Vec::with_capacity(2 + used.len() + value.len());
        out.push(FORMAT);
        out.push(used.len() as u8);
        out.extend_from_slice(used.as_bytes());
        out.extend_from_slice(&value);
        Ok(Wrapped {
            ciphertext: out,
            key_version: None,
            request_id,
        })
    }

    async fn unwrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Unwrapped> {
        let key = self.key_name(key)?;
        let bad = || ProviderError::InvalidCiphertext {
            provider: self.name.clone(),
        };
        let (&format, rest) = ciphertext.split_first().ok_or_else(bad)?;
        if format == FORMAT_GCM && self.algorithm == GCM {
            return self.gcm_decrypt(key, rest, context).await;
        }
        let (&n, rest) = rest.split_first().ok_or_else(bad)?;
        if format != FORMAT || rest.len() <= n as usize {
            return Err(bad());
        }
        let version = std::str::from_utf8(&rest[..n as usize])
            .ok()
            .filter(|v| version_ok(v))
            .ok_or_else(bad)?;
        let (opened, _, request_id) = self
            .key_op(
                key,
                version,
                "unwrapkey",
                &self.algorithm,
                &rest[n as usize..],
                true,
            )
            .await?;
        let expect = bound(context, &[]);
        let got = opened.expose_secret();
        // The digest of the context is not secret; a plain comparison is fine.
        if got.len() <= expect.len() || got[..expect.len()] != expect[..] {
            return Err(bad());
        }
        Ok(Unwrapped {
            plaintext: KeyMaterial::copy_from(&got[expect.len()..]),
            request_id,
        })
    }

    async fn set_rotation_period(&self, key: &str, period: Option<Duration>) -> Result<()> {
        let key = self.key_name(key)?;
        let actions = match period {
            Some(p) if p.as_secs() >= 7 * 86_400 && p.as_secs() % 86_400 == 0 => json!([
                {"trigger": {"timeAfterCreate": format!("P{}D", p.as_secs() / 86_400)}, "action": {"type": "Rotate"}}
            ]),
            Some(_) => {
                return Err(ProviderError::Config(format!(
                    "providers.{}: Key Vault rotates every 7 days or more, in whole days",
                    self.name
                )));
            }
            None => json!([]),
        };
        self.ok(
            self.call(
                reqwest::Method::PUT,
                &format!("/keys/{key}/rotationpolicy"),
                Some(&json!({"lifetimeActions": actions})),
            )
            .await?,
            key,
            false,
        )?;
        Ok(())
    }

    async fn rotation_schedule(&self, key: &str) -> Result<Option<Duration>> {
        let key = self.key_name(key)?;
        let (v, _) = self.ok(
            self.call(
                reqwest::Method::GET,
                &format!("/keys/{key}/rotationpolicy"),
                None,
            )
            .await?,
            key,
            false,
        )?;
        // A "Rotate" action after a whole number of days is the schedule Strongroom sets;
        // any other trigger is reported as no schedule Strongroom knows.
        Ok(v["lifetimeActions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["action"]["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("rotate"))
            })
            .find_map(|a| {
                a["trigger"]["timeAfterCreate"]
                    .as_str()?
                    .strip_prefix('P')?
                    .strip_suffix('D')?
                    .parse::<u64>()
                    .ok()
            })
            .map(|days| Duration::from_secs(days * 86_400)))
    }

    async fn public_key(&self, key: &str) -> Result<Vec<u8>> {
        let key = self.key_name(key)?;
        let v = self.get_key(key).await?;
        spki_of_jwk(&v["key"]).ok_or_else(|| ProviderError::Unsupported {
            provider: self.name.clone(),
            operation: "get-public-key (not an EC or RSA key)",
        })
    }

    async fn sign(
        &self,
        key: &str,
        algorithm: strongroom_crypto::Algorithm,
        input: strongroom_crypto::keys::SignInput<'_>,
    ) -> Result<Signed> {
        let key = self.key_name(key)?;
        let unsupported = || ProviderError::Unsupported {
            provider: self.name.clone(),
            operation: "sign with this algorithm",
        };
        let (alg, raw_ecdsa) = jws_alg(algorithm).ok_or_else(unsupported)?;
        // Key Vault signs digests: a message is hashed here.
        let digest = strongroom_crypto::keys::signing_digest(algorithm, input)
            .ok()
            .flatten()
            .ok_or_else(unsupported)?;
        let version = self.current_version(key).await?;
        let (sig, _, request_id) = self
            .key_op(key, &version, "sign", alg, &digest, false)
            .await?;
        let sig = sig.expose_secret().to_vec();
        let signature = if raw_ecdsa {
            der::ecdsa_der(&sig)
                .ok_or_else(|| self.unavailable("an ECDSA signature of odd length", false))?
        } else {
            sig
        };
        Ok(Signed {
            signature,
            request_id,
        })
    }

    async fn rotate(&self, key: &str) -> Result<String> {
        let key = self.key_name(key)?;
        let (v, _) = self.ok(
            self.call(reqwest::Method::POST, &format!("/keys/{key}/rotate"), None)
                .await?,
            key,
            false,
        )?;
        let version = v["key"]["kid"]
            .as_str()
            .and_then(Self::version_in)
            .ok_or_else(|| self.unavailable("rotate answered without a kid", false))?;
        self.remember_version(key, &version);
        Ok(version)
    }

    async fn health(&self) -> Result<()> {
        let a = self
            .call(reqwest::Method::GET, "/keys?maxresults=1", None)
            .await?;
        self.ok(a, "", false).map(|_| ())
    }
}
