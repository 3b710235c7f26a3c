//! Who may do what: Strongroom's permissions as Cedar policies.
//!
//! This crate knows the Cedar schema (`schema.cedarschema`), turns plain descriptions of a
//! principal, a resource and a request into Cedar entities, validates policy documents
//! (with line and column in every diagnostic) and evaluates requests. It stores nothing and
//! knows no HTTP: `strongroom-core` loads documents from the store and calls
//! [`PolicyEngine::authorize`] for every operation. Guide: `docs/policy.md`.
//!
//! **Invariant:** default deny. A request is allowed only if some `permit` matches and no
//! `forbid` does; evaluation errors count as "does not match".

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};

/// The schema source, for docs and `strongroom policy schema`.
pub const SCHEMA: &str = include_str!("schema.cedarschema");

/// The role policies a new data dir starts with (the files in `docs/policies/`).
pub const DEFAULT_POLICIES: &[(&str, &str)] = &[
    (
        "role-key-admin",
        include_str!("../../../docs/policies/key-admin.cedar"),
    ),
    (
        "role-key-user",
        include_str!("../../../docs/policies/key-user.cedar"),
    ),
    (
        "role-auditor",
        include_str!("../../../docs/policies/auditor.cedar"),
    ),
    (
        "role-security-admin",
        include_str!("../../../docs/policies/security-admin.cedar"),
    ),
];

/// Longest policy document accepted.
pub const MAX_DOCUMENT_LEN: usize = 64 * 1024;

/// A principal as policies see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PrincipalAttrs {
    /// Unique name (the entity id).
    pub name: String,
    /// `user` or `workload`.
    pub kind: String,
    /// Roles: parents of the principal entity.
    pub roles: Vec<String>,
    /// Labels, as tags.
    pub labels: BTreeMap<String, String>,
}

/// A key as policies see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyAttrs {
    /// Key ring name.
    pub ring: String,
    /// Key name within the ring.
    pub name: String,
    /// Key id (empty if the key does not exist).
    pub id: String,
    /// Purpose name.
    pub purpose: String,
    /// Algorithm name.
    pub algorithm: String,
    /// Protection level.
    pub protection: String,
    /// Labels, as tags.
    pub labels: BTreeMap<String, String>,
    /// The key ring's labels, as its tags.
    pub ring_labels: BTreeMap<String, String>,
    /// False when the request names a key that does not exist (so a refusal cannot reveal
    /// whether it exists, the decision is made as if it did, without its labels).
    pub exists: bool,
}

/// What a request acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceAttrs {
    /// A key.
    Key(KeyAttrs),
    /// A key ring.
    KeyRing {
        /// Name.
        name: String,
        /// Labels.
        labels: BTreeMap<String, String>,
    },
    /// A key set (`exists` false for a stand-in: a name that names none).
    KeySet {
        /// Name.
        name: String,
        /// Labels.
        labels: BTreeMap<String, String>,
        /// Whether it exists.
        exists: bool,
    },
    /// Anything else (listing key rings, tokens, policies, audit, random).
    System,
}

/// Facts about the request.
#[derive(Debug, Clone, Default)]
pub struct RequestAttrs {
    /// `native`, `aws`, …
    pub protocol: String,
    /// Unix seconds.
    pub now: i64,
    /// The client's IP address, if known.
    pub source_ip: Option<String>,
    /// The request's encryption context.
    pub encryption_context: BTreeMap<String, String>,
    /// The alias the request named, if any.
    pub alias: Option<String>,
}

/// The outcome of an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The policies that decided: the matching permits when allowed, the matching forbids
    /// when denied by one (empty when denied because nothing permits).
    pub policies: Vec<String>,
    /// Policies that failed to evaluate for this request (they count as not matching).
    pub errors: Vec<String>,
}

/// One problem in a policy document, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line, when Cedar gave a location.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// Cedar's message.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Why a policy document or engine could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    /// The document does not parse or does not fit the schema.
    #[error("policy {name} is invalid: {}", .diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The document's name.
        name: String,
        /// What is wrong, where.
        diagnostics: Vec<Diagnostic>,
    },
    /// A bug: the built-in schema or an entity could not be built.
    #[error("internal policy error: {0}")]
    Internal(String),
}

fn location(src: &str, diag: &dyn miette::Diagnostic) -> (Option<usize>, Option<usize>) {
    let Some(offset) = diag.labels().and_then(|mut l| l.next()).map(|l| l.offset()) else {
        return (None, None);
    };
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count() + 1)
        .unwrap_or(1);
    (Some(line), Some(column))
}

fn diagnostics_of<'e, E: miette::Diagnostic + std::fmt::Display + 'e>(
    src: &str,
    errs: impl IntoIterator<Item = &'e E>,
) -> Vec<Diagnostic> {
    errs.into_iter()
        .map(|e| {
            let (line, column) = location(src, e);
            let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
            Diagnostic {
                line,
                column,
                message: format!("{e}{help}"),
            }
        })
        .collect()
}

fn schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(s, _warnings)| s)
        .map_err(|e| PolicyError::Internal(format!("built-in schema: {e}")))
}

/// The schema's entity type names, parsed once (parsing one costs more than a decision).
#[derive(Clone)]
struct TypeNames {
    principal: EntityTypeName,
    role: EntityTypeName,
    key_ring: EntityTypeName,
    key: EntityTypeName,
    key_set: EntityTypeName,
    system: EntityTypeName,
    encryption_context: EntityTypeName,
}

impl TypeNames {
    fn new() -> Result<Self, PolicyError> {
        let t = |ty: &str| {
            EntityTypeName::from_str(&format!("Strongroom::{ty}"))
                .map_err(|e| PolicyError::Internal(e.to_string()))
        };
        Ok(Self {
            principal: t("Principal")?,
            role: t("Role")?,
            key_ring: t("KeyRing")?,
            key: t("Key")?,
            key_set: t("KeySet")?,
            system: t("System")?,
            encryption_context: t("EncryptionContext")?,
        })
    }
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn s(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_string())
}

fn tags(m: &BTreeMap<String, String>) -> Vec<(String, RestrictedExpression)> {
    m.iter().map(|(k, v)| (k.clone(), s(v))).collect()
}

/// Parses one named policy document: each statement gets the id `<name>#<n>` unless it has
/// an `@id("…")` annotation, in which case `<name>/<annotation>`.
fn parse_document(name: &str, text: &str) -> Result<Vec<Policy>, PolicyError> {
    if text.len() > MAX_DOCUMENT_LEN {
        return Err(PolicyError::Invalid {
            name: name.into(),
            diagnostics: vec![Diagnostic {
                line: None,
                column: None,
                message: format!("document is larger than {MAX_DOCUMENT_LEN} bytes"),
            }],
        });
    }
    let set = PolicySet::from_str(text).map_err(|e| PolicyError::Invalid {
        name: name.into(),
        diagnostics: diagnostics_of(text, e.iter()),
    })?;
    if set.templates().next().is_some() {
        return Err(PolicyError::Invalid {
            name: name.into(),
            diagnostics: vec![Diagnostic {
                line: None,
                column: None,
                message: "policy templates are not supported; write plain policies".into(),
            }],
        });
    }
    let mut out: Vec<Policy> = Vec::new();
    // Keep source order: the parser numbers statements policy0, policy1, ….
    let mut ps: Vec<&Policy> = set.policies().collect();
    ps.sort_by_key(|p| {
        p.id()
            .to_string()
            .trim_start_matches("policy")
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    for (i, p) in ps.into_iter().enumerate() {
        let id = match p.annotation("id") {
            Some(a) => format!("{name}/{a}"),
            None => format!("{name}#{i}"),
        };
        out.push(p.new_id(PolicyId::new(id)));
    }
    Ok(out)
}

/// A compiled set of policy documents plus the schema.
pub struct PolicyEngine {
    schema: Schema,
    policies: PolicySet,
    authorizer: Authorizer,
    /// Per action name: its uid, and its entity with those of its groups (from the schema,
    /// built once): a request carries only its own action's hierarchy.
    actions: std::collections::HashMap<String, (EntityUid, Vec<Entity>)>,
    types: TypeNames,
    /// Decisions already made, by their inputs (see [`DecisionCache`]).
    decisions: DecisionCache,
}

/// Which request facts any policy of the set can read. Cedar has no reflection: a policy
/// reads a context attribute only by naming it, so a fact whose name appears in no policy's
/// text cannot change a decision.
#[derive(Debug, Clone, Copy, Default)]
struct Reads {
    now: bool,
    protocol: bool,
    source_ip: bool,
    encryption_context: bool,
    alias: bool,
}

/// The inputs of a decision as the request has them, without the facts no policy reads:
/// what a lookup hashes and compares, borrowed, so a request answered from the cache copies
/// nothing.
#[derive(PartialEq, Eq, Hash)]
struct DecisionInputs<'a> {
    principal: &'a PrincipalAttrs,
    action: &'a str,
    resource: &'a ResourceAttrs,
    protocol: &'a str,
    source_ip: Option<&'a str>,
    encryption_context: Option<&'a BTreeMap<String, String>>,
    alias: Option<&'a str>,
}

/// [`DecisionInputs`], owned, as the cache keeps them beside their decision.
#[derive(Debug)]
struct DecisionKey {
    principal: PrincipalAttrs,
    action: String,
    resource: ResourceAttrs,
    protocol: String,
    source_ip: Option<String>,
    encryption_context: Option<BTreeMap<String, String>>,
    alias: Option<String>,
}

impl DecisionKey {
    fn of(i: &DecisionInputs<'_>) -> Self {
        Self {
            principal: i.principal.clone(),
            action: i.action.to_string(),
            resource: i.resource.clone(),
            protocol: i.protocol.to_string(),
            source_ip: i.source_ip.map(str::to_string),
            encryption_context: i.encryption_context.cloned(),
            alias: i.alias.map(str::to_string),
        }
    }

    fn inputs(&self) -> DecisionInputs<'_> {
        DecisionInputs {
            principal: &self.principal,
            action: &self.action,
            resource: &self.resource,
            protocol: &self.protocol,
            source_ip: self.source_ip.as_deref(),
            encryption_context: self.encryption_context.as_ref(),
            alias: self.alias.as_deref(),
        }
    }
}

/// Decisions by their inputs. A Cedar decision is a pure function of the policies (fixed
/// for an engine: a policy change builds a new engine, and a new cache) and of the
/// entities and context Strongroom builds from these inputs, so a repeated request is
/// answered without evaluating the policies again. Off when a policy reads `context.now`
/// (every second would be a new key). Bounded: emptied when full.
#[derive(Debug, Default)]
struct DecisionCache {
    reads: Reads,
    /// By the hash of their inputs; each entry keeps its inputs, compared on every hit.
    map:
        std::sync::Mutex<std::collections::HashMap<u64, (DecisionKey, Decision), BuildPassThrough>>,
    hasher: std::collections::hash_map::RandomState,
}

/// The map's keys are already keyed hashes: hashing them again would only cost time.
#[derive(Debug, Default, Clone, Copy)]
struct BuildPassThrough;

#[derive(Debug, Default)]
struct PassThrough(u64);

impl std::hash::BuildHasher for BuildPassThrough {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the key is a u64); anything else still hashes, slowly.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Whether `text` names `context` other than to read one attribute of it (`context.x`,
/// `context has x`, `context["x"]`).
fn uses_whole_context(text: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices("context").any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let rest = &text[at + "context".len()..];
        let after = rest.trim_start();
        let whole_word = !before.is_some_and(word) && !rest.starts_with(word);
        whole_word
            && !(after.starts_with('.') || after.starts_with('[') || after.starts_with("has "))
    })
}

/// Most decisions an engine remembers.
const DECISION_CACHE_ENTRIES: usize = 16_384;

impl DecisionCache {
    fn new(policies: &PolicySet) -> Self {
        let text: String = policies.policies().map(|p| p.to_string()).collect();
        // A policy that uses `context` as a whole value (`context == {…}`) reads every fact.
        let all = uses_whole_context(&text);
        Self {
            reads: Reads {
                now: all || text.contains("now"),
                protocol: all || text.contains("protocol"),
                source_ip: all || text.contains("source_ip"),
                encryption_context: all || text.contains("encryption_context"),
                alias: all || text.contains("alias"),
            },
            map: Default::default(),
            hasher: Default::default(),
        }
    }

    /// The inputs that decide, or `None` when decisions are not remembered.
    fn inputs<'a>(
        &self,
        principal: &'a PrincipalAttrs,
        action: &'a str,
        resource: &'a ResourceAttrs,
        req: &'a RequestAttrs,
    ) -> Option<DecisionInputs<'a>> {
        let r = self.reads;
        if r.now {
            return None;
        }
        Some(DecisionInputs {
            principal,
            action,
            resource,
            protocol: if r.protocol { &req.protocol } else { "" },
            source_ip: req.source_ip.as_deref().filter(|_| r.source_ip),
            encryption_context: r.encryption_context.then_some(&req.encryption_context),
            alias: req.alias.as_deref().filter(|_| r.alias),
        })
    }

    fn hash(&self, i: &DecisionInputs<'_>) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, i)
    }

    fn get(&self, i: &DecisionInputs<'_>) -> Option<Decision> {
        let m = self.map.lock().ok()?;
        let (k, d) = m.get(&self.hash(i))?;
        (k.inputs() == *i).then(|| d.clone())
    }

    fn put(&self, i: &DecisionInputs<'_>, d: &Decision) {
        let h = self.hash(i);
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= DECISION_CACHE_ENTRIES {
                m.clear();
            }
            m.insert(h, (DecisionKey::of(i), d.clone()));
        }
    }
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PolicyEngine({} policies)",
            self.policies.policies().count()
        )
    }
}

impl PolicyEngine {
    /// Compiles named documents. Every document must parse and validate (strict mode); the
    /// first that does not is reported.
    pub fn new<'a>(
        documents: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, PolicyError> {
        let schema = schema()?;
        let mut policies = PolicySet::new();
        for (name, text) in documents {
            Self::validate_with(&schema, name, text)?;
            for p in parse_document(name, text)? {
                policies.add(p).map_err(|e| PolicyError::Invalid {
                    name: name.into(),
                    diagnostics: vec![Diagnostic {
                        line: None,
                        column: None,
                        message: e.to_string(),
                    }],
                })?;
            }
        }
        let all = schema
            .action_entities()
            .map_err(|e| PolicyError::Internal(e.to_string()))?;
        let mut actions = std::collections::HashMap::new();
        for e in all.iter() {
            let id = e.uid();
            let mut hierarchy = vec![e.clone()];
            for group in all.ancestors(&id).into_iter().flatten() {
                if let Some(g) = all.get(group) {
                    hierarchy.push(g.clone());
                }
            }
            actions.insert(id.id().unescaped().to_string(), (id, hierarchy));
        }
        Ok(Self {
            schema,
            authorizer: Authorizer::new(),
            actions,
            types: TypeNames::new()?,
            decisions: DecisionCache::new(&policies),
            policies,
        })
    }

    /// An engine with no policies: every request is denied.
    pub fn empty() -> Self {
        // Invariant: the built-in schema is tested to parse; failing here would be a build bug.
        #[allow(clippy::expect_used)]
        Self::new([]).expect("the built-in schema parses")
    }

    /// Checks one document: syntax, then the schema (strict validation), with locations.
    pub fn validate(name: &str, text: &str) -> Result<(), PolicyError> {
        Self::validate_with(&schema()?, name, text)
    }

    fn validate_with(schema: &Schema, name: &str, text: &str) -> Result<(), PolicyError> {
        let ps = parse_document(name, text)?;
        let mut set = PolicySet::new();
        for p in ps {
            set.add(p)
                .map_err(|e| PolicyError::Internal(e.to_string()))?;
        }
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        if result.validation_passed() {
            return Ok(());
        }
        Err(PolicyError::Invalid {
            name: name.into(),
            diagnostics: diagnostics_of(text, result.validation_errors()),
        })
    }

    /// Whether any policy names the request's `source_ip`. When none does, the caller may
    /// leave it out of [`RequestAttrs`]: a fact no policy names cannot change a decision.
    pub fn reads_source_ip(&self) -> bool {
        self.decisions.reads.source_ip
    }

    /// Whether any policy names the request's `encryption_context` (see
    /// [`PolicyEngine::reads_source_ip`]).
    pub fn reads_encryption_context(&self) -> bool {
        self.decisions.reads.encryption_context
    }

    /// Decides whether `principal` may do `action` on `resource`.
    pub fn authorize(
        &self,
        principal: &PrincipalAttrs,
        action: &str,
        resource: &ResourceAttrs,
        req: &RequestAttrs,
    ) -> Result<Decision, PolicyError> {
        let inputs = self.decisions.inputs(principal, action, resource, req);
        if let Some(d) = inputs.as_ref().and_then(|i| self.decisions.get(i)) {
            return Ok(d);
        }
        let d = self.evaluate(principal, action, resource, req)?;
        if let Some(i) = &inputs {
            self.decisions.put(i, &d);
        }
        Ok(d)
    }

    /// Evaluates the policies for one request (what [`PolicyEngine::authorize`] caches).
    fn evaluate(
        &self,
        principal: &PrincipalAttrs,
        action: &str,
        resource: &ResourceAttrs,
        req: &RequestAttrs,
    ) -> Result<Decision, PolicyError> {
        let t = &self.types;
        let p_uid = uid(&t.principal, &principal.name);
        let mut entities = Vec::new();
        let roles = principal
            .roles
            .iter()
            .map(|r| uid(&t.role, r))
            .collect::<Vec<_>>();
        for r in &roles {
            entities.push(Entity::with_uid(r.clone()));
        }
        entities.push(
            Entity::new_with_tags(
                p_uid.clone(),
                [
                    ("name".to_string(), s(&principal.name)),
                    ("kind".to_string(), s(&principal.kind)),
                ],
                roles,
                tags(&principal.labels),
            )
            .map_err(|e| PolicyError::Internal(e.to_string()))?,
        );
        let r_uid = match resource {
            ResourceAttrs::Key(k) => {
                let ring = uid(&t.key_ring, &k.ring);
                entities.push(
                    Entity::new_with_tags(
                        ring.clone(),
                        [("name".to_string(), s(&k.ring))],
                        [],
                        tags(&k.ring_labels),
                    )
                    .map_err(|e| PolicyError::Internal(e.to_string()))?,
                );
                let path = format!("{}/{}", k.ring, k.name);
                let key = uid(&t.key, &path);
                entities.push(
                    Entity::new_with_tags(
                        key.clone(),
                        [
                            ("name".to_string(), s(&k.name)),
                            ("ring".to_string(), s(&k.ring)),
                            ("path".to_string(), s(&path)),
                            ("id".to_string(), s(&k.id)),
                            ("purpose".to_string(), s(&k.purpose)),
                            ("algorithm".to_string(), s(&k.algorithm)),
                            ("protection".to_string(), s(&k.protection)),
                            (
                                "exists".to_string(),
                                RestrictedExpression::new_bool(k.exists),
                            ),
                        ],
                        [ring],
                        tags(&k.labels),
                    )
                    .map_err(|e| PolicyError::Internal(e.to_string()))?,
                );
                key
            }
            ResourceAttrs::KeyRing { name, labels } => {
                let ring = uid(&t.key_ring, name);
                entities.push(
                    Entity::new_with_tags(
                        ring.clone(),
                        [("name".to_string(), s(name))],
                        [],
                        tags(labels),
                    )
                    .map_err(|e| PolicyError::Internal(e.to_string()))?,
                );
                ring
            }
            ResourceAttrs::KeySet {
                name,
                labels,
                exists,
            } => {
                let set = uid(&t.key_set, name);
                entities.push(
                    Entity::new_with_tags(
                        set.clone(),
                        [
                            ("name".to_string(), s(name)),
                            (
                                "exists".to_string(),
                                RestrictedExpression::new_bool(*exists),
                            ),
                        ],
                        [],
                        tags(labels),
                    )
                    .map_err(|e| PolicyError::Internal(e.to_string()))?,
                );
                set
            }
            ResourceAttrs::System => {
                let sys = uid(&t.system, "strongroom");
                entities.push(Entity::with_uid(sys.clone()));
                sys
            }
        };
        let ec = uid(&t.encryption_context, "request");
        entities.push(
            Entity::new_with_tags(ec.clone(), [], [], tags(&req.encryption_context))
                .map_err(|e| PolicyError::Internal(e.to_string()))?,
        );
        let mut ctx = vec![
            ("protocol".to_string(), s(&req.protocol)),
            ("now".to_string(), RestrictedExpression::new_long(req.now)),
            (
                "encryption_context".to_string(),
                RestrictedExpression::new_entity_uid(ec),
            ),
        ];
        if let Some(ip) = req
            .source_ip
            .as_deref()
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        {
            ctx.push(("source_ip".to_string(), RestrictedExpression::new_ip(ip)));
        }
        if let Some(a) = &req.alias {
            ctx.push(("alias".to_string(), s(a)));
        }
        let context = Context::from_pairs(ctx).map_err(|e| PolicyError::Internal(e.to_string()))?;
        let (a_uid, hierarchy) = self
            .actions
            .get(action)
            .ok_or_else(|| PolicyError::Internal(format!("no action {action:?} in the schema")))?;
        let a_uid = a_uid.clone();
        let request = Request::new(p_uid, a_uid, r_uid, context, Some(&self.schema))
            .map_err(|e| PolicyError::Internal(format!("request does not fit the schema: {e}")))?;
        let entities =
            Entities::from_entities(entities.into_iter().chain(hierarchy.iter().cloned()), None)
                .map_err(|e| PolicyError::Internal(e.to_string()))?;
        let resp = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let diag = resp.diagnostics();
        // Sorted: Cedar gives them in no fixed order, and the audit log names them.
        let mut policies: Vec<String> = diag.reason().map(|id| id.to_string()).collect();
        policies.sort_unstable();
        let mut errors: Vec<String> = diag.errors().map(|e| e.to_string()).collect();
        errors.sort_unstable();
        Ok(Decision {
            allowed: resp.decision() == CedarDecision::Allow,
            policies,
            errors,
        })
    }

    /// Every action name in the schema (for tests that check each operation maps to one).
    pub fn action_names() -> Result<Vec<String>, PolicyError> {
        let schema = schema()?;
        Ok(schema
            .actions()
            .map(|a| a.id().unescaped().to_string())
            .collect())
    }
}

#[cfg(test)]
mod tests;
