//! Key sets: an ordered list of member keys across providers (`software:<ring>/<key>`,
//! `aws:arn:…`, `vault:<key>`, …). A data key generated under a key set is wrapped by every
//! member; decryption tries the members in preference order and succeeds when any one opens
//! its copy, so data stays readable while any one provider is (`docs/key-sets.md`).
//!
//! Every member wraps with the caller's encryption context plus the pair
//! `strongroom:key-set = <name>`, so a key set never opens what its member keys wrapped
//! outside it: permission on a key set gives no power over other uses of its member keys.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use strongroom_audit::AuditEvent;
use strongroom_crypto::{EncryptionContext, KeyMaterial, Plaintext, Purpose, rand};
use strongroom_policy::ResourceAttrs;
use strongroom_providers::{KeyProvider, ProviderError, ProviderKey, SOFTWARE, Unwrapped, Wrapped};
use strongroom_store::{AliasWrite, KeySetMember, KeySetRecord, Labels, StoreError};

use crate::error::{Error, Result};
use crate::failover::{BreakerState, Guarded};
use crate::providers::{bind, call_record};
use crate::request::{Operation, RequestContext};
use crate::service::{Caller, KeyService, require_purpose};
use crate::types::{KeyRef, validate_description, validate_labels};

/// The context pair every member wraps under (callers may not send `strongroom:` keys).
pub const CONTEXT_KEY: &str = "strongroom:key-set";
/// Most members a key set may have (an envelope holds at most 16 wrapped keys).
pub const MAX_MEMBERS: usize = 16;
/// Longest provider key name accepted.
const MAX_MEMBER_KEY: usize = 2048;
/// Most wrapped keys one decrypt request may carry.
const MAX_WRAPPED: usize = 32;
/// Longest wrapped key accepted.
const MAX_WRAPPED_LEN: usize = 65_536;
/// Data key lengths.
const MIN_DATA_KEY: usize = 16;
const MAX_DATA_KEY: usize = 64;

/// What `create_key_set` and `update_key_set` take.
#[derive(Debug, Clone, Default)]
pub struct KeySetSpec {
    /// Members as `<provider>:<key>`, in preference order.
    pub members: Vec<String>,
    /// Free text.
    pub description: String,
    /// Labels (policies see them as the key set's tags).
    pub labels: Labels,
    /// On update: drop the retired members (data keys only they wrapped no longer open
    /// through this key set).
    pub forget_retired: bool,
}

/// One member as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// `<provider>:<key>`.
    pub member: String,
    /// The provider's configured name.
    pub provider: String,
    /// The provider's key.
    pub key: String,
    /// The provider's kind, or `None` when this node has no such provider configured.
    pub kind: Option<&'static str>,
    /// The provider's circuit breaker on this node.
    pub breaker: Option<BreakerState>,
}

/// A key set as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetInfo {
    /// Name.
    pub name: String,
    /// Members in preference order.
    pub members: Vec<MemberInfo>,
    /// Former members, which still open what they wrapped (tried after the members).
    pub retired: Vec<MemberInfo>,
    /// Free text.
    pub description: String,
    /// Labels.
    pub labels: Labels,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// One member's copy of a data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberWrapped {
    /// `<provider>:<key>`.
    pub member: String,
    /// The wrapped data key, as the provider returned it.
    pub ciphertext: Vec<u8>,
    /// The provider key version that wrapped it, when the provider says.
    pub key_version: Option<u32>,
}

/// What `key_set_generate_data_key` returns.
#[derive(Debug)]
pub struct KeySetDataKey {
    /// The key set.
    pub key_set: String,
    /// The data key.
    pub plaintext: Plaintext,
    /// One wrapped copy per member, in the key set's order.
    pub wrapped: Vec<MemberWrapped>,
}

/// Input of `key_set_decrypt`.
#[derive(Debug, Clone, Default)]
pub struct KeySetDecryptInput {
    /// `(member, wrapped key)` pairs, e.g. from an envelope's header.
    pub wrapped: Vec<(String, Vec<u8>)>,
    /// The context the data key was generated with.
    pub context: EncryptionContext,
    /// Providers to try first, in this order (the nearest); the rest follow in the key set's
    /// order. Members whose breaker is open go last.
    pub prefer: Vec<String>,
}

/// One failed attempt of a decrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// `<provider>:<key>`.
    pub member: String,
    /// Why it did not open (the provider's answer, no secrets).
    pub error: String,
}

/// What `key_set_decrypt` returns.
#[derive(Debug)]
pub struct KeySetDecryptOutput {
    /// The member that opened it.
    pub member: String,
    /// The data key.
    pub plaintext: Plaintext,
    /// Members tried before it, and why they failed.
    pub failed: Vec<Attempt>,
}

/// Splits `<provider>:<key>`.
pub fn parse_member(s: &str, field: &str) -> Result<KeySetMember> {
    let (provider, key) = s.split_once(':').ok_or_else(|| {
        Error::invalid(
            field,
            "a member is <provider>:<key>, e.g. software:payments/data or aws:alias/payments",
        )
    })?;
    if provider.is_empty() || key.is_empty() || key.len() > MAX_MEMBER_KEY {
        return Err(Error::invalid(
            field,
            format!("a member is <provider>:<key> with a key of 1 to {MAX_MEMBER_KEY} bytes"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "a member's key has control characters",
        ));
    }
    Ok(KeySetMember {
        provider: provider.into(),
        key: key.into(),
    })
}

fn member_name(m: &KeySetMember) -> String {
    format!("{}:{}", m.provider, m.key)
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("name", "use 1-64 of a-z 0-9 - _"))
    }
}

/// The caller's context plus the key set's binding pair.
fn bound_context(name: &str, context: &EncryptionContext) -> Result<EncryptionContext> {
    bind(context, CONTEXT_KEY, name)
}

impl KeyService {
    fn key_set_resource(set: Option<&KeySetRecord>, name: &str) -> ResourceAttrs {
        ResourceAttrs::KeySet {
            name: name.into(),
            labels: set.map(|s| s.labels.clone()).unwrap_or_default(),
            exists: set.is_some(),
        }
    }

    /// Reads a key set and checks `action` on it; a caller who may not act on a missing
    /// key set gets `access_denied`, never learning whether it exists.
    async fn key_set_checked(
        &self,
        who: &Caller,
        ctx: &RequestContext,
        ev: &mut AuditEvent,
        action: &'static str,
        name: &str,
    ) -> Result<KeySetRecord> {
        ev.key_set = Some(name.into());
        let set = self.store.key_set(name).await?;
        self.permit(
            who,
            ctx,
            ev,
            action,
            &Self::key_set_resource(set.as_ref(), name),
            None,
        )?;
        set.ok_or_else(|| Error::not_found("key set", name))
    }

    fn guarded(&self, provider: &str) -> Option<&Arc<Guarded>> {
        self.providers.get(provider)
    }

    fn member_info(&self, m: &KeySetMember) -> MemberInfo {
        let g = self.guarded(&m.provider);
        MemberInfo {
            member: member_name(m),
            provider: m.provider.clone(),
            key: m.key.clone(),
            kind: g.map(|g| g.provider().kind()),
            breaker: g.map(|g| g.state()),
        }
    }

    fn info(&self, set: KeySetRecord) -> KeySetInfo {
        KeySetInfo {
            members: set.members.iter().map(|m| self.member_info(m)).collect(),
            retired: set.retired.iter().map(|m| self.member_info(m)).collect(),
            name: set.name,
            description: set.description,
            labels: set.labels,
            created_at: set.created_at,
            updated_at: set.updated_at,
        }
    }

    /// Checks a spec's members: each names a provider this node has, no member twice,
    /// Strongroom keys exist (and the caller may read them), provider keys answer `describe`
    /// and can encrypt.
    async fn checked_members(
        &self,
        who: &Caller,
        ctx: &RequestContext,
        ev: &mut AuditEvent,
        spec: &KeySetSpec,
    ) -> Result<Vec<KeySetMember>> {
        if spec.members.is_empty() || spec.members.len() > MAX_MEMBERS {
            return Err(Error::invalid(
                "members",
                format!("a key set has 1 to {MAX_MEMBERS} members"),
            ));
        }
        validate_description(&spec.description)?;
        validate_labels(&spec.labels, "labels")?;
        let mut out: Vec<KeySetMember> = Vec::new();
        for (i, s) in spec.members.iter().enumerate() {
            let field = format!("members[{i}]");
            let m = parse_member(s, &field)?;
            if out.contains(&m) {
                return Err(Error::invalid(field, "the same member twice"));
            }
            let Some(g) = self.guarded(&m.provider) else {
                let mut known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                known.sort_unstable();
                return Err(Error::invalid(
                    field,
                    format!(
                        "no provider {:?} on this node (configured: {})",
                        m.provider,
                        known.join(", ")
                    ),
                ));
            };
            if m.provider == SOFTWARE {
                let r = KeyRef::parse(&m.key, &field)?;
                if !matches!(r, KeyRef::Path(..)) {
                    return Err(Error::invalid(
                        field,
                        "a software member names a key as <ring>/<key>",
                    ));
                }
                let k = self
                    .resolve_checked(who, ctx, ev, "get-key", &r, None)
                    .await?;
                require_purpose(&k, Purpose::EncryptDecrypt, Operation::CreateKeySet)?;
            } else {
                let d: ProviderKey = g
                    .call("describe", || g.provider().describe(&m.key))
                    .await
                    .map_err(|e| {
                        Error::invalid(field.clone(), format!("cannot use this member: {e}"))
                    })?;
                if !d.can_encrypt {
                    return Err(Error::invalid(
                        field,
                        format!("{} says this key cannot encrypt now", m.provider),
                    ));
                }
            }
            out.push(m);
        }
        Ok(out)
    }

    /// Creates a key set (`create-key-set`; audited).
    pub async fn create_key_set(
        &self,
        ctx: &RequestContext,
        name: &str,
        spec: KeySetSpec,
    ) -> Result<KeySetInfo> {
        let mut ev = self.event(ctx, Operation::CreateKeySet);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            ev.key_set = Some(name.into());
            validate_name(name)?;
            self.permit(
                &who,
                ctx,
                &mut ev,
                "create-key-set",
                &ResourceAttrs::KeySet {
                    name: name.into(),
                    labels: spec.labels.clone(),
                    exists: false,
                },
                None,
            )?;
            let members = self.checked_members(&who, ctx, &mut ev, &spec).await?;
            let now = self.clock.now().0;
            let set = KeySetRecord {
                name: name.into(),
                members,
                retired: Vec::new(),
                description: spec.description,
                labels: spec.labels,
                created_at: now,
                updated_at: now,
            };
            self.audit_before_commit(&mut ev).await?;
            self.store
                .put_key_set(&set, AliasWrite::Create)
                .await
                .map_err(|e| match e {
                    StoreError::AlreadyExists(_) => Error::AlreadyExists {
                        kind: "key set",
                        name: name.into(),
                    },
                    e => e.into(),
                })?;
            Ok(self.info(set))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Replaces a key set's members, description and labels (`update-key-set`; audited).
    /// Data keys wrapped before keep their wrapped copies: `strongroom envelope rewrap`
    /// re-wraps envelopes under the new members.
    pub async fn update_key_set(
        &self,
        ctx: &RequestContext,
        name: &str,
        spec: KeySetSpec,
    ) -> Result<KeySetInfo> {
        let mut ev = self.event(ctx, Operation::UpdateKeySet);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let old = self
                .key_set_checked(&who, ctx, &mut ev, "update-key-set", name)
                .await?;
            let members = self.checked_members(&who, ctx, &mut ev, &spec).await?;
            // Members taken out are retired, not forgotten: what they wrapped still opens
            // (and can be re-wrapped) until the caller says to forget them.
            let retired = if spec.forget_retired {
                Vec::new()
            } else {
                let mut r: Vec<KeySetMember> = Vec::new();
                for m in old.retired.iter().chain(&old.members) {
                    if !members.contains(m) && !r.contains(m) {
                        r.push(m.clone());
                    }
                }
                r
            };
            let set = KeySetRecord {
                members,
                retired,
                description: spec.description,
                labels: spec.labels,
                updated_at: self.clock.now().0,
                ..old
            };
            self.audit_before_commit(&mut ev).await?;
            self.store.put_key_set(&set, AliasWrite::Update).await?;
            Ok(self.info(set))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Reads a key set, with each member's breaker state on this node (`get-key-set`).
    pub async fn get_key_set(&self, ctx: &RequestContext, name: &str) -> Result<KeySetInfo> {
        let mut ev = self.event(ctx, Operation::GetKeySet);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let set = self
                .key_set_checked(&who, ctx, &mut ev, "get-key-set", name)
                .await?;
            Ok(self.info(set))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Lists the key sets (`list-key-sets`).
    pub async fn list_key_sets(&self, ctx: &RequestContext) -> Result<Vec<KeySetInfo>> {
        let mut ev = self.event(ctx, Operation::ListKeySets);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "list-key-sets")?;
            let sets = self.store.key_sets().await?;
            Ok(sets.into_iter().map(|s| self.info(s)).collect())
        }
        .await;
        self.finish(ev, res).await
    }

    /// Deletes a key set (`delete-key-set`; audited). Its member keys are untouched, so data
    /// keys it wrapped can still be opened through another key set with the same name and a
    /// member in common, or by the members' owners directly.
    pub async fn delete_key_set(&self, ctx: &RequestContext, name: &str) -> Result<()> {
        let mut ev = self.event(ctx, Operation::DeleteKeySet);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.key_set_checked(&who, ctx, &mut ev, "delete-key-set", name)
                .await?;
            self.audit_before_commit(&mut ev).await?;
            self.store.delete_key_set(name).await?;
            Ok(())
        }
        .await;
        self.finish(ev, res).await
    }

    /// Generates a data key and wraps it under every member, in parallel
    /// (`key-set-generate-data-key`). Every member must wrap: a data key some member cannot
    /// open would break the key set's promise, so one failing member fails the call (and
    /// says which).
    pub async fn key_set_generate_data_key(
        &self,
        ctx: &RequestContext,
        name: &str,
        context: &EncryptionContext,
        length: usize,
    ) -> Result<KeySetDataKey> {
        let mut ev = self.event(ctx, Operation::KeySetGenerateDataKey);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let set = self
                .key_set_checked(&who, ctx, &mut ev, "key-set-generate-data-key", name)
                .await?;
            if !(MIN_DATA_KEY..=MAX_DATA_KEY).contains(&length) {
                return Err(Error::invalid(
                    "length",
                    format!("must be between {MIN_DATA_KEY} and {MAX_DATA_KEY}"),
                ));
            }
            let bound = bound_context(name, context)?;
            let dk = Arc::new(KeyMaterial::new(rand::bytes(length)?));
            let wrapped = self
                .wrap_all(&set, &dk, &bound, &mut ev, Operation::KeySetGenerateDataKey)
                .await?;
            Ok(KeySetDataKey {
                key_set: name.into(),
                plaintext: Plaintext::copy_from(dk.expose_secret()),
                wrapped,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Wraps a data key the caller already has under every member (`key-set-wrap`): for
    /// re-wrapping envelopes after the members changed. The same rules as generating.
    pub async fn key_set_wrap(
        &self,
        ctx: &RequestContext,
        name: &str,
        context: &EncryptionContext,
        plaintext: &Plaintext,
    ) -> Result<Vec<MemberWrapped>> {
        let mut ev = self.event(ctx, Operation::KeySetWrap);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let set = self
                .key_set_checked(&who, ctx, &mut ev, "key-set-wrap", name)
                .await?;
            if !(MIN_DATA_KEY..=MAX_DATA_KEY).contains(&plaintext.len()) {
                return Err(Error::invalid(
                    "plaintext",
                    format!("a data key is {MIN_DATA_KEY} to {MAX_DATA_KEY} bytes"),
                ));
            }
            let bound = bound_context(name, context)?;
            let dk = Arc::new(KeyMaterial::copy_from(plaintext.expose_secret()));
            self.wrap_all(&set, &dk, &bound, &mut ev, Operation::KeySetWrap)
                .await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Opens a data key through the first member that can (`key-set-decrypt`). Wrapped keys
    /// of members not in the key set are ignored.
    pub async fn key_set_decrypt(
        &self,
        ctx: &RequestContext,
        name: &str,
        input: KeySetDecryptInput,
    ) -> Result<KeySetDecryptOutput> {
        let mut ev = self.event(ctx, Operation::KeySetDecrypt);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let set = self
                .key_set_checked(&who, ctx, &mut ev, "key-set-decrypt", name)
                .await?;
            if input.wrapped.is_empty() || input.wrapped.len() > MAX_WRAPPED {
                return Err(Error::invalid(
                    "wrapped",
                    format!("give 1 to {MAX_WRAPPED} wrapped keys"),
                ));
            }
            if input
                .wrapped
                .iter()
                .any(|(_, w)| w.is_empty() || w.len() > MAX_WRAPPED_LEN)
            {
                return Err(Error::invalid(
                    "wrapped",
                    format!("a wrapped key is 1 to {MAX_WRAPPED_LEN} bytes"),
                ));
            }
            let bound = bound_context(name, &input.context)?;
            let order = self.decrypt_order(&set, &input);
            if order.is_empty() {
                return Err(Error::invalid(
                    "wrapped",
                    format!("no wrapped key is from a member of key set {name}"),
                ));
            }
            let mut failed = Vec::new();
            let mut unavailable = false;
            for (m, ct) in order {
                let mname = member_name(&m);
                let res = match self.guarded(&m.provider) {
                    None => Err(not_configured(&m.provider)),
                    Some(g) => {
                        g.call("unwrap", || g.provider().unwrap(&m.key, ct, &bound))
                            .await
                    }
                };
                match res {
                    Ok(Unwrapped {
                        plaintext,
                        request_id,
                    }) => {
                        ev.providers.push(call_record(&mname, Ok(request_id)));
                        return Ok(KeySetDecryptOutput {
                            member: mname,
                            plaintext: Plaintext::copy_from(plaintext.expose_secret()),
                            failed,
                        });
                    }
                    Err(e) => {
                        ev.providers.push(call_record(&mname, Err(&e)));
                        unavailable |= matches!(e, ProviderError::Unavailable { .. });
                        failed.push(Attempt {
                            member: mname,
                            error: e.to_string(),
                        });
                    }
                }
            }
            let tried: Vec<String> = failed
                .iter()
                .map(|a| format!("{}: {}", a.member, a.error))
                .collect();
            if unavailable {
                Err(Error::Unavailable(format!(
                    "key set {name}: no member could open the data key ({})",
                    tried.join("; ")
                )))
            } else {
                Err(Error::InvalidCiphertext)
            }
        }
        .await;
        self.finish(ev, res).await
    }

    /// Wraps `dk` under every member of `set` in parallel, recording each call in `ev`.
    async fn wrap_all(
        &self,
        set: &KeySetRecord,
        dk: &Arc<KeyMaterial>,
        bound: &EncryptionContext,
        ev: &mut AuditEvent,
        op: Operation,
    ) -> Result<Vec<MemberWrapped>> {
        let name = set.name.as_str();
        let calls = set.members.iter().map(|m| {
            let g = self.guarded(&m.provider).cloned();
            let (m, dk, bound) = (m.clone(), dk.clone(), bound.clone());
            async move {
                let Some(g) = g else {
                    let e = not_configured(&m.provider);
                    return (m, Err(e));
                };
                // Exposed to wrap it.
                let r = g
                    .call("wrap", || {
                        g.provider().wrap(&m.key, dk.expose_secret(), &bound)
                    })
                    .await;
                (m, r)
            }
        });
        let results = crate::providers::join_all(calls)
            .await
            .into_iter()
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Internal(format!("a provider call failed to run: {e}")))?;
        let mut wrapped = Vec::with_capacity(results.len());
        let mut failed: Vec<(String, ProviderError)> = Vec::new();
        for (m, r) in results {
            let name = member_name(&m);
            match r {
                Ok(Wrapped {
                    ciphertext,
                    key_version,
                    request_id,
                }) => {
                    ev.providers.push(call_record(&name, Ok(request_id)));
                    wrapped.push(MemberWrapped {
                        member: name,
                        ciphertext,
                        key_version,
                    });
                }
                Err(e) => {
                    ev.providers.push(call_record(&name, Err(&e)));
                    failed.push((name, e));
                }
            }
        }
        if !failed.is_empty() {
            return Err(wrap_failed(name, &failed, op));
        }
        Ok(wrapped)
    }

    /// The members to try, with their wrapped keys: preferred providers first, then the key
    /// set's order, then retired members; members whose breaker is open last (they fail at
    /// once, costing nothing).
    fn decrypt_order<'a>(
        &self,
        set: &KeySetRecord,
        input: &'a KeySetDecryptInput,
    ) -> Vec<(KeySetMember, &'a [u8])> {
        let mut given: BTreeMap<&str, &'a [u8]> = BTreeMap::new();
        for (m, w) in &input.wrapped {
            given.entry(m.as_str()).or_insert(w.as_slice());
        }
        // The request's preference, else this node's (`[key_sets] prefer`).
        let prefer = if input.prefer.is_empty() {
            &self.key_set_prefer
        } else {
            &input.prefer
        };
        let retired_rank = prefer.len() + 1;
        let mut out: Vec<(usize, KeySetMember, &'a [u8])> = set
            .members
            .iter()
            .map(|m| (false, m))
            .chain(set.retired.iter().map(|m| (true, m)))
            .filter_map(|(retired, m)| {
                let w = given.get(member_name(m).as_str())?;
                let rank = if retired {
                    retired_rank
                } else {
                    prefer
                        .iter()
                        .position(|p| *p == m.provider)
                        .unwrap_or(prefer.len())
                };
                let open = self
                    .guarded(&m.provider)
                    .is_some_and(|g| g.state() == BreakerState::Open);
                Some((if open { usize::MAX } else { rank }, m.clone(), *w))
            })
            .collect();
        // Stable: the key set's order within each rank.
        out.sort_by_key(|(rank, _, _)| *rank);
        out.into_iter().map(|(_, m, w)| (m, w)).collect()
    }
}

fn not_configured(provider: &str) -> ProviderError {
    ProviderError::Config(format!(
        "no provider {provider:?} is configured on this node"
    ))
}

/// The error of a generate that some members could not wrap: unavailable (retry later) if
/// any provider was unavailable, else the key set cannot be used as it is.
fn wrap_failed(name: &str, failed: &[(String, ProviderError)], op: Operation) -> Error {
    let what: Vec<String> = failed.iter().map(|(m, e)| format!("{m}: {e}")).collect();
    if failed
        .iter()
        .any(|(_, e)| matches!(e, ProviderError::Unavailable { .. }))
    {
        Error::Unavailable(format!(
            "key set {name}: every member must wrap the data key ({})",
            what.join("; ")
        ))
    } else {
        Error::InvalidState {
            resource: format!("key set {name} ({})", what.join("; ")),
            state: "not usable by every member",
            operation: op.as_str(),
            requirement: "needs every member to wrap; fix or remove the member",
        }
    }
}

/// Strongroom's own keys behind the provider trait (`software:<ring>/<key>`): wraps with
/// the key's primary version (ciphertext v1), unwraps with the version a ciphertext names.
#[derive(Debug)]
pub(crate) struct SoftwareProvider {
    pub(crate) svc: Weak<KeyService>,
}

impl SoftwareProvider {
    fn svc(&self) -> strongroom_providers::Result<Arc<KeyService>> {
        self.svc
            .upgrade()
            .ok_or_else(|| ProviderError::Unavailable {
                provider: SOFTWARE.into(),
                detail: "the service is shutting down".into(),
                retryable: false,
            })
    }

    async fn key(
        &self,
        svc: &KeyService,
        key: &str,
    ) -> strongroom_providers::Result<strongroom_store::KeyRecord> {
        let r = KeyRef::parse(key, "key").map_err(|e| software_error(key, e))?;
        let mut scratch = scratch_event(svc);
        svc.resolve(&r, &mut scratch)
            .await
            .map(Arc::unwrap_or_clone)
            .map_err(|e| software_error(key, e))
    }
}

fn scratch_event(svc: &KeyService) -> AuditEvent {
    AuditEvent::new(
        svc.clock.now().to_rfc3339(),
        String::new(),
        "native",
        "key-set-member",
    )
}

/// Core's errors in the provider's terms: a key that cannot be used is a refusal (it must
/// not open the breaker of every software member), a store outage is unavailability.
fn software_error(key: &str, e: Error) -> ProviderError {
    match e {
        Error::NotFound { .. } => ProviderError::NotFound {
            provider: SOFTWARE.into(),
            key: key.into(),
        },
        Error::InvalidCiphertext | Error::IncorrectKey => ProviderError::InvalidCiphertext {
            provider: SOFTWARE.into(),
        },
        Error::Unavailable(m) => ProviderError::Unavailable {
            provider: SOFTWARE.into(),
            detail: m,
            retryable: true,
        },
        e => ProviderError::AccessDenied {
            provider: SOFTWARE.into(),
            detail: e.to_string(),
        },
    }
}

#[async_trait::async_trait]
impl KeyProvider for SoftwareProvider {
    fn name(&self) -> &str {
        SOFTWARE
    }

    fn kind(&self) -> &'static str {
        SOFTWARE
    }

    async fn describe(&self, key: &str) -> strongroom_providers::Result<ProviderKey> {
        let svc = self.svc()?;
        let k = self.key(&svc, key).await?;
        Ok(ProviderKey {
            name: format!("{}/{}", k.ring, k.name),
            key_type: k.algorithm.to_string(),
            latest_version: k.primary_version,
            can_encrypt: k.purpose == Purpose::EncryptDecrypt
                && svc
                    .require_usable(&k, Operation::KeySetGenerateDataKey)
                    .is_ok(),
            rotation_period: k
                .rotation_period_secs
                .and_then(|s| u64::try_from(s).ok())
                .map(std::time::Duration::from_secs),
            enabled: Some(k.state == strongroom_store::KeyState::Enabled),
        })
    }

    async fn wrap(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> strongroom_providers::Result<Wrapped> {
        let svc = self.svc()?;
        let k = self.key(&svc, key).await?;
        let mut scratch = scratch_event(&svc);
        let out = svc
            .member_seal(&k, context, plaintext, &mut scratch)
            .await
            .map_err(|e| software_error(key, e))?;
        Ok(Wrapped {
            ciphertext: out.ciphertext,
            key_version: Some(out.version),
            request_id: None,
        })
    }

    async fn unwrap(
        &self,
        key: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> strongroom_providers::Result<Unwrapped> {
        let svc = self.svc()?;
        let k = self.key(&svc, key).await?;
        let mut scratch = scratch_event(&svc);
        let (_, pt) = svc
            .member_open(&k, context, ciphertext, &mut scratch)
            .await
            .map_err(|e| software_error(key, e))?;
        Ok(Unwrapped {
            // Exposed to hand it to the key set.
            plaintext: KeyMaterial::copy_from(pt.expose_secret()),
            request_id: None,
        })
    }

    async fn health(&self) -> strongroom_providers::Result<()> {
        let svc = self.svc()?;
        if svc.store.is_healthy() {
            Ok(())
        } else {
            Err(ProviderError::Unavailable {
                provider: SOFTWARE.into(),
                detail: "the store is failing".into(),
                retryable: true,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_at_the_first_colon() {
        let m = parse_member("aws:arn:aws:kms:eu-west-1:1:key/x", "m").unwrap();
        assert_eq!(m.provider, "aws");
        assert_eq!(m.key, "arn:aws:kms:eu-west-1:1:key/x");
        for bad in ["payments", ":k", "aws:", "aws:a\nb"] {
            assert!(parse_member(bad, "m").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_binding_pair_is_added_and_reserved() {
        let c = EncryptionContext::try_new([("tenant".into(), "acme".into())].into()).unwrap();
        let b = bound_context("payments", &c).unwrap();
        assert_eq!(
            b.pairs().get(CONTEXT_KEY).map(String::as_str),
            Some("payments")
        );
        assert_eq!(b.pairs().get("tenant").map(String::as_str), Some("acme"));
        let forged =
            EncryptionContext::try_new([(CONTEXT_KEY.into(), "other".into())].into()).unwrap();
        assert!(bound_context("payments", &forged).is_err());
    }

    #[test]
    fn names() {
        assert!(validate_name("payments-prod_1").is_ok());
        for bad in ["", "Payments", "a/b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
