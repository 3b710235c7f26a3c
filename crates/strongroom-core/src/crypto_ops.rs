//! Cryptographic operations: encrypt, decrypt, data keys, re-encrypt, asymmetric decrypt,
//! public keys, sign/verify, MAC, random.

use std::sync::Arc;

use strongroom_audit::AuditEvent;
use strongroom_crypto::keys::{self, SignInput};
use strongroom_crypto::{
    Algorithm, EncryptionContext, Plaintext, Purpose, SignatureScheme, ciphertext, rand,
};
use strongroom_store::{KeyRecord, VersionRecord};

use crate::error::{Error, Result};
use crate::request::{Operation, RequestContext};
use crate::service::{Caller, KeyService, note_key, require_purpose, require_version_enabled};
use crate::types::*;

fn check_len(field: &str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::invalid(field, format!("at most {max} bytes")));
    }
    Ok(())
}

/// The algorithm a signature is made or checked with: the key's own, or the variant of the
/// requested scheme that its material serves.
fn signing_algorithm(k: &KeyRecord, requested: Option<SignatureScheme>) -> Result<Algorithm> {
    match requested {
        None => Ok(k.algorithm),
        Some(s) => k.algorithm.with_scheme(s).ok_or_else(|| {
            Error::invalid(
                "algorithm",
                format!(
                    "key {}/{} ({}) does not sign with the requested scheme",
                    k.ring, k.name, k.algorithm
                ),
            )
        }),
    }
}

/// When the caller states the algorithm it expects, the key must have it.
fn require_algorithm(k: &KeyRecord, expected: Option<Algorithm>) -> Result<()> {
    match expected {
        Some(a) if a != k.algorithm => Err(Error::invalid(
            "algorithm",
            format!("key {}/{} is {}, not {a}", k.ring, k.name, k.algorithm),
        )),
        _ => Ok(()),
    }
}

fn random_len(field: &str, n: usize) -> Result<()> {
    if n == 0 || n > MAX_RANDOM {
        return Err(Error::invalid(
            field,
            format!("must be between 1 and {MAX_RANDOM}"),
        ));
    }
    Ok(())
}

impl KeyService {
    async fn seal_under_primary(
        &self,
        key: &KeyRecord,
        op: Operation,
        ev: &mut AuditEvent,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<EncryptOutput> {
        require_purpose(key, Purpose::EncryptDecrypt, op)?;
        let v = self.usable_version(key, None, op, ev).await?;
        if key.external.is_some() {
            let ct = self
                .external_seal(key, v.version, context, plaintext, op, ev)
                .await?;
            return Ok(EncryptOutput {
                key: KeyIdentity::from(key),
                version: v.version,
                ciphertext: ct,
            });
        }
        let m = self.material(key, &v)?;
        let suite = ciphertext::Suite::for_algorithm(key.algorithm)
            .ok_or_else(|| Error::Internal(format!("no ciphertext suite for {}", key.algorithm)))?;
        let ct = ciphertext::encrypt(suite, &m, key.id, v.version, context, plaintext)?;
        Ok(EncryptOutput {
            key: KeyIdentity::from(key),
            version: v.version,
            ciphertext: ct,
        })
    }

    /// Opens a ciphertext v1. An unknown key id, a malformed ciphertext and a failed
    /// authentication all give `InvalidCiphertext`; a known but unusable version gives
    /// `InvalidState`.
    #[allow(clippy::too_many_arguments)] // the request's who/ctx/action plus the input
    async fn open_ciphertext(
        &self,
        who: &Caller,
        ctx: &RequestContext,
        action: &'static str,
        ct: &[u8],
        context: &EncryptionContext,
        expected: Option<&Arc<KeyRecord>>,
        op: Operation,
        ev: &mut AuditEvent,
    ) -> Result<(Arc<KeyRecord>, Arc<VersionRecord>, Plaintext)> {
        check_len("ciphertext", ct.len(), MAX_CIPHERTEXT)?;
        let header = ciphertext::parse_header(ct)?;
        let key = match expected {
            Some(k) if k.id != header.key_id => return Err(Error::IncorrectKey),
            Some(k) => k.clone(),
            None => {
                let k = self
                    .store
                    .key_by_id(header.key_id)
                    .await?
                    .ok_or(Error::InvalidCiphertext)?;
                note_key(ev, &k);
                self.check_key(who, ctx, ev, action, &k, Some(context))
                    .await?;
                k
            }
        };
        let (v, pt) = self.open_under(&key, &header, ct, context, op, ev).await?;
        Ok((key, v, pt))
    }

    /// Opens a ciphertext v1 whose header names `key` (checked by the caller).
    async fn open_under(
        &self,
        key: &KeyRecord,
        header: &ciphertext::Header,
        ct: &[u8],
        context: &EncryptionContext,
        op: Operation,
        ev: &mut AuditEvent,
    ) -> Result<(Arc<VersionRecord>, Plaintext)> {
        // A ciphertext is only ever made with its key's suite: another is a forgery.
        let suite = if key.external.is_some() {
            Some(ciphertext::Suite::External)
        } else {
            ciphertext::Suite::for_algorithm(key.algorithm)
        };
        if key.purpose != Purpose::EncryptDecrypt || suite != Some(header.suite) {
            return Err(Error::InvalidCiphertext);
        }
        ev.version = Some(header.version);
        let v = self
            .store
            .version(key.id, header.version)
            .await?
            .ok_or(Error::InvalidCiphertext)?;
        self.require_usable(key, op)?;
        require_version_enabled(key, &v, op)?;
        if key.external.is_some() {
            let pt = self.external_open(key, ct, context, op, ev).await?;
            return Ok((v, pt));
        }
        let m = self.material(key, &v)?;
        let pt = ciphertext::decrypt(&m, header, context, ct)?;
        Ok((v, pt))
    }

    /// Wraps a data key under one of Strongroom's own keys for a key set (the `software`
    /// provider). No authorisation or audit here: the key set operation does both.
    pub(crate) async fn member_seal(
        &self,
        key: &KeyRecord,
        context: &EncryptionContext,
        plaintext: &[u8],
        ev: &mut AuditEvent,
    ) -> Result<EncryptOutput> {
        self.seal_under_primary(
            key,
            Operation::KeySetGenerateDataKey,
            ev,
            context,
            plaintext,
        )
        .await
    }

    /// Unwraps what [`KeyService::member_seal`] made.
    pub(crate) async fn member_open(
        &self,
        key: &KeyRecord,
        context: &EncryptionContext,
        ct: &[u8],
        ev: &mut AuditEvent,
    ) -> Result<(Arc<VersionRecord>, Plaintext)> {
        check_len("ciphertext", ct.len(), MAX_CIPHERTEXT)?;
        let header = ciphertext::parse_header(ct)?;
        if header.key_id != key.id {
            return Err(Error::InvalidCiphertext);
        }
        self.open_under(key, &header, ct, context, Operation::KeySetDecrypt, ev)
            .await
    }

    /// Encrypts up to 64 KiB under the key's primary version.
    pub async fn encrypt(
        &self,
        ctx: &RequestContext,
        input: EncryptInput,
    ) -> Result<EncryptOutput> {
        let mut ev = self.event(ctx, Operation::Encrypt);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let key = self
                .resolve_checked(
                    &who,
                    ctx,
                    &mut ev,
                    "encrypt",
                    &input.key,
                    Some(&input.context),
                )
                .await?;
            check_len("plaintext", input.plaintext.len(), MAX_PLAINTEXT)?;
            // Exposed to encrypt it.
            self.seal_under_primary(
                &key,
                Operation::Encrypt,
                &mut ev,
                &input.context,
                input.plaintext.expose_secret(),
            )
            .await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Decrypts a ciphertext made by `encrypt`, `generate_data_key` or `re_encrypt`.
    pub async fn decrypt(
        &self,
        ctx: &RequestContext,
        input: DecryptInput,
    ) -> Result<DecryptOutput> {
        let mut ev = self.event(ctx, Operation::Decrypt);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let expected = match &input.key {
                Some(r) => Some(
                    self.resolve_checked(&who, ctx, &mut ev, "decrypt", r, Some(&input.context))
                        .await?,
                ),
                None => None,
            };
            if let Some(k) = &expected {
                require_purpose(k, Purpose::EncryptDecrypt, Operation::Decrypt)?;
            }
            let (key, v, plaintext) = self
                .open_ciphertext(
                    &who,
                    ctx,
                    "decrypt",
                    &input.ciphertext,
                    &input.context,
                    expected.as_ref(),
                    Operation::Decrypt,
                    &mut ev,
                )
                .await?;
            Ok(DecryptOutput {
                key: KeyIdentity::from(&*key),
                version: v.version,
                plaintext,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Generates a random data key and returns it wrapped under the key's primary version
    /// (and in plaintext when asked).
    pub async fn generate_data_key(
        &self,
        ctx: &RequestContext,
        input: GenerateDataKeyInput,
    ) -> Result<GenerateDataKeyOutput> {
        let mut ev = self.event(ctx, Operation::GenerateDataKey);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let key = self
                .resolve_checked(
                    &who,
                    ctx,
                    &mut ev,
                    "generate-data-key",
                    &input.key,
                    Some(&input.context),
                )
                .await?;
            random_len("length", input.length)?;
            if key.external.is_some() {
                // The provider makes the data key, with its own random source.
                let op = Operation::GenerateDataKey;
                require_purpose(&key, Purpose::EncryptDecrypt, op)?;
                let v = self.usable_version(&key, None, op, &mut ev).await?;
                let (dk, ciphertext) = self
                    .external_generate(&key, v.version, input.length, &input.context, &mut ev)
                    .await?;
                return Ok(GenerateDataKeyOutput {
                    wrapped: EncryptOutput {
                        key: KeyIdentity::from(&*key),
                        version: v.version,
                        ciphertext,
                    },
                    plaintext: input.include_plaintext.then_some(dk),
                });
            }
            let dk = Plaintext::new(rand::bytes(input.length)?);
            // Exposed to wrap it.
            let wrapped = self
                .seal_under_primary(
                    &key,
                    Operation::GenerateDataKey,
                    &mut ev,
                    &input.context,
                    dk.expose_secret(),
                )
                .await?;
            Ok(GenerateDataKeyOutput {
                wrapped,
                plaintext: input.include_plaintext.then_some(dk),
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Decrypts and re-encrypts inside Strongroom: the plaintext never reaches the caller.
    pub async fn re_encrypt(
        &self,
        ctx: &RequestContext,
        input: ReEncryptInput,
    ) -> Result<ReEncryptOutput> {
        let mut ev = self.event(ctx, Operation::ReEncrypt);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let dest = match &input.destination {
                Some(r) => Some(
                    self.resolve_checked(
                        &who,
                        ctx,
                        &mut ev,
                        "re-encrypt-to",
                        r,
                        Some(&input.destination_context),
                    )
                    .await?,
                ),
                None => None,
            };
            let mut src_ev = ev.clone();
            let named_source = match &input.source {
                Some(r) => Some(
                    self.resolve_checked(
                        &who,
                        ctx,
                        &mut src_ev,
                        "re-encrypt-from",
                        r,
                        Some(&input.source_context),
                    )
                    .await?,
                ),
                None => None,
            };
            let src = self
                .open_ciphertext(
                    &who,
                    ctx,
                    "re-encrypt-from",
                    &input.ciphertext,
                    &input.source_context,
                    named_source.as_ref(),
                    Operation::ReEncrypt,
                    &mut src_ev,
                )
                .await;
            // The source's authorization decision belongs in the one event of this request.
            if src_ev.policy.is_some() {
                ev.policy = src_ev.policy.clone();
            }
            let (src, src_v, pt) = src?;
            ev.target = Some(format!(
                "source {}/{} version {}",
                src.ring, src.name, src_v.version
            ));
            let dest = match dest {
                Some(d) => d,
                None => {
                    self.check_key(
                        &who,
                        ctx,
                        &mut ev,
                        "re-encrypt-to",
                        &src,
                        Some(&input.destination_context),
                    )
                    .await?;
                    src.clone()
                }
            };
            note_key(&mut ev, &dest);
            // Exposed to encrypt it under the destination, inside this call.
            let output = self
                .seal_under_primary(
                    &dest,
                    Operation::ReEncrypt,
                    &mut ev,
                    &input.destination_context,
                    pt.expose_secret(),
                )
                .await?;
            Ok(ReEncryptOutput {
                source_key: KeyIdentity::from(&*src),
                source_version: src_v.version,
                output,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Decrypts an RSA-OAEP-SHA-256 ciphertext with the given version (default: primary).
    pub async fn asymmetric_decrypt(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: Option<u32>,
        ct: &[u8],
    ) -> Result<DecryptOutput> {
        let mut ev = self.event(ctx, Operation::AsymmetricDecrypt);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "asymmetric-decrypt", key, None)
                .await?;
            require_purpose(&k, Purpose::AsymmetricDecrypt, Operation::AsymmetricDecrypt)?;
            check_len("ciphertext", ct.len(), 1024)?;
            let v = self
                .usable_version(&k, version, Operation::AsymmetricDecrypt, &mut ev)
                .await?;
            let m = self.material(&k, &v)?;
            let plaintext =
                tokio::task::block_in_place(|| keys::rsa_oaep_decrypt(k.algorithm, &m, ct))?;
            Ok(DecryptOutput {
                key: KeyIdentity::from(&*k),
                version: v.version,
                plaintext,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Encrypts up to the key's OAEP limit (190 bytes for RSA-2048) to an RSA-OAEP key's
    /// primary version, as a client holding the public key could. The ciphertext is raw
    /// RSA-OAEP (SHA-256); `asymmetric_decrypt` opens it.
    pub async fn asymmetric_encrypt(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        plaintext: &Plaintext,
    ) -> Result<EncryptOutput> {
        let mut ev = self.event(ctx, Operation::AsymmetricEncrypt);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "encrypt", key, None)
                .await?;
            require_purpose(&k, Purpose::AsymmetricDecrypt, Operation::AsymmetricEncrypt)?;
            let v = self
                .usable_version(&k, None, Operation::AsymmetricEncrypt, &mut ev)
                .await?;
            let der = v
                .public_key
                .as_deref()
                .ok_or_else(|| Error::Internal("asymmetric version without public key".into()))?;
            // Exposed to encrypt it.
            let ciphertext = keys::rsa_oaep_encrypt(der, plaintext.expose_secret())?;
            Ok(EncryptOutput {
                key: KeyIdentity::from(&*k),
                version: v.version,
                ciphertext,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Generates an asymmetric key pair for the caller's own use (AWS GenerateDataKeyPair):
    /// the public key, the private key wrapped under `key`'s primary version, and the private
    /// key in plaintext when asked. Strongroom keeps none of it.
    pub async fn generate_data_key_pair(
        &self,
        ctx: &RequestContext,
        input: GenerateDataKeyPairInput,
    ) -> Result<GenerateDataKeyPairOutput> {
        let mut ev = self.event(ctx, Operation::GenerateDataKeyPair);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let key = self
                .resolve_checked(
                    &who,
                    ctx,
                    &mut ev,
                    "generate-data-key",
                    &input.key,
                    Some(&input.context),
                )
                .await?;
            if !input.pair.is_asymmetric() {
                return Err(Error::invalid("pair", "must be an asymmetric algorithm"));
            }
            require_purpose(
                &key,
                Purpose::EncryptDecrypt,
                Operation::GenerateDataKeyPair,
            )?;
            // RSA key generation is CPU-heavy: keep it off the async workers.
            let private = tokio::task::block_in_place(|| keys::generate(input.pair))?;
            let public_key = keys::public_key_der(input.pair, &private)?;
            // Exposed to wrap it.
            let wrapped_private = self
                .seal_under_primary(
                    &key,
                    Operation::GenerateDataKeyPair,
                    &mut ev,
                    &input.context,
                    private.expose_secret(),
                )
                .await?;
            Ok(GenerateDataKeyPairOutput {
                wrapped_private,
                private_key: input
                    .include_private
                    .then(|| Plaintext::copy_from(private.expose_secret())),
                public_key,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// The public key of an asymmetric key's version (default: primary). Disabled versions
    /// still give their public key (verification of old signatures keeps working);
    /// destroyed ones do not.
    pub async fn get_public_key(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: Option<u32>,
    ) -> Result<PublicKeyOutput> {
        let mut ev = self.event(ctx, Operation::GetPublicKey);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "get-public-key", key, None)
                .await?;
            if !k.algorithm.is_asymmetric() {
                return Err(Error::InvalidKeyUsage {
                    key: format!("{}/{}", k.ring, k.name),
                    purpose: k.purpose,
                    operation: Operation::GetPublicKey.as_str(),
                    required: "sign-verify or asymmetric-decrypt",
                });
            }
            let n = version
                .or(k.primary_version)
                .ok_or_else(|| Error::InvalidState {
                    resource: format!("key {}/{}", k.ring, k.name),
                    state: "without a primary version",
                    operation: Operation::GetPublicKey.as_str(),
                    requirement: "needs one; name a version or create one",
                })?;
            ev.version = Some(n);
            let v = self.version_record(&k, n).await?;
            let der = match (&v.public_key, v.state) {
                (_, strongroom_store::VersionState::Destroyed) | (None, _) => {
                    return Err(Error::InvalidState {
                        resource: format!("key {}/{} version {n}", k.ring, k.name),
                        state: v.state.as_str(),
                        operation: Operation::GetPublicKey.as_str(),
                        requirement: "needs it not destroyed",
                    });
                }
                (Some(d), _) => d.clone(),
            };
            Ok(PublicKeyOutput {
                key: KeyIdentity::from(&*k),
                version: n,
                algorithm: k.algorithm,
                der,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Signs a message or digest with the given version (default: primary), with the key's
    /// algorithm or the variant of `scheme` its material serves
    /// ([`Algorithm::signing_variants`]).
    pub async fn sign(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: Option<u32>,
        data: SignData,
        scheme: Option<SignatureScheme>,
    ) -> Result<SignOutput> {
        let mut ev = self.event(ctx, Operation::Sign);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "sign", key, None)
                .await?;
            require_purpose(&k, Purpose::SignVerify, Operation::Sign)?;
            let alg = signing_algorithm(&k, scheme)?;
            let v = self
                .usable_version(&k, version, Operation::Sign, &mut ev)
                .await?;
            if k.external.is_some() {
                let input = match &data {
                    SignData::Message(msg) => {
                        check_len("message", msg.len(), MAX_PLAINTEXT)?;
                        // Exposed to hash it; only the digest goes to the provider.
                        SignInput::Message(msg.expose_secret())
                    }
                    SignData::Digest(d) => SignInput::Digest(d),
                };
                // Checks a digest's length (and that the algorithm signs digests at all).
                keys::signing_digest(alg, input)?.ok_or(Error::InvalidKeyUsage {
                    key: format!("{}/{}", k.ring, k.name),
                    purpose: k.purpose,
                    operation: Operation::Sign.as_str(),
                    required: "an ECDSA or RSA algorithm for a provider key",
                })?;
                let spki = v
                    .public_key
                    .as_deref()
                    .ok_or_else(|| Error::Internal("signing version without public key".into()))?;
                let signature = self.external_sign(&k, spki, alg, input, &mut ev).await?;
                return Ok(SignOutput {
                    key: KeyIdentity::from(&*k),
                    version: v.version,
                    algorithm: alg,
                    signature,
                });
            }
            let m = self.material(&k, &v)?;
            let signature = match &data {
                SignData::Message(msg) => {
                    check_len("message", msg.len(), MAX_PLAINTEXT)?;
                    // Exposed to sign it.
                    tokio::task::block_in_place(|| {
                        keys::sign(alg, &m, SignInput::Message(msg.expose_secret()))
                    })?
                }
                SignData::Digest(d) => keys::sign(alg, &m, SignInput::Digest(d))?,
            };
            Ok(SignOutput {
                key: KeyIdentity::from(&*k),
                version: v.version,
                algorithm: alg,
                signature,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Verifies a signature with the given version's public key (default: primary), with the
    /// key's algorithm or the variant of `scheme` its material serves. The version must be
    /// enabled; anyone holding the public key can also verify offline.
    pub async fn verify(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: Option<u32>,
        data: SignData,
        signature: &[u8],
        scheme: Option<SignatureScheme>,
    ) -> Result<VerifyOutput> {
        let mut ev = self.event(ctx, Operation::Verify);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "verify", key, None)
                .await?;
            require_purpose(&k, Purpose::SignVerify, Operation::Verify)?;
            let alg = signing_algorithm(&k, scheme)?;
            let v = self
                .usable_version(&k, version, Operation::Verify, &mut ev)
                .await?;
            let der = v
                .public_key
                .as_deref()
                .ok_or_else(|| Error::Internal("signing version without public key".into()))?;
            // ML-DSA-87 signatures are 4627 bytes.
            check_len("signature", signature.len(), 8192)?;
            let valid = match &data {
                SignData::Message(msg) => {
                    check_len("message", msg.len(), MAX_PLAINTEXT)?;
                    keys::verify(alg, der, SignInput::Message(msg.expose_secret()), signature)?
                }
                SignData::Digest(d) => keys::verify(alg, der, SignInput::Digest(d), signature)?,
            };
            Ok(VerifyOutput {
                key: KeyIdentity::from(&*k),
                version: v.version,
                valid,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Computes an HMAC with the given version (default: primary). When `algorithm` is
    /// given, it must be the key's (a caller stating what it expects, as AWS's MacAlgorithm).
    pub async fn mac(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: Option<u32>,
        message: &Plaintext,
        algorithm: Option<Algorithm>,
    ) -> Result<MacOutput> {
        let mut ev = self.event(ctx, Operation::Mac);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "mac", key, None)
                .await?;
            require_purpose(&k, Purpose::Mac, Operation::Mac)?;
            require_algorithm(&k, algorithm)?;
            check_len("message", message.len(), MAX_PLAINTEXT)?;
            let v = self
                .usable_version(&k, version, Operation::Mac, &mut ev)
                .await?;
            let m = self.material(&k, &v)?;
            // Exposed to MAC it.
            let mac = keys::mac(k.algorithm, &m, message.expose_secret())?;
            Ok(MacOutput {
                key: KeyIdentity::from(&*k),
                version: v.version,
                mac,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Verifies an HMAC in constant time with the given version (default: primary).
    pub async fn mac_verify(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: Option<u32>,
        message: &Plaintext,
        mac: &[u8],
        algorithm: Option<Algorithm>,
    ) -> Result<VerifyOutput> {
        let mut ev = self.event(ctx, Operation::MacVerify);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "mac-verify", key, None)
                .await?;
            require_purpose(&k, Purpose::Mac, Operation::MacVerify)?;
            require_algorithm(&k, algorithm)?;
            check_len("message", message.len(), MAX_PLAINTEXT)?;
            check_len("mac", mac.len(), 64)?;
            let v = self
                .usable_version(&k, version, Operation::MacVerify, &mut ev)
                .await?;
            let m = self.material(&k, &v)?;
            // Exposed to recompute the MAC, compared in constant time inside aws-lc.
            let valid = keys::mac_verify(k.algorithm, &m, message.expose_secret(), mac)?;
            Ok(VerifyOutput {
                key: KeyIdentity::from(&*k),
                version: v.version,
                valid,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Derives the ECDH shared secret of a key-agreement key's version (default: primary)
    /// and another party's public key (SubjectPublicKeyInfo DER on the key's curve). The
    /// secret is returned to the caller, who derives keys from it with a KDF of its choice.
    pub async fn derive_shared_secret(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: Option<u32>,
        peer_public_key: &[u8],
    ) -> Result<SharedSecretOutput> {
        let mut ev = self.event(ctx, Operation::DeriveSharedSecret);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "derive-shared-secret", key, None)
                .await?;
            require_purpose(&k, Purpose::KeyAgreement, Operation::DeriveSharedSecret)?;
            check_len("public_key", peer_public_key.len(), 1024)?;
            let v = self
                .usable_version(&k, version, Operation::DeriveSharedSecret, &mut ev)
                .await?;
            let m = self.material(&k, &v)?;
            let secret = keys::derive_shared_secret(k.algorithm, &m, peer_public_key)?;
            Ok(SharedSecretOutput {
                key: KeyIdentity::from(&*k),
                version: v.version,
                secret,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Exports key material (`export-key`): only from keys created exportable, and only of
    /// enabled versions — `version`, or every one. No shipped role may export.
    pub async fn export_key(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: Option<u32>,
    ) -> Result<ExportOutput> {
        let mut ev = self.event(ctx, Operation::ExportKey);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "export-key", key, None)
                .await?;
            if !k.exportable {
                return Err(Error::InvalidState {
                    resource: format!("key {}/{}", k.ring, k.name),
                    state: "not exportable",
                    operation: Operation::ExportKey.as_str(),
                    requirement: "needs a key created exportable",
                });
            }
            self.require_usable(&k, Operation::ExportKey)?;
            let wanted: Vec<u32> = match version {
                Some(n) => vec![n],
                None => (1..=k.version_count).collect(),
            };
            ev.version = version;
            let mut versions = Vec::new();
            for n in wanted {
                let v = self.version_record(&k, n).await?;
                if v.state != strongroom_store::VersionState::Enabled {
                    if version.is_some() {
                        require_version_enabled(&k, &v, Operation::ExportKey)?;
                    }
                    continue;
                }
                let m = self.material(&k, &v)?;
                // Exposed to copy it out: exporting is this operation's purpose.
                versions.push((
                    n,
                    strongroom_crypto::KeyMaterial::copy_from(m.expose_secret()),
                ));
            }
            Ok(ExportOutput {
                key: KeyIdentity::from(&*k),
                algorithm: k.algorithm,
                versions,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Hashes up to 64 KiB with a SHA-2 or SHA-3 function (no key; `hash` on the system).
    pub async fn hash(
        &self,
        ctx: &RequestContext,
        function: strongroom_crypto::hash::HashFunction,
        input: &Plaintext,
    ) -> Result<Vec<u8>> {
        let mut ev = self.event(ctx, Operation::Hash);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "hash")?;
            check_len("input", input.len(), MAX_PLAINTEXT)?;
            // Exposed to hash it; only the digest leaves.
            Ok(function.hash(input.expose_secret()))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Returns `length` (1 to 1024) random bytes.
    pub async fn generate_random(&self, ctx: &RequestContext, length: usize) -> Result<Plaintext> {
        let mut ev = self.event(ctx, Operation::GenerateRandom);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "generate-random")?;
            random_len("length", length)?;
            Ok(Plaintext::new(rand::bytes(length)?))
        }
        .await;
        self.finish(ev, res).await
    }
}
