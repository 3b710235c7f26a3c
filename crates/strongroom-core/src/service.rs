//! `KeyService`: construction, authentication, audit, key resolution and the unsealed
//! material cache. The operations themselves live in `lifecycle.rs`, `crypto_ops.rs` and
//! `tokens.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use strongroom_audit::{AuditError, AuditEvent, AuditSink, Outcome};
use strongroom_crypto::EncryptionContext;
use strongroom_crypto::{KeyId, KeyMaterial, Purpose, RootKey, hash, keys};
use strongroom_policy::{KeyAttrs, PolicyEngine, PrincipalAttrs, RequestAttrs, ResourceAttrs};
use strongroom_store::{
    KeyRecord, KeyState, PrincipalName, RingName, Store, VersionRecord, VersionState,
};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::request::{Authorized, Operation, Principal, Protocol, RequestContext};
use crate::types::KeyRef;

/// Most unsealed versions kept in memory before the cache is emptied and refilled.
const MATERIAL_CACHE_CAP: usize = 10_000;
/// Longest token text considered; anything longer is refused before hashing.
pub(crate) const MAX_TOKEN_LEN: usize = 512;

/// The one door to keys. Every front-end calls these methods; each authenticates the caller,
/// checks the key's state, performs the operation and writes exactly one audit event before
/// returning. If the audit event cannot be written, the operation reports `Unavailable`.
pub struct KeyService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) root: RootKey,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<(KeyId, u32), Arc<KeyMaterial>>>,
    /// The compiled policy documents; replaced whole when a document changes.
    pub(crate) policy: RwLock<Arc<PolicyEngine>>,
    /// The store's policy generation the engine was built from (-1: not loaded yet).
    pub(crate) policy_generation: std::sync::atomic::AtomicI64,
    /// This node's name, for leases in a store shared by several nodes.
    pub(crate) node_id: String,
    /// How long the scheduler lease lasts once taken (seconds).
    pub(crate) scheduler_lease_secs: i64,
    /// The audit log file, for queries.
    pub(crate) audit_path: Option<std::path::PathBuf>,
    /// The store setting that records how far this node's audit log is durable.
    audit_position_meta: String,
    /// Request quotas.
    pub(crate) limiter: crate::quota::Limiter,
    /// Cached JWKS documents of trusted issuers.
    pub(crate) jwks: crate::federation::JwksCache,
    /// Fetches JWKS documents (provided by the binary; core has no HTTP client).
    pub(crate) jwks_fetcher: Option<Arc<dyn crate::federation::JwksFetcher>>,
    /// Label key metrics with key names as well as key rings.
    metrics_per_key: bool,
    inventory_gauges: crate::metrics::InventoryGauges,
    /// The key providers this node is configured with, by name.
    pub(crate) providers: std::collections::BTreeMap<String, Arc<crate::failover::Guarded>>,
    /// Providers key set decryption tries first on this node, unless a request says.
    pub(crate) key_set_prefer: Vec<String>,
    /// SigV4 signing keys already derived, by access key and scope.
    pub(crate) sigv4_keys: crate::access_keys::SigningKeys,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService").finish_non_exhaustive()
    }
}

/// What liveness probes report: whether the node has hit a fault only a restart clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The store has not failed permanently (an fsync failure).
    pub store_ok: bool,
    /// The last audit write succeeded.
    pub audit_ok: bool,
}

/// What readiness probes report: whether this node can serve requests now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The store answered a query just now.
    pub store_ok: bool,
    /// The audit log is writable.
    pub audit_ok: bool,
    /// The policy documents are loaded.
    pub policies_ok: bool,
}

impl Readiness {
    /// Every part is ready.
    pub fn ready(&self) -> bool {
        self.store_ok && self.audit_ok && self.policies_ok
    }
}

impl KeyService {
    /// Builds a service over an opened store whose root key has already been verified
    /// (see [`crate::bootstrap`]).
    pub fn new(
        store: Arc<dyn Store>,
        root: RootKey,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            root,
            audit,
            clock,
            cache: Mutex::new(HashMap::new()),
            // Until `load_policies` runs, nothing but root is allowed (default deny).
            policy: RwLock::new(Arc::new(PolicyEngine::empty())),
            policy_generation: std::sync::atomic::AtomicI64::new(-1),
            node_id: "local".into(),
            scheduler_lease_secs: 90,
            audit_path: None,
            audit_position_meta: crate::bootstrap::AUDIT_SEQ_META.to_string(),
            limiter: crate::quota::Limiter::new(crate::quota::QuotaConfig::default()),
            jwks: crate::federation::JwksCache::default(),
            jwks_fetcher: None,
            metrics_per_key: false,
            inventory_gauges: crate::metrics::InventoryGauges::default(),
            providers: Default::default(),
            key_set_prefer: Vec::new(),
            sigv4_keys: Default::default(),
        }
    }

    /// Sets the providers key set decryption tries first on this node (nearest first).
    pub fn with_key_set_preference(mut self, prefer: Vec<String>) -> Self {
        self.key_set_prefer = prefer;
        self
    }

    /// Sets the key providers (from the providers file), each with its failover policy
    /// (the default where `failover` names none).
    pub fn with_providers(
        mut self,
        providers: std::collections::BTreeMap<String, Arc<dyn strongroom_providers::KeyProvider>>,
        failover: &std::collections::BTreeMap<String, strongroom_providers::FailoverPolicy>,
    ) -> Self {
        for (name, p) in providers {
            let policy = failover.get(&name).copied().unwrap_or_default();
            self.providers
                .insert(name, Arc::new(crate::failover::Guarded::new(p, policy)));
        }
        self
    }

    /// Puts the service in an `Arc`, with Strongroom's own keys as the `software` provider
    /// (which needs a handle on the service to reach them).
    pub fn into_shared(mut self) -> Arc<Self> {
        Arc::new_cyclic(|me| {
            let software = crate::keysets::SoftwareProvider { svc: me.clone() };
            self.providers.insert(
                strongroom_providers::SOFTWARE.into(),
                Arc::new(crate::failover::Guarded::new(
                    Arc::new(software),
                    strongroom_providers::FailoverPolicy::default(),
                )),
            );
            self
        })
    }

    /// Labels key metrics with key names too (one series per key and operation).
    pub fn with_per_key_metrics(mut self, on: bool) -> Self {
        self.metrics_per_key = on;
        self
    }

    /// Names this node (several nodes sharing a store need distinct names) and sets how long
    /// its scheduler lease lasts: another node takes the scheduled jobs over that long after
    /// this one stops renewing it.
    pub fn with_node(mut self, id: String, scheduler_lease_secs: i64) -> Self {
        self.node_id = id;
        self.scheduler_lease_secs = scheduler_lease_secs.max(1);
        self
    }

    /// Sets how issuers' JWKS documents are fetched.
    pub fn with_jwks_fetcher(mut self, f: Arc<dyn crate::federation::JwksFetcher>) -> Self {
        self.jwks_fetcher = Some(f);
        self
    }

    /// Sets the default request quotas.
    pub fn with_quotas(mut self, q: crate::quota::QuotaConfig) -> Self {
        self.limiter = crate::quota::Limiter::new(q);
        self
    }

    /// Names the store setting this node records its audit position in (one per node when
    /// several share a store).
    pub fn with_audit_position_meta(mut self, name: String) -> Self {
        self.audit_position_meta = name;
        self
    }

    /// Names the audit log file that `query_audit` reads.
    pub fn with_audit_path(mut self, path: std::path::PathBuf) -> Self {
        self.audit_path = Some(path);
        self
    }

    /// Records a request a front-end refused before it reached an operation (malformed
    /// body, unknown route, bad parameter): every refusal is audited. `what` names the
    /// request (`POST /v1/crypto/encrypt`), `code` the front-end's error code. When
    /// `needs_auth` and the caller is not authenticated, the refusal becomes
    /// `Unauthenticated` (an anonymous caller learns nothing about the request's shape).
    /// Fails with `Unavailable` if the event cannot be written.
    pub async fn audit_rejected(
        &self,
        ctx: &RequestContext,
        what: String,
        code: &'static str,
        needs_auth: bool,
    ) -> Result<()> {
        let mut ev = self.event(ctx, Operation::RejectedRequest);
        ev.target = Some(what);
        match self.authenticate(ctx, &mut ev).await {
            Ok(_) | Err(Error::Unauthenticated) if !needs_auth => {}
            Ok(_) => {}
            // Refused for who is asking (or how often) before what was asked: audited as such.
            Err(e) => return self.finish(ev, Err(e)).await,
        }
        ev.outcome = strongroom_audit::Outcome::Error;
        ev.error_code = Some(code);
        let res = self.append_audit(&ev).await.map_err(|e| {
            tracing::error!(request_id = %ev.request_id, error = %e, "audit write failed");
            Error::Unavailable("audit log is not writable".into())
        });
        crate::metrics::operation(&ev, self.metrics_per_key);
        res
    }

    /// Reads audit events (needs the `read-audit` permission).
    pub async fn query_audit(
        &self,
        ctx: &RequestContext,
        filter: strongroom_audit::query::Filter,
    ) -> Result<strongroom_audit::query::Events> {
        let mut ev = self.event(ctx, Operation::QueryAudit);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "read-audit")?;
            if filter.limit == 0 || filter.limit > 1000 {
                return Err(Error::invalid("limit", "must be between 1 and 1000"));
            }
            let path = self
                .audit_path
                .clone()
                .ok_or_else(|| Error::Unavailable("no audit log configured".into()))?;
            tokio::task::spawn_blocking(move || strongroom_audit::query::read(&path, &filter))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
                .map_err(|e| Error::Unavailable(format!("cannot read the audit log: {e}")))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Checks that the caller may read the metrics (the `read-metrics` permission, which
    /// the `auditor` role has). Audited like every request.
    pub async fn authorize_metrics(&self, ctx: &RequestContext) -> Result<()> {
        let mut ev = self.event(ctx, Operation::ReadMetrics);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "read-metrics")?;
            Ok(())
        }
        .await;
        self.finish(ev, res).await
    }

    /// Faults only a restart clears, for liveness probes.
    pub fn health(&self) -> Health {
        Health {
            store_ok: self.store.is_healthy(),
            audit_ok: self.audit.is_healthy(),
        }
    }

    /// Whether this node can serve now, for readiness probes: the store answers a query
    /// within 2 seconds, the audit log is writable and the policies are loaded. (A node that
    /// cannot unseal never starts, so a running node is always unsealed.)
    pub async fn readiness(&self) -> Readiness {
        let ping = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.store.policy_generation(),
        )
        .await;
        let r = Readiness {
            store_ok: self.store.is_healthy() && matches!(ping, Ok(Ok(_))),
            audit_ok: self.audit.is_healthy(),
            policies_ok: self
                .policy_generation
                .load(std::sync::atomic::Ordering::SeqCst)
                >= 0,
        };
        metrics::gauge!(crate::metrics::READY).set(if r.ready() { 1.0 } else { 0.0 });
        r
    }

    /// Reads the store's inventory into the key gauges (run periodically by the server).
    pub async fn observe_inventory(&self) -> Result<()> {
        let now = self.clock.now();
        let inv = self.store.inventory(now).await?;
        self.inventory_gauges.set(&inv, now);
        Ok(())
    }

    /// Records in the store how far the audit log is known to be durable, so a log later
    /// truncated or replaced by an older copy is caught at start. Called periodically and at
    /// shutdown; the recorded position only moves forward.
    pub async fn record_audit_position(&self) -> Result<u64> {
        let seq = self.audit.durable_seq();
        let recorded = self
            .store
            .meta(&self.audit_position_meta)
            .await?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        if seq > recorded {
            self.store
                .put_meta(&self.audit_position_meta, &seq.to_be_bytes())
                .await?;
        }
        Ok(seq.max(recorded))
    }

    /// Writes a final audit checkpoint (at shutdown).
    pub async fn close_audit(&self) -> Result<()> {
        self.audit
            .close()
            .await
            .map_err(|e| Error::Unavailable(format!("audit log: {e}")))
    }

    /// Starts the audit event for an operation.
    pub(crate) fn event(&self, ctx: &RequestContext, op: Operation) -> AuditEvent {
        let mut ev = AuditEvent::new(
            self.clock.now().to_rfc3339(),
            ctx.request_id.clone(),
            ctx.protocol.as_str(),
            op.as_str(),
        );
        ev.started = Some(std::time::Instant::now());
        ev.client_addr = ctx.client_addr.clone();
        ev.client_request_id = ctx.client_request_id.clone();
        ev
    }

    /// Records the outcome and writes the event. A result only leaves once its event is
    /// written: if the audit log fails, the caller gets `Unavailable` instead.
    pub(crate) async fn finish<T>(&self, mut ev: AuditEvent, res: Result<T>) -> Result<T> {
        if ev.written_ahead && res.is_ok() {
            // The event was made durable before the state change was committed.
            crate::metrics::operation(&ev, self.metrics_per_key);
            return res;
        }
        if let Err(e) = &res {
            ev.outcome = Outcome::Error;
            ev.error_code = Some(e.code());
            if let Error::Internal(detail) = e {
                tracing::error!(request_id = %ev.request_id, operation = ev.operation, %detail, "internal error");
            }
        }
        match self.append_audit(&ev).await {
            Ok(()) => {
                crate::metrics::operation(&ev, self.metrics_per_key);
                res
            }
            Err(e) => {
                tracing::error!(request_id = %ev.request_id, error = %e, "audit write failed; refusing the operation's result");
                let e = Error::Unavailable("audit log is not writable".into());
                ev.outcome = Outcome::Error;
                ev.error_code = Some(e.code());
                crate::metrics::operation(&ev, self.metrics_per_key);
                Err(e)
            }
        }
    }

    /// Appends one event, timing it for the audit metrics.
    async fn append_audit(&self, ev: &AuditEvent) -> std::result::Result<(), AuditError> {
        let t = std::time::Instant::now();
        let res = self.audit.append(ev).await;
        crate::metrics::audit_write(t.elapsed(), res.is_ok());
        res
    }

    /// Makes the operation's event durable *before* a state change is committed, so no change
    /// ever exists without its event (fail closed). If the commit then fails, `finish` writes
    /// a second event with the same request id and outcome `error`. Idempotent across the
    /// retries of one operation.
    pub(crate) async fn audit_before_commit(&self, ev: &mut AuditEvent) -> Result<()> {
        if ev.written_ahead {
            return Ok(());
        }
        self.append_audit(ev).await.map_err(|e| {
            tracing::error!(request_id = %ev.request_id, error = %e, "audit write failed; the state change is not made");
            Error::Unavailable("audit log is not writable".into())
        })?;
        ev.written_ahead = true;
        Ok(())
    }

    /// Authenticates the caller: who is asking. Every operation starts here. A bearer token
    /// wins over a SigV4 signature, which wins over a client certificate.
    pub(crate) async fn authenticate(
        &self,
        ctx: &RequestContext,
        ev: &mut AuditEvent,
    ) -> Result<Caller> {
        // The scheduler identity is never granted through a request context (a front-end
        // could build one); only `authorize_scheduler`, private to core, grants it.
        if ctx.protocol == Protocol::Scheduler {
            return Err(Error::Unauthenticated);
        }
        let Some(token) = &ctx.token else {
            if let Some(sig) = &ctx.sigv4 {
                return self.authenticate_sigv4(sig, ev).await;
            }
            return match (ctx.client_cert, &ctx.socket_principal) {
                (Some(fp), _) => self.authenticate_cert(&fp, ev).await,
                (None, Some(p)) if ctx.protocol == Protocol::K8sKms => {
                    self.caller(p, "unix-socket".into(), "unix-socket", ev)
                        .await
                }
                (None, _) => Err(Error::Unauthenticated),
            };
        };
        // Exposed to hash it for lookup; only the hash is stored or compared.
        let text = token.expose_secret();
        if text.is_empty() || text.len() > MAX_TOKEN_LEN {
            return Err(Error::Unauthenticated);
        }
        let h = hash::sha256(text.as_bytes());
        let rec = self
            .store
            .token_by_hash(&h)
            .await?
            .ok_or(Error::Unauthenticated)?;
        // The index lookup matched on the hash; compare again in constant time so the
        // decision never rests on a variable-time comparison.
        if !hash::constant_time_eq(&rec.hash, &h) {
            return Err(Error::Unauthenticated);
        }
        let now = self.clock.now();
        if rec.revoked_at.is_some() || rec.expires_at.is_some_and(|t| t <= now) {
            return Err(Error::Unauthenticated);
        }
        self.caller(&rec.principal, rec.id.clone(), "token", ev)
            .await
    }

    /// The caller acting as `principal` (root or an enabled principal), after its credential
    /// checked out: records who it is in the audit event and takes one request from its
    /// quota. Quotas apply to principals, not to root: the break-glass credential is never
    /// locked out by its own load.
    pub(crate) async fn caller(
        &self,
        principal: &str,
        credential_id: String,
        method: &'static str,
        ev: &mut AuditEvent,
    ) -> Result<Caller> {
        let attrs = if principal == crate::ROOT_PRINCIPAL {
            None
        } else {
            let name = PrincipalName::try_new(principal).map_err(|_| Error::Unauthenticated)?;
            let p = self
                .store
                .principal(&name)
                .await?
                .ok_or(Error::Unauthenticated)?;
            Some(self.enabled_principal_attrs(&p, ev)?)
        };
        ev.principal = Some(principal.to_string());
        ev.token_id = Some(credential_id.clone());
        ev.auth_method = Some(method);
        Ok(Caller {
            principal: Principal {
                name: principal.to_string(),
                token_id: credential_id,
            },
            attrs,
        })
    }

    /// What policies see of an enabled principal, once its quota allows the request.
    fn enabled_principal_attrs(
        &self,
        p: &strongroom_store::PrincipalRecord,
        ev: &mut AuditEvent,
    ) -> Result<PrincipalAttrs> {
        if p.disabled_at.is_some() {
            return Err(Error::Unauthenticated);
        }
        ev.principal = Some(p.name.to_string());
        self.limiter.take(
            p.name.as_str(),
            &p.rate_limits,
            crate::quota::class_of(ev.operation),
        )?;
        Ok(PrincipalAttrs {
            name: p.name.to_string(),
            kind: p.kind.clone(),
            roles: p.roles.clone(),
            labels: p.labels.clone(),
        })
    }

    /// Mutual TLS: the TLS layer verified the certificate chain against the client CA; here
    /// its fingerprint must be registered to an enabled principal. Root cannot be reached this
    /// way.
    async fn authenticate_cert(&self, fp: &[u8; 32], ev: &mut AuditEvent) -> Result<Caller> {
        let hex: String = fp.iter().map(|b| format!("{b:02x}")).collect();
        let p = self
            .store
            .principal_by_cert(&hex)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let credential_id = format!("cert:{}", &hex[..16]);
        let name = p.name.to_string();
        let attrs = self.enabled_principal_attrs(&p, ev)?;
        ev.token_id = Some(credential_id.clone());
        ev.auth_method = Some("mtls");
        Ok(Caller {
            principal: Principal {
                name,
                token_id: credential_id,
            },
            attrs: Some(attrs),
        })
    }

    /// Decides whether the caller may do `action` on `resource`, recording the deciding
    /// policies in the audit event. Root is allowed everything (policy `builtin:root`).
    pub(crate) fn permit(
        &self,
        who: &Caller,
        ctx: &RequestContext,
        ev: &mut AuditEvent,
        action: &'static str,
        resource: &ResourceAttrs,
        ec: Option<&EncryptionContext>,
    ) -> Result<Authorized> {
        match self.decide(who, ctx, ev, action, resource, ec)? {
            Verdict::Allowed(a) => Ok(a),
            Verdict::Forbidden | Verdict::NothingPermits => Err(Error::AccessDenied),
        }
    }

    /// Decides `action` on an existing key: policy first; when no policy permits it and
    /// none forbids it, a grant on the key for the caller may allow it (`docs/grants.md`).
    pub(crate) async fn permit_key(
        &self,
        who: &Caller,
        ctx: &RequestContext,
        ev: &mut AuditEvent,
        action: &'static str,
        k: &KeyRecord,
        ec: Option<&EncryptionContext>,
    ) -> Result<Authorized> {
        let res = self.key_resource(k).await?;
        match self.decide(who, ctx, ev, action, &res, ec)? {
            Verdict::Allowed(a) => Ok(a),
            Verdict::Forbidden => Err(Error::AccessDenied),
            Verdict::NothingPermits => self.grant_allows(who, ev, action, k, ec).await,
        }
    }

    fn decide(
        &self,
        who: &Caller,
        ctx: &RequestContext,
        ev: &mut AuditEvent,
        action: &'static str,
        resource: &ResourceAttrs,
        ec: Option<&EncryptionContext>,
    ) -> Result<Verdict> {
        let Some(attrs) = &who.attrs else {
            ev.policy = Some("builtin:root".into());
            return Ok(Verdict::Allowed(Authorized {
                principal: who.principal.clone(),
            }));
        };
        let engine = self
            .policy
            .read()
            .map(|e| e.clone())
            .map_err(|_| Error::Internal("policy lock poisoned".into()))?;
        // Facts no policy names are left out: they cannot change the decision.
        let req = RequestAttrs {
            protocol: ctx.protocol.as_str().into(),
            now: self.clock.now().0,
            source_ip: ctx
                .client_addr
                .as_deref()
                .filter(|_| engine.reads_source_ip())
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                .map(|a| a.ip().to_string()),
            encryption_context: ec
                .filter(|_| engine.reads_encryption_context())
                .map(|c| c.pairs().clone())
                .unwrap_or_default(),
            alias: ev.alias.clone(),
        };
        let d = engine
            .authorize(attrs, action, resource, &req)
            .map_err(|e| Error::Internal(e.to_string()))?;
        for e in &d.errors {
            tracing::warn!(request_id = %ctx.request_id, action, error = %e, "a policy failed to evaluate (treated as not matching)");
        }
        if !d.policies.is_empty() {
            ev.policy = Some(d.policies.join(","));
        }
        Ok(if d.allowed {
            Verdict::Allowed(Authorized {
                principal: who.principal.clone(),
            })
        } else if d.policies.is_empty() {
            Verdict::NothingPermits
        } else {
            Verdict::Forbidden
        })
    }

    /// The policy view of a key (with its ring's labels).
    pub(crate) async fn key_resource(&self, k: &KeyRecord) -> Result<ResourceAttrs> {
        let ring_labels = self
            .store
            .key_ring(&k.ring)
            .await?
            .map(|r| r.labels.clone())
            .unwrap_or_default();
        Ok(ResourceAttrs::Key(KeyAttrs {
            ring: k.ring.to_string(),
            name: k.name.to_string(),
            id: k.id.to_string(),
            purpose: k.purpose.to_string(),
            algorithm: k.algorithm.to_string(),
            protection: k.protection.to_string(),
            labels: k.labels.clone(),
            ring_labels,
            exists: true,
        }))
    }

    /// The policy view of a key ring (a missing ring is presented without labels).
    pub(crate) async fn ring_resource(&self, name: &RingName) -> Result<ResourceAttrs> {
        let labels = self
            .store
            .key_ring(name)
            .await?
            .map(|r| r.labels.clone())
            .unwrap_or_default();
        Ok(ResourceAttrs::KeyRing {
            name: name.to_string(),
            labels,
        })
    }

    /// Resolves a key reference and checks `action` on it. When the key does not exist, the
    /// decision is made on a stand-in with the requested name and no labels: a caller who
    /// may not act on such a key gets `access_denied`, never learning whether it exists.
    pub(crate) async fn resolve_checked(
        &self,
        who: &Caller,
        ctx: &RequestContext,
        ev: &mut AuditEvent,
        action: &'static str,
        r: &KeyRef,
        ec: Option<&EncryptionContext>,
    ) -> Result<Arc<KeyRecord>> {
        match self.resolve(r, ev).await {
            Ok(k) => {
                self.permit_key(who, ctx, ev, action, &k, ec).await?;
                Ok(k)
            }
            Err(e @ Error::NotFound { .. }) => {
                let (ring, name) = match r {
                    KeyRef::Path(ring, name) => (ring.to_string(), name.to_string()),
                    KeyRef::Alias(_) | KeyRef::Id(_) => (String::new(), String::new()),
                };
                let stand_in = ResourceAttrs::Key(KeyAttrs {
                    ring,
                    name,
                    exists: false,
                    ..KeyAttrs::default()
                });
                self.permit(who, ctx, ev, action, &stand_in, ec)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Checks `action` on a key already in hand (e.g. found through a ciphertext's key id).
    pub(crate) async fn check_key(
        &self,
        who: &Caller,
        ctx: &RequestContext,
        ev: &mut AuditEvent,
        action: &'static str,
        k: &KeyRecord,
        ec: Option<&EncryptionContext>,
    ) -> Result<Authorized> {
        self.permit_key(who, ctx, ev, action, k, ec).await
    }

    /// Checks an action on the whole service (listing, tokens, policies, audit, random).
    pub(crate) fn check_system(
        &self,
        who: &Caller,
        ctx: &RequestContext,
        ev: &mut AuditEvent,
        action: &'static str,
    ) -> Result<Authorized> {
        self.permit(who, ctx, ev, action, &ResourceAttrs::System, None)
    }

    /// The identity of Strongroom's own scheduled jobs. Crate-private on purpose.
    pub(crate) fn authorize_scheduler(&self, ev: &mut AuditEvent) -> Authorized {
        ev.principal = Some(crate::SCHEDULER_PRINCIPAL.into());
        Authorized {
            principal: Principal {
                name: crate::SCHEDULER_PRINCIPAL.into(),
                token_id: String::new(),
            },
        }
    }

    /// Finds the key a reference names and records it in the audit event.
    pub(crate) async fn resolve(&self, r: &KeyRef, ev: &mut AuditEvent) -> Result<Arc<KeyRecord>> {
        let key = match r {
            KeyRef::Path(ring, name) => self.store.key(ring, name).await?,
            KeyRef::Alias(a) => {
                ev.alias = Some(a.to_string());
                let alias = self
                    .store
                    .alias(a)
                    .await?
                    .ok_or_else(|| Error::not_found("alias", a.to_string()))?;
                self.store.key_by_id(alias.key_id).await?
            }
            KeyRef::Id(id) => self.store.key_by_id(*id).await?,
        };
        let key = key.ok_or_else(|| Error::not_found("key", r.to_string()))?;
        note_key(ev, &key);
        Ok(key)
    }

    /// Loads a version record or fails with `NotFound`.
    pub(crate) async fn version_record(
        &self,
        key: &KeyRecord,
        n: u32,
    ) -> Result<Arc<VersionRecord>> {
        if n == 0 {
            return Err(Error::invalid("version", "versions are numbered from 1"));
        }
        self.store.version(key.id, n).await?.ok_or_else(|| {
            Error::not_found(
                "key version",
                format!("{}/{} version {n}", key.ring, key.name),
            )
        })
    }

    /// Refuses a cryptographic operation on a key that is not enabled, or whose imported
    /// material has expired: it is unusable from its expiry, not from when the scheduler
    /// gets to deleting it.
    pub(crate) fn require_usable(&self, key: &KeyRecord, op: Operation) -> Result<()> {
        if key.state != KeyState::Enabled {
            return Err(Error::InvalidState {
                resource: format!("key {}/{}", key.ring, key.name),
                state: key.state.as_str(),
                operation: op.as_str(),
                requirement: "needs it enabled",
            });
        }
        if key
            .material_expires_at
            .is_some_and(|t| t <= self.clock.now())
        {
            return Err(Error::InvalidState {
                resource: format!("key {}/{}", key.ring, key.name),
                state: KeyState::PendingImport.as_str(),
                operation: op.as_str(),
                requirement: "needs its material imported again (it expired)",
            });
        }
        Ok(())
    }

    /// The version a cryptographic operation uses: `requested`, or the primary. Checks that
    /// the key is usable and the version enabled.
    pub(crate) async fn usable_version(
        &self,
        key: &KeyRecord,
        requested: Option<u32>,
        op: Operation,
        ev: &mut AuditEvent,
    ) -> Result<Arc<VersionRecord>> {
        self.require_usable(key, op)?;
        let n = match requested.or(key.primary_version) {
            Some(n) => n,
            None => {
                return Err(Error::InvalidState {
                    resource: format!("key {}/{}", key.ring, key.name),
                    state: "without a primary version",
                    operation: op.as_str(),
                    requirement: "needs one; create a version",
                });
            }
        };
        ev.version = Some(n);
        let v = self.version_record(key, n).await?;
        require_version_enabled(key, &v, op)?;
        Ok(v)
    }

    /// The unsealed material of a version, from the cache or by unsealing.
    pub(crate) fn material(&self, key: &KeyRecord, v: &VersionRecord) -> Result<Arc<KeyMaterial>> {
        let slot = (key.id, v.version);
        if let Ok(cache) = self.cache.lock()
            && let Some(m) = cache.get(&slot)
        {
            return Ok(m.clone());
        }
        let sealed = v.sealed_material.as_deref().ok_or_else(|| {
            Error::Internal(format!(
                "version {} of key {} has no material",
                v.version, key.id
            ))
        })?;
        let m = self
            .root
            .unseal(&binding(key, v.version), sealed)
            .map_err(|_| {
                Error::Internal(format!(
                    "sealed material of key {} version {} failed its integrity check",
                    key.id, v.version
                ))
            })?;
        keys::validate(key.algorithm, &m).map_err(|_| {
            Error::Internal(format!(
                "material of key {} version {} does not fit its algorithm",
                key.id, v.version
            ))
        })?;
        let m = Arc::new(m);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MATERIAL_CACHE_CAP {
                cache.clear();
            }
            cache.insert(slot, m.clone());
        }
        Ok(m)
    }

    /// Drops a version's material from the cache (on destruction).
    pub(crate) fn forget(&self, key_id: KeyId, version: u32) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&(key_id, version));
        }
    }

    /// Generates and seals material for a new version.
    pub(crate) fn new_version(
        &self,
        key: &KeyRecord,
        n: u32,
        origin: strongroom_store::VersionOrigin,
    ) -> Result<VersionRecord> {
        if let Some(x) = &key.external {
            return Err(Error::InvalidState {
                resource: format!(
                    "key {}/{} (held by provider {}, key {})",
                    key.ring, key.name, x.provider, x.key
                ),
                state: "external",
                operation: "create-version",
                requirement: "rotates at its provider, which keeps its versions inside the ciphertexts",
            });
        }
        let material = keys::generate(key.algorithm)?;
        let public_key = if key.algorithm.is_asymmetric() {
            Some(keys::public_key_der(key.algorithm, &material)?)
        } else {
            None
        };
        // Exposed to seal it: the only way material reaches the store.
        let sealed = self.root.seal(&binding(key, n), material.expose_secret())?;
        Ok(VersionRecord {
            key_id: key.id,
            version: n,
            state: VersionState::Enabled,
            origin,
            sealed_material: Some(sealed),
            public_key,
            created_at: self.clock.now(),
            destroy_time: None,
            destroyed_at: None,
        })
    }
}

/// What policy says of a request.
pub(crate) enum Verdict {
    /// A policy (or root) allows it.
    Allowed(Authorized),
    /// A `forbid` matched: nothing, not even a grant, allows it.
    Forbidden,
    /// No policy permits it (default deny); a grant still may.
    NothingPermits,
}

/// An authenticated caller: the principal and, unless it is root, what policies see of it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) principal: Principal,
    pub(crate) attrs: Option<PrincipalAttrs>,
}

/// The sealing binding of a version: key id, version number and algorithm (see
/// `docs/sealing.md`). Swapping sealed blobs between versions or keys fails to unseal.
pub(crate) fn binding(key: &KeyRecord, version: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(b"key-version\0");
    b.extend_from_slice(key.id.as_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b.extend_from_slice(key.algorithm.name().as_bytes());
    b
}

pub(crate) fn note_key(ev: &mut AuditEvent, key: &KeyRecord) {
    ev.key_ring = Some(key.ring.to_string());
    ev.key = Some(key.name.to_string());
    ev.key_id = Some(key.id.to_string());
}

pub(crate) fn require_purpose(key: &KeyRecord, purpose: Purpose, op: Operation) -> Result<()> {
    if key.purpose != purpose {
        return Err(Error::InvalidKeyUsage {
            key: format!("{}/{}", key.ring, key.name),
            purpose: key.purpose,
            operation: op.as_str(),
            required: purpose.as_str(),
        });
    }
    Ok(())
}

pub(crate) fn require_version_enabled(
    key: &KeyRecord,
    v: &VersionRecord,
    op: Operation,
) -> Result<()> {
    if v.state != VersionState::Enabled {
        return Err(Error::InvalidState {
            resource: format!("key {}/{} version {}", key.ring, key.name, v.version),
            state: v.state.as_str(),
            operation: op.as_str(),
            requirement: "needs it enabled",
        });
    }
    Ok(())
}
