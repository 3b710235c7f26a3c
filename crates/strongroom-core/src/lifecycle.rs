//! Management operations: key rings, keys, versions, aliases, and the scheduled jobs.

use std::sync::Arc;

use strongroom_audit::AuditEvent;
use strongroom_crypto::{KeyId, Purpose};
use strongroom_store::{
    AliasName, AliasRecord, AliasWrite, KeyName, KeyOrigin, KeyRecord, KeyRingRecord, KeyState,
    Page, PageRequest, Protection, RingName, StoreError, Timestamp, VersionOrigin, VersionRecord,
    VersionState,
};

use crate::error::{Error, Result};
use crate::request::{Operation, Protocol, RequestContext};
use crate::service::{KeyService, note_key};
use crate::states::{self, VersionAction};
use crate::types::*;

/// An alias and the key it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasInfo {
    /// The alias.
    pub name: AliasName,
    /// The key.
    pub key: KeyIdentity,
    /// Creation time.
    pub created_at: strongroom_store::Timestamp,
    /// Last re-point.
    pub updated_at: strongroom_store::Timestamp,
}

/// What one run of the scheduled jobs did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Keys rotated.
    pub rotated: u32,
    /// Versions destroyed.
    pub destroyed: u32,
    /// Keys deleted.
    pub deleted: u32,
    /// Keys whose imported material expired and was deleted.
    pub expired: u32,
    /// Jobs that failed (logged and audited; retried on the next run).
    pub failed: u32,
}

/// How often a version change re-reads the key after losing a race before giving up with
/// `conflict`.
const MAX_CONFLICT_RETRIES: u32 = 16;

fn validate_rotation(purpose: Purpose, period: Option<i64>) -> Result<()> {
    let Some(p) = period else { return Ok(()) };
    if purpose != Purpose::EncryptDecrypt {
        return Err(Error::invalid(
            "rotation_period",
            "automatic rotation is only for encrypt-decrypt keys (rotating a public key silently breaks its users); create versions by hand",
        ));
    }
    if !(MIN_ROTATION_PERIOD_SECS..=MAX_ROTATION_PERIOD_SECS).contains(&p) {
        return Err(Error::invalid(
            "rotation_period",
            "must be between 1d and 36500d",
        ));
    }
    Ok(())
}

/// Refuses to use or change a key whose deletion is scheduled (cancel it first) or done.
pub(crate) fn require_live(k: &KeyRecord, op: Operation) -> Result<()> {
    let requirement = match k.state {
        KeyState::Enabled | KeyState::Disabled | KeyState::PendingImport => return Ok(()),
        KeyState::DeletionScheduled => "needs its deletion cancelled first",
        KeyState::Deleted => "cannot be done: the key is deleted",
    };
    Err(Error::InvalidState {
        resource: format!("key {}/{}", k.ring, k.name),
        state: k.state.as_str(),
        operation: op.as_str(),
        requirement,
    })
}

/// Refuses what needs key material on a key whose imported material is not there.
pub(crate) fn require_material(k: &KeyRecord, op: Operation) -> Result<()> {
    if k.state == KeyState::PendingImport {
        return Err(Error::InvalidState {
            resource: format!("key {}/{}", k.ring, k.name),
            state: k.state.as_str(),
            operation: op.as_str(),
            requirement: "needs its material imported first",
        });
    }
    Ok(())
}

impl KeyService {
    /// Schedules the deletion of a whole key, `window_secs` from now (1 to 120 days; 30 by
    /// default). Until then the key cannot be used or changed, and the deletion can be
    /// cancelled; at that time every version's material is wiped and its aliases removed.
    pub async fn schedule_key_deletion(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        window_secs: Option<i64>,
    ) -> Result<KeyRecord> {
        let mut ev = self.event(ctx, Operation::ScheduleKeyDeletion);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "schedule-key-deletion", key, None)
                .await?;
            let w = window_secs.unwrap_or(DEFAULT_DESTROY_WINDOW_SECS);
            if !(MIN_DESTROY_WINDOW_SECS..=MAX_DESTROY_WINDOW_SECS).contains(&w) {
                return Err(Error::invalid("window", "must be between 1d and 120d"));
            }
            let at = self.clock.now().plus_secs(w);
            self.modify_key(&mut ev, k, |k| {
                require_live(k, Operation::ScheduleKeyDeletion)?;
                Ok(Some(KeyRecord {
                    state: KeyState::DeletionScheduled,
                    deletion_time: Some(at),
                    ..k.clone()
                }))
            })
            .await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Cancels a scheduled deletion; the key comes back disabled (enable it to use it), as
    /// AWS KMS's CancelKeyDeletion does.
    pub async fn cancel_key_deletion(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
    ) -> Result<KeyRecord> {
        let mut ev = self.event(ctx, Operation::CancelKeyDeletion);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "cancel-key-deletion", key, None)
                .await?;
            self.modify_key(&mut ev, k, |k| {
                if k.state != KeyState::DeletionScheduled {
                    return Err(Error::InvalidState {
                        resource: format!("key {}/{}", k.ring, k.name),
                        state: k.state.as_str(),
                        operation: Operation::CancelKeyDeletion.as_str(),
                        requirement: "needs it deletion_scheduled",
                    });
                }
                Ok(Some(KeyRecord {
                    state: KeyState::Disabled,
                    deletion_time: None,
                    ..k.clone()
                }))
            })
            .await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Deletes a key whose deletion is due: removes its aliases, then wipes every version's
    /// material and stops its rotation in one write. A crash between the two leaves the key
    /// scheduled (and refusing everything) without aliases; the next run finishes it.
    async fn delete_key_now(&self, ev: &mut AuditEvent, id: KeyId, now: Timestamp) -> Result<bool> {
        let Some(mut k) = self.store.key_by_id(id).await? else {
            return Ok(false);
        };
        note_key(ev, &k);
        if k.state != KeyState::DeletionScheduled || k.deletion_time.is_none_or(|t| t > now) {
            return Ok(false);
        }
        // The event goes first: no alias disappears without it (fail closed).
        self.audit_before_commit(ev).await?;
        // Material Strongroom made in an HSM goes with the key; if the HSM cannot destroy
        // it now, the key stays scheduled and the next run tries again.
        self.destroy_at_provider(&k, ev).await?;
        self.remove_aliases_of(&k).await?;
        let mut attempt = 0;
        loop {
            if k.state != KeyState::DeletionScheduled || k.deletion_time.is_none_or(|t| t > now) {
                return Ok(false);
            }
            let mut versions = Vec::new();
            let mut after = None;
            loop {
                let p = self
                    .store
                    .list_versions(k.id, &PageRequest { after, limit: 1000 })
                    .await?;
                versions.extend(p.items);
                match p.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            let wiped: Vec<VersionRecord> = versions
                .into_iter()
                .filter(|v| v.state != VersionState::Destroyed)
                .map(|v| VersionRecord {
                    state: VersionState::Destroyed,
                    sealed_material: None,
                    destroy_time: v.destroy_time.or(Some(now)),
                    destroyed_at: Some(now),
                    ..v
                })
                .collect();
            let next = KeyRecord {
                state: KeyState::Deleted,
                primary_version: None,
                rotation_period_secs: None,
                next_rotation_time: None,
                ..KeyRecord::clone(&k)
            };
            match self.write_key(ev, &k, next, &wiped).await {
                Err(Error::Conflict(_)) if attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    k = self.reread(&k).await?;
                }
                Err(e) => return Err(e),
                Ok(done) => {
                    for v in &wiped {
                        self.forget(done.id, v.version);
                    }
                    return Ok(true);
                }
            }
        }
    }

    /// Removes every alias of a deleted key.
    async fn remove_aliases_of(&self, k: &KeyRecord) -> Result<()> {
        loop {
            let p = self
                .store
                .list_aliases(
                    Some(k.id),
                    &PageRequest {
                        after: None,
                        limit: 1000,
                    },
                )
                .await?;
            if p.items.is_empty() {
                return Ok(());
            }
            for a in p.items {
                match self.store.delete_alias(&a.name).await {
                    Ok(()) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    /// Creates a key ring.
    pub async fn create_key_ring(
        &self,
        ctx: &RequestContext,
        input: CreateKeyRingInput,
    ) -> Result<KeyRingRecord> {
        let mut ev = self.event(ctx, Operation::CreateKeyRing);
        ev.key_ring = Some(input.name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "create-key-ring")?;
            if input.name.as_str() == "alias" {
                return Err(Error::invalid(
                    "name",
                    "`alias` is reserved (alias/<name> refers to aliases)",
                ));
            }
            validate_description(&input.description)?;
            validate_labels(&input.labels, "labels")?;
            let ring = KeyRingRecord {
                name: input.name,
                description: input.description,
                labels: input.labels,
                created_at: self.clock.now(),
            };
            // Checked here as well as by the store's unique index, so the common refusal
            // does not write an event ahead of a commit that cannot happen.
            if self.store.key_ring(&ring.name).await?.is_some() {
                return Err(Error::AlreadyExists {
                    kind: "key ring",
                    name: ring.name.to_string(),
                });
            }
            self.audit_before_commit(&mut ev).await?;
            self.store
                .create_key_ring(&ring)
                .await
                .map_err(|e| match e {
                    StoreError::AlreadyExists(_) => Error::AlreadyExists {
                        kind: "key ring",
                        name: ring.name.to_string(),
                    },
                    e => e.into(),
                })?;
            Ok(ring)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Reads a key ring.
    pub async fn get_key_ring(
        &self,
        ctx: &RequestContext,
        name: &RingName,
    ) -> Result<KeyRingRecord> {
        let mut ev = self.event(ctx, Operation::GetKeyRing);
        ev.key_ring = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let res = self.ring_resource(name).await?;
            self.permit(&who, ctx, &mut ev, "get-key-ring", &res, None)?;
            self.store
                .key_ring(name)
                .await?
                .map(Arc::unwrap_or_clone)
                .ok_or_else(|| Error::not_found("key ring", name.to_string()))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Lists key rings.
    pub async fn list_key_rings(
        &self,
        ctx: &RequestContext,
        page: &PageRequest,
    ) -> Result<Page<KeyRingRecord>> {
        let mut ev = self.event(ctx, Operation::ListKeyRings);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "list-key-rings")?;
            Ok(self.store.list_key_rings(page).await?)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Creates a key with its first version, which becomes primary.
    pub async fn create_key(
        &self,
        ctx: &RequestContext,
        input: CreateKeyInput,
    ) -> Result<(KeyRecord, VersionInfo)> {
        let (k, v) = self.create_key_as(ctx, input, KeyOrigin::Generated).await?;
        let v = v.ok_or_else(|| Error::Internal("a generated key without a version".into()))?;
        Ok((k, v))
    }

    /// Creates a key whose material its owner will import (bring your own key): no version
    /// yet, state `pending_import` until `import_key_material`. No automatic rotation.
    pub async fn create_key_for_import(
        &self,
        ctx: &RequestContext,
        input: CreateKeyInput,
    ) -> Result<KeyRecord> {
        if input.rotation_period_secs.is_some() {
            return Err(Error::invalid(
                "rotation_period",
                "imported keys do not rotate automatically",
            ));
        }
        Ok(self.create_key_as(ctx, input, KeyOrigin::Imported).await?.0)
    }

    async fn create_key_as(
        &self,
        ctx: &RequestContext,
        input: CreateKeyInput,
        origin: KeyOrigin,
    ) -> Result<(KeyRecord, Option<VersionInfo>)> {
        let mut ev = self.event(ctx, Operation::CreateKey);
        ev.key_ring = Some(input.ring.to_string());
        ev.key = input.name.as_ref().map(|n| n.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let res = self.ring_resource(&input.ring).await?;
            self.permit(&who, ctx, &mut ev, "create-key", &res, None)?;
            let (purpose, algorithm) = match (input.purpose, input.algorithm) {
                (None, None) => (
                    Purpose::EncryptDecrypt,
                    Purpose::EncryptDecrypt.default_algorithm(),
                ),
                (Some(p), None) => (p, p.default_algorithm()),
                (None, Some(a)) => (a.purpose(), a),
                (Some(p), Some(a)) if a.purpose() == p => (p, a),
                (Some(p), Some(a)) => {
                    return Err(Error::invalid(
                        "algorithm",
                        format!("{a} is an algorithm for purpose {}, not {p}", a.purpose()),
                    ));
                }
            };
            validate_description(&input.description)?;
            validate_labels(&input.labels, "labels")?;
            validate_rotation(purpose, input.rotation_period_secs)?;
            if input.next_rotation_time.is_some() && input.rotation_period_secs.is_none() {
                return Err(Error::invalid(
                    "next_rotation_time",
                    "needs rotation_period",
                ));
            }
            if input
                .next_rotation_time
                .is_some_and(|t| t.0 < self.clock.now().0 - 60)
            {
                return Err(Error::invalid("next_rotation_time", "is in the past"));
            }
            if self.store.key_ring(&input.ring).await?.is_none() {
                return Err(Error::not_found("key ring", input.ring.to_string()));
            }
            if input.external.is_some() && input.hsm.is_some() {
                return Err(Error::invalid(
                    "protection",
                    "a key is either bound to an existing provider key (external) or generated in one (hsm)",
                ));
            }
            let mut external_public_key = match &input.external {
                Some(x) => {
                    self.check_external(x, &input, purpose, algorithm, origin, &mut ev)
                        .await?
                }
                None => None,
            };
            let now = self.clock.now();
            let id = KeyId::generate()?;
            // The name must be free before material is made inside an HSM.
            if let (Some(_), Some(n)) = (&input.hsm, &input.name)
                && self.store.key(&input.ring, n).await?.is_some()
            {
                return Err(Error::AlreadyExists {
                    kind: "key",
                    name: format!("{}/{}", input.ring, n),
                });
            }
            let (protection, external) = match (&input.hsm, input.external.clone()) {
                (Some(p), _) => {
                    let (x, spki) = self
                        .generate_at_provider(p, &id, &input, purpose, algorithm, origin, &mut ev)
                        .await?;
                    external_public_key = spki;
                    (Protection::Hsm, Some(x))
                }

                (None, Some(x)) => (Protection::External, Some(x)),
                (None, None) => (Protection::Software, None),
            };
            let name = match input.name {
                Some(n) => n,
                // Invariant: a key id's text (a UUID) is a valid key name.
                None => KeyName::try_new(&id.to_string())
                    .map_err(|_| Error::Internal("a key id is not a valid key name".into()))?,
            };
            ev.key = Some(name.to_string());
            let key = KeyRecord {
                id,
                ring: input.ring,
                name,
                purpose,
                algorithm,
                protection,
                external,
                origin,
                exportable: input.exportable,
                description: input.description,
                labels: input.labels,
                state: match origin {
                    KeyOrigin::Generated => KeyState::Enabled,
                    KeyOrigin::Imported => KeyState::PendingImport,
                },
                primary_version: (origin == KeyOrigin::Generated).then_some(1),
                version_count: u32::from(origin == KeyOrigin::Generated),
                rotation_period_secs: input.rotation_period_secs,
                next_rotation_time: input
                    .rotation_period_secs
                    .map(|p| input.next_rotation_time.unwrap_or(now.plus_secs(p))),
                deletion_time: None,
                material_expires_at: None,
                created_at: now,
                updated_at: now,
                revision: 1,
            };
            ev.key_id = Some(key.id.to_string());
            let v1 = match origin {
                // The material is the provider's: version 1 holds none here.
                KeyOrigin::Generated if key.external.is_some() => {
                    ev.version = Some(1);
                    Some(VersionRecord {
                        key_id: key.id,
                        version: 1,
                        state: VersionState::Enabled,
                        origin: VersionOrigin::Creation,
                        sealed_material: None,
                        public_key: external_public_key.clone(),
                        created_at: now,
                        destroy_time: None,
                        destroyed_at: None,
                    })
                }
                KeyOrigin::Generated => {
                    ev.version = Some(1);
                    // Key generation (RSA especially) is CPU-heavy: keep it off the async workers.
                    Some(tokio::task::block_in_place(|| {
                        self.new_version(&key, 1, VersionOrigin::Creation)
                    })?)
                }
                KeyOrigin::Imported => None,
            };
            if self.store.key(&key.ring, &key.name).await?.is_some() {
                return Err(Error::AlreadyExists {
                    kind: "key",
                    name: format!("{}/{}", key.ring, key.name),
                });
            }
            self.audit_before_commit(&mut ev).await?;
            self.store
                .create_key(&key, v1.as_slice())
                .await
                .map_err(|e| match e {
                    StoreError::AlreadyExists(_) => Error::AlreadyExists {
                        kind: "key",
                        name: format!("{}/{}", key.ring, key.name),
                    },
                    StoreError::NotFound(_) => Error::not_found("key ring", key.ring.to_string()),
                    e => e.into(),
                })?;
            Ok((key, v1.as_ref().map(VersionInfo::from)))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Reads a key.
    pub async fn get_key(&self, ctx: &RequestContext, key: &KeyRef) -> Result<KeyRecord> {
        let mut ev = self.event(ctx, Operation::GetKey);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.resolve_checked(&who, ctx, &mut ev, "get-key", key, None)
                .await
                .map(Arc::unwrap_or_clone)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Lists a ring's keys that match `filter`, by name.
    pub async fn list_keys(
        &self,
        ctx: &RequestContext,
        ring: &RingName,
        filter: &KeyFilter,
        page: &PageRequest,
    ) -> Result<Page<KeyRecord>> {
        let mut ev = self.event(ctx, Operation::ListKeys);
        ev.key_ring = Some(ring.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let res = self.ring_resource(ring).await?;
            self.permit(&who, ctx, &mut ev, "list-keys", &res, None)?;
            if self.store.key_ring(ring).await?.is_none() {
                return Err(Error::not_found("key ring", ring.to_string()));
            }
            let want = if page.limit == 0 {
                100
            } else {
                page.limit.min(1000)
            } as usize;
            let matches = |k: &KeyRecord| {
                filter
                    .labels
                    .iter()
                    .all(|(lk, lv)| k.labels.get(lk) == Some(lv))
                    && filter.state.is_none_or(|s| s == k.state)
                    && filter.purpose.is_none_or(|p| p == k.purpose)
            };
            let mut items = Vec::new();
            let mut cursor = page.after.clone();
            loop {
                let p = self
                    .store
                    .list_keys(
                        ring,
                        &PageRequest {
                            after: cursor.clone(),
                            limit: 1000,
                        },
                    )
                    .await?;
                for k in p.items {
                    if matches(&k) {
                        items.push(k);
                        if items.len() == want {
                            let next = items.last().map(|k| k.name.to_string());
                            return Ok(Page { items, next });
                        }
                    }
                }
                match p.next {
                    Some(n) => cursor = Some(n),
                    None => return Ok(Page { items, next: None }),
                }
            }
        }
        .await;
        self.finish(ev, res).await
    }

    /// Lists every key, across key rings, by id: the AWS API's view of one account. Needs
    /// `list-key-rings`; keys of rings where the caller may not `list-keys` are left out.
    /// The page cursor is the last key id of the previous page.
    pub async fn list_all_keys(
        &self,
        ctx: &RequestContext,
        page: &PageRequest,
    ) -> Result<Page<KeyRecord>> {
        let mut ev = self.event(ctx, Operation::ListKeys);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "list-key-rings")?;
            if let Some(a) = &page.after
                && a.parse::<KeyId>().is_err()
            {
                return Err(Error::invalid(
                    "page_token",
                    "not a page token from this listing",
                ));
            }
            let want = if page.limit == 0 {
                100
            } else {
                page.limit.min(1000)
            } as usize;
            let mut allowed: std::collections::HashMap<RingName, bool> = Default::default();
            let mut items = Vec::new();
            let mut cursor = page.after.clone();
            loop {
                let p = self
                    .store
                    .list_all_keys(&PageRequest {
                        after: cursor.clone(),
                        limit: 1000,
                    })
                    .await?;
                // Deleted keys are gone as far as the AWS view is concerned.
                for k in p.items.into_iter().filter(|k| k.state != KeyState::Deleted) {
                    let ok = match allowed.get(&k.ring) {
                        Some(ok) => *ok,
                        None => {
                            let res = self.ring_resource(&k.ring).await?;
                            let ok = self
                                .permit(&who, ctx, &mut ev, "list-keys", &res, None)
                                .is_ok();
                            allowed.insert(k.ring.clone(), ok);
                            ok
                        }
                    };
                    if ok {
                        items.push(k);
                        if items.len() == want {
                            let next = items.last().map(|k| k.id.to_string());
                            return Ok(Page { items, next });
                        }
                    }
                }
                match p.next {
                    Some(n) => cursor = Some(n),
                    None => return Ok(Page { items, next: None }),
                }
            }
        }
        .await;
        self.finish(ev, res).await
    }

    /// Writes a key update with optimistic concurrency.
    pub(crate) async fn write_key(
        &self,
        ev: &mut AuditEvent,
        before: &KeyRecord,
        mut after: KeyRecord,
        versions: &[VersionRecord],
    ) -> Result<KeyRecord> {
        after.revision = before.revision + 1;
        after.updated_at = self.clock.now();
        self.audit_before_commit(ev).await?;
        self.store
            .update_key(before.revision, &after, versions)
            .await
            .map_err(|e| match e {
                StoreError::Conflict => Error::Conflict(format!(
                    "key {}/{} was modified concurrently; retry",
                    before.ring, before.name
                )),
                e => e.into(),
            })?;
        Ok(after)
    }

    /// Changes a key's description, labels, rotation schedule or exportability.
    pub async fn update_key(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        input: UpdateKeyInput,
    ) -> Result<KeyRecord> {
        let mut ev = self.event(ctx, Operation::UpdateKey);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "update-key", key, None)
                .await?;
            // A provider-held key's schedule is the provider's: set it there first.
            if let (Some(_), Some(p)) = (&k.external, input.rotation_period_secs)
                && p != k.rotation_period_secs
            {
                require_live(&k, Operation::UpdateKey)?;
                validate_rotation(k.purpose, p)?;
                self.external_rotation(&k, p, &mut ev).await?;
            }
            self.modify_key(&mut ev, k, |k| {
                require_live(k, Operation::UpdateKey)?;
                let input = input.clone();
                let mut next = k.clone();
                if let Some(d) = input.description {
                    validate_description(&d)?;
                    next.description = d;
                }
                if let Some(l) = input.labels {
                    next.labels = l;
                }
                next.labels.extend(input.set_labels);
                for r in &input.remove_labels {
                    next.labels.remove(r);
                }
                if next.labels != k.labels {
                    validate_labels(&next.labels, "labels")?;
                }
                if let Some(p) = input.rotation_period_secs {
                    validate_rotation(k.purpose, p)?;
                    if p.is_some() && k.origin == KeyOrigin::Imported {
                        return Err(Error::invalid(
                            "rotation_period",
                            "imported keys do not rotate automatically",
                        ));
                    }
                    next.rotation_period_secs = p;
                    // The provider rotates a provider-held key; Strongroom's scheduler does not.
                    next.next_rotation_time = match k.external {
                        Some(_) => None,
                        None => p.map(|p| self.clock.now().plus_secs(p)),
                    };
                }
                if input.next_rotation_time.is_some() && k.external.is_some() {
                    return Err(Error::invalid(
                        "next_rotation_time",
                        "a provider-held key rotates when its provider says",
                    ));
                }
                if let Some(t) = input.next_rotation_time {
                    if t.0 < self.clock.now().0 - 60 {
                        return Err(Error::invalid("next_rotation_time", "is in the past"));
                    }
                    if next.rotation_period_secs.is_none() {
                        return Err(Error::invalid(
                            "next_rotation_time",
                            "needs rotation_period",
                        ));
                    }
                    next.next_rotation_time = Some(t);
                }
                if let Some(x) = input.exportable {
                    if x && !k.exportable {
                        return Err(Error::invalid(
                            "exportable",
                            "can only be changed from true to false",
                        ));
                    }
                    next.exportable = x;
                }
                Ok((next != *k).then_some(next))
            })
            .await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Enables or disables a key as a whole, in Strongroom only (a provider-held key's
    /// provider key is untouched: it may have other users).
    pub async fn set_key_enabled(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        enabled: bool,
    ) -> Result<KeyRecord> {
        self.set_key_enabled_at(ctx, key, enabled, false).await
    }

    /// Enables or disables a key as a whole; with `at_provider`, a provider-held key's
    /// provider key too (first: if the provider refuses, Strongroom changes nothing). See
    /// `docs/providers.md` for what each provider switches.
    pub async fn set_key_enabled_at(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        enabled: bool,
        at_provider: bool,
    ) -> Result<KeyRecord> {
        let op = if enabled {
            Operation::EnableKey
        } else {
            Operation::DisableKey
        };
        let mut ev = self.event(ctx, op);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(
                    &who,
                    ctx,
                    &mut ev,
                    if enabled { "enable-key" } else { "disable-key" },
                    key,
                    None,
                )
                .await?;
            let state = if enabled {
                KeyState::Enabled
            } else {
                KeyState::Disabled
            };
            if at_provider {
                require_live(&k, op)?;
                self.external_set_enabled(&k, enabled, op, &mut ev).await?;
            }
            self.modify_key(&mut ev, k, |k| {
                require_live(k, op)?;
                require_material(k, op)?;
                Ok((k.state != state).then(|| KeyRecord { state, ..k.clone() }))
            })
            .await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Makes an enabled version the primary.
    pub async fn set_primary_version(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: u32,
    ) -> Result<KeyRecord> {
        let mut ev = self.event(ctx, Operation::SetPrimaryVersion);
        ev.version = Some(version);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let mut k = self
                .resolve_checked(&who, ctx, &mut ev, "set-primary-version", key, None)
                .await?;
            let mut attempt = 0;
            loop {
                // Checked on every attempt: a lost race may have been a concurrent disable.
                require_live(&k, Operation::SetPrimaryVersion)?;
                let v = self.version_record(&k, version).await?;
                crate::service::require_version_enabled(&k, &v, Operation::SetPrimaryVersion)?;
                if k.primary_version == Some(version) {
                    return Ok(Arc::unwrap_or_clone(k));
                }
                let next = KeyRecord {
                    primary_version: Some(version),
                    ..KeyRecord::clone(&k)
                };
                match self.write_key(&mut ev, &k, next, &[]).await {
                    Err(Error::Conflict(_)) if attempt < MAX_CONFLICT_RETRIES => {
                        attempt += 1;
                        k = self.reread(&k).await?;
                    }
                    r => return r,
                }
            }
        }
        .await;
        self.finish(ev, res).await
    }

    /// Adds a version. With `retry`, a concurrent change to the key (a label update, another
    /// rotation) makes it re-read the key and try again instead of failing with `conflict`.
    async fn add_version(
        &self,
        ev: &mut AuditEvent,
        k: &KeyRecord,
        make_primary: bool,
        reschedule: bool,
        retry: bool,
    ) -> Result<(KeyRecord, VersionInfo)> {
        let mut k = k.clone();
        let mut attempt = 0;
        loop {
            let n = k
                .version_count
                .checked_add(1)
                .ok_or_else(|| Error::invalid("version", "version numbers exhausted"))?;
            let origin = if retry {
                VersionOrigin::Rotation
            } else {
                VersionOrigin::ScheduledRotation
            };
            let v = tokio::task::block_in_place(|| self.new_version(&k, n, origin))?;
            let mut next = k.clone();
            next.version_count = n;
            if make_primary {
                next.primary_version = Some(n);
            }
            if reschedule && let Some(p) = k.rotation_period_secs {
                next.next_rotation_time = Some(self.clock.now().plus_secs(p));
            }
            let info = VersionInfo::from(&v);
            ev.version = Some(n);
            match self.write_key(ev, &k, next, std::slice::from_ref(&v)).await {
                Err(Error::Conflict(_)) if retry && attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    k = Arc::unwrap_or_clone(self.reread(&k).await?);
                }
                r => return r.map(|k2| (k2, info)),
            }
        }
    }

    /// Read-modify-write of a key record: `f` computes the new record from the current one
    /// (`None` = nothing to change); on a concurrent change the key is re-read and `f` runs
    /// again, so its checks always see the state it writes over.
    async fn modify_key(
        &self,
        ev: &mut AuditEvent,
        mut k: Arc<KeyRecord>,
        f: impl Fn(&KeyRecord) -> Result<Option<KeyRecord>>,
    ) -> Result<KeyRecord> {
        let mut attempt = 0;
        loop {
            let Some(next) = f(&k)? else {
                return Ok(Arc::unwrap_or_clone(k));
            };
            match self.write_key(ev, &k, next, &[]).await {
                Err(Error::Conflict(_)) if attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    k = self.reread(&k).await?;
                }
                r => return r,
            }
        }
    }

    async fn reread(&self, k: &KeyRecord) -> Result<Arc<KeyRecord>> {
        self.store
            .key_by_id(k.id)
            .await?
            .ok_or_else(|| Error::not_found("key", format!("{}/{}", k.ring, k.name)))
    }

    /// Creates a new version (manual rotation). It becomes primary unless `make_primary` is
    /// false. A scheduled rotation, if any, is pushed one period past now.
    pub async fn create_version(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        make_primary: bool,
    ) -> Result<(KeyRecord, VersionInfo)> {
        let mut ev = self.event(ctx, Operation::CreateVersion);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "create-version", key, None)
                .await?;
            require_live(&k, Operation::CreateVersion)?;
            if k.origin == KeyOrigin::Imported {
                return Err(Error::InvalidState {
                    resource: format!("key {}/{}", k.ring, k.name),
                    state: "imported",
                    operation: Operation::CreateVersion.as_str(),
                    requirement: "has only the material its owner imported; it cannot make new versions",
                });
            }
            let (k2, info) = self
                .add_version(&mut ev, &k, make_primary, true, true)
                .await?;
            ev.version = Some(info.version);
            Ok((k2, info))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Reads a version.
    pub async fn get_version(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: u32,
    ) -> Result<(KeyRecord, VersionInfo)> {
        let mut ev = self.event(ctx, Operation::GetVersion);
        ev.version = Some(version);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "get-version", key, None)
                .await?;
            let v = self.version_record(&k, version).await?;
            Ok((Arc::unwrap_or_clone(k), VersionInfo::from(&*v)))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Lists a key's versions by number.
    pub async fn list_versions(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        page: &PageRequest,
    ) -> Result<(KeyRecord, Page<VersionInfo>)> {
        let mut ev = self.event(ctx, Operation::ListVersions);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "list-versions", key, None)
                .await?;
            let p = self
                .store
                .list_versions(k.id, page)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => {
                        Error::invalid("page_token", "not a page token from this listing")
                    }
                    e => e.into(),
                })?;
            let page = Page {
                items: p.items.iter().map(VersionInfo::from).collect(),
                next: p.next,
            };
            Ok((Arc::unwrap_or_clone(k), page))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Applies a state-machine action to a version, re-reading and re-checking on a
    /// concurrent change to the key.
    async fn change_version(
        &self,
        ev: &mut AuditEvent,
        k: &KeyRecord,
        version: u32,
        action: VersionAction,
        op: Operation,
    ) -> Result<VersionInfo> {
        let mut k = k.clone();
        let mut attempt = 0;
        loop {
            let v = self.version_record(&k, version).await?;
            let next = states::apply(&v, action).map_err(|na| Error::InvalidState {
                resource: format!("key {}/{} version {}", k.ring, k.name, version),
                state: na.state.as_str(),
                operation: op.as_str(),
                requirement: na.requirement,
            })?;
            if next == *v {
                return Ok(VersionInfo::from(&*v));
            }
            match self
                .write_key(ev, &k, k.clone(), std::slice::from_ref(&next))
                .await
            {
                Err(Error::Conflict(_)) if attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    k = Arc::unwrap_or_clone(self.reread(&k).await?);
                }
                Err(e) => return Err(e),
                Ok(_) => {
                    if next.sealed_material.is_none() {
                        self.forget(k.id, version);
                    }
                    return Ok(VersionInfo::from(&next));
                }
            }
        }
    }

    async fn version_op(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: u32,
        op: Operation,
        action: impl FnOnce(&KeyService) -> Result<VersionAction>,
    ) -> Result<VersionInfo> {
        let mut ev = self.event(ctx, op);
        ev.version = Some(version);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, op.as_str(), key, None)
                .await?;
            require_live(&k, op)?;
            let a = action(self)?;
            self.change_version(&mut ev, &k, version, a, op).await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Enables a disabled version.
    pub async fn enable_version(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: u32,
    ) -> Result<VersionInfo> {
        self.version_op(ctx, key, version, Operation::EnableVersion, |_| {
            Ok(VersionAction::Enable)
        })
        .await
    }

    /// Disables an enabled version.
    pub async fn disable_version(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: u32,
    ) -> Result<VersionInfo> {
        self.version_op(ctx, key, version, Operation::DisableVersion, |_| {
            Ok(VersionAction::Disable)
        })
        .await
    }

    /// Schedules a version's destruction after `window_secs` (default 30 days; 1 to 120
    /// days). Until then it can be restored.
    pub async fn schedule_version_destruction(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: u32,
        window_secs: Option<i64>,
    ) -> Result<VersionInfo> {
        self.version_op(
            ctx,
            key,
            version,
            Operation::ScheduleVersionDestruction,
            |svc| {
                let w = window_secs.unwrap_or(DEFAULT_DESTROY_WINDOW_SECS);
                if !(MIN_DESTROY_WINDOW_SECS..=MAX_DESTROY_WINDOW_SECS).contains(&w) {
                    return Err(Error::invalid("window", "must be between 1d and 120d"));
                }
                Ok(VersionAction::ScheduleDestroy {
                    at: svc.clock.now().plus_secs(w),
                })
            },
        )
        .await
    }

    /// Cancels a scheduled destruction; the version comes back disabled.
    pub async fn restore_version(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        version: u32,
    ) -> Result<VersionInfo> {
        self.version_op(ctx, key, version, Operation::RestoreVersion, |_| {
            Ok(VersionAction::Restore)
        })
        .await
    }

    async fn alias_info(&self, a: &AliasRecord) -> Result<AliasInfo> {
        let k = self.store.key_by_id(a.key_id).await?.ok_or_else(|| {
            Error::Internal(format!(
                "alias {} points to missing key {}",
                a.name, a.key_id
            ))
        })?;
        Ok(AliasInfo {
            name: a.name.clone(),
            key: KeyIdentity::from(&*k),
            created_at: a.created_at,
            updated_at: a.updated_at,
        })
    }

    /// Creates (`update` false) or re-points (`update` true) an alias. Re-pointing is atomic:
    /// each request resolves the old key or the new one.
    pub async fn put_alias(
        &self,
        ctx: &RequestContext,
        name: &AliasName,
        target: &KeyRef,
        update: bool,
    ) -> Result<AliasInfo> {
        let op = if update {
            Operation::UpdateAlias
        } else {
            Operation::CreateAlias
        };
        let mut ev = self.event(ctx, op);
        ev.alias = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            if matches!(target, KeyRef::Alias(_)) {
                return Err(Error::invalid(
                    "key",
                    "an alias must point to a key, not to another alias",
                ));
            }
            let action = if update {
                "update-alias"
            } else {
                "create-alias"
            };
            let k = self
                .resolve_checked(&who, ctx, &mut ev, action, target, None)
                .await?;
            // An alias may not come to point at a key that is going away.
            require_live(&k, op)?;
            if update && let Some(old) = self.store.alias(name).await? {
                // Moving an alias away from a key changes that key's users too.
                if let Some(old_key) = self.store.key_by_id(old.key_id).await? {
                    self.check_key(&who, ctx, &mut ev, action, &old_key, None)
                        .await?;
                }
            }
            ev.alias = Some(name.to_string());
            let now = self.clock.now();
            let rec = AliasRecord {
                name: name.clone(),
                key_id: k.id,
                created_at: now,
                updated_at: now,
            };
            let mode = if update {
                AliasWrite::Update
            } else {
                AliasWrite::Create
            };
            match (mode, self.store.alias(name).await?) {
                (AliasWrite::Create, Some(_)) => {
                    return Err(Error::AlreadyExists {
                        kind: "alias",
                        name: name.to_string(),
                    });
                }
                (AliasWrite::Update, None) => {
                    return Err(Error::not_found("alias", name.to_string()));
                }
                _ => {}
            }
            self.audit_before_commit(&mut ev).await?;
            self.store
                .put_alias(&rec, mode)
                .await
                .map_err(|e| match e {
                    StoreError::AlreadyExists(_) => Error::AlreadyExists {
                        kind: "alias",
                        name: name.to_string(),
                    },
                    StoreError::NotFound("alias") => Error::not_found("alias", name.to_string()),
                    StoreError::NotFound(_) => Error::not_found("key", target.to_string()),
                    e => e.into(),
                })?;
            let stored = self
                .store
                .alias(name)
                .await?
                .ok_or_else(|| Error::not_found("alias", name.to_string()))?;
            self.alias_info(&stored).await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Deletes an alias (the key is untouched).
    pub async fn delete_alias(&self, ctx: &RequestContext, name: &AliasName) -> Result<()> {
        let mut ev = self.event(ctx, Operation::DeleteAlias);
        ev.alias = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let Some(a) = self.store.alias(name).await? else {
                // Only a caller who may list aliases learns that this one does not exist.
                self.check_system(&who, ctx, &mut ev, "list-aliases")?;
                return Err(Error::not_found("alias", name.to_string()));
            };
            ev.key_id = Some(a.key_id.to_string());
            if let Some(k) = self.store.key_by_id(a.key_id).await? {
                note_key(&mut ev, &k);
                self.check_key(&who, ctx, &mut ev, "delete-alias", &k, None)
                    .await?;
            }
            self.audit_before_commit(&mut ev).await?;
            self.store.delete_alias(name).await.map_err(|e| match e {
                StoreError::NotFound(_) => Error::not_found("alias", name.to_string()),
                e => e.into(),
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Reads an alias.
    pub async fn get_alias(&self, ctx: &RequestContext, name: &AliasName) -> Result<AliasInfo> {
        let mut ev = self.event(ctx, Operation::GetAlias);
        ev.alias = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let Some(a) = self.store.alias(name).await? else {
                self.check_system(&who, ctx, &mut ev, "list-aliases")?;
                return Err(Error::not_found("alias", name.to_string()));
            };
            if let Some(k) = self.store.key_by_id(a.key_id).await? {
                note_key(&mut ev, &k);
                self.check_key(&who, ctx, &mut ev, "get-alias", &k, None)
                    .await?;
            }
            let info = self.alias_info(&a).await?;
            ev.key_id = Some(info.key.id.to_string());
            Ok(info)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Lists aliases, optionally only those of one key.
    pub async fn list_aliases(
        &self,
        ctx: &RequestContext,
        key: Option<&KeyRef>,
        page: &PageRequest,
    ) -> Result<Page<AliasInfo>> {
        let mut ev = self.event(ctx, Operation::ListAliases);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let key_id = match key {
                Some(r) => Some(
                    self.resolve_checked(&who, ctx, &mut ev, "get-key", r, None)
                        .await?
                        .id,
                ),
                None => {
                    self.check_system(&who, ctx, &mut ev, "list-aliases")?;
                    None
                }
            };
            let p = self.store.list_aliases(key_id, page).await?;
            let mut items = Vec::with_capacity(p.items.len());
            for a in p.items {
                items.push(self.alias_info(&a).await?);
            }
            Ok(Page {
                items,
                next: p.next,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Takes or renews the scheduler lease: of several nodes sharing a store, the holder
    /// runs the scheduled jobs (and the provider drift pass); the others wait until it stops
    /// renewing. Records the outcome in `strongroom_scheduler_leader`.
    pub(crate) async fn hold_scheduler_lease(&self) -> Result<bool> {
        let now = self.clock.now();
        let leader = self
            .store
            .claim_lease(
                "scheduler",
                &self.node_id,
                now,
                now.plus_secs(self.scheduler_lease_secs),
            )
            .await;
        metrics::gauge!(crate::metrics::SCHEDULER_LEADER).set(match leader {
            Ok(true) => 1.0,
            _ => 0.0,
        });
        Ok(leader?)
    }

    /// Runs due scheduled rotations, destructions, key deletions and material expiries once,
    /// if this node holds the scheduler lease (one node of several sharing a store). Each job
    /// is its own audited operation under the `scheduler` protocol; a failed job is retried
    /// on the next run.
    pub async fn run_due_jobs(&self) -> Result<JobReport> {
        let mut report = JobReport::default();
        let now = self.clock.now();
        if !self.hold_scheduler_lease().await? {
            return Ok(report);
        }
        let sched = |op: Operation| {
            let ctx = RequestContext {
                request_id: crate::new_request_id(),
                token: None,
                protocol: Protocol::Scheduler,
                client_addr: None,
                client_cert: None,
                sigv4: None,
                socket_principal: None,
                client_request_id: None,
            };
            self.event(&ctx, op)
        };
        for id in self.store.keys_due_for_rotation(now, 100).await? {
            let mut ev = sched(Operation::ScheduledRotation);
            let res = async {
                self.authorize_scheduler(&mut ev);
                let Some(k) = self.store.key_by_id(id).await? else {
                    return Ok(false);
                };
                note_key(&mut ev, &k);
                let (Some(period), Some(due)) = (k.rotation_period_secs, k.next_rotation_time)
                else {
                    return Ok(false);
                };
                if due > now {
                    return Ok(false);
                }
                if k.state != KeyState::Enabled {
                    // A disabled key is not rotated; its schedule moves on (as AWS does).
                    let next = KeyRecord {
                        next_rotation_time: Some(now.plus_secs(period)),
                        ..KeyRecord::clone(&k)
                    };
                    self.write_key(&mut ev, &k, next, &[]).await?;
                    return Ok(false);
                }
                // No retry: if the key changed meanwhile, the next run re-checks whether the
                // rotation is still due rather than rotating twice.
                let (_, info) = self.add_version(&mut ev, &k, true, true, false).await?;
                ev.version = Some(info.version);
                Ok(true)
            }
            .await;
            match self.finish(ev, res).await {
                Ok(true) => report.rotated += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(key_id = %id, error = %e, "scheduled rotation failed; will retry");
                    report.failed += 1;
                }
            }
        }
        for (id, n) in self.store.versions_due_for_destruction(now, 100).await? {
            let mut ev = sched(Operation::ScheduledDestruction);
            ev.version = Some(n);
            let res = async {
                self.authorize_scheduler(&mut ev);
                let k = self
                    .store
                    .key_by_id(id)
                    .await?
                    .ok_or_else(|| Error::Internal(format!("version of missing key {id}")))?;
                note_key(&mut ev, &k);
                self.change_version(
                    &mut ev,
                    &k,
                    n,
                    VersionAction::Destroy { now },
                    Operation::ScheduledDestruction,
                )
                .await
            }
            .await;
            match self.finish(ev, res).await {
                Ok(_) => report.destroyed += 1,
                Err(e) => {
                    tracing::warn!(key_id = %id, version = n, error = %e, "scheduled destruction failed; will retry");
                    report.failed += 1;
                }
            }
        }
        // Keys whose deletion is due (a run a crash interrupted is finished by the next).
        for id in self.store.keys_due_for_deletion(now, 100).await? {
            let mut ev = sched(Operation::ScheduledKeyDeletion);
            let res = async {
                self.authorize_scheduler(&mut ev);
                self.delete_key_now(&mut ev, id, now).await
            }
            .await;
            match self.finish(ev, res).await {
                Ok(true) => report.deleted += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(key_id = %id, error = %e, "scheduled key deletion failed; will retry");
                    report.failed += 1;
                }
            }
        }
        // Imported material whose time is up (the key is already unusable; see usable_version).
        for id in self.store.keys_due_for_material_expiry(now, 100).await? {
            let mut ev = sched(Operation::ScheduledMaterialExpiry);
            let res = async {
                self.authorize_scheduler(&mut ev);
                self.expire_imported_material(&mut ev, id, now).await
            }
            .await;
            match self.finish(ev, res).await {
                Ok(true) => report.expired += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(key_id = %id, error = %e, "expiring imported material failed; will retry");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}
