//! API tokens: created with a TTL, stored as SHA-256 hashes, revocable.

use base64::Engine;
use strongroom_crypto::{hash, rand};
use strongroom_store::{Page, PageRequest, PrincipalName, StoreError, TokenRecord};

use crate::error::{Error, Result};
use crate::request::{BearerToken, Operation, RequestContext};
use crate::service::KeyService;
use crate::types::*;

/// The id of the root token.
pub const ROOT_TOKEN_ID: &str = "root";
const TOKEN_PREFIX: &str = "srt_";

/// A fresh token secret: `srt_` and 43 base64url characters (256 random bits).
pub(crate) fn new_secret() -> Result<BearerToken> {
    let bytes = rand::bytes(32)?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
    Ok(BearerToken::new(format!("{TOKEN_PREFIX}{b64}")))
}

fn info(t: &TokenRecord) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        principal: t.principal.clone(),
        description: t.description.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
    }
}

impl KeyService {
    /// Stores a new token for `principal` (after writing the audit event ahead) and returns
    /// its secret, which exists nowhere else.
    pub(crate) async fn mint_token(
        &self,
        ev: &mut strongroom_audit::AuditEvent,
        principal: &str,
        expires_at: strongroom_store::Timestamp,
        description: String,
    ) -> Result<NewToken> {
        let secret = new_secret()?;
        let rec = TokenRecord {
            id: format!("tok_{}", hex(&rand::bytes(8)?)),
            // Exposed to hash it; only the hash is stored.
            hash: hash::sha256(secret.expose_secret().as_bytes()),
            principal: principal.to_string(),
            description,
            created_at: self.clock.now(),
            expires_at: Some(expires_at),
            revoked_at: None,
        };
        ev.target = Some(rec.id.clone());
        self.audit_before_commit(ev).await?;
        self.store.insert_token(&rec).await?;
        Ok(NewToken {
            info: info(&rec),
            secret,
        })
    }

    /// Stores the root token's hash (first start only).
    pub(crate) async fn insert_root_token(&self, secret: &BearerToken) -> Result<()> {
        let rec = TokenRecord {
            id: ROOT_TOKEN_ID.into(),
            // Exposed to hash it; only the hash is kept.
            hash: hash::sha256(secret.expose_secret().as_bytes()),
            principal: "root".into(),
            description: "root token, created when the data dir was initialised".into(),
            created_at: self.clock.now(),
            expires_at: None,
            revoked_at: None,
        };
        Ok(self.store.insert_token(&rec).await?)
    }

    /// Creates a token acting as the caller's principal, valid for `ttl_secs` (default one
    /// day, at most 366 days) but never past the caller's own token's expiry. The secret is in
    /// the result and nowhere else.
    pub async fn create_token(
        &self,
        ctx: &RequestContext,
        ttl_secs: Option<i64>,
        description: String,
    ) -> Result<NewToken> {
        self.issue_token(ctx, None, ttl_secs, description).await
    }

    pub(crate) async fn issue_token(
        &self,
        ctx: &RequestContext,
        for_principal: Option<&PrincipalName>,
        ttl_secs: Option<i64>,
        description: String,
    ) -> Result<NewToken> {
        let mut ev = self.event(ctx, Operation::CreateToken);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            // Minting a token for someone else is acting as them: a separate permission
            // from minting one's own (shorter-lived) tokens.
            let action = if for_principal.is_some() { "create-principal-token" } else { "create-token" };
            let auth = self.check_system(&who, ctx, &mut ev, action)?;
            let principal = match for_principal {
                None => auth.principal().name.clone(),
                Some(p) if p.as_str() == crate::ROOT_PRINCIPAL => {
                    return Err(Error::invalid("principal", "no new root tokens: the root token is made once, when the data dir is initialised"));
                }
                Some(p) => {
                    let rec = self.store.principal(p).await?.ok_or_else(|| Error::not_found("principal", p.to_string()))?;
                    if rec.disabled_at.is_some() {
                        return Err(Error::InvalidState { resource: format!("principal {p}"), state: "disabled", operation: "create-token", requirement: "needs it enabled" });
                    }
                    p.to_string()
                }
            };
            let ttl = ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
            if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
                return Err(Error::invalid("ttl", "must be between 1s and 366d"));
            }
            validate_description(&description)?;
            let now = self.clock.now();
            // A token never outlives the token that created it.
            let parent_expiry = self
                .store
                .token(&auth.principal().token_id)
                .await?
                .and_then(|t| t.expires_at);
            let expires_at = match parent_expiry {
                Some(p) => p.min(now.plus_secs(ttl)),
                None => now.plus_secs(ttl),
            };
            self.mint_token(&mut ev, &principal, expires_at, description).await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Describes the token making the request.
    pub async fn lookup_self(&self, ctx: &RequestContext) -> Result<TokenInfo> {
        let mut ev = self.event(ctx, Operation::LookupToken);
        let res = async {
            // Anyone may look at the token they are using.
            let who = self.authenticate(ctx, &mut ev).await?;
            let id = who.principal.token_id.clone();
            ev.target = Some(id.clone());
            if id.starts_with("cert:") {
                // Authenticated by a client certificate: there is no token record to show.
                return Ok(TokenInfo {
                    id,
                    principal: who.principal.name.clone(),
                    description: "mutual TLS client certificate".into(),
                    created_at: self.clock.now(),
                    expires_at: None,
                    revoked_at: None,
                });
            }
            let t = self.store.token(&id).await?.ok_or(Error::Unauthenticated)?;
            Ok(info(&t))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Lists tokens (never their secrets).
    pub async fn list_tokens(
        &self,
        ctx: &RequestContext,
        page: &PageRequest,
    ) -> Result<Page<TokenInfo>> {
        let mut ev = self.event(ctx, Operation::ListTokens);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "list-tokens")?;
            let p = self.store.list_tokens(page).await?;
            Ok(Page {
                items: p.items.iter().map(info).collect(),
                next: p.next,
            })
        }
        .await;
        self.finish(ev, res).await
    }

    /// Revokes a token; it stops working at once. The root token cannot be revoked (that
    /// would lock everyone out of a fresh install).
    pub async fn revoke_token(&self, ctx: &RequestContext, id: &str) -> Result<TokenInfo> {
        let mut ev = self.event(ctx, Operation::RevokeToken);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "revoke-token")?;
            if id.is_empty()
                || id.len() > 64
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(Error::invalid("id", "not a token id"));
            }
            ev.target = Some(id.to_string());
            if id == ROOT_TOKEN_ID {
                return Err(Error::invalid("id", "the root token cannot be revoked"));
            }
            if self.store.token(id).await?.is_none() {
                return Err(Error::not_found("token", id));
            }
            self.audit_before_commit(&mut ev).await?;
            self.store
                .revoke_token(id, self.clock.now())
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => Error::not_found("token", id),
                    e => e.into(),
                })?;
            let t = self
                .store
                .token(id)
                .await?
                .ok_or_else(|| Error::not_found("token", id))?;
            Ok(info(&t))
        }
        .await;
        self.finish(ev, res).await
    }
}

use strongroom_crypto::hash::hex;

/// Whether text looks like a Strongroom token (for friendlier CLI errors; never a security
/// decision).
pub fn looks_like_token(s: &str) -> bool {
    s.starts_with(TOKEN_PREFIX) && s.len() == TOKEN_PREFIX.len() + 43
}
