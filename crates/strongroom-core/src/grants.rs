//! Grants: permission for one principal to perform some actions on one key, optionally only
//! with certain encryption contexts — AWS KMS's grants, usable from every protocol. A grant
//! can allow what no policy permits, never what a policy forbids. Guide: `docs/grants.md`.

use std::collections::BTreeMap;

use base64::Engine;
use strongroom_audit::AuditEvent;
use strongroom_crypto::{EncryptionContext, hash, rand};
use strongroom_store::{GrantRecord, KeyRecord, PrincipalName, StoreError};

use crate::error::{Error, Result};
use crate::lifecycle::require_live;
use crate::request::{Authorized, BearerToken, Operation, RequestContext};
use crate::service::{Caller, KeyService};
use crate::types::KeyRef;

/// The actions a grant may allow (Strongroom action names; see `docs/policy.md`).
pub const GRANTABLE: &[&str] = &[
    "encrypt",
    "decrypt",
    "asymmetric-decrypt",
    "generate-data-key",
    "re-encrypt-from",
    "re-encrypt-to",
    "sign",
    "verify",
    "get-public-key",
    "mac",
    "mac-verify",
    "derive-shared-secret",
    "get-key",
    "create-grant",
    "retire-grant",
];

/// The actions a grant with encryption context constraints may allow: those whose requests
/// carry a context, and asymmetric decryption (AWS's Decrypt covers both; its requests carry
/// none, so a constrained grant never allows it).
const TAKE_CONTEXT: &[&str] = &[
    "encrypt",
    "decrypt",
    "asymmetric-decrypt",
    "generate-data-key",
    "re-encrypt-from",
    "re-encrypt-to",
];

/// Most grants on one key.
pub const MAX_GRANTS_PER_KEY: usize = 1000;
const GRANT_TOKEN_PREFIX: &str = "srgt_";

/// What `create_grant` makes.
#[derive(Debug, Clone)]
pub struct GrantInput {
    /// Who the grant empowers.
    pub grantee: PrincipalName,
    /// Who may retire it (besides whoever may revoke grants on the key).
    pub retiring_principal: Option<PrincipalName>,
    /// The actions it allows, from [`GRANTABLE`].
    pub actions: Vec<String>,
    /// The request's encryption context must include these pairs.
    pub context_subset: Option<BTreeMap<String, String>>,
    /// The request's encryption context must be exactly these pairs.
    pub context_equals: Option<BTreeMap<String, String>>,
    /// A name for it.
    pub name: Option<String>,
}

/// A grant as callers see it (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantInfo {
    /// Its id.
    pub id: String,
    /// The key.
    pub key_id: strongroom_crypto::KeyId,
    /// Who it empowers.
    pub grantee: String,
    /// Who may retire it.
    pub retiring_principal: Option<String>,
    /// What it allows.
    pub actions: Vec<String>,
    /// Context constraint: pairs the request must include.
    pub context_subset: Option<BTreeMap<String, String>>,
    /// Context constraint: the request's exact context.
    pub context_equals: Option<BTreeMap<String, String>>,
    /// Its name.
    pub name: Option<String>,
    /// Creation time.
    pub created_at: strongroom_store::Timestamp,
    /// Who created it.
    pub created_by: String,
}

/// A new grant and its token (returned once).
#[derive(Debug)]
pub struct NewGrant {
    /// The grant.
    pub info: GrantInfo,
    /// The grant token: names the grant to RetireGrant.
    pub token: BearerToken,
}

/// How a retirement names the grant.
#[derive(Debug)]
pub enum GrantRef {
    /// By its token.
    Token(BearerToken),
    /// By key and id.
    Id(KeyRef, String),
}

fn info(g: &GrantRecord) -> GrantInfo {
    GrantInfo {
        id: g.id.clone(),
        key_id: g.key_id,
        grantee: g.grantee.clone(),
        retiring_principal: g.retiring_principal.clone(),
        actions: g.actions.clone(),
        context_subset: g.context_subset.clone(),
        context_equals: g.context_equals.clone(),
        name: g.name.clone(),
        created_at: g.created_at,
        created_by: g.created_by.clone(),
    }
}

/// Whether a request's encryption context meets a grant's constraints. A request without a
/// context meets only a grant without constraints.
fn context_ok(g: &GrantRecord, ec: Option<&EncryptionContext>) -> bool {
    match (&g.context_equals, &g.context_subset, ec) {
        (None, None, _) => true,
        (_, _, None) => false,
        (Some(eq), _, Some(ec)) => ec.pairs() == eq,
        (None, Some(sub), Some(ec)) => sub.iter().all(|(k, v)| ec.pairs().get(k) == Some(v)),
    }
}

fn valid_grant_id(id: &str) -> bool {
    id.starts_with("srg_")
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl KeyService {
    /// A grant on `k` for the caller that allows `action` with this context, if any.
    pub(crate) async fn grant_allows(
        &self,
        who: &Caller,
        ev: &mut AuditEvent,
        action: &'static str,
        k: &KeyRecord,
        ec: Option<&EncryptionContext>,
    ) -> Result<Authorized> {
        let grants = self.store.grants_for(&who.principal.name, k.id).await?;
        let g = grants
            .iter()
            .find(|g| g.actions.iter().any(|a| a == action) && context_ok(g, ec))
            .ok_or(Error::AccessDenied)?;
        ev.policy = Some(format!("grant:{}", g.id));
        Ok(Authorized {
            principal: who.principal.clone(),
        })
    }

    /// Creates a grant on a key (`create-grant`, by policy or by a grant allowing it).
    pub async fn create_grant(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        input: GrantInput,
    ) -> Result<NewGrant> {
        let mut ev = self.event(ctx, Operation::CreateGrant);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "create-grant", key, None)
                .await?;
            require_live(&k, Operation::CreateGrant)?;
            let GrantInput {
                grantee,
                retiring_principal,
                mut actions,
                context_subset,
                context_equals,
                name,
            } = input;
            actions.sort();
            actions.dedup();
            if actions.is_empty() {
                return Err(Error::invalid("operations", "name at least one operation"));
            }
            if let Some(a) = actions.iter().find(|a| !GRANTABLE.contains(&a.as_str())) {
                return Err(Error::invalid(
                    "operations",
                    format!("{a} cannot be granted"),
                ));
            }
            if context_subset.is_some() && context_equals.is_some() {
                return Err(Error::invalid(
                    "constraints",
                    "give a subset or an exact encryption context, not both",
                ));
            }
            let constrained = context_subset.is_some() || context_equals.is_some();
            if constrained && actions.iter().any(|a| !TAKE_CONTEXT.contains(&a.as_str())) {
                return Err(Error::invalid(
                    "constraints",
                    "encryption context constraints apply only to operations that take an encryption context",
                ));
            }
            for c in [&context_subset, &context_equals].into_iter().flatten() {
                EncryptionContext::try_new(c.clone())
                    .map_err(|e| Error::invalid("constraints", e.to_string()))?;
            }
            if let Some(n) = &name {
                let ok = !n.is_empty()
                    && n.len() <= 256
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '-'));
                if !ok {
                    return Err(Error::invalid(
                        "name",
                        "1 to 256 characters of A-Z a-z 0-9 : / _ -",
                    ));
                }
            }
            for p in std::iter::once(&grantee).chain(retiring_principal.as_ref()) {
                if self.store.principal(p).await?.is_none() {
                    return Err(Error::not_found("principal", p.to_string()));
                }
            }
            if self.store.grants_of_key(k.id).await?.len() >= MAX_GRANTS_PER_KEY {
                return Err(Error::InvalidState {
                    resource: format!("key {}/{}", k.ring, k.name),
                    state: "at its limit of 1000 grants",
                    operation: Operation::CreateGrant.as_str(),
                    requirement: "needs one revoked first",
                });
            }
            let id = format!("srg_{}", hex(&rand::bytes(12)?));
            let token = BearerToken::new(format!(
                "{GRANT_TOKEN_PREFIX}{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::bytes(32)?)
            ));
            let rec = GrantRecord {
                id: id.clone(),
                key_id: k.id,
                grantee: grantee.to_string(),
                retiring_principal: retiring_principal.map(|p| p.to_string()),
                actions,
                context_subset,
                context_equals,
                name,
                // Exposed to hash it; only the hash is stored.
                token_hash: hash::sha256(token.expose_secret().as_bytes()).to_vec(),
                created_at: self.clock.now(),
                created_by: who.principal.name.clone(),
            };
            ev.target = Some(id);
            self.audit_before_commit(&mut ev).await?;
            self.store.insert_grant(&rec).await?;
            Ok(NewGrant {
                info: info(&rec),
                token,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// A key's grants (`list-grants`).
    pub async fn list_grants(&self, ctx: &RequestContext, key: &KeyRef) -> Result<Vec<GrantInfo>> {
        let mut ev = self.event(ctx, Operation::ListGrants);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "list-grants", key, None)
                .await?;
            Ok(self
                .store
                .grants_of_key(k.id)
                .await?
                .iter()
                .map(info)
                .collect())
        }
        .await;
        self.finish(ev, res).await
    }

    /// The grants a principal may retire. Callers may list their own; listing another
    /// principal's needs `manage-principals`.
    pub async fn list_retirable_grants(
        &self,
        ctx: &RequestContext,
        principal: &PrincipalName,
    ) -> Result<Vec<GrantInfo>> {
        let mut ev = self.event(ctx, Operation::ListGrants);
        ev.target = Some(principal.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            if who.principal.name != principal.as_str() {
                self.check_system(&who, ctx, &mut ev, "manage-principals")?;
            }
            Ok(self
                .store
                .grants_retirable_by(principal.as_str())
                .await?
                .iter()
                .map(info)
                .collect())
        }
        .await;
        self.finish(ev, res).await
    }

    /// Retires a grant: allowed to its retiring principal, to its grantee when it allows
    /// `retire-grant`, and to whoever may `revoke-grant` on its key.
    pub async fn retire_grant(&self, ctx: &RequestContext, grant: GrantRef) -> Result<GrantInfo> {
        let mut ev = self.event(ctx, Operation::RetireGrant);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let g = match &grant {
                GrantRef::Token(t) => {
                    // Exposed to hash it for lookup.
                    let h = hash::sha256(t.expose_secret().as_bytes());
                    self.store
                        .grant_by_token_hash(&h)
                        .await?
                        .filter(|g| hash::constant_time_eq(&g.token_hash, &h))
                }
                GrantRef::Id(key, id) => {
                    if !valid_grant_id(id) {
                        return Err(Error::invalid("grant_id", "not a grant id"));
                    }
                    let k = self.resolve(key, &mut ev).await?;
                    self.store.grant(id).await?.filter(|g| g.key_id == k.id)
                }
            };
            let Some(g) = g else {
                return Err(Error::not_found("grant", ""));
            };
            ev.target = Some(g.id.clone());
            let me = who.principal.name.as_str();
            let retiring = g.retiring_principal.as_deref() == Some(me);
            let grantee = g.grantee == me && g.actions.iter().any(|a| a == "retire-grant");
            if !(retiring || grantee || who.attrs.is_none()) {
                let k = self
                    .store
                    .key_by_id(g.key_id)
                    .await?
                    .ok_or_else(|| Error::Internal("grant on a missing key".into()))?;
                self.check_key(&who, ctx, &mut ev, "revoke-grant", &k, None)
                    .await?;
            }
            self.delete_grant(&mut ev, &g).await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Revokes a grant on a key (`revoke-grant`).
    pub async fn revoke_grant(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        id: &str,
    ) -> Result<GrantInfo> {
        let mut ev = self.event(ctx, Operation::RevokeGrant);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            let k = self
                .resolve_checked(&who, ctx, &mut ev, "revoke-grant", key, None)
                .await?;
            if !valid_grant_id(id) {
                return Err(Error::invalid("grant_id", "not a grant id"));
            }
            ev.target = Some(id.to_string());
            let g = self
                .store
                .grant(id)
                .await?
                .filter(|g| g.key_id == k.id)
                .ok_or_else(|| Error::not_found("grant", id))?;
            self.delete_grant(&mut ev, &g).await
        }
        .await;
        self.finish(ev, res).await
    }

    async fn delete_grant(&self, ev: &mut AuditEvent, g: &GrantRecord) -> Result<GrantInfo> {
        self.audit_before_commit(ev).await?;
        match self.store.delete_grant(&g.id).await {
            Ok(()) => Ok(info(g)),
            Err(StoreError::NotFound(_)) => Err(Error::not_found("grant", g.id.clone())),
            Err(e) => Err(e.into()),
        }
    }
}

use strongroom_crypto::hash::hex;

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(subset: Option<&[(&str, &str)]>, equals: Option<&[(&str, &str)]>) -> GrantRecord {
        let m = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        GrantRecord {
            id: "srg_x".into(),
            key_id: strongroom_crypto::KeyId::generate().unwrap(),
            grantee: "a".into(),
            retiring_principal: None,
            actions: vec!["decrypt".into()],
            context_subset: subset.map(m),
            context_equals: equals.map(m),
            name: None,
            token_hash: vec![],
            created_at: strongroom_store::Timestamp(0),
            created_by: "root".into(),
        }
    }

    fn ec(p: &[(&str, &str)]) -> EncryptionContext {
        EncryptionContext::try_new(
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn context_constraints() {
        let free = grant(None, None);
        assert!(context_ok(&free, None) && context_ok(&free, Some(&ec(&[("a", "1")]))));
        let sub = grant(Some(&[("t", "acme")]), None);
        assert!(context_ok(&sub, Some(&ec(&[("t", "acme"), ("x", "y")]))));
        assert!(!context_ok(&sub, Some(&ec(&[("t", "other")]))));
        assert!(!context_ok(&sub, Some(&ec(&[]))));
        assert!(!context_ok(&sub, None));
        let eq = grant(None, Some(&[("t", "acme")]));
        assert!(context_ok(&eq, Some(&ec(&[("t", "acme")]))));
        assert!(!context_ok(&eq, Some(&ec(&[("t", "acme"), ("x", "y")]))));
        assert!(!context_ok(&eq, None));
    }
}
