//! A client for Strongroom's native REST API (`docs/openapi.json`), used by the CLI, and a
//! minimal SigV4-signing caller of its AWS KMS API (`aws`), used by the load generator.
//!
//! [`Client::call`] speaks the API generically (JSON in, JSON out, errors decoded from the
//! API's `{"error": {...}}` body); the typed helpers cover the data-plane calls that carry
//! bytes. No key logic here: the server decides everything.

#![warn(missing_docs)]

pub mod aws;
pub mod envelope;

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// Standard base64, the API's encoding for bytes.
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What went wrong talking to Strongroom.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an API error.
    #[error("{message} ({code}, HTTP {status}, request {request_id})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code, e.g. `not_found`.
        code: String,
        /// Human-readable message.
        message: String,
        /// The request id, for the audit log and server logs.
        request_id: String,
    },
    /// The server could not be reached or the answer could not be read.
    #[error("cannot reach strongroom at {addr}: {source}")]
    Transport {
        /// The server address.
        addr: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered something that is not the API's JSON.
    #[error("unexpected response from {addr} (HTTP {status}); is this a strongroom server?")]
    Unexpected {
        /// The server address.
        addr: String,
        /// HTTP status.
        status: u16,
    },
    /// The client was misconfigured.
    #[error("{0}")]
    Config(String),
    /// An envelope could not be made or opened (`docs/envelope-format.md`).
    #[error("{0}")]
    Envelope(String),
}

impl ClientError {
    /// The API error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A connection to one Strongroom server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    addr: String,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// TLS settings for `https://` servers.
#[derive(Debug, Default, Clone)]
pub struct TlsOptions {
    /// Extra CA certificates (PEM) to trust, e.g. a private CA that signed the server's cert.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate chain and its private key (PEM, concatenated) for mutual TLS.
    pub identity_pem: Option<Vec<u8>>,
}

impl Client {
    /// A client for `addr` (e.g. `http://127.0.0.1:8400`) with an optional bearer token.
    pub fn new(addr: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_tls(addr, token, &TlsOptions::default())
    }

    /// A client with TLS settings (a private CA, a client certificate).
    pub fn with_tls(
        addr: &str,
        token: Option<String>,
        tls: &TlsOptions,
    ) -> Result<Self, ClientError> {
        let addr = addr.trim_end_matches('/').to_string();
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "STRONGROOM_ADDR must start with http:// or https:// (got {addr:?})"
            )));
        }
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca) = &tls.ca_pem {
            for c in reqwest::Certificate::from_pem_bundle(ca)
                .map_err(|_| ClientError::Config("the CA file is not PEM certificates".into()))?
            {
                b = b.add_root_certificate(c);
            }
        }
        if let Some(id) = &tls.identity_pem {
            b = b.identity(reqwest::Identity::from_pem(id).map_err(|_| {
                ClientError::Config("the client certificate and key are not valid PEM".into())
            })?);
        }
        let http = b.build().map_err(|e| ClientError::Transport {
            addr: addr.clone(),
            source: e,
        })?;
        Ok(Self { http, addr, token })
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.addr, path);
        let req = match method {
            Method::Get => self.http.get(&url),
            Method::Post => self.http.post(&url),
            Method::Put => self.http.put(&url),
            Method::Patch => self.http.patch(&url),
            Method::Delete => self.http.delete(&url),
        };
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), ClientError> {
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            addr: self.addr.clone(),
            source: e,
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            addr: self.addr.clone(),
            source: e,
        })?;
        Ok((status, bytes.to_vec()))
    }

    /// Calls `path` (starting with `/v1/`) and returns the JSON answer (`Value::Null` for
    /// 204 No Content).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let (status, bytes) = self.send(req).await?;
        if status == 204 {
            return Ok(Value::Null);
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| ClientError::Unexpected {
            addr: self.addr.clone(),
            status,
        })?;
        if (200..300).contains(&status) {
            return Ok(v);
        }
        Err(self.api_error(status, &v))
    }

    /// Calls `path` with no body and returns the answer's raw bytes (a backup), waiting up
    /// to `timeout`. Errors are decoded as for [`Client::call`].
    pub async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let (status, bytes) = self
            .send(self.request(method, path).timeout(timeout))
            .await?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| ClientError::Unexpected {
            addr: self.addr.clone(),
            status,
        })?;
        Err(self.api_error(status, &v))
    }

    fn api_error(&self, status: u16, v: &Value) -> ClientError {
        let e = &v["error"];
        match (e["code"].as_str(), e["message"].as_str()) {
            (Some(code), Some(message)) => ClientError::Api {
                status,
                code: code.to_string(),
                message: message.to_string(),
                request_id: e["request_id"].as_str().unwrap_or("").to_string(),
            },
            _ => ClientError::Unexpected {
                addr: self.addr.clone(),
                status,
            },
        }
    }

    /// Encrypts `plaintext` under `key` (`ring/key`, `alias/<name>` or an id); returns the
    /// ciphertext bytes.
    pub async fn encrypt(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &serde_json::Map<String, Value>,
    ) -> Result<Vec<u8>, ClientError> {
        let v = self
            .call(
                Method::Post,
                "/v1/crypto/encrypt",
                Some(&json!({"key": key, "plaintext": B64.encode(plaintext), "context": context})),
            )
            .await?;
        self.bytes_field(&v, "ciphertext")
    }

    /// Decrypts a ciphertext; returns the plaintext bytes.
    pub async fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &serde_json::Map<String, Value>,
    ) -> Result<Vec<u8>, ClientError> {
        let v = self
            .call(
                Method::Post,
                "/v1/crypto/decrypt",
                Some(&json!({"ciphertext": B64.encode(ciphertext), "context": context})),
            )
            .await?;
        self.bytes_field(&v, "plaintext")
    }

    /// Decodes a base64 field of a response.
    pub fn bytes_field(&self, v: &Value, field: &str) -> Result<Vec<u8>, ClientError> {
        v[field]
            .as_str()
            .and_then(|s| B64.decode(s).ok())
            .ok_or(ClientError::Unexpected {
                addr: self.addr.clone(),
                status: 200,
            })
    }
}
