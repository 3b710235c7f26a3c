//! Bring your own key: keys created for import take their material from their owner,
//! wrapped to a fresh RSA key Strongroom hands out with a single-use import token (AWS
//! GetParametersForImport / ImportKeyMaterial / DeleteImportedKeyMaterial). Guide:
//! `docs/aws-compatibility.md`, "Importing key material".

use std::sync::Arc;

use base64::Engine;
use strongroom_audit::AuditEvent;
use strongroom_crypto::import::{self as unwrap, ImportWrapping};
use strongroom_crypto::{Algorithm, KeyId, KeyMaterial, RsaBits, hash, keys, rand};
use strongroom_store::{
    ImportTokenRecord, KeyOrigin, KeyRecord, KeyState, StoreError, Timestamp, VersionOrigin,
    VersionRecord, VersionState,
};

use crate::error::{Error, Result};
use crate::lifecycle::require_live;
use crate::request::{BearerToken, Operation, RequestContext};
use crate::service::{KeyService, binding, note_key};
use crate::types::{KeyIdentity, KeyRef};

/// How long import parameters stay usable (as AWS).
pub const IMPORT_TOKEN_TTL_SECS: i64 = 24 * 3600;
/// How far ahead imported material may be set to expire (as AWS: 365 days).
pub const MAX_MATERIAL_LIFETIME_SECS: i64 = 365 * 24 * 3600;
const TOKEN_PREFIX: &str = "srit_";

/// What `get_import_parameters` returns: the wrapping public key and the token.
#[derive(Debug)]
pub struct ImportParameters {
    /// The key the material is for.
    pub key: KeyIdentity,
    /// The RSA wrapping public key (SubjectPublicKeyInfo DER).
    pub public_key: Vec<u8>,
    /// The single-use import token.
    pub token: BearerToken,
    /// Until when the token may be used.
    pub expires_at: Timestamp,
}

fn require_imported(k: &KeyRecord, op: Operation) -> Result<()> {
    if k.origin != KeyOrigin::Imported {
        return Err(Error::InvalidState {
            resource: format!("key {}/{}", k.ring, k.name),
            state: "generated",
            operation: op.as_str(),
            requirement: "needs a key created for import",
        });
    }
    Ok(())
}

fn token_binding(id: &str) -> Vec<u8> {
    let mut b = b"import-token\0".to_vec();
    b.extend_from_slice(id.as_bytes());
    b
}

/// The store setting that remembers which material a key was first given, so that only the
/// same material can be imported again.
fn fingerprint_meta(k: &KeyRecord) -> String {
    format!("import-fingerprint/{}", k.id)
}

fn fingerprint(k: &KeyRecord, material: &KeyMaterial) -> [u8; 32] {
    let mut b = b"strongroom import fingerprint\0".to_vec();
    b.extend_from_slice(k.id.as_bytes());
    // Exposed to fingerprint it; only the SHA-256 is kept.
    b.extend_from_slice(material.expose_secret());
    let h = hash::sha256(&b);
    zeroize::Zeroize::zeroize(&mut b);
    h
}

impl KeyService {
    /// Makes a fresh RSA wrapping key pair and a single-use import token for a key created
    /// for import (`import-key-material`). Valid for 24 hours.
    pub async fn get_import_parameters(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        wrapping: ImportWrapping,
        bits: RsaBits,
    ) -> Result<ImportParameters> {
        let mut ev = self.event(ctx, Operation::GetImportParameters);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "import-key-material", key, None)
                .await?;
            require_imported(&k, Operation::GetImportParameters)?;
            require_live(&k, Operation::GetImportParameters)?;
            let alg = Algorithm::RsaOaep(bits);
            let private = tokio::task::block_in_place(|| keys::generate(alg))?;
            let public_key = keys::public_key_der(alg, &private)?;
            let id = format!("imp_{}", hex(&rand::bytes(12)?));
            let token = BearerToken::new(format!(
                "{TOKEN_PREFIX}{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::bytes(32)?)
            ));
            let expires_at = self.clock.now().plus_secs(IMPORT_TOKEN_TTL_SECS);
            let rec = ImportTokenRecord {
                // Exposed to seal it: the wrapping private key reaches the store only sealed.
                sealed_private: self
                    .root
                    .seal(&token_binding(&id), private.expose_secret())?,
                id: id.clone(),
                key_id: k.id,
                // Exposed to hash it; only the hash is stored.
                token_hash: hash::sha256(token.expose_secret().as_bytes()).to_vec(),
                wrapping: wrapping.as_str().into(),
                wrapping_algorithm: alg,
                expires_at,
                used_at: None,
            };
            ev.target = Some(id);
            self.audit_before_commit(&mut ev).await?;
            self.store.insert_import_token(&rec).await?;
            Ok(ImportParameters {
                key: KeyIdentity::from(&*k),
                public_key,
                token,
                expires_at,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Imports wrapped material into a key waiting for it (`pending_import`) with an unused,
    /// unexpired import token made for that key. The first import fixes the material: later
    /// imports (after `delete_imported_key_material`) must bring the same. The token is
    /// spent once it has unwrapped valid material, even if storing then fails (ask for new
    /// parameters then).
    ///
    /// With `expires_at` (later than now, at most 365 days ahead) the material is deleted
    /// then, as `delete_imported_key_material` would, and the key is unusable from that
    /// moment even before the scheduler runs; without it the material does not expire.
    pub async fn import_key_material(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        token: &BearerToken,
        wrapped: &[u8],
        expires_at: Option<Timestamp>,
    ) -> Result<KeyRecord> {
        let mut ev = self.event(ctx, Operation::ImportKeyMaterial);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "import-key-material", key, None)
                .await?;
            require_imported(&k, Operation::ImportKeyMaterial)?;
            require_live(&k, Operation::ImportKeyMaterial)?;
            if k.state != KeyState::PendingImport {
                return Err(Error::InvalidState {
                    resource: format!("key {}/{}", k.ring, k.name),
                    state: k.state.as_str(),
                    operation: Operation::ImportKeyMaterial.as_str(),
                    requirement: "needs it pending_import (delete its material first)",
                });
            }
            if wrapped.is_empty() || wrapped.len() > 8192 {
                return Err(Error::invalid("key_material", "must be 1 to 8192 bytes"));
            }
            if let Some(t) = expires_at {
                let now = self.clock.now();
                if t <= now || t > now.plus_secs(MAX_MATERIAL_LIFETIME_SECS) {
                    return Err(Error::invalid(
                        "valid_to",
                        "must be in the future and at most 365 days from now",
                    ));
                }
            }
            // Exposed to hash it for lookup; the stored hash is compared in constant time.
            let h = hash::sha256(token.expose_secret().as_bytes());
            let t = self
                .store
                .import_token_by_hash(&h)
                .await?
                .filter(|t| hash::constant_time_eq(&t.token_hash, &h) && t.key_id == k.id)
                .ok_or_else(|| {
                    Error::invalid("import_token", "is not an import token for this key")
                })?;
            ev.target = Some(t.id.clone());
            if t.used_at.is_some() {
                return Err(Error::invalid("import_token", "was already used"));
            }
            if t.expires_at <= self.clock.now() {
                return Err(Error::invalid("import_token", "has expired"));
            }
            let wrapping = ImportWrapping::parse(&t.wrapping)
                .ok_or_else(|| Error::Internal("unknown import wrapping".into()))?;
            let private = self
                .root
                .unseal(&token_binding(&t.id), &t.sealed_private)
                .map_err(|_| {
                    Error::Internal("sealed wrapping key failed its integrity check".into())
                })?;
            let material = tokio::task::block_in_place(|| {
                unwrap::unwrap(wrapping, t.wrapping_algorithm, &private, wrapped)
            })?;
            keys::validate(k.algorithm, &material).map_err(|_| {
                Error::invalid(
                    "key_material",
                    format!("does not fit the key's algorithm {}", k.algorithm),
                )
            })?;
            let fp = fingerprint(&k, &material);
            if let Some(first) = self.store.meta(&fingerprint_meta(&k)).await?
                && !hash::constant_time_eq(&first, &fp)
            {
                return Err(Error::invalid(
                    "key_material",
                    "is not the material first imported into this key",
                ));
            }
            match self.store.use_import_token(&t.id, self.clock.now()).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    return Err(Error::invalid("import_token", "was already used"));
                }
                Err(e) => return Err(e.into()),
            }
            let public_key = if k.algorithm.is_asymmetric() {
                Some(keys::public_key_der(k.algorithm, &material)?)
            } else {
                None
            };
            let v1 = VersionRecord {
                key_id: k.id,
                version: 1,
                state: VersionState::Enabled,
                origin: VersionOrigin::Import,
                // Exposed to seal it: the only way material reaches the store.
                sealed_material: Some(self.root.seal(&binding(&k, 1), material.expose_secret())?),
                public_key,
                created_at: self.clock.now(),
                destroy_time: None,
                destroyed_at: None,
            };
            let next = KeyRecord {
                state: KeyState::Enabled,
                primary_version: Some(1),
                version_count: 1,
                material_expires_at: expires_at,
                ..KeyRecord::clone(&k)
            };
            ev.version = Some(1);
            let done = self.write_key(&mut ev, &k, next, &[v1]).await?;
            self.store
                .put_meta_if_absent(&fingerprint_meta(&k), &fp)
                .await?;
            Ok(done)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Deletes a key's imported material (`delete-imported-key-material`): the key waits for
    /// the same material again (`pending_import`); ciphertexts made under it decrypt again
    /// once it is re-imported.
    pub async fn delete_imported_key_material(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
    ) -> Result<KeyRecord> {
        let mut ev = self.event(ctx, Operation::DeleteImportedKeyMaterial);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(
                    &who,
                    ctx,
                    &mut ev,
                    "delete-imported-key-material",
                    key,
                    None,
                )
                .await?;
            require_imported(&k, Operation::DeleteImportedKeyMaterial)?;
            require_live(&k, Operation::DeleteImportedKeyMaterial)?;
            if k.state == KeyState::PendingImport {
                return Ok(Arc::unwrap_or_clone(k));
            }
            self.wipe_imported_material(&mut ev, &k).await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Deletes a key's imported material: the version keeps its number and public key, the
    /// key waits for the same material again.
    async fn wipe_imported_material(
        &self,
        ev: &mut AuditEvent,
        k: &KeyRecord,
    ) -> Result<KeyRecord> {
        let v1 = self.version_record(k, 1).await?;
        let wiped = VersionRecord {
            sealed_material: None,
            ..Arc::unwrap_or_clone(v1)
        };
        let next = KeyRecord {
            state: KeyState::PendingImport,
            material_expires_at: None,
            ..k.clone()
        };
        ev.version = Some(1);
        let done = self.write_key(ev, k, next, &[wiped]).await?;
        self.forget(k.id, 1);
        Ok(done)
    }

    /// The scheduler's job for a key whose imported material is due to expire: deletes it.
    /// `false` when there was nothing to do (the key changed since it was listed).
    pub(crate) async fn expire_imported_material(
        &self,
        ev: &mut AuditEvent,
        id: KeyId,
        now: Timestamp,
    ) -> Result<bool> {
        let Some(k) = self.store.key_by_id(id).await? else {
            return Ok(false);
        };
        note_key(ev, &k);
        let due = k.material_expires_at.is_some_and(|t| t <= now);
        if !due || !matches!(k.state, KeyState::Enabled | KeyState::Disabled) {
            return Ok(false);
        }
        self.wipe_imported_material(ev, &k).await?;
        Ok(true)
    }
}

use strongroom_crypto::hash::hex;
