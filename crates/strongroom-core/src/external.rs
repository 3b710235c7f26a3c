//! External keys ("hold your own key"): Strongroom keys of protection `external`, bound to a
//! provider key that holds the material. Every operation goes through Strongroom — policy,
//! audit, aliases, state, every protocol front-end — while encryption and decryption happen
//! at the provider (`docs/providers.md`). Ciphertexts are ciphertext v1 of suite `0x10`
//! (`docs/formats/ciphertext-v1.md`): the header, then the provider's wrapped form, made
//! under the caller's context plus `strongroom:key-id = <key id>` so the header's key id is
//! bound to the provider's answer.

use std::sync::Arc;

use strongroom_audit::AuditEvent;
use strongroom_crypto::{Algorithm, EncryptionContext, Plaintext, Purpose, ciphertext};
use strongroom_providers::{ProviderError, ProviderKey, ProviderVersion, SOFTWARE};
use strongroom_store::{ExternalKey, KeyOrigin, KeyRecord, KeyState};

use crate::error::{Error, Result};
use crate::providers::{bind, call_record};
use crate::request::{Operation, RequestContext};
use crate::service::KeyService;
use crate::types::{CreateKeyInput, KeyRef};

/// The context pair external keys bind their ciphertexts to.
pub const CONTEXT_KEY: &str = "strongroom:key-id";

fn member(x: &ExternalKey) -> String {
    format!("{}:{}", x.provider, x.key)
}

/// A provider's refusal in the operation's terms. `key` names the Strongroom key.
fn provider_error(key: &str, op: Operation, e: ProviderError) -> Error {
    match e {
        ProviderError::InvalidCiphertext { .. } => Error::InvalidCiphertext,
        ProviderError::Unavailable { .. } => Error::Unavailable(e.to_string()),
        ProviderError::NotFound { .. }
        | ProviderError::AccessDenied { .. }
        | ProviderError::Refused { .. }
        | ProviderError::Unsupported { .. }
        | ProviderError::Config(_) => Error::InvalidState {
            resource: format!("key {key} ({e})"),
            state: "not usable at its provider",
            operation: op.as_str(),
            requirement: "needs its provider key usable by Strongroom",
        },
    }
}

/// What a provider says of a provider-held key, beside Strongroom's record of it: the start
/// of drift detection (`GET /v1/keyrings/{ring}/keys/{key}/provider`).
#[derive(Debug, Clone)]
pub struct ProviderView {
    /// Strongroom's record.
    pub key: KeyRecord,
    /// The provider's configured name.
    pub provider: String,
    /// The provider's name for the key.
    pub provider_key: String,
    /// The provider's description, or why it could not be had.
    pub described: std::result::Result<ProviderKey, String>,
    /// The provider's automatic rotation period (`None`: off), or why it is not known.
    pub rotation_schedule: std::result::Result<Option<std::time::Duration>, String>,
    /// The provider's versions, oldest first, or why they could not be listed.
    pub versions: std::result::Result<Vec<ProviderVersion>, String>,
    /// Where the provider disagrees with Strongroom.
    pub drift: Vec<Drift>,
}

/// One disagreement between Strongroom's record of a key and its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// `provider-key-missing`, `provider-disabled`, `provider-cannot-encrypt` or
    /// `rotation-schedule`.
    pub kind: &'static str,
    /// What differs, in words.
    pub detail: String,
}

/// What drift is judged on: the provider's description of `key` and its rotation schedule,
/// asked at once through the provider's guard.
async fn ask_provider(
    g: &crate::failover::Guarded,
    key: &str,
) -> (
    std::result::Result<ProviderKey, ProviderError>,
    std::result::Result<Option<std::time::Duration>, ProviderError>,
) {
    let p = g.provider();
    tokio::join!(
        g.call("describe", || p.describe(key)),
        g.call("get-rotation-schedule", || p.rotation_schedule(key)),
    )
}

/// The drift between Strongroom's record `k` and what its provider said.
fn drift_of(
    k: &KeyRecord,
    described: &std::result::Result<ProviderKey, ProviderError>,
    schedule: &std::result::Result<Option<std::time::Duration>, ProviderError>,
) -> Vec<Drift> {
    let mut out = Vec::new();
    let live = k.state == KeyState::Enabled;
    match described {
        Err(ProviderError::NotFound { .. }) => out.push(Drift {
            kind: "provider-key-missing",
            detail: "the provider has no such key: nothing Strongroom sealed with it opens".into(),
        }),
        Ok(d) if live && d.enabled == Some(false) => out.push(Drift {
            kind: "provider-disabled",
            detail: "enabled in Strongroom, disabled at the provider: operations fail".into(),
        }),
        Ok(d)
            if live
                && k.purpose == strongroom_crypto::Purpose::EncryptDecrypt
                && !d.can_encrypt =>
        {
            out.push(Drift {
                kind: "provider-cannot-encrypt",
                detail: "enabled in Strongroom; the provider will not encrypt with it".into(),
            })
        }
        _ => {}
    }
    if let Ok(schedule) = schedule {
        let ours = k
            .rotation_period_secs
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0);
        let theirs = schedule.map(|d| d.as_secs());
        if ours != theirs {
            let show = |s: Option<u64>| s.map_or("off".to_string(), |s| format!("{s}s"));
            out.push(Drift {
                kind: "rotation-schedule",
                detail: format!(
                    "Strongroom records rotation {}, the provider rotates {}",
                    show(ours),
                    show(theirs)
                ),
            });
        }
    }
    out
}

/// Most provider-held keys one drift pass checks (each costs two provider calls).
pub const DRIFT_PASS_KEYS: usize = 1000;

/// The drift kinds, as `strongroom_provider_key_drift` labels them.
pub const DRIFT_KINDS: [&str; 4] = [
    "provider-key-missing",
    "provider-disabled",
    "provider-cannot-encrypt",
    "rotation-schedule",
];

impl KeyService {
    /// One drift pass, on the node holding the scheduler lease (the others report 0, so
    /// `max` across nodes is the holder's count): every provider-held key enabled in
    /// Strongroom (at most [`DRIFT_PASS_KEYS`]) is described at its provider, with its
    /// rotation schedule, through the provider's deadline, retries and breaker; the counts
    /// by provider and kind go to `strongroom_provider_key_drift` (0 where none). Returns
    /// each drifted key's path and drift. Read-only at the providers; a key whose provider
    /// cannot answer is skipped (its provider's health and breaker metrics say why).
    pub async fn observe_provider_drift(&self) -> Result<Vec<(String, Drift)>> {
        let mut counts: std::collections::BTreeMap<(String, &'static str), u64> = self
            .providers
            .keys()
            .filter(|p| *p != SOFTWARE)
            .flat_map(|p| DRIFT_KINDS.iter().map(move |k| ((p.clone(), *k), 0)))
            .collect();
        if !self.hold_scheduler_lease().await? {
            for ((provider, kind), n) in counts {
                crate::metrics::provider_key_drift(&provider, kind, n);
            }
            return Ok(Vec::new());
        }
        let mut drifted = Vec::new();
        let mut checked = 0usize;
        let mut after = None;
        'pages: loop {
            let page = self
                .store
                .list_all_keys(&strongroom_store::PageRequest { after, limit: 500 })
                .await?;
            for k in &page.items {
                if checked >= DRIFT_PASS_KEYS {
                    break 'pages;
                }
                let (Some(x), KeyState::Enabled) = (&k.external, k.state) else {
                    continue;
                };
                let Some(g) = self.providers.get(&x.provider) else {
                    continue;
                };
                checked += 1;
                let (described, schedule) = ask_provider(g, &x.key).await;
                if matches!(described, Err(ProviderError::Unavailable { .. })) {
                    continue;
                }
                for d in drift_of(k, &described, &schedule) {
                    *counts.entry((x.provider.clone(), d.kind)).or_default() += 1;
                    drifted.push((format!("{}/{}", k.ring, k.name), d));
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        for ((provider, kind), n) in counts {
            crate::metrics::provider_key_drift(&provider, kind, n);
        }
        Ok(drifted)
    }

    /// What the provider of a provider-held key says of it (description, rotation
    /// schedule, versions) and where that drifts from Strongroom's record. Needs
    /// `get-provider-view`; read-only at the provider.
    pub async fn provider_view(&self, ctx: &RequestContext, key: &KeyRef) -> Result<ProviderView> {
        let mut ev = self.event(ctx, Operation::GetProviderView);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "get-provider-view", key, None)
                .await?;
            if k.external.is_none() {
                return Err(Error::InvalidState {
                    resource: format!("key {}/{}", k.ring, k.name),
                    state: k.protection.as_str(),
                    operation: Operation::GetProviderView.as_str(),
                    requirement: "needs a key held by a provider (protection external or hsm)",
                });
            }
            let (x, g, _) = self.held_by(&k)?;
            let (x, g) = (x.clone(), g.clone());
            let p = g.provider();
            let ((described, schedule), versions) = tokio::join!(
                ask_provider(&g, &x.key),
                g.call("list-versions", || p.list_versions(&x.key)),
            );
            ev.providers
                .push(call_record(&member(&x), described.as_ref().map(|_| None)));
            let drift = drift_of(&k, &described, &schedule);
            let text = |e: ProviderError| e.to_string();
            Ok(ProviderView {
                provider: x.provider.clone(),
                provider_key: x.key.clone(),
                described: described.map_err(text),
                rotation_schedule: schedule.map_err(text),
                versions: versions.map_err(text),
                drift,
                key: Arc::unwrap_or_clone(k),
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Switches a provider-held key on or off at its provider (`disable-key` with
    /// `at_provider`).
    pub(crate) async fn external_set_enabled(
        &self,
        key: &KeyRecord,
        enabled: bool,
        op: Operation,
        ev: &mut AuditEvent,
    ) -> Result<()> {
        if key.external.is_none() {
            return Err(Error::invalid(
                "at_provider",
                format!(
                    "key {}/{} is Strongroom's own (protection {}): it has no provider key to switch",
                    key.ring,
                    key.name,
                    key.protection.as_str()
                ),
            ));
        }
        let (x, g, path) = self.held_by(key)?;
        let res = g
            .call(op.as_str(), || g.provider().set_enabled(&x.key, enabled))
            .await;
        ev.providers
            .push(call_record(&member(x), res.as_ref().map(|_| None)));
        res.map_err(|e| match e {
            ProviderError::Unsupported { .. } => Error::invalid(
                "at_provider",
                format!("key {path}'s provider cannot switch its keys: {e}"),
            ),
            e => provider_error(&path, op, e),
        })
    }

    /// Checks a new external key: an encrypt-decrypt AES key made here (not imported), not
    /// exportable, no automatic rotation, on a configured provider whose key answers
    /// `describe` and can encrypt.
    pub(crate) async fn check_external(
        &self,
        x: &ExternalKey,
        input: &CreateKeyInput,
        purpose: Purpose,
        algorithm: Algorithm,
        origin: KeyOrigin,
        ev: &mut AuditEvent,
    ) -> Result<Option<Vec<u8>>> {
        let g = self.external_shape(&x.provider, input, purpose, algorithm, origin)?;
        if x.key.is_empty() || x.key.len() > 2048 || x.key.chars().any(char::is_control) {
            return Err(Error::invalid(
                "provider_key",
                "1 to 2048 bytes, no control characters",
            ));
        }
        if purpose == Purpose::SignVerify {
            return self.check_signing(&g, x, algorithm, ev).await.map(Some);
        }
        let res = g.call("describe", || g.provider().describe(&x.key)).await;
        ev.providers
            .push(call_record(&member(x), res.as_ref().map(|_| None)));
        let d = res.map_err(|e| {
            Error::invalid("provider_key", format!("cannot use this provider key: {e}"))
        })?;
        if !d.can_encrypt {
            return Err(Error::invalid(
                "provider_key",
                format!("{} says this key cannot encrypt now", x.provider),
            ));
        }
        Ok(None)
    }

    /// Checks a provider signing key: fetches its public key and has it sign a random
    /// digest as `algorithm`, verified here with that public key (so the key, the algorithm
    /// and the signature format all agree). Returns the public key (SPKI DER).
    async fn check_signing(
        &self,
        g: &crate::failover::Guarded,
        x: &ExternalKey,
        algorithm: Algorithm,
        ev: &mut AuditEvent,
    ) -> Result<Vec<u8>> {
        let unusable = |e: String| {
            Error::invalid("provider_key", format!("cannot use this provider key: {e}"))
        };
        let res = g
            .call("get-public-key", || g.provider().public_key(&x.key))
            .await;
        ev.providers
            .push(call_record(&member(x), res.as_ref().map(|_| None)));
        let spki = res.map_err(|e| unusable(e.to_string()))?;
        let probe = strongroom_crypto::rand::bytes(64)?;
        let input = strongroom_crypto::keys::SignInput::Message(&probe);
        let res = g
            .call("sign", || g.provider().sign(&x.key, algorithm, input))
            .await;
        ev.providers.push(call_record(
            &member(x),
            res.as_ref().map(|s| s.request_id.clone()),
        ));
        let signed = res.map_err(|e| unusable(e.to_string()))?;
        let ok = strongroom_crypto::keys::verify(algorithm, &spki, input, &signed.signature)
            .unwrap_or(false);
        if !ok {
            return Err(unusable(format!(
                "its signature does not verify as {algorithm} with its public key (another key type?)"
            )));
        }
        Ok(spki)
    }

    /// Signs through the key's provider, checking the signature with the key's public key
    /// before returning it. Messages of at most 4096 bytes go as they are (as AWS KMS takes
    /// them); longer ones, and digests, go as the digest.
    pub(crate) async fn external_sign(
        &self,
        key: &KeyRecord,
        spki: &[u8],
        algorithm: Algorithm,
        input: strongroom_crypto::keys::SignInput<'_>,
        ev: &mut AuditEvent,
    ) -> Result<Vec<u8>> {
        use strongroom_crypto::keys::SignInput;
        let digest;
        let input = match input {
            SignInput::Message(m) if m.len() > 4096 => {
                digest = strongroom_crypto::keys::signing_digest(algorithm, input)?.ok_or_else(
                    || Error::Internal("a signing algorithm without a digest".into()),
                )?;
                SignInput::Digest(&digest)
            }
            other => other,
        };
        let (x, g, path) = self.held_by(key)?;
        let res = g
            .call("sign", || g.provider().sign(&x.key, algorithm, input))
            .await;
        ev.providers.push(call_record(
            &member(x),
            res.as_ref().map(|s| s.request_id.clone()),
        ));
        let s = res.map_err(|e| provider_error(&path, Operation::Sign, e))?;
        let ok =
            strongroom_crypto::keys::verify(algorithm, spki, input, &s.signature).unwrap_or(false);
        if !ok {
            return Err(Error::Unavailable(format!(
                "provider {} returned a signature that does not verify with key {path}'s public key",
                x.provider
            )));
        }
        Ok(s.signature)
    }

    /// Generates the material of new key `id` inside provider `provider` (protection
    /// `hsm`) and returns the binding. The provider key is labelled `strongroom-<id>`.
    #[allow(clippy::too_many_arguments)] // the new key's facts, as check_external, plus its id
    pub(crate) async fn generate_at_provider(
        &self,
        provider: &str,
        id: &strongroom_crypto::KeyId,
        input: &CreateKeyInput,
        purpose: Purpose,
        algorithm: Algorithm,
        origin: KeyOrigin,
        ev: &mut AuditEvent,
    ) -> Result<(ExternalKey, Option<Vec<u8>>)> {
        let g = self.external_shape(provider, input, purpose, algorithm, origin)?;
        let x = ExternalKey {
            provider: provider.into(),
            key: format!("strongroom-{id}"),
        };
        let signing = purpose == Purpose::SignVerify;
        let res = if signing {
            g.call("create-key", || {
                g.provider().create_signing_key(&x.key, algorithm)
            })
            .await
        } else {
            g.call("create-key", || g.provider().create_key(&x.key))
                .await
        };
        ev.providers
            .push(call_record(&member(&x), res.as_ref().map(|_| None)));
        match res {
            Ok(_) => {}
            Err(ProviderError::Unsupported { operation, .. }) => {
                return Err(Error::invalid(
                    "provider",
                    format!(
                        "provider {provider:?} cannot generate this key ({operation}); protection hsm needs a pkcs11 provider (AES keys; signing keys ECDSA P-256/P-384 or RSA 2048 to 4096, PKCS#1 v1.5 or PSS), or bind an existing key with protection external"
                    ),
                ));
            }
            Err(e @ ProviderError::Unavailable { .. }) => {
                return Err(Error::Unavailable(e.to_string()));
            }
            Err(e) => {
                return Err(Error::invalid(
                    "provider",
                    format!("cannot generate the key: {e}"),
                ));
            }
        }
        // A signing key is checked as a bound one is: its public key, and a probe signature.
        let spki = if signing {
            Some(self.check_signing(&g, &x, algorithm, ev).await?)
        } else {
            None
        };
        Ok((x, spki))
    }

    /// The checks every provider-held key passes, and its provider.
    fn external_shape(
        &self,
        provider: &str,
        input: &CreateKeyInput,
        purpose: Purpose,
        algorithm: Algorithm,
        origin: KeyOrigin,
    ) -> Result<std::sync::Arc<crate::failover::Guarded>> {
        let signs = purpose == Purpose::SignVerify
            && strongroom_crypto::keys::signing_digest(
                algorithm,
                strongroom_crypto::keys::SignInput::Message(b""),
            )
            .is_ok_and(|d| d.is_some());
        if !(signs || purpose == Purpose::EncryptDecrypt && algorithm == Algorithm::Aes256Gcm) {
            return Err(Error::invalid(
                "purpose",
                "external keys are encrypt-decrypt keys (algorithm aes-256-gcm; the provider's own key type applies) or sign-verify keys of an ECDSA or RSA algorithm matching the provider key",
            ));
        }
        if origin != KeyOrigin::Generated {
            return Err(Error::invalid(
                "provider",
                "an external key's material is its provider's; nothing to import",
            ));
        }
        if input.exportable {
            return Err(Error::invalid(
                "exportable",
                "an external key's material never leaves its provider",
            ));
        }
        if input.rotation_period_secs.is_some() {
            return Err(Error::invalid(
                "rotation_period",
                "an external key rotates at its provider: create it, then set rotation_period with update-key (Strongroom sets the provider's schedule)",
            ));
        }
        let g = match self.providers.get(provider) {
            Some(g) if provider != SOFTWARE => g.clone(),
            _ => {
                let mut known: Vec<&str> = self
                    .providers
                    .keys()
                    .map(String::as_str)
                    .filter(|p| *p != SOFTWARE)
                    .collect();
                known.sort_unstable();
                return Err(Error::invalid(
                    "provider",
                    format!(
                        "no provider {provider:?} on this node (configured: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        };
        Ok(g)
    }

    /// A provider-held key's binding, its provider on this node, and its path for messages.
    fn held_by<'a>(
        &self,
        key: &'a KeyRecord,
    ) -> Result<(
        &'a ExternalKey,
        std::sync::Arc<crate::failover::Guarded>,
        String,
    )> {
        let x = key
            .external
            .as_ref()
            .ok_or_else(|| Error::Internal("an external operation on a software key".into()))?;
        let path = format!("{}/{}", key.ring, key.name);
        let g = self.providers.get(&x.provider).cloned().ok_or_else(|| {
            Error::Unavailable(format!(
                "key {path} is held by provider {:?}, which this node does not have",
                x.provider
            ))
        })?;
        Ok((x, g, path))
    }

    /// Destroys the provider's key of a key of protection `hsm` (made by Strongroom), when the
    /// key is deleted; keys bound with protection `external` belong to others and stay.
    pub(crate) async fn destroy_at_provider(
        &self,
        key: &KeyRecord,
        ev: &mut AuditEvent,
    ) -> Result<()> {
        if key.protection != strongroom_store::Protection::Hsm {
            return Ok(());
        }
        let (x, g, path) = self.held_by(key)?;
        let res = g
            .call("destroy-key", || g.provider().destroy_key(&x.key))
            .await;
        ev.providers
            .push(call_record(&member(x), res.as_ref().map(|_| None)));
        res.map_err(|e| match e {
            e @ ProviderError::Unavailable { .. } => Error::Unavailable(e.to_string()),
            e => provider_error(&path, Operation::ScheduledKeyDeletion, e),
        })
    }

    /// Sets (`Some`, seconds) or turns off the provider's own rotation of a provider-held key.
    pub(crate) async fn external_rotation(
        &self,
        key: &KeyRecord,
        period: Option<i64>,
        ev: &mut AuditEvent,
    ) -> Result<()> {
        let (x, g, path) = self.held_by(key)?;
        let period = period.map(|s| std::time::Duration::from_secs(s.max(0) as u64));
        let res = g
            .call("set-rotation-period", || {
                g.provider().set_rotation_period(&x.key, period)
            })
            .await;
        ev.providers
            .push(call_record(&member(x), res.as_ref().map(|_| None)));
        res.map_err(|e| match e {
            ProviderError::Unsupported { .. }
            | ProviderError::Config(_)
            | ProviderError::Refused { .. } => Error::invalid(
                "rotation_period",
                format!("key {path}'s provider cannot rotate it on this schedule: {e}"),
            ),
            e => provider_error(&path, Operation::UpdateKey, e),
        })
    }

    /// Encrypts through the key's provider; returns a suite `0x10` ciphertext.
    pub(crate) async fn external_seal(
        &self,
        key: &KeyRecord,
        version: u32,
        context: &EncryptionContext,
        plaintext: &[u8],
        op: Operation,
        ev: &mut AuditEvent,
    ) -> Result<Vec<u8>> {
        let (x, g, path) = self.held_by(key)?;
        let bound = bind(context, CONTEXT_KEY, &key.id.to_string())?;
        let res = g
            .call("wrap", || g.provider().wrap(&x.key, plaintext, &bound))
            .await;
        ev.providers.push(call_record(
            &member(x),
            res.as_ref().map(|w| w.request_id.clone()),
        ));
        let w = res.map_err(|e| provider_error(&path, op, e))?;
        if w.ciphertext.len() < 16 {
            return Err(Error::Unavailable(format!(
                "provider {} answered a wrapped form too short to be one",
                x.provider
            )));
        }
        Ok(ciphertext::seal_external(key.id, version, &w.ciphertext)?)
    }

    /// A data key generated at the key's provider (its own random source where it has one)
    /// and its suite `0x10` ciphertext.
    pub(crate) async fn external_generate(
        &self,
        key: &KeyRecord,
        version: u32,
        len: usize,
        context: &EncryptionContext,
        ev: &mut AuditEvent,
    ) -> Result<(Plaintext, Vec<u8>)> {
        let (x, g, path) = self.held_by(key)?;
        let bound = bind(context, CONTEXT_KEY, &key.id.to_string())?;
        let res = g
            .call("generate-data-key", || {
                g.provider().generate_data_key(&x.key, len, &bound)
            })
            .await;
        ev.providers.push(call_record(
            &member(x),
            res.as_ref().map(|(_, w)| w.request_id.clone()),
        ));
        let (u, w) = res.map_err(|e| provider_error(&path, Operation::GenerateDataKey, e))?;
        if w.ciphertext.len() < 16 || u.plaintext.len() != len {
            return Err(Error::Unavailable(format!(
                "provider {} answered a data key or wrapped form of the wrong size",
                x.provider
            )));
        }
        let ct = ciphertext::seal_external(key.id, version, &w.ciphertext)?;
        // Exposed to hand it back as the operation's data key.
        Ok((Plaintext::copy_from(u.plaintext.expose_secret()), ct))
    }

    /// Decrypts a suite `0x10` ciphertext through the key's provider.
    pub(crate) async fn external_open(
        &self,
        key: &KeyRecord,
        ct: &[u8],
        context: &EncryptionContext,
        op: Operation,
        ev: &mut AuditEvent,
    ) -> Result<Plaintext> {
        let (x, g, path) = self.held_by(key)?;
        let body = ciphertext::external_body(ct)?;
        let bound = bind(context, CONTEXT_KEY, &key.id.to_string())?;
        let res = g
            .call("unwrap", || g.provider().unwrap(&x.key, body, &bound))
            .await;
        ev.providers.push(call_record(
            &member(x),
            res.as_ref().map(|u| u.request_id.clone()),
        ));
        let u = res.map_err(|e| provider_error(&path, op, e))?;
        // Exposed to hand it back as the operation's plaintext.
        Ok(Plaintext::copy_from(u.plaintext.expose_secret()))
    }
}
