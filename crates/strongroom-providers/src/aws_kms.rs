//! `kind = "aws-kms"`: keys in AWS KMS (or anything that speaks its API), through the
//! official `aws-sdk-kms`.
//!
//! ```toml
//! [providers.aws-east]
//! kind = "aws-kms"
//! region = "us-east-1"
//! endpoint = "https://kms.us-east-1.amazonaws.com"   # optional (a VPC endpoint, a test server)
//! timeout = "5s"
//! access_key_id_env = "AWS_ACCESS_KEY_ID"             # static credentials, read at start
//! secret_access_key_env = "AWS_SECRET_ACCESS_KEY"
//! session_token_env = "AWS_SESSION_TOKEN"             # optional
//! # or: shared_credentials_file = "/run/secrets/aws-credentials" and profile = "default"
//! # or: default_credential_chain = true   # the SDK's chain: environment, web identity
//! #     (EKS IRSA), SSO, shared config, ECS/EKS container and EC2 instance roles
//! ```
//!
//! Data keys are wrapped with `Encrypt` and unwrapped with `Decrypt`, the encryption context
//! passed as KMS's own encryption context, so a wrapped key opens only under the same
//! context. Key names are key ids, key ARNs or `alias/…`.

use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::config::{Credentials, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use strongroom_crypto::{EncryptionContext, KeyMaterial};

use crate::{
    KeyProvider, ProviderError, ProviderKey, ProviderVersion, Result, Signed, Unwrapped,
    VersionState, Wrapped,
};

/// The `[providers.<name>]` settings of an AWS KMS provider.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsKmsConfig {
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// Another endpoint than the region's (a VPC endpoint, a test server).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Per-call timeout, e.g. `5s`.
    #[serde(default = "crate::default_timeout")]
    pub timeout: String,
    /// The environment variable holding the access key id.
    #[serde(default)]
    pub access_key_id_env: Option<String>,
    /// The environment variable holding the secret access key.
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    /// The environment variable holding a session token, for temporary credentials.
    #[serde(default)]
    pub session_token_env: Option<String>,
    /// Or: an AWS shared credentials file (`aws_access_key_id`, `aws_secret_access_key`,
    /// optional `aws_session_token` under `[profile]`).
    #[serde(default)]
    pub shared_credentials_file: Option<std::path::PathBuf>,
    /// The profile in `shared_credentials_file`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Or: the AWS SDK's default credential chain (`aws-config`), resolved at the first call
    /// and refreshed by the SDK as credentials expire: environment variables, web identity
    /// (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as EKS sets them), SSO and the shared
    /// config files, ECS/EKS container credentials, EC2 instance roles.
    #[serde(default)]
    pub default_credential_chain: bool,
}

/// The SDK's default credential chain, built at its first use (building it is async, and
/// providers are built before the runtime serves).
#[derive(Debug)]
struct LazyChain {
    region: Region,
    chain:
        tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
}

impl aws_sdk_kms::config::ProvideCredentials for LazyChain {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .region(self.region.clone())
                        .build()
                        .await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

fn default_profile() -> String {
    "default".into()
}

/// (access key id, secret, session token) of `profile` in an AWS shared credentials file.
fn read_shared_credentials(text: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            in_profile = line[1..line.len() - 1].trim() == profile;
            continue;
        }
        if !in_profile || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

/// An AWS KMS provider.
pub struct AwsKms {
    name: String,
    region: String,
    client: Client,
}

impl std::fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKms")
            .field("name", &self.name)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// Builds the provider `name` from its settings, reading its credentials.
    pub fn new(name: &str, c: &AwsKmsConfig) -> Result<Self> {
        let cfg = |m: String| ProviderError::Config(format!("providers.{name}: {m}"));
        let env = |var: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| cfg(format!("{var} is not set")))
        };
        let timeout: Duration =
            crate::parse_duration(&c.timeout, &format!("providers.{name}.timeout"))?;
        let static_creds = |(id, secret, token): (String, String, Option<String>)| {
            aws_sdk_kms::config::SharedCredentialsProvider::new(Credentials::new(
                id,
                secret,
                token,
                None,
                "strongroom-providers-file",
            ))
        };
        let creds = match (
            &c.access_key_id_env,
            &c.secret_access_key_env,
            &c.shared_credentials_file,
            c.default_credential_chain,
        ) {
            (None, None, None, true) => {
                aws_sdk_kms::config::SharedCredentialsProvider::new(LazyChain {
                    region: Region::new(c.region.clone()),
                    chain: tokio::sync::OnceCell::new(),
                })
            }
            (Some(i), Some(k), None, false) => static_creds((
                env(i)?,
                env(k)?,
                c.session_token_env.as_deref().map(env).transpose()?,
            )),
            (None, None, Some(path), false) => static_creds({
                let text = std::fs::read_to_string(path)
                    .map_err(|e| cfg(format!("cannot read {}: {e}", path.display())))?;
                read_shared_credentials(&text, &c.profile).ok_or_else(|| {
                    cfg(format!(
                        "{} has no aws_access_key_id and aws_secret_access_key under [{}]",
                        path.display(),
                        c.profile
                    ))
                })?
            }),
            _ => {
                return Err(cfg(
                    "give access_key_id_env and secret_access_key_env, or shared_credentials_file, or default_credential_chain = true"
                        .into(),
                ));
            }
        };
        let mut b = aws_sdk_kms::Config::builder()
            .behavior_version_latest()
            .region(Region::new(c.region.clone()))
            .credentials_provider(creds)
            .timeout_config(
                aws_sdk_kms::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .connect_timeout(timeout)
                    .build(),
            )
            // Retries are the key set's business (jittered, retryable errors only).
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled());
        if let Some(e) = &c.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(cfg("endpoint must start with http:// or https://".into()));
            }
            b = b.endpoint_url(e);
        }
        Ok(Self {
            name: name.to_string(),
            region: c.region.clone(),
            client: Client::from_conf(b.build()),
        })
    }

    fn error<E: ProvideErrorMetadata + std::fmt::Debug>(
        &self,
        key: &str,
        e: SdkError<E>,
    ) -> ProviderError {
        let unavailable = |detail: String, retryable: bool| ProviderError::Unavailable {
            provider: self.name.clone(),
            detail,
            retryable,
        };
        match e {
            SdkError::ServiceError(se) => {
                let err = se.err();
                let code = err.code().unwrap_or("").to_string();
                match code.as_str() {
                    "NotFoundException" => ProviderError::NotFound {
                        provider: self.name.clone(),
                        key: key.to_string(),
                    },
                    "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException" => ProviderError::AccessDenied {
                        provider: self.name.clone(),
                        detail: code,
                    },
                    "InvalidCiphertextException" | "IncorrectKeyException" => {
                        ProviderError::InvalidCiphertext {
                            provider: self.name.clone(),
                        }
                    }
                    "KMSInternalException"
                    | "DependencyTimeoutException"
                    | "ThrottlingException"
                    | "LimitExceededException" => unavailable(code, true),
                    // Any other answer of the service (a key in the wrong state, a key
                    // usage or parameter it refuses): the service is up.
                    _ => ProviderError::refused(
                        &self.name,
                        if code.is_empty() {
                            "service error".to_string()
                        } else {
                            code
                        },
                    ),
                }
            }
            SdkError::TimeoutError(_) => unavailable("timed out".into(), true),
            SdkError::DispatchFailure(_) => unavailable("cannot connect".into(), true),
            SdkError::ResponseError(_) => unavailable("unreadable response".into(), true),
            _ => unavailable("request failed".into(), false),
        }
    }
}

#[async_trait::async_trait]
impl KeyProvider for AwsKms {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "aws-kms"
    }

    async fn set_rotation_period(&self, key: &str, period: Option<Duration>) -> Result<()> {
        match period {
            Some(p) => {
                let days = p.as_secs() / 86_400;
                if p.as_secs() % 86_400 != 0 || !(90..=2560).contains(&days) {
                    return Err(ProviderError::Config(format!(
                        "providers.{}: AWS KMS rotates every 90 to 2560 whole days",
                        self.name
                    )));
                }
                self.client
                    .enable_key_rotation()
                    .key_id(key)
                    .rotation_period_in_days(days as i32)
                    .send()
                    .await
                    .map_err(|e| self.error(key, e))?;
            }
            None => {
                self.client
                    .disable_key_rotation()
                    .key_id(key)
                    .send()
                    .await
                    .map_err(|e| self.error(key, e))?;
            }
        }
        Ok(())
    }

    async fn public_key(&self, key: &str) -> Result<Vec<u8>> {
        let out = self
            .client
            .get_public_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        out.public_key()
            .map(|b| b.as_ref().to_vec())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| ProviderError::Unsupported {
                provider: self.name.clone(),
                operation: "get-public-key",
            })
    }

    async fn sign(
        &self,
        key: &str,
        algorithm: strongroom_crypto::Algorithm,
        input: strongroom_crypto::keys::SignInput<'_>,
    ) -> Result<Signed> {
        use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec as S};
        use strongroom_crypto::keys::SignInput;
        use strongroom_crypto::{Algorithm as A, Sha2};
        let spec = match algorithm {
            A::EcdsaP256Sha256 => S::EcdsaSha256,
            A::EcdsaP384Sha384 => S::EcdsaSha384,
            A::EcdsaP521Sha512 => S::EcdsaSha512,
            A::RsaPss(_, Sha2::Sha256) => S::RsassaPssSha256,
            A::RsaPss(_, Sha2::Sha384) => S::RsassaPssSha384,
            A::RsaPss(_, Sha2::Sha512) => S::RsassaPssSha512,
            A::RsaPkcs1(_, Sha2::Sha256) => S::RsassaPkcs1V15Sha256,
            A::RsaPkcs1(_, Sha2::Sha384) => S::RsassaPkcs1V15Sha384,
            A::RsaPkcs1(_, Sha2::Sha512) => S::RsassaPkcs1V15Sha512,
            _ => {
                return Err(ProviderError::Unsupported {
                    provider: self.name.clone(),
                    operation: "sign with this algorithm",
                });
            }
        };
        let out = self
            .client
            .sign()
            .key_id(key)
            .message(Blob::new(match input {
                SignInput::Message(m) | SignInput::Digest(m) => m,
            }))
            .message_type(match input {
                SignInput::Message(_) => MessageType::Raw,
                SignInput::Digest(_) => MessageType::Digest,
            })
            .signing_algorithm(spec)
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        let signature = out
            .signature()
            .map(|b| b.as_ref().to_vec())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| ProviderError::Unavailable {
                provider: self.name.clone(),
                detail: "Sign answered without a signature".into(),
                retryable: false,
            })?;
        Ok(Signed {
            signature,
            request_id: aws_sdk_kms::operation::RequestId::request_id(&out).map(str::to_string),
        })
    }

    async fn describe(&self, key: &str) -> Result<ProviderKey> {
        let out = self
            .client
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        let m = out.key_metadata();
        Ok(ProviderKey {
            name: m
                .map(|m| m.key_id().to_string())
                .unwrap_or_else(|| key.to_string()),
            key_type: m
                .and_then(|m| m.key_spec())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            latest_version: None,
            // Enabled, and for encryption (AWS's default usage when a response omits it).
            can_encrypt: m.is_some_and(|m| {
                let enabled = m
                    .key_state()
                    .map_or(m.enabled(), |s| s.as_str() == "Enabled");
                enabled
                    && m.key_usage()
                        .is_none_or(|u| u.as_str() == "ENCRYPT_DECRYPT")
            }),
            // Asked separately ([`KeyProvider::rotation_schedule`]): one call each.
            rotation_period: None,
            enabled: m.map(|m| m.enabled()),
        })
    }

    async fn rotation_schedule(&self, key: &str) -> Result<Option<Duration>> {
        // AWS rotates symmetric keys only: for others, and for a caller without
        // kms:GetKeyRotationStatus, the answer is "no schedule"; a key that is not there,
        // or a service that does not answer, is said as such.
        let status = match self
            .client
            .get_key_rotation_status()
            .key_id(key)
            .send()
            .await
        {
            Ok(r) => Some(r),
            Err(e) => match self.error(key, e) {
                e @ (ProviderError::NotFound { .. } | ProviderError::Unavailable { .. }) => {
                    return Err(e);
                }
                _ => None,
            },
        };
        Ok(status
            .filter(|r| r.key_rotation_enabled())
            // Without a period in the answer (older servers, emulators), AWS's one period
            // before periods could be set: 365 days.
            .map(|r| r.rotation_period_in_days().unwrap_or(365))
            .map(|d| Duration::from_secs(u64::from(d.unsigned_abs()) * 86_400)))
    }

    async fn list_versions(&self, key: &str) -> Result<Vec<ProviderVersion>> {
        use aws_sdk_kms::primitives::DateTimeFormat;
        let out = self
            .client
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        let m = out.key_metadata();
        // AWS KMS switches keys, not versions: every version shares the key's state.
        let state = match m.and_then(|m| m.key_state()).map(|s| s.as_str()) {
            Some("Enabled") => VersionState::Enabled,
            Some("Disabled") => VersionState::Disabled,
            Some("PendingDeletion") => VersionState::PendingDestruction,
            Some(other) => VersionState::Other(other.to_string()),
            None => VersionState::Other("unknown".into()),
        };
        let date = |d: Option<&aws_sdk_kms::primitives::DateTime>| {
            d.and_then(|d| d.fmt(DateTimeFormat::DateTime).ok())
        };
        // The key's first material, then one version per rotation, oldest first.
        let mut dates = vec![date(m.and_then(|m| m.creation_date()))];
        let mut marker = None;
        for _ in 0..100 {
            let page = self
                .client
                .list_key_rotations()
                .key_id(key)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| self.error(key, e))?;
            dates.extend(page.rotations().iter().map(|r| date(r.rotation_date())));
            match page.next_marker() {
                Some(next) if page.truncated() => marker = Some(next.to_string()),
                _ => break,
            }
        }
        let n = dates.len();
        Ok(dates
            .into_iter()
            .enumerate()
            .map(|(i, created_at)| ProviderVersion {
                version: (i + 1).to_string(),
                state: state.clone(),
                primary: i + 1 == n,
                created_at,
            })
            .collect())
    }

    async fn set_enabled(&self, key: &str, enabled: bool) -> Result<()> {
        if enabled {
            self.client
                .enable_key()
                .key_id(key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error(key, e))
        } else {
            self.client
                .disable_key()
                .key_id(key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error(key, e))
        }
    }

    async fn generate_data_key(
        &self,
        key: &str,
        len: usize,
        context: &EncryptionContext,
    ) -> Result<(Unwrapped, Wrapped)> {
        let n = i32::try_from(len)
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or_else(|| {
                ProviderError::refused(&self.name, "AWS KMS makes data keys of 1 to 1024 bytes")
            })?;
        let mut req = self
            .client
            .generate_data_key()
            .key_id(key)
            .number_of_bytes(n);
        for (k, v) in context.pairs() {
            req = req.encryption_context(k, v);
        }
        let out = req.send().await.map_err(|e| self.error(key, e))?;
        let bad = |what: &str| ProviderError::Unavailable {
            provider: self.name.clone(),
            detail: format!("GenerateDataKey answered without {what}"),
            retryable: false,
        };
        let plaintext = out
            .plaintext()
            .map(|b| b.as_ref().to_vec())
            .filter(|p| p.len() == len)
            .map(KeyMaterial::new)
            .ok_or_else(|| bad("a data key of that size"))?;
        let ciphertext = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| bad("a ciphertext"))?;
        let request_id = aws_sdk_kms::operation::RequestId::request_id(&out).map(str::to_string);
        Ok((
            Unwrapped {
                plaintext,
                request_id: request_id.clone(),
            },
            Wrapped {
                ciphertext,
                key_version: None,
                request_id,
            },
        ))
    }

    async fn wrap(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped> {
        let mut req = self
            .client
            .encrypt()
            .key_id(key)
            .plaintext(Blob::new(plaintext.to_vec()));
        for (k, v) in context.pairs() {
            req = req.encryption_context(k, v);
        }
        let out = req.send().await.map_err(|e| self.error(key, e))?;
        let ct = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| ProviderError::Unavailable {
                provider: self.name.clone(),
                detail: "the Encrypt answer has no ciphertext".into(),
                retryable: false,
            })?;
        Ok(Wrapped {
            ciphertext: ct,
            key_version: None,
            request_id: aws_sdk_kms::operation::RequestId::request_id(&out).map(str::to_string),
        })
    }

    async fn unwrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Unwrapped> {
        let mut req = self
            .client
            .decrypt()
            .key_id(key)
            .ciphertext_blob(Blob::new(ciphertext.to_vec()));
        for (k, v) in context.pairs() {
            req = req.encryption_context(k, v);
        }
        let out = req.send().await.map_err(|e| self.error(key, e))?;
        let pt = out.plaintext().map(|b| b.as_ref().to_vec()).ok_or(
            ProviderError::InvalidCiphertext {
                provider: self.name.clone(),
            },
        )?;
        Ok(Unwrapped {
            plaintext: KeyMaterial::new(pt),
            request_id: aws_sdk_kms::operation::RequestId::request_id(&out).map(str::to_string),
        })
    }

    async fn health(&self) -> Result<()> {
        // One cheap signed call: checks the endpoint and the credentials.
        self.client
            .list_keys()
            .limit(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("", e))
    }
}
