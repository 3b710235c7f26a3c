//! Google Cloud KMS through its REST API (`cloudkms.googleapis.com/v1`):
//! `cryptoKeys.encrypt` / `decrypt` wrap and unwrap data keys, the encryption context passed
//! as `additionalAuthenticatedData` (its canonical encoding), so a wrapped key opens only
//! under the same context. `get` describes, `cryptoKeyVersions.create` plus
//! `updatePrimaryVersion` rotates, listing key rings is the health probe.
//!
//! ```toml
//! [providers.gcp]
//! kind = "gcp-kms"
//! project = "my-project"
//! location = "europe-west1"
//! service_account_file = "/run/secrets/sa.json"   # or: metadata = true (GKE workload identity, GCE)
//! timeout = "5s"
//! ```
//!
//! Keys are named by their full resource name (`projects/…/cryptoKeys/…`) or as
//! `<key ring>/<crypto key>` in the configured project and location. Credentials: a service
//! account key file (a JWT signed RS256 with its key, exchanged at its `token_uri`), or the
//! metadata server (workload identity on GKE, the attached service account on GCE). Access
//! tokens are cached until a minute before they expire, and fetched again once when a call
//! answers 401.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use strongroom_crypto::{EncryptionContext, KeyMaterial};

use crate::http::{self, Answer, TokenCache};
use crate::{
    KeyProvider, ProviderError, ProviderKey, ProviderVersion, Result, Signed, Unwrapped,
    VersionState, Wrapped,
};

const KIND: &str = "gcp-kms";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";

/// The `[providers.<name>]` settings of a Google Cloud KMS provider.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpKmsConfig {
    /// The project short key names and the health probe use.
    pub project: String,
    /// The location (`global`, `europe-west1`, …).
    pub location: String,
    /// The API's base URL.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// A service account key file (JSON, as `gcloud iam service-accounts keys create` writes).
    #[serde(default)]
    pub service_account_file: Option<PathBuf>,
    /// Or: tokens from the metadata server (workload identity, the VM's service account).
    #[serde(default)]
    pub metadata: bool,
    /// The metadata server.
    #[serde(default = "default_metadata_url")]
    pub metadata_url: String,
    /// Per-call timeout, e.g. `5s`.
    #[serde(default = "crate::default_timeout")]
    pub timeout: String,
}

fn default_endpoint() -> String {
    "https://cloudkms.googleapis.com".into()
}
fn default_metadata_url() -> String {
    "http://metadata.google.internal".into()
}

enum Credentials {
    ServiceAccount {
        email: String,
        key_id: String,
        token_uri: String,
        /// PKCS#8 DER.
        key: KeyMaterial,
    },
    Metadata {
        url: String,
    },
}

/// A Google Cloud KMS location as a key provider.
pub struct GcpKms {
    name: String,
    project: String,
    location: String,
    endpoint: String,
    http: reqwest::Client,
    credentials: Credentials,
    token: TokenCache,
}

impl std::fmt::Debug for GcpKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpKms")
            .field("name", &self.name)
            .field("project", &self.project)
            .field("location", &self.location)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl GcpKms {
    /// Builds the provider, reading the service account key file if one is named.
    pub fn new(name: &str, c: &GcpKmsConfig) -> Result<Self> {
        let cfg = |m: String| ProviderError::Config(format!("providers.{name}: {m}"));
        if !segment_ok(&c.project) || !segment_ok(&c.location) {
            return Err(cfg(
                "project and location are names of a-z A-Z 0-9 - _".into()
            ));
        }
        let timeout: Duration =
            crate::parse_duration(&c.timeout, &format!("providers.{name}.timeout"))?;
        let url_ok = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        if !url_ok(&c.endpoint) || !url_ok(&c.metadata_url) {
            return Err(cfg("endpoint and metadata_url are http(s) URLs".into()));
        }
        let credentials = match (&c.service_account_file, c.metadata) {
            (Some(path), false) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| cfg(format!("cannot read {}: {e}", path.display())))?;
                let v: Value = serde_json::from_str(&text)
                    .map_err(|_| cfg(format!("{} is not JSON", path.display())))?;
                let field = |k: &str| {
                    v[k].as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| cfg(format!("{} has no {k}", path.display())))
                };
                if v["type"].as_str() != Some("service_account") {
                    return Err(cfg(format!(
                        "{} is not a service account key (type service_account)",
                        path.display()
                    )));
                }
                let der =
                    crate::pem_der(&field("private_key")?, "PRIVATE KEY").ok_or_else(|| {
                        cfg(format!(
                            "{}: private_key is not a PEM PKCS#8 key",
                            path.display()
                        ))
                    })?;
                Credentials::ServiceAccount {
                    email: field("client_email")?,
                    key_id: field("private_key_id")?,
                    token_uri: field("token_uri")?,
                    key: KeyMaterial::new(der),
                }
            }
            (None, true) => Credentials::Metadata {
                url: c.metadata_url.trim_end_matches('/').to_string(),
            },
            _ => {
                return Err(cfg(
                    "give exactly one of service_account_file and metadata = true".into(),
                ));
            }
        };
        Ok(Self {
            name: name.into(),
            project: c.project.clone(),
            location: c.location.clone(),
            endpoint: c.endpoint.trim_end_matches('/').to_string(),
            http: http::client(name, timeout)?,
            credentials,
            token: TokenCache::default(),
        })
    }

    fn unavailable(&self, detail: impl Into<String>, retryable: bool) -> ProviderError {
        ProviderError::unavailable(&self.name, detail, retryable)
    }

    /// The full resource name of `key`.
    fn resource(&self, key: &str) -> Result<String> {
        let bad = || {
            ProviderError::Config(format!(
                "providers.{}: key {key:?}: give projects/…/cryptoKeys/… or <key ring>/<crypto key>",
                self.name
            ))
        };
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            [ring, k] if segment_ok(ring) && segment_ok(k) => Ok(format!(
                "projects/{}/locations/{}/keyRings/{ring}/cryptoKeys/{k}",
                self.project, self.location
            )),
            [
                "projects",
                p,
                "locations",
                l,
                "keyRings",
                r,
                "cryptoKeys",
                k,
            ] if [p, l, r, k].iter().all(|s| segment_ok(s)) => Ok(key.to_string()),
            _ => Err(bad()),
        }
    }

    /// The full name of an asymmetric key's version: `<key ring>/<crypto key>/<version>` or
    /// `projects/…/cryptoKeys/…/cryptoKeyVersions/<n>` (asymmetric keys have no primary).
    fn version_resource(&self, key: &str) -> Result<String> {
        let bad = || {
            ProviderError::Config(format!(
                "providers.{}: signing key {key:?}: name its version, projects/…/cryptoKeys/…/cryptoKeyVersions/<n> or <key ring>/<crypto key>/<n>",
                self.name
            ))
        };
        let (base, n) = match key.rsplit_once("/cryptoKeyVersions/") {
            Some((base, n)) => (base.to_string(), n),
            None => {
                let (base, n) = key.rsplit_once('/').ok_or_else(bad)?;
                (base.to_string(), n)
            }
        };
        if n.is_empty() || n.len() > 10 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(format!(
            "{}/cryptoKeyVersions/{n}",
            self.resource(&base).map_err(|_| bad())?
        ))
    }

    /// A signed JWT asserting the service account, for the token endpoint (RFC 7523).
    fn assertion(&self, email: &str, key_id: &str, aud: &str, key: &KeyMaterial) -> Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": key_id});
        let claims =
            json!({"iss": email, "scope": SCOPE, "aud": aud, "iat": now, "exp": now + 3600});
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = strongroom_crypto::keys::sign(
            strongroom_crypto::Algorithm::RsaPkcs1(
                strongroom_crypto::RsaBits::B2048,
                strongroom_crypto::Sha2::Sha256,
            ),
            key,
            strongroom_crypto::keys::SignInput::Message(signing_input.as_bytes()),
        )
        .map_err(|e| {
            ProviderError::Config(format!(
                "providers.{}: cannot sign with the service account key: {e}",
                self.name
            ))
        })?;
        Ok(format!("{signing_input}.{}", B64URL.encode(sig)))
    }

    async fn access_token(&self) -> Result<String> {
        if let Some(t) = self.token.get() {
            return Ok(t);
        }
        let a = match &self.credentials {
            Credentials::ServiceAccount {
                email,
                key_id,
                token_uri,
                key,
            } => {
                let jwt = self.assertion(email, key_id, token_uri, key)?;
                let body = http::form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &jwt),
                ]);
                let req = self
                    .http
                    .post(token_uri)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body);
                http::send(&self.name, req, None).await?
            }
            Credentials::Metadata { url } => {
                let req = self
                    .http
                    .get(format!(
                        "{url}/computeMetadata/v1/instance/service-accounts/default/token"
                    ))
                    .header("Metadata-Flavor", "Google");
                http::send(&self.name, req, None).await?
            }
        };
        let (token, expires_in) = http::token_of(&self.name, &a)?;
        self.token.put(&token, expires_in);
        Ok(token)
    }

    /// One API call; on 401 the token is fetched again and the call repeated once.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let url = format!("{}/v1/{path}", self.endpoint);
        http::with_token(
            &self.token,
            || self.access_token(),
            |token| {
                let mut req = self.http.request(method.clone(), &url).bearer_auth(token);
                if let Some(b) = body {
                    req = req.json(b);
                }
                http::send(&self.name, req, None)
            },
        )
        .await
    }

    /// A non-2xx answer in the provider's terms. `opening`: a decrypt, where an invalid
    /// argument means the ciphertext does not open.
    fn refusal(&self, a: &Answer, key: &str, opening: bool) -> ProviderError {
        let status = a.json["error"]["status"].as_str().unwrap_or("");
        let detail = format!("HTTP {} {status}: {}", a.status, http::message(&a.json));
        match (a.status, status) {
            (400, "INVALID_ARGUMENT") if opening => ProviderError::InvalidCiphertext {
                provider: self.name.clone(),
            },
            (401 | 403, _) | (400, "FAILED_PRECONDITION") => ProviderError::AccessDenied {
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

    /// `cryptoKeys.get` of the resource `res` (named `key` in errors).
    async fn get_key(&self, res: &str, key: &str) -> Result<Value> {
        self.ok(
            self.call(reqwest::Method::GET, res, None).await?,
            key,
            false,
        )
    }

    fn ok(&self, a: Answer, key: &str, opening: bool) -> Result<Value> {
        if (200..300).contains(&a.status) {
            Ok(a.json)
        } else {
            Err(self.refusal(&a, key, opening))
        }
    }
}

/// The number at the end of `…/cryptoKeyVersions/<n>`.
fn version_of(name: &str) -> Option<u32> {
    name.rsplit('/').next()?.parse().ok()
}

fn aad(context: &EncryptionContext) -> Option<String> {
    (!context.is_empty()).then(|| B64.encode(context.encode()))
}

#[async_trait::async_trait]
impl KeyProvider for GcpKms {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    async fn describe(&self, key: &str) -> Result<ProviderKey> {
        let res = self.resource(key)?;
        let v = self.get_key(&res, key).await?;
        let period = v["rotationPeriod"]
            .as_str()
            .and_then(|s| s.strip_suffix('s'))
            .and_then(|s| s.split('.').next())
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs);
        Ok(ProviderKey {
            name: v["name"].as_str().unwrap_or(&res).to_string(),
            key_type: v["versionTemplate"]["algorithm"]
                .as_str()
                .unwrap_or("GOOGLE_SYMMETRIC_ENCRYPTION")
                .to_string(),
            latest_version: v["primary"]["name"].as_str().and_then(version_of),
            can_encrypt: v["purpose"] == "ENCRYPT_DECRYPT" && v["primary"]["state"] == "ENABLED",
            rotation_period: period,
            enabled: v["primary"]["state"].as_str().map(|s| s == "ENABLED"),
        })
    }

    async fn list_versions(&self, key: &str) -> Result<Vec<ProviderVersion>> {
        let res = self.resource(key)?;
        let primary = self.get_key(&res, key).await?["primary"]["name"]
            .as_str()
            .map(str::to_string);
        let mut out = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..100 {
            let path = match &page_token {
                Some(t) => format!("{res}/cryptoKeyVersions?pageSize=100&pageToken={t}"),
                None => format!("{res}/cryptoKeyVersions?pageSize=100"),
            };
            let v = self.ok(
                self.call(reqwest::Method::GET, &path, None).await?,
                key,
                false,
            )?;
            for cv in v["cryptoKeyVersions"].as_array().into_iter().flatten() {
                let name = cv["name"].as_str().unwrap_or_default();
                let Some(n) = version_of(name) else { continue };
                out.push((
                    n,
                    ProviderVersion {
                        version: n.to_string(),
                        state: match cv["state"].as_str().unwrap_or("") {
                            "ENABLED" => VersionState::Enabled,
                            "DISABLED" => VersionState::Disabled,
                            "DESTROY_SCHEDULED" => VersionState::PendingDestruction,
                            "DESTROYED" => VersionState::Destroyed,
                            other => VersionState::Other(other.to_string()),
                        },
                        primary: primary.as_deref() == Some(name),
                        created_at: cv["createTime"].as_str().map(str::to_string),
                    },
                ));
            }
            // Page tokens are opaque URL-safe strings; anything else ends the listing.
            match v["nextPageToken"].as_str() {
                Some(t)
                    if !t.is_empty()
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) =>
                {
                    page_token = Some(t.to_string());
                }
                _ => break,
            }
        }
        out.sort_by_key(|(n, _)| *n);
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    async fn set_enabled(&self, key: &str, enabled: bool) -> Result<()> {
        // Cloud KMS switches versions: the primary one of an encryption key, or the version
        // a signing key names.
        let version = match self.resource(key) {
            Ok(res) => self.get_key(&res, key).await?["primary"]["name"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    ProviderError::refused(&self.name, "the key has no primary version to switch")
                })?,
            Err(_) => self.version_resource(key)?,
        };
        let state = if enabled { "ENABLED" } else { "DISABLED" };
        self.ok(
            self.call(
                reqwest::Method::PATCH,
                &format!("{version}?updateMask=state"),
                Some(&json!({ "state": state })),
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
        let res = self.resource(key)?;
        let mut body = json!({"plaintext": B64.encode(plaintext)});
        if let Some(a) = aad(context) {
            body["additionalAuthenticatedData"] = a.into();
        }
        let v = self.ok(
            self.call(
                reqwest::Method::POST,
                &format!("{res}:encrypt"),
                Some(&body),
            )
            .await?,
            key,
            false,
        )?;
        let ciphertext = v["ciphertext"]
            .as_str()
            .and_then(|c| B64.decode(c).ok())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| self.unavailable("encrypt answered without a ciphertext", false))?;
        Ok(Wrapped {
            ciphertext,
            key_version: v["name"].as_str().and_then(version_of),
            request_id: None,
        })
    }

    async fn unwrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Unwrapped> {
        let res = self.resource(key)?;
        let mut body = json!({"ciphertext": B64.encode(ciphertext)});
        if let Some(a) = aad(context) {
            body["additionalAuthenticatedData"] = a.into();
        }
        let v = self.ok(
            self.call(
                reqwest::Method::POST,
                &format!("{res}:decrypt"),
                Some(&body),
            )
            .await?,
            key,
            true,
        )?;
        let pt = v["plaintext"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
            .ok_or_else(|| self.unavailable("decrypt answered without a plaintext", false))?;
        Ok(Unwrapped {
            plaintext: KeyMaterial::new(pt),
            request_id: None,
        })
    }

    async fn set_rotation_period(&self, key: &str, period: Option<Duration>) -> Result<()> {
        let res = self.resource(key)?;
        let body = match period {
            Some(p) if p.as_secs() >= 86_400 => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                json!({
                    "rotationPeriod": format!("{}s", p.as_secs()),
                    "nextRotationTime": crate::rfc3339(now + p.as_secs()),
                })
            }
            Some(_) => {
                return Err(ProviderError::Config(format!(
                    "providers.{}: Cloud KMS rotates at most daily",
                    self.name
                )));
            }
            None => json!({}),
        };
        self.ok(
            self.call(
                reqwest::Method::PATCH,
                &format!("{res}?updateMask=rotationPeriod,nextRotationTime"),
                Some(&body),
            )
            .await?,
            key,
            false,
        )?;
        Ok(())
    }

    async fn public_key(&self, key: &str) -> Result<Vec<u8>> {
        let res = self.version_resource(key)?;
        let v = self.ok(
            self.call(reqwest::Method::GET, &format!("{res}/publicKey"), None)
                .await?,
            key,
            false,
        )?;
        crate::pem_der(v["pem"].as_str().unwrap_or(""), "PUBLIC KEY")
            .ok_or_else(|| self.unavailable("getPublicKey answered without a PEM key", false))
    }

    async fn sign(
        &self,
        key: &str,
        algorithm: strongroom_crypto::Algorithm,
        input: strongroom_crypto::keys::SignInput<'_>,
    ) -> Result<Signed> {
        let res = self.version_resource(key)?;
        let hash = match algorithm.signing_hash() {
            Some(strongroom_crypto::Sha2::Sha256) => "sha256",
            Some(strongroom_crypto::Sha2::Sha384) => "sha384",
            Some(strongroom_crypto::Sha2::Sha512) => "sha512",
            None => {
                return Err(ProviderError::Unsupported {
                    provider: self.name.clone(),
                    operation: "sign with this algorithm",
                });
            }
        };
        // Cloud KMS signs digests (EC and RSA): a message is hashed here.
        let digest = strongroom_crypto::keys::signing_digest(algorithm, input)
            .ok()
            .flatten()
            .ok_or_else(|| ProviderError::Unsupported {
                provider: self.name.clone(),
                operation: "sign with this algorithm",
            })?;
        let body = json!({"digest": {hash: B64.encode(&digest)}});
        let v = self.ok(
            self.call(
                reqwest::Method::POST,
                &format!("{res}:asymmetricSign"),
                Some(&body),
            )
            .await?,
            key,
            false,
        )?;
        let signature = v["signature"]
            .as_str()
            .and_then(|s| B64.decode(s).ok())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                self.unavailable("asymmetricSign answered without a signature", false)
            })?;
        Ok(Signed {
            signature,
            request_id: None,
        })
    }

    async fn rotate(&self, key: &str) -> Result<String> {
        let res = self.resource(key)?;
        let v = self.ok(
            self.call(
                reqwest::Method::POST,
                &format!("{res}/cryptoKeyVersions"),
                Some(&json!({})),
            )
            .await?,
            key,
            false,
        )?;
        let n = v["name"]
            .as_str()
            .and_then(version_of)
            .ok_or_else(|| self.unavailable("the new version has no name", false))?;
        self.ok(
            self.call(
                reqwest::Method::POST,
                &format!("{res}:updatePrimaryVersion"),
                Some(&json!({"cryptoKeyVersionId": n.to_string()})),
            )
            .await?,
            key,
            false,
        )?;
        Ok(n.to_string())
    }

    async fn health(&self) -> Result<()> {
        let path = format!(
            "projects/{}/locations/{}/keyRings?pageSize=1",
            self.project, self.location
        );
        let a = self.call(reqwest::Method::GET, &path, None).await?;
        self.ok(a, "", false).map(|_| ())
    }
}
