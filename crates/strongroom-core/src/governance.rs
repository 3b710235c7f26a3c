//! Principals and policy documents: who exists, what they may do, and a dry run of a
//! decision (`test_policy`). Guide: `docs/policy.md`.

use std::sync::Arc;

use strongroom_crypto::EncryptionContext;
use strongroom_policy::{
    Decision, KeyAttrs, PolicyEngine, PolicyError, PrincipalAttrs, RequestAttrs, ResourceAttrs,
};
use strongroom_store::{
    AliasWrite, Labels, Page, PageRequest, PolicyRecord, PrincipalName, PrincipalRecord, RingName,
    StoreError,
};

use crate::error::{Error, Result};
use crate::request::{Operation, RequestContext};
use crate::service::KeyService;
use crate::types::{KeyRef, NewToken, validate_description, validate_labels};

/// Input of `create_principal`.
#[derive(Debug, Clone)]
pub struct PrincipalInput {
    /// Unique name.
    pub name: PrincipalName,
    /// `user` or `workload`.
    pub kind: String,
    /// Roles, e.g. `key-user`.
    pub roles: Vec<String>,
    /// Labels (policies read them as tags).
    pub labels: Labels,
    /// Free text.
    pub description: String,
    /// Quotas overriding the server defaults, by class (requests per second; 0 = unlimited).
    pub rate_limits: std::collections::BTreeMap<String, u32>,
    /// SHA-256 fingerprints (hex) of client certificates that authenticate as this principal.
    pub tls_certs: Vec<String>,
}

/// What `update_principal` changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct PrincipalUpdate {
    /// New roles (replacing all).
    pub roles: Option<Vec<String>>,
    /// New labels (replacing all).
    pub labels: Option<Labels>,
    /// New description.
    pub description: Option<String>,
    /// Disable (true) or re-enable (false). A disabled principal's tokens stop working.
    pub disabled: Option<bool>,
    /// New quota overrides (replacing all).
    pub rate_limits: Option<std::collections::BTreeMap<String, u32>>,
    /// New client certificate fingerprints (replacing all).
    pub tls_certs: Option<Vec<String>>,
}

/// What a `test_policy` request acts on.
#[derive(Debug, Clone)]
pub enum TestResource {
    /// A key (it need not exist).
    Key(KeyRef),
    /// A key ring.
    KeyRing(RingName),
    /// The service as a whole.
    System,
}

/// A dry-run authorization request.
#[derive(Debug, Clone)]
pub struct PolicyTest {
    /// Whose permissions.
    pub principal: PrincipalName,
    /// The action name (see `strongroom policy schema`).
    pub action: String,
    /// On what.
    pub resource: TestResource,
    /// The encryption context the request would carry.
    pub context: EncryptionContext,
    /// The source IP address the request would come from.
    pub source_ip: Option<String>,
}

const KINDS: [&str; 2] = ["user", "workload"];

fn validate_roles(roles: &[String]) -> Result<()> {
    if roles.len() > 32 {
        return Err(Error::invalid("roles", "at most 32 roles"));
    }
    for r in roles {
        let ok = !r.is_empty()
            && r.len() <= 63
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            return Err(Error::invalid(
                "roles",
                "role names are 1-63 characters of a-z 0-9 - _",
            ));
        }
    }
    Ok(())
}

fn validate_rate_limits(r: &std::collections::BTreeMap<String, u32>) -> Result<()> {
    if r.keys()
        .any(|k| !crate::quota::CLASSES.contains(&k.as_str()))
    {
        return Err(Error::invalid(
            "rate_limits",
            "classes are crypto, read, write, keygen",
        ));
    }
    Ok(())
}

/// Normalises client certificate fingerprints: 64 hex digits each (colons allowed, as
/// `openssl x509 -fingerprint -sha256` prints them), at most 16.
fn normalise_fingerprints(fps: Vec<String>) -> Result<Vec<String>> {
    if fps.len() > 16 {
        return Err(Error::invalid(
            "tls_certs",
            "at most 16 certificates per principal",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(fps.len());
    for fp in fps {
        let hex: String = fp
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "tls_certs",
                "each entry is a certificate's SHA-256 fingerprint: 64 hex digits",
            ));
        }
        if !out.contains(&hex) {
            out.push(hex);
        }
    }
    Ok(out)
}

fn validate_policy_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(Error::invalid(
            "name",
            "policy names are 1-128 characters of A-Z a-z 0-9 - _ . starting with a letter or digit",
        ));
    }
    Ok(())
}

fn invalid_policy(e: PolicyError) -> Error {
    match e {
        PolicyError::Invalid { diagnostics, .. } => Error::invalid(
            "text",
            diagnostics
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        PolicyError::Internal(m) => Error::Internal(m),
    }
}

impl KeyService {
    /// Rebuilds the policy engine from the store. Called at start and after every change.
    /// A document that no longer compiles (e.g. after a Cedar upgrade) is left out and logged:
    /// leaving it out can only deny more, never allow more… unless it was a `forbid`, so the
    /// server refuses to start instead (see `bootstrap`).
    pub async fn load_policies(&self) -> Result<usize> {
        // Read before the documents: a change landing in between is seen by the next refresh.
        let generation = self.store.policy_generation().await?;
        let docs = self.store.policies().await?;
        let engine = PolicyEngine::new(
            docs.iter()
                .filter_map(|d| d.text.as_deref().map(|t| (d.name.as_str(), t))),
        )
        .map_err(|e| Error::Internal(format!("stored policies do not compile: {e}")))?;
        let n = docs.len();
        *self
            .policy
            .write()
            .map_err(|_| Error::Internal("policy lock poisoned".into()))? = Arc::new(engine);
        self.policy_generation
            .store(generation, std::sync::atomic::Ordering::SeqCst);
        Ok(n)
    }

    /// Reloads the policies if another node changed them (the store's policy generation
    /// moved). Run every few seconds by the server; returns whether it reloaded.
    pub async fn refresh_policies(&self) -> Result<bool> {
        let current = self.store.policy_generation().await?;
        if current
            == self
                .policy_generation
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(false);
        }
        self.load_policies().await?;
        metrics::counter!(crate::metrics::POLICY_RELOADS).increment(1);
        Ok(true)
    }

    /// Installs the shipped role policies (first start only).
    pub(crate) async fn install_default_policies(&self) -> Result<()> {
        for (name, text) in strongroom_policy::DEFAULT_POLICIES {
            match self
                .store
                .put_policy(name, Some(text), None, self.clock.now(), "strongroom")
                .await
            {
                Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Creates a principal.
    pub async fn create_principal(
        &self,
        ctx: &RequestContext,
        input: PrincipalInput,
    ) -> Result<PrincipalRecord> {
        let mut ev = self.event(ctx, Operation::CreatePrincipal);
        ev.target = Some(input.name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-principals")?;
            if input.name.as_str() == crate::ROOT_PRINCIPAL
                || input.name.as_str() == crate::SCHEDULER_PRINCIPAL
            {
                return Err(Error::invalid("name", "reserved for Strongroom itself"));
            }
            if !KINDS.contains(&input.kind.as_str()) {
                return Err(Error::invalid("kind", "must be user or workload"));
            }
            validate_roles(&input.roles)?;
            validate_labels(&input.labels, "labels")?;
            validate_description(&input.description)?;
            validate_rate_limits(&input.rate_limits)?;
            let tls_certs = normalise_fingerprints(input.tls_certs)?;
            if self.store.principal(&input.name).await?.is_some() {
                return Err(Error::AlreadyExists {
                    kind: "principal",
                    name: input.name.to_string(),
                });
            }
            let now = self.clock.now();
            let rec = PrincipalRecord {
                name: input.name,
                kind: input.kind,
                roles: input.roles,
                labels: input.labels,
                description: input.description,
                created_at: now,
                updated_at: now,
                disabled_at: None,
                rate_limits: input.rate_limits,
                tls_certs,
            };
            self.audit_before_commit(&mut ev).await?;
            self.store
                .put_principal(&rec, AliasWrite::Create)
                .await
                .map_err(|e| match e {
                    StoreError::AlreadyExists("principal") => Error::AlreadyExists {
                        kind: "principal",
                        name: rec.name.to_string(),
                    },
                    e => e.into(),
                })?;
            Ok(rec)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Changes a principal's roles, labels, description or disabled state.
    pub async fn update_principal(
        &self,
        ctx: &RequestContext,
        name: &PrincipalName,
        update: PrincipalUpdate,
    ) -> Result<PrincipalRecord> {
        let mut ev = self.event(ctx, Operation::UpdatePrincipal);
        ev.target = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-principals")?;
            let mut p = self
                .store
                .principal(name)
                .await?
                .map(Arc::unwrap_or_clone)
                .ok_or_else(|| Error::not_found("principal", name.to_string()))?;
            if let Some(r) = update.roles {
                validate_roles(&r)?;
                p.roles = r;
            }
            if let Some(l) = update.labels {
                validate_labels(&l, "labels")?;
                p.labels = l;
            }
            if let Some(d) = update.description {
                validate_description(&d)?;
                p.description = d;
            }
            if let Some(r) = update.rate_limits {
                validate_rate_limits(&r)?;
                p.rate_limits = r;
            }
            if let Some(c) = update.tls_certs {
                p.tls_certs = normalise_fingerprints(c)?;
            }
            let now = self.clock.now();
            if let Some(disabled) = update.disabled {
                p.disabled_at = match (disabled, p.disabled_at) {
                    (true, None) => Some(now),
                    (true, t) => t,
                    (false, _) => None,
                };
            }
            p.updated_at = now;
            self.audit_before_commit(&mut ev).await?;
            self.store.put_principal(&p, AliasWrite::Update).await?;
            Ok(p)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Reads a principal.
    pub async fn get_principal(
        &self,
        ctx: &RequestContext,
        name: &PrincipalName,
    ) -> Result<PrincipalRecord> {
        let mut ev = self.event(ctx, Operation::GetPrincipal);
        ev.target = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-principals")?;
            self.store
                .principal(name)
                .await?
                .map(Arc::unwrap_or_clone)
                .ok_or_else(|| Error::not_found("principal", name.to_string()))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Lists principals.
    pub async fn list_principals(
        &self,
        ctx: &RequestContext,
        page: &PageRequest,
    ) -> Result<Page<PrincipalRecord>> {
        let mut ev = self.event(ctx, Operation::ListPrincipals);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-principals")?;
            Ok(self.store.list_principals(page).await?)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Creates a token for another principal (an administrator handing out credentials).
    pub async fn create_token_for(
        &self,
        ctx: &RequestContext,
        principal: &PrincipalName,
        ttl_secs: Option<i64>,
        description: String,
    ) -> Result<NewToken> {
        self.issue_token(ctx, Some(principal), ttl_secs, description)
            .await
    }

    /// Writes a new version of a policy document after validating it against the schema.
    /// `expected_version`: `None` to create; the current version to replace (a stale version
    /// is a `conflict`, so two editors cannot silently overwrite each other).
    pub async fn put_policy(
        &self,
        ctx: &RequestContext,
        name: &str,
        text: &str,
        expected_version: Option<i64>,
    ) -> Result<PolicyRecord> {
        let mut ev = self.event(ctx, Operation::PutPolicy);
        ev.target = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-policies")?;
            validate_policy_name(name)?;
            PolicyEngine::validate(name, text).map_err(invalid_policy)?;
            self.audit_before_commit(&mut ev).await?;
            let now = self.clock.now();
            let version = self
                .store
                .put_policy(name, Some(text), expected_version, now, &who.principal.name)
                .await
                .map_err(|e| policy_store_error(e, name))?;
            self.load_policies().await?;
            Ok(PolicyRecord {
                name: name.to_string(),
                version,
                text: Some(text.to_string()),
                created_at: now,
                created_by: who.principal.name.clone(),
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Deletes a policy document (its history stays).
    pub async fn delete_policy(
        &self,
        ctx: &RequestContext,
        name: &str,
        expected_version: i64,
    ) -> Result<i64> {
        let mut ev = self.event(ctx, Operation::DeletePolicy);
        ev.target = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-policies")?;
            validate_policy_name(name)?;
            self.audit_before_commit(&mut ev).await?;
            let v = self
                .store
                .put_policy(
                    name,
                    None,
                    Some(expected_version),
                    self.clock.now(),
                    &who.principal.name,
                )
                .await
                .map_err(|e| policy_store_error(e, name))?;
            self.load_policies().await?;
            Ok(v)
        }
        .await;
        self.finish(ev, res).await
    }

    /// The current version of a policy document.
    pub async fn get_policy(&self, ctx: &RequestContext, name: &str) -> Result<PolicyRecord> {
        let mut ev = self.event(ctx, Operation::GetPolicy);
        ev.target = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "read-policies")?;
            validate_policy_name(name)?;
            self.store
                .policies()
                .await?
                .into_iter()
                .find(|p| p.name == name)
                .ok_or_else(|| Error::not_found("policy", name))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Every live policy document.
    pub async fn list_policies(&self, ctx: &RequestContext) -> Result<Vec<PolicyRecord>> {
        let mut ev = self.event(ctx, Operation::ListPolicies);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "read-policies")?;
            Ok(self.store.policies().await?)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Every version of one document, oldest first (deletions have no text).
    pub async fn policy_history(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> Result<Vec<PolicyRecord>> {
        let mut ev = self.event(ctx, Operation::GetPolicy);
        ev.target = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "read-policies")?;
            validate_policy_name(name)?;
            let h = self.store.policy_history(name).await?;
            if h.is_empty() {
                return Err(Error::not_found("policy", name));
            }
            Ok(h)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Checks a policy document's name, syntax and schema without storing it — no request,
    /// no audit event: for front-ends that generate Cedar (AWS key policies) to check their
    /// output before anything is created.
    pub fn validate_policy_text(name: &str, text: &str) -> Result<()> {
        validate_policy_name(name)?;
        PolicyEngine::validate(name, text).map_err(invalid_policy)
    }

    /// Validates a document without storing it. Any authenticated caller may ask.
    pub async fn validate_policy(
        &self,
        ctx: &RequestContext,
        name: &str,
        text: &str,
    ) -> Result<()> {
        let mut ev = self.event(ctx, Operation::ValidatePolicy);
        let res = async {
            self.authenticate(ctx, &mut ev).await?;
            validate_policy_name(name)?;
            PolicyEngine::validate(name, text).map_err(invalid_policy)
        }
        .await;
        self.finish(ev, res).await
    }

    /// "Would this principal be allowed to do this, and which policy decides?" Performs
    /// nothing. Root's own requests are always allowed and are not evaluated here.
    pub async fn test_policy(&self, ctx: &RequestContext, t: PolicyTest) -> Result<Decision> {
        let mut ev = self.event(ctx, Operation::TestPolicy);
        ev.target = Some(t.principal.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "read-policies")?;
            let p = self
                .store
                .principal(&t.principal)
                .await?
                .ok_or_else(|| Error::not_found("principal", t.principal.to_string()))?;
            let attrs = PrincipalAttrs {
                name: p.name.to_string(),
                kind: p.kind.clone(),
                roles: p.roles.clone(),
                labels: p.labels.clone(),
            };
            let resource = match &t.resource {
                TestResource::System => ResourceAttrs::System,
                TestResource::KeyRing(r) => self.ring_resource(r).await?,
                TestResource::Key(r) => match self.resolve(r, &mut ev.clone()).await {
                    Ok(k) => self.key_resource(&k).await?,
                    Err(Error::NotFound { .. }) => {
                        let (ring, name) = match r {
                            KeyRef::Path(ring, name) => (ring.to_string(), name.to_string()),
                            _ => (String::new(), String::new()),
                        };
                        ResourceAttrs::Key(KeyAttrs {
                            ring,
                            name,
                            exists: false,
                            ..KeyAttrs::default()
                        })
                    }
                    Err(e) => return Err(e),
                },
            };
            let engine = self
                .policy
                .read()
                .map(|e| e.clone())
                .map_err(|_| Error::Internal("policy lock poisoned".into()))?;
            if !strongroom_policy::PolicyEngine::action_names()
                .map_err(|e| Error::Internal(e.to_string()))?
                .contains(&t.action)
            {
                return Err(Error::invalid(
                    "action",
                    "not an action in the schema; see `strongroom policy schema`",
                ));
            }
            let req = RequestAttrs {
                protocol: ctx.protocol.as_str().into(),
                now: self.clock.now().0,
                source_ip: t.source_ip.clone(),
                encryption_context: t.context.pairs().clone(),
                alias: match &t.resource {
                    TestResource::Key(KeyRef::Alias(a)) => Some(a.to_string()),
                    _ => None,
                },
            };
            engine
                .authorize(&attrs, &t.action, &resource, &req)
                .map_err(|e| match e {
                    PolicyError::Internal(m) if m.contains("does not fit the schema") => {
                        Error::invalid("action", "does not apply to this kind of resource")
                    }
                    e => Error::Internal(e.to_string()),
                })
        }
        .await;
        self.finish(ev, res).await
    }
}

fn policy_store_error(e: StoreError, name: &str) -> Error {
    match e {
        StoreError::AlreadyExists(_) => Error::AlreadyExists {
            kind: "policy",
            name: name.to_string(),
        },
        StoreError::NotFound(_) => Error::not_found("policy", name),
        StoreError::Conflict => Error::Conflict(format!(
            "policy {name} is not at the version given; read it again (strongroom policy get) and reapply your change"
        )),
        e => e.into(),
    }
}
