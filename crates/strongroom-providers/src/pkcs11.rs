//! PKCS#11 HSMs (tested with SoftHSM2) through `cryptoki`: AES-256 keys that live in the
//! token, sensitive and non-extractable; data keys are wrapped and unwrapped with AES-GCM
//! inside the token. Signing key pairs (ECDSA P-256/P-384, RSA 2048-4096 with PKCS#1 v1.5
//! or PSS) are generated and sign there too.
//!
//! ```toml
//! [providers.hsm]
//! kind = "pkcs11"
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token_label = "strongroom"
//! pin_file = "/run/secrets/hsm-pin"     # or pin_env = "HSM_PIN"
//! sessions = 4                          # pooled, logged-in sessions; default 4
//! timeout = "5s"                        # per call, waiting for a session included
//! ```
//!
//! A key is named by its `CKA_LABEL`; its versions are the secret keys with that label,
//! numbered by `CKA_ID` (1 to 4 bytes, big-endian: `pkcs11-tool --id 01`). Wrapping uses the
//! highest version; rotating generates the next one in the token. A wrapped key is
//! `0x01 || version (u32) || IV (12) || AES-GCM ciphertext and tag`, with AAD
//! `"strongroom/pkcs11/v1" || version || the encryption context's encoding`.
//!
//! `C_Initialize` is process-wide: each module file is loaded and initialised once per
//! process and shared by every provider that names it. Calls run on Tokio's blocking pool.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use strongroom_crypto::{EncryptionContext, KeyMaterial};

use crate::{
    KeyProvider, ProviderError, ProviderKey, ProviderVersion, Result, Signed, Unwrapped,
    VersionState, Wrapped,
};

const KIND: &str = "pkcs11";
const FORMAT: u8 = 0x01;
const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;
const AAD_LABEL: &[u8] = b"strongroom/pkcs11/v1";

/// The `[providers.<name>]` settings of a PKCS#11 provider.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library) to load.
    pub module: PathBuf,
    /// The label of the token to use.
    pub token_label: String,
    /// Read the user PIN from this environment variable.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// Read the user PIN from this file (a trailing newline is ignored).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// How many logged-in sessions to keep (1 to 64).
    #[serde(default = "default_sessions")]
    pub sessions: usize,
    /// Per-call timeout, e.g. `5s`.
    #[serde(default = "crate::default_timeout")]
    pub timeout: String,
}

fn default_sessions() -> usize {
    4
}

/// Every module loaded in this process, by path (`C_Initialize` may run once per process).
static MODULES: LazyLock<Mutex<BTreeMap<PathBuf, Pkcs11>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

fn load(path: &std::path::Path, name: &str) -> Result<Pkcs11> {
    let mut m = MODULES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = m.get(path) {
        return Ok(c.clone());
    }
    let cfg = |what: String| ProviderError::Config(format!("providers.{name}: {what}"));
    let ctx = Pkcs11::new(path).map_err(|e| {
        cfg(format!(
            "cannot load the PKCS#11 module {}: {e}",
            path.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(cfg(format!("C_Initialize failed: {e}"))),
    }
    m.insert(path.to_path_buf(), ctx.clone());
    Ok(ctx)
}

struct Inner {
    name: String,
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    /// Idle logged-in sessions.
    idle: Mutex<Vec<Session>>,
    /// Bounds the sessions in use.
    permits: tokio::sync::Semaphore,
    timeout: Duration,
}

/// A PKCS#11 token as a key provider.
pub struct Pkcs11Provider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("name", &self.inner.name)
            .field("slot", &self.inner.slot)
            .field("pin", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// One version of a key in the token.
#[derive(Debug, Clone, Copy)]
struct KeyVersion {
    handle: ObjectHandle,
    version: u32,
    can_encrypt: bool,
}

impl Inner {
    fn unavailable(&self, detail: impl Into<String>, retryable: bool) -> ProviderError {
        ProviderError::unavailable(&self.name, detail, retryable)
    }

    /// A PKCS#11 error in the provider's terms; `opening` says the call was an unwrap, so
    /// that data errors mean "does not open".
    fn error(&self, e: CkError, opening: bool) -> ProviderError {
        let rv = match &e {
            CkError::Pkcs11(rv, _) => *rv,
            _ => return self.unavailable(e.to_string(), false),
        };
        match rv {
            // SoftHSM2 answers a GCM tag that does not verify with CKR_GENERAL_ERROR (its
            // crypto backend's failure, passed through); other tokens use the data codes.
            // In C_Decrypt, after the key was found, both mean "does not open".
            RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::DataInvalid
            | RvError::DataLenRange
            | RvError::MechanismParamInvalid
            | RvError::GeneralError
            | RvError::FunctionFailed
                if opening =>
            {
                ProviderError::InvalidCiphertext {
                    provider: self.name.clone(),
                }
            }
            RvError::PinIncorrect
            | RvError::PinExpired
            | RvError::PinLocked
            | RvError::PinInvalid
            | RvError::UserNotLoggedIn
            | RvError::KeyFunctionNotPermitted
            | RvError::KeyTypeInconsistent => ProviderError::AccessDenied {
                provider: self.name.clone(),
                detail: e.to_string(),
            },
            RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::SessionCount
            | RvError::GeneralError
            | RvError::HostMemory => self.unavailable(e.to_string(), true),
            _ => ProviderError::refused(&self.name, e.to_string()),
        }
    }

    fn open(&self) -> Result<Session> {
        let s = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(|e| self.error(e, false))?;
        // The login state belongs to the application, not the session: the second session
        // is already logged in.
        match s.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(s),
            Err(e) => Err(self.error(e, false)),
        }
    }

    /// Every version of `label`, highest last.
    fn versions(&self, s: &Session, label: &str) -> Result<Vec<KeyVersion>> {
        let handles = s
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map_err(|e| self.error(e, false))?;
        let mut out = Vec::new();
        for h in handles {
            let attrs = s
                .get_attributes(h, &[AttributeType::Id, AttributeType::Encrypt])
                .map_err(|e| self.error(e, false))?;
            let mut version = None;
            let mut can_encrypt = false;
            for a in attrs {
                match a {
                    Attribute::Id(id) if (1..=4).contains(&id.len()) => {
                        version = Some(id.iter().fold(0u32, |v, b| (v << 8) | u32::from(*b)));
                    }
                    Attribute::Encrypt(e) => can_encrypt = e,
                    _ => {}
                }
            }
            if let Some(version) = version.filter(|v| *v > 0) {
                out.push(KeyVersion {
                    handle: h,
                    version,
                    can_encrypt,
                });
            }
        }
        out.sort_by_key(|v| v.version);
        Ok(out)
    }

    /// Objects of `class` labelled `label`.
    fn objects(&self, s: &Session, class: ObjectClass, label: &str) -> Result<Vec<ObjectHandle>> {
        s.find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(|e| self.error(e, false))
    }

    /// The one object of `class` labelled `label`.
    fn one(&self, s: &Session, class: ObjectClass, label: &str) -> Result<ObjectHandle> {
        self.objects(s, class, label)?
            .into_iter()
            .next()
            .ok_or_else(|| self.not_found(label))
    }

    fn not_found(&self, key: &str) -> ProviderError {
        ProviderError::NotFound {
            provider: self.name.clone(),
            key: key.into(),
        }
    }

    fn generate(&self, s: &Session, label: &str, version: u32) -> Result<()> {
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(version.to_be_bytes().to_vec()),
        ];
        s.generate_key(&Mechanism::AesKeyGen, &template)
            .map(|_| ())
            .map_err(|e| self.error(e, false))
    }
}

fn aad(version: u32, context: &EncryptionContext) -> Vec<u8> {
    let mut a = AAD_LABEL.to_vec();
    a.extend_from_slice(&version.to_be_bytes());
    context.encode_into(&mut a);
    a
}

impl Pkcs11Provider {
    /// Loads the module, finds the token and reads the PIN; sessions open on first use.
    pub fn new(name: &str, c: &Pkcs11Config) -> Result<Self> {
        let cfg = |m: String| ProviderError::Config(format!("providers.{name}: {m}"));
        let timeout = crate::parse_duration(&c.timeout, &format!("providers.{name}.timeout"))?;
        if !(1..=64).contains(&c.sessions) {
            return Err(cfg("sessions: 1 to 64".into()));
        }
        let pin = match (&c.pin_env, &c.pin_file) {
            (Some(v), None) => std::env::var(v)
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| cfg(format!("{v} is not set")))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| cfg(format!("cannot read {}: {e}", path.display())))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            _ => return Err(cfg("give exactly one of pin_env and pin_file".into())),
        };
        let ctx = load(&c.module, name)?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| cfg(format!("cannot list slots: {e}")))?;
        let mut labels = Vec::new();
        let mut found = None;
        for s in slots {
            if let Ok(info) = ctx.get_token_info(s) {
                let label = info.label().trim().to_string();
                if label == c.token_label {
                    found = Some(s);
                    break;
                }
                labels.push(label);
            }
        }
        let slot = found.ok_or_else(|| {
            cfg(format!(
                "no token labelled {:?} (tokens: {})",
                c.token_label,
                if labels.is_empty() {
                    "none".to_string()
                } else {
                    labels.join(", ")
                }
            ))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.into(),
                ctx,
                slot,
                pin: AuthPin::new(pin.into()),
                idle: Mutex::new(Vec::new()),
                permits: tokio::sync::Semaphore::new(c.sessions),
                timeout,
            }),
        })
    }

    /// Runs `f` with a logged-in session on the blocking pool, within the timeout. A session
    /// whose handle broke is dropped, not pooled.
    async fn with_session<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Session) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let work = async move {
            let _permit = inner
                .permits
                .acquire()
                .await
                .map_err(|_| inner.unavailable("the session pool is closed", false))?;
            let worker = inner.clone();
            tokio::task::spawn_blocking(move || {
                let pooled = worker.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let s = match pooled {
                    Some(s) => s,
                    None => worker.open()?,
                };
                let res = f(&worker, &s);
                let broken = matches!(
                    &res,
                    Err(ProviderError::Unavailable {
                        retryable: true,
                        ..
                    })
                );
                if !broken {
                    worker
                        .idle
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(s);
                }
                res
            })
            .await
            .map_err(|e| inner.unavailable(format!("a PKCS#11 call failed to run: {e}"), false))?
        };
        tokio::time::timeout(self.inner.timeout, work)
            .await
            .map_err(|_| {
                self.inner.unavailable(
                    format!("no answer from the token within {:?}", self.inner.timeout),
                    true,
                )
            })?
    }
}

#[async_trait::async_trait]
impl KeyProvider for Pkcs11Provider {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    async fn describe(&self, key: &str) -> Result<ProviderKey> {
        let key = key.to_string();
        self.with_session(move |inner, s| {
            let vs = inner.versions(s, &key)?;
            let latest = vs.last().ok_or_else(|| inner.not_found(&key))?;
            Ok(ProviderKey {
                name: key,
                key_type: "AES-256".into(),
                latest_version: Some(latest.version),
                can_encrypt: latest.can_encrypt,
                rotation_period: None,
                enabled: Some(latest.can_encrypt),
            })
        })
        .await
    }

    async fn wrap(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped> {
        let key = key.to_string();
        let pt = KeyMaterial::copy_from(plaintext);
        let context = context.clone();
        self.with_session(move |inner, s| {
            let vs = inner.versions(s, &key)?;
            let latest = *vs.last().ok_or_else(|| inner.not_found(&key))?;
            let mut iv = strongroom_crypto::rand::array::<IV_LEN>()
                .map_err(|e| inner.unavailable(format!("random IV: {e}"), false))?;
            let aad = aad(latest.version, &context);
            let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into())
                .map_err(|e| inner.unavailable(e.to_string(), false))?;
            // Exposed to wrap it inside the token.
            let ct = s
                .encrypt(
                    &Mechanism::AesGcm(params),
                    latest.handle,
                    pt.expose_secret(),
                )
                .map_err(|e| inner.error(e, false))?;
            let mut out = Vec::with_capacity(1 + 4 + IV_LEN + ct.len());
            out.push(FORMAT);
            out.extend_from_slice(&latest.version.to_be_bytes());
            out.extend_from_slice(&iv);
            out.extend_from_slice(&ct);
            Ok(Wrapped {
                ciphertext: out,
                key_version: Some(latest.version),
                request_id: None,
            })
        })
        .await
    }

    async fn unwrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Unwrapped> {
        let bad = || ProviderError::InvalidCiphertext {
            provider: self.inner.name.clone(),
        };
        if ciphertext.len() < 1 + 4 + IV_LEN + 16 || ciphertext[0] != FORMAT {
            return Err(bad());
        }
        let version =
            u32::from_be_bytes([ciphertext[1], ciphertext[2], ciphertext[3], ciphertext[4]]);
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&ciphertext[5..5 + IV_LEN]);
        let body = ciphertext[5 + IV_LEN..].to_vec();
        let key = key.to_string();
        let context = context.clone();
        self.with_session(move |inner, s| {
            let v = inner
                .versions(s, &key)?
                .into_iter()
                .find(|v| v.version == version)
                .ok_or_else(|| ProviderError::InvalidCiphertext {
                    provider: inner.name.clone(),
                })?;
            let aad = aad(version, &context);
            let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into())
                .map_err(|e| inner.unavailable(e.to_string(), false))?;
            let pt = s
                .decrypt(&Mechanism::AesGcm(params), v.handle, &body)
                .map_err(|e| inner.error(e, true))?;
            Ok(Unwrapped {
                plaintext: KeyMaterial::new(pt),
                request_id: None,
            })
        })
        .await
    }

    async fn rotate(&self, key: &str) -> Result<String> {
        let key = key.to_string();
        self.with_session(move |inner, s| {
            let vs = inner.versions(s, &key)?;
            let latest = vs.last().ok_or_else(|| inner.not_found(&key))?;
            let next = latest
                .version
                .checked_add(1)
                .ok_or_else(|| inner.unavailable("no versions left", false))?;
            inner.generate(s, &key, next)?;
            Ok(next.to_string())
        })
        .await
    }

    /// An AES key's versions (its `CKA_ID`s; the highest wraps), or a signing key's one.
    async fn list_versions(&self, label: &str) -> Result<Vec<ProviderVersion>> {
        let label = label.to_string();
        self.with_session(move |inner, s| {
            let vs = inner.versions(s, &label)?;
            let n = vs.len();
            let mut out: Vec<ProviderVersion> = vs
                .into_iter()
                .enumerate()
                .map(|(i, v)| ProviderVersion {
                    version: v.version.to_string(),
                    state: if v.can_encrypt {
                        VersionState::Enabled
                    } else {
                        VersionState::Disabled
                    },
                    primary: i + 1 == n,
                    created_at: None,
                })
                .collect();
            if out.is_empty()
                && !inner
                    .objects(s, ObjectClass::PRIVATE_KEY, &label)?
                    .is_empty()
            {
                out.push(ProviderVersion {
                    version: "1".into(),
                    state: VersionState::Enabled,
                    primary: true,
                    created_at: None,
                });
            }
            if out.is_empty() {
                return Err(inner.not_found(&label));
            }
            Ok(out)
        })
        .await
    }

    /// Generates version 1 of a new key `label` in the token (AES-256, sensitive, not
    /// extractable). Refused if the label is taken.
    async fn create_key(&self, label: &str) -> Result<ProviderKey> {
        let label = label.to_string();
        self.with_session(move |inner, s| {
            if !inner.versions(s, &label)?.is_empty() {
                return Err(ProviderError::AccessDenied {
                    provider: inner.name.clone(),
                    detail: format!("key {label:?} already exists in the token"),
                });
            }
            inner.generate(s, &label, 1)?;
            Ok(ProviderKey {
                name: label,
                key_type: "AES-256".into(),
                latest_version: Some(1),
                can_encrypt: true,
                rotation_period: None,
                enabled: Some(true),
            })
        })
        .await
    }

    async fn create_signing_key(
        &self,
        label: &str,
        algorithm: strongroom_crypto::Algorithm,
    ) -> Result<ProviderKey> {
        use strongroom_crypto::Algorithm as A;
        // The key type and its one parameter: a curve, or a modulus size.
        let (key_type, param): (KeyType, Attribute) = match algorithm {
            A::EcdsaP256Sha256 => (
                KeyType::EC,
                Attribute::EcParams(crate::der::oid(crate::der::OID_P256)),
            ),
            A::EcdsaP384Sha384 => (
                KeyType::EC,
                Attribute::EcParams(crate::der::oid(crate::der::OID_P384)),
            ),
            A::RsaPkcs1(bits, _) | A::RsaPss(bits, _) => (
                KeyType::RSA,
                Attribute::ModulusBits(u64::from(bits.bits()).into()),
            ),
            _ => {
                return Err(ProviderError::Unsupported {
                    provider: self.inner.name.clone(),
                    operation: "create-key (signing keys: ECDSA P-256 and P-384, RSA 2048 to 4096)",
                });
            }
        };
        let label = label.to_string();
        self.with_session(move |inner, s| {
            let taken = !inner.versions(s, &label)?.is_empty()
                || !inner
                    .objects(s, ObjectClass::PRIVATE_KEY, &label)?
                    .is_empty();
            if taken {
                return Err(ProviderError::AccessDenied {
                    provider: inner.name.clone(),
                    detail: format!("key {label:?} already exists in the token"),
                });
            }
            let common = |class| {
                vec![
                    Attribute::Class(class),
                    Attribute::KeyType(key_type),
                    Attribute::Token(true),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(1u32.to_be_bytes().to_vec()),
                ]
            };
            let mut public = common(ObjectClass::PUBLIC_KEY);
            public.push(param.clone());
            public.push(Attribute::Verify(true));
            if key_type == KeyType::RSA {
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            }
            let mut private = common(ObjectClass::PRIVATE_KEY);
            private.extend([
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
            ]);
            let mechanism = if key_type == KeyType::RSA {
                Mechanism::RsaPkcsKeyPairGen
            } else {
                Mechanism::EccKeyPairGen
            };
            s.generate_key_pair(&mechanism, &public, &private)
                .map_err(|e| inner.error(e, false))?;
            Ok(ProviderKey {
                name: label,
                key_type: if key_type == KeyType::RSA {
                    "RSA"
                } else {
                    "EC"
                }
                .into(),
                latest_version: Some(1),
                can_encrypt: false,
                rotation_period: None,
                enabled: Some(true),
            })
        })
        .await
    }

    async fn destroy_key(&self, label: &str) -> Result<()> {
        let label = label.to_string();
        self.with_session(move |inner, s| {
            for class in [
                ObjectClass::SECRET_KEY,
                ObjectClass::PRIVATE_KEY,
                ObjectClass::PUBLIC_KEY,
            ] {
                for h in inner.objects(s, class, &label)? {
                    s.destroy_object(h).map_err(|e| inner.error(e, false))?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn public_key(&self, label: &str) -> Result<Vec<u8>> {
        let label = label.to_string();
        self.with_session(move |inner, s| {
            let h = inner.one(s, ObjectClass::PUBLIC_KEY, &label)?;
            let rsa = s
                .get_attributes(h, &[AttributeType::KeyType])
                .map_err(|e| inner.error(e, false))?
                .into_iter()
                .any(|a| matches!(a, Attribute::KeyType(KeyType::RSA)));
            if rsa {
                let (mut n, mut e) = (None, None);
                for a in s
                    .get_attributes(h, &[AttributeType::Modulus, AttributeType::PublicExponent])
                    .map_err(|e| inner.error(e, false))?
                {
                    match a {
                        Attribute::Modulus(m) => n = Some(m),
                        Attribute::PublicExponent(x) => e = Some(x),
                        _ => {}
                    }
                }
                return match (n, e) {
                    (Some(n), Some(e)) if !n.is_empty() && !e.is_empty() => {
                        Ok(crate::der::rsa_spki(&n, &e))
                    }
                    _ => {
                        Err(inner
                            .unavailable("the RSA public key has no modulus or exponent", false))
                    }
                };
            }
            let attrs = s
                .get_attributes(h, &[AttributeType::EcParams, AttributeType::EcPoint])
                .map_err(|e| inner.error(e, false))?;
            let (mut params, mut point) = (None, None);
            for a in attrs {
                match a {
                    Attribute::EcParams(p) => params = Some(p),
                    Attribute::EcPoint(p) => point = Some(p),
                    _ => {}
                }
            }
            let bad = || inner.unavailable("the public key has no EC parameters or point", false);
            let params = params.ok_or_else(bad)?;
            let point = point.ok_or_else(bad)?;
            // CKA_EC_PARAMS is the curve's OID (DER); CKA_EC_POINT the point, usually
            // wrapped in a DER OCTET STRING.
            let curve = params
                .strip_prefix(&[0x06])
                .and_then(|r| r.split_first())
                .filter(|(n, body)| usize::from(**n) == body.len())
                .map(|(_, body)| body.to_vec())
                .ok_or_else(bad)?;
            let raw = match point.as_slice() {
                [0x04, n, rest @ ..]
                    if usize::from(*n) == rest.len() && rest.first() == Some(&0x04) =>
                {
                    rest.to_vec()
                }
                [0x04, 0x81, n, rest @ ..] if usize::from(*n) == rest.len() => rest.to_vec(),
                other => other.to_vec(),
            };
            Ok(crate::der::ec_spki(&curve, &raw))
        })
        .await
    }

    async fn sign(
        &self,
        label: &str,
        algorithm: strongroom_crypto::Algorithm,
        input: strongroom_crypto::keys::SignInput<'_>,
    ) -> Result<Signed> {
        use strongroom_crypto::{Algorithm as A, Sha2};
        if !matches!(
            algorithm,
            A::EcdsaP256Sha256 | A::EcdsaP384Sha384 | A::RsaPkcs1(..) | A::RsaPss(..)
        ) {
            return Err(ProviderError::Unsupported {
                provider: self.inner.name.clone(),
                operation: "sign with this algorithm",
            });
        }
        // CKM_ECDSA, CKM_RSA_PKCS and CKM_RSA_PKCS_PSS sign a digest: a message is hashed
        // here.
        let digest = strongroom_crypto::keys::signing_digest(algorithm, input)
            .ok()
            .flatten()
            .ok_or_else(|| ProviderError::Unsupported {
                provider: self.inner.name.clone(),
                operation: "sign this input",
            })?;
        let pss = |hash: Sha2| {
            use cryptoki::mechanism::MechanismType as M;
            use cryptoki::mechanism::rsa::{PkcsMgfType as Mgf, PkcsPssParams};
            let (hash_alg, mgf, len) = match hash {
                Sha2::Sha256 => (M::SHA256, Mgf::MGF1_SHA256, 32u64),
                Sha2::Sha384 => (M::SHA384, Mgf::MGF1_SHA384, 48),
                Sha2::Sha512 => (M::SHA512, Mgf::MGF1_SHA512, 64),
            };
            // As Strongroom verifies PSS: a salt as long as the hash.
            Mechanism::RsaPkcsPss(PkcsPssParams {
                hash_alg,
                mgf,
                s_len: len.into(),
            })
        };
        let input = match algorithm {
            A::RsaPkcs1(_, hash) => crate::der::digest_info(hash, &digest),
            _ => digest,
        };
        let ecdsa = !matches!(algorithm, A::RsaPkcs1(..) | A::RsaPss(..));
        let label = label.to_string();
        self.with_session(move |inner, s| {
            // Made here: a mechanism holds raw pointers and stays on this thread.
            let mechanism = match algorithm {
                A::RsaPkcs1(..) => Mechanism::RsaPkcs,
                A::RsaPss(_, hash) => pss(hash),
                _ => Mechanism::Ecdsa,
            };
            let h = inner.one(s, ObjectClass::PRIVATE_KEY, &label)?;
            let raw = s
                .sign(&mechanism, h, &input)
                .map_err(|e| inner.error(e, false))?;
            let signature = if ecdsa {
                crate::der::ecdsa_der(&raw).ok_or_else(|| {
                    inner.unavailable("the token's ECDSA signature is malformed", false)
                })?
            } else {
                raw
            };
            Ok(Signed {
                signature,
                request_id: None,
            })
        })
        .await
    }

    async fn health(&self) -> Result<()> {
        self.with_session(|inner, s| {
            s.get_session_info().map_err(|e| inner.error(e, false))?;
            Ok(())
        })
        .await
    }
}
