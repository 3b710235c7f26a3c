//! The Kubernetes KMS v2 plugin: gRPC (`v2.KeyManagementService`) on a unix socket, so the
//! kube-apiserver encrypts its data encryption key seeds under a Strongroom key. Guide and
//! wire details: `docs/kubernetes.md`.
//!
//! The socket is the credential: it is created mode 0600, so only the server's own user
//! (and root) can connect, and every call acts as the configured principal, under policy
//! and audit like any other request.

pub mod client;
mod socket;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use strongroom_core::types::{DecryptInput, EncryptInput, KeyRef};
use strongroom_core::{
    EncryptionContext, Error, KeyService, Plaintext, Protocol, RequestContext, new_request_id,
};
use strongroom_crypto::{KeyId, ciphertext};
use tonic::{Request, Response, Status};

pub use socket::{SocketError, bind_socket, remove_socket};

/// The generated gRPC types (`proto/k8s_kms_v2.proto`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("v2");
}

use pb::key_management_service_server::{KeyManagementService, KeyManagementServiceServer};

/// The encryption context every seed is bound to: a ciphertext made for the API server
/// opens only through this plugin (or a caller who names this context).
pub const CONTEXT_KEY: &str = "kubernetes-kms";
/// The value of [`CONTEXT_KEY`].
pub const CONTEXT_VALUE: &str = "v2";
/// `key_id` is `strongroom:<key id>:<version>`: it changes whenever the primary version does
/// (a rotation), and is never reused, because versions are never renumbered.
const KEY_ID_PREFIX: &str = "strongroom:";
/// Annotation naming the ciphertext format (`ciphertext-v1`).
pub const FORMAT_ANNOTATION: &str = "format.kms.strongroom.dev";
/// Annotation holding the key version, in decimal.
pub const VERSION_ANNOTATION: &str = "key-version.kms.strongroom.dev";
const FORMAT: &[u8] = b"ciphertext-v1";
/// The API server sends 32-byte seeds; anything larger than this is refused.
pub const MAX_PLAINTEXT: usize = 512;
/// The API server refuses ciphertexts and key ids longer than this.
const MAX_WIRE: usize = 1024;
const MAX_UID: usize = 128;
/// Largest request message accepted (annotations are at most 32 KiB on the API server's side).
const MAX_MESSAGE: usize = 64 * 1024;

/// Settings of the plugin.
#[derive(Debug, Clone)]
pub struct K8sKmsOptions {
    /// Where the socket is created.
    pub socket: PathBuf,
    /// The key Encrypt uses (its primary version); a ring/key path, an alias or a key id.
    pub key: KeyRef,
    /// The principal every call acts as.
    pub principal: String,
}

/// The gRPC service.
#[derive(Debug, Clone)]
struct Plugin {
    svc: Arc<KeyService>,
    key: KeyRef,
    principal: String,
}

/// Serves the plugin on `listener` until `shutdown` resolves.
pub async fn serve(
    svc: Arc<KeyService>,
    opts: &K8sKmsOptions,
    listener: tokio::net::UnixListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let plugin = Plugin {
        svc,
        key: opts.key.clone(),
        principal: opts.principal.clone(),
    };
    tonic::transport::Server::builder()
        .add_service(KeyManagementServiceServer::new(plugin).max_decoding_message_size(MAX_MESSAGE))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            shutdown,
        )
        .await
}

fn context() -> EncryptionContext {
    EncryptionContext::try_new([(CONTEXT_KEY.to_string(), CONTEXT_VALUE.to_string())].into())
        .unwrap_or_default()
}

/// The `key_id` the API server sees for a key version.
pub fn key_id_of(key: KeyId, version: u32) -> String {
    format!("{KEY_ID_PREFIX}{key}:{version}")
}

fn parse_key_id(s: &str) -> Option<(KeyId, u32)> {
    let (key, version) = s.strip_prefix(KEY_ID_PREFIX)?.rsplit_once(':')?;
    // Canonical forms only, so that one key version has exactly one key_id.
    let n: u32 = version
        .parse()
        .ok()
        .filter(|n: &u32| *n > 0 && n.to_string() == version)?;
    let id: KeyId = key
        .parse()
        .ok()
        .filter(|id: &KeyId| id.to_string() == key)?;
    Some((id, n))
}

fn annotations_of(version: u32) -> HashMap<String, Vec<u8>> {
    HashMap::from([
        (FORMAT_ANNOTATION.to_string(), FORMAT.to_vec()),
        (
            VERSION_ANNOTATION.to_string(),
            version.to_string().into_bytes(),
        ),
    ])
}

/// A request the plugin refuses before it reaches `KeyService`.
struct Rejection {
    code: tonic::Code,
    message: String,
}

fn reject(message: impl Into<String>) -> Rejection {
    Rejection {
        code: tonic::Code::InvalidArgument,
        message: message.into(),
    }
}

/// Core errors in gRPC terms. The API server treats every non-OK status alike; the codes are
/// for people reading its logs.
fn status_of(e: &Error, request_id: &str) -> Status {
    use tonic::Code;
    let code = match e {
        Error::Unauthenticated | Error::InvalidSignature(_) => Code::Unauthenticated,
        Error::AccessDenied => Code::PermissionDenied,
        Error::NotFound { .. } => Code::NotFound,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::InvalidArgument { .. }
        | Error::InvalidCiphertext
        | Error::InvalidKeyUsage { .. }
        | Error::IncorrectKey => Code::InvalidArgument,
        Error::InvalidState { .. } => Code::FailedPrecondition,
        Error::Conflict(_) => Code::Aborted,
        Error::Throttled { .. } => Code::ResourceExhausted,
        Error::Unavailable(_) => Code::Unavailable,
        Error::Internal(_) => Code::Internal,
    };
    let message = match e {
        Error::Internal(_) => "internal error; the server log has details".to_string(),
        e => e.to_string(),
    };
    Status::new(code, format!("{message} (request {request_id})"))
}

impl Plugin {
    fn ctx(&self, uid: Option<String>) -> RequestContext {
        RequestContext {
            request_id: new_request_id(),
            token: None,
            protocol: Protocol::K8sKms,
            client_addr: None,
            client_cert: None,
            sigv4: None,
            socket_principal: Some(self.principal.clone()),
            client_request_id: uid,
        }
    }

    /// Audits a refused request and answers it; if the audit log cannot be written, the
    /// answer is `UNAVAILABLE` (fail closed, as everywhere).
    async fn refuse(&self, ctx: &RequestContext, rpc: &str, r: Rejection) -> Status {
        let code = match r.code {
            tonic::Code::InvalidArgument => "invalid_argument",
            _ => "rejected",
        };
        match self
            .svc
            .audit_rejected(ctx, format!("gRPC {rpc}"), code, true)
            .await
        {
            Ok(()) => Status::new(
                r.code,
                format!("{} (request {})", r.message, ctx.request_id),
            ),
            Err(e) => status_of(&e, &ctx.request_id),
        }
    }

    async fn encrypt_seed(
        &self,
        ctx: &RequestContext,
        seed: &[u8],
    ) -> Result<(Vec<u8>, String, u32), Error> {
        let out = self
            .svc
            .encrypt(
                ctx,
                EncryptInput {
                    key: self.key.clone(),
                    plaintext: Plaintext::copy_from(seed),
                    context: context(),
                },
            )
            .await?;
        Ok((
            out.ciphertext,
            key_id_of(out.key.id, out.version),
            out.version,
        ))
    }

    /// Status's probe: a real encrypt and decrypt through the configured key. Returns the
    /// key_id Encrypt would report.
    async fn round_trip(&self) -> Result<String, Error> {
        let probe = strongroom_crypto::rand::bytes(32)
            .map_err(|_| Error::Internal("random generator failed".into()))?;
        let (ct, key_id, _) = self.encrypt_seed(&self.ctx(None), &probe).await?;
        let back = self
            .svc
            .decrypt(
                &self.ctx(None),
                DecryptInput {
                    ciphertext: ct,
                    context: context(),
                    key: None,
                },
            )
            .await?;
        // Exposed to compare the probe (random bytes, not a secret) with what came back.
        if back.plaintext.expose_secret() != probe.as_slice() {
            return Err(Error::Internal("health probe did not round-trip".into()));
        }
        Ok(key_id)
    }
}

/// A client's request id, if it is one we are willing to write to the audit log.
fn valid_uid(uid: String) -> Result<Option<String>, Rejection> {
    if uid.is_empty() {
        return Ok(None);
    }
    let ok = uid.len() <= MAX_UID
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(Some(uid))
    } else {
        Err(reject(format!(
            "uid: at most {MAX_UID} characters of A-Z a-z 0-9 - _ . :"
        )))
    }
}

#[tonic::async_trait]
impl KeyManagementService for Plugin {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let (healthz, key_id) = match self.round_trip().await {
            Ok(key_id) => ("ok".to_string(), key_id),
            // Unhealthy is an answer, not an error: the API server reads `healthz`.
            Err(e) => (
                format!("unhealthy: {} ({})", e.code(), self.key),
                String::new(),
            ),
        };
        Ok(Response::new(pb::StatusResponse {
            version: "v2".into(),
            healthz,
            key_id,
        }))
    }

    async fn encrypt(
        &self,
        req: Request<pb::EncryptRequest>,
    ) -> Result<Response<pb::EncryptResponse>, Status> {
        let pb::EncryptRequest { plaintext, uid } = req.into_inner();
        // Held as a secret from here on: the seed is key material for the API server.
        let plaintext = Plaintext::new(plaintext);
        let uid = match valid_uid(uid) {
            Ok(u) => u,
            Err(r) => return Err(self.refuse(&self.ctx(None), "Encrypt", r).await),
        };
        let ctx = self.ctx(uid);
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            let r = reject(format!("plaintext: must be 1 to {MAX_PLAINTEXT} bytes"));
            return Err(self.refuse(&ctx, "Encrypt", r).await);
        }
        // Exposed to seal it: the ciphertext is the only form that leaves.
        let (ciphertext, key_id, version) = self
            .encrypt_seed(&ctx, plaintext.expose_secret())
            .await
            .map_err(|e| status_of(&e, &ctx.request_id))?;
        Ok(Response::new(pb::EncryptResponse {
            ciphertext,
            key_id,
            annotations: annotations_of(version),
        }))
    }

    async fn decrypt(
        &self,
        req: Request<pb::DecryptRequest>,
    ) -> Result<Response<pb::DecryptResponse>, Status> {
        let pb::DecryptRequest {
            ciphertext,
            uid,
            key_id,
            annotations,
        } = req.into_inner();
        let uid = match valid_uid(uid) {
            Ok(u) => u,
            Err(r) => return Err(self.refuse(&self.ctx(None), "Decrypt", r).await),
        };
        let ctx = self.ctx(uid);
        if let Err(r) = check_decrypt(&ciphertext, &key_id, &annotations) {
            return Err(self.refuse(&ctx, "Decrypt", r).await);
        }
        let out = self
            .svc
            .decrypt(
                &ctx,
                DecryptInput {
                    ciphertext,
                    context: context(),
                    key: None,
                },
            )
            .await
            .map_err(|e| status_of(&e, &ctx.request_id))?;
        Ok(Response::new(pb::DecryptResponse {
            // Exposed to return it: the API server asked for its own seed back.
            plaintext: out.plaintext.expose_secret().to_vec(),
        }))
    }
}

/// What Decrypt checks before it asks `KeyService`: sizes, and that `key_id` and the
/// annotations are exactly what Encrypt returned with this ciphertext.
fn check_decrypt(
    ciphertext: &[u8],
    key_id: &str,
    annotations: &HashMap<String, Vec<u8>>,
) -> Result<(), Rejection> {
    if ciphertext.is_empty() || ciphertext.len() > MAX_WIRE {
        return Err(reject(format!("ciphertext: must be 1 to {MAX_WIRE} bytes")));
    }
    let header = ciphertext::parse_header(ciphertext)
        .map_err(|_| reject("ciphertext: not a Strongroom ciphertext"))?;
    let (key, version) = (key_id.len() <= MAX_WIRE)
        .then(|| parse_key_id(key_id))
        .flatten()
        .ok_or_else(|| reject("key_id: not a key_id this plugin returned"))?;
    if (key, version) != (header.key_id, header.version) {
        return Err(reject("key_id: does not match the ciphertext"));
    }
    if *annotations != annotations_of(version) {
        return Err(reject(
            "annotations: not the annotations Encrypt returned with this ciphertext",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    #[test]
    fn key_ids_round_trip_and_are_canonical() {
        let id: KeyId = "a4c96495-5e41-44f6-ad30-e823987a75e2".parse().unwrap();
        let s = key_id_of(id, 7);
        assert_eq!(s, "strongroom:a4c96495-5e41-44f6-ad30-e823987a75e2:7");
        assert_eq!(parse_key_id(&s), Some((id, 7)));
        for bad in [
            "",
            "strongroom:",
            "strongroom:a4c96495-5e41-44f6-ad30-e823987a75e2",
            "strongroom:a4c96495-5e41-44f6-ad30-e823987a75e2:0",
            "strongroom:a4c96495-5e41-44f6-ad30-e823987a75e2:07",
            "strongroom:a4c96495-5e41-44f6-ad30-e823987a75e2:+7",
            "strongroom:not-a-key:7",
            "other:a4c96495-5e41-44f6-ad30-e823987a75e2:7",
        ] {
            assert_eq!(parse_key_id(bad), None, "{bad}");
        }
    }

    /// The API server accepts only fully qualified domain names as annotation keys.
    #[test]
    fn annotation_keys_are_fully_qualified_domain_names() {
        for k in annotations_of(1).keys() {
            assert!(k.contains('.') && k.len() <= 253, "{k}");
            for label in k.split('.') {
                assert!(!label.is_empty() && label.len() <= 63, "{k}");
                assert!(
                    label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    "{k}"
                );
                assert!(!label.starts_with('-') && !label.ends_with('-'), "{k}");
            }
        }
    }

    #[test]
    fn uids_are_bounded() {
        assert_eq!(valid_uid(String::new()).ok(), Some(None));
        let uuid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789".to_string();
        assert_eq!(valid_uid(uuid.clone()).ok(), Some(Some(uuid)));
        assert!(valid_uid("x".repeat(MAX_UID + 1)).is_err());
        assert!(valid_uid("line\nbreak".into()).is_err());
        assert!(valid_uid("{\"json\":1}".into()).is_err());
    }
}
