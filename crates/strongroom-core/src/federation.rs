//! Workload identity federation: trusted OIDC issuers, and the exchange of a JWT from one of
//! them for a short-lived Strongroom token acting as a mapped principal.
//! Guide: `docs/federation.md`.
//!
//! Refused: `alg: none` and every HMAC algorithm (an issuer's JWKS holds public keys, so an
//! HMAC "signed with the public key" is the classic confusion attack), tokens without `kid`,
//! `exp`, `iss`, `aud` or `sub`, and clock skew beyond 60 seconds. An unknown `kid` triggers
//! at most one JWKS refresh per issuer per minute.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm as JwtAlg, DecodingKey, Validation};
use strongroom_store::{ClaimRule, IssuerRecord, PrincipalName, StoreError};

use crate::error::{Error, Result};
use crate::request::{Operation, RequestContext};
use crate::service::KeyService;
use crate::types::{DEFAULT_TOKEN_TTL_SECS, MAX_TOKEN_TTL_SECS, NewToken};

/// Fetches an issuer's JWKS document over the network. Lives outside core (no HTTP here);
/// the binary provides one.
#[async_trait::async_trait]
pub trait JwksFetcher: Send + Sync + 'static {
    /// GETs `uri` and returns the body.
    async fn fetch(&self, uri: &str) -> std::result::Result<String, String>;
}

/// Signature algorithms accepted from issuers: asymmetric only.
const ACCEPTED: [JwtAlg; 9] = [
    JwtAlg::RS256,
    JwtAlg::RS384,
    JwtAlg::RS512,
    JwtAlg::PS256,
    JwtAlg::PS384,
    JwtAlg::PS512,
    JwtAlg::ES256,
    JwtAlg::ES384,
    JwtAlg::EdDSA,
];
/// Allowed clock skew.
pub const LEEWAY_SECS: u64 = 60;
const REFRESH_EVERY_SECS: i64 = 60;
/// Longest JWT accepted.
pub const MAX_JWT_LEN: usize = 16 * 1024;

/// The issuer input of `put_issuer`.
#[derive(Debug, Clone)]
pub struct IssuerInput {
    /// Local name.
    pub name: String,
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Inline JWKS (JSON).
    pub jwks: Option<String>,
    /// JWKS URL.
    pub jwks_uri: Option<String>,
    /// Mapping rules.
    pub rules: Vec<ClaimRule>,
    /// Longest exchanged token lifetime (default 1 hour).
    pub max_ttl_secs: Option<i64>,
}

#[derive(Default)]
pub(crate) struct JwksCache {
    sets: Mutex<HashMap<String, (Arc<JwkSet>, strongroom_store::Timestamp)>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwksCache")
    }
}

fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn rule_matches(rule: &ClaimRule, claims: &serde_json::Value) -> bool {
    !rule.claims.is_empty()
        && rule.claims.iter().all(|(c, p)| {
            claims
                .get(c)
                .and_then(|v| v.as_str())
                .is_some_and(|v| pattern_matches(p, v))
        })
}

fn parse_jwks(text: &str) -> Result<JwkSet> {
    serde_json::from_str(text)
        .map_err(|_| Error::invalid("jwks", "not a JWKS document ({\"keys\": [...]})"))
}

/// Why an exchange was refused: logged (without the token), never sent.
fn refuse(ctx: &RequestContext, why: &str) -> Error {
    tracing::info!(request_id = %ctx.request_id, reason = why, "token exchange refused");
    Error::Unauthenticated
}

impl KeyService {
    /// Registers or replaces a trusted issuer (needs `manage-federation`).
    pub async fn put_issuer(
        &self,
        ctx: &RequestContext,
        input: IssuerInput,
    ) -> Result<IssuerRecord> {
        let mut ev = self.event(ctx, Operation::PutIssuer);
        ev.target = Some(input.name.clone());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-federation")?;
            let ok_name = !input.name.is_empty()
                && input.name.len() <= 63
                && input
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok_name {
                return Err(Error::invalid("name", "1-63 characters of A-Z a-z 0-9 - _"));
            }
            if input.issuer.is_empty() || input.issuer.len() > 512 {
                return Err(Error::invalid(
                    "issuer",
                    "the issuer URL (the tokens' iss claim), at most 512 bytes",
                ));
            }
            if input.audiences.is_empty()
                || input
                    .audiences
                    .iter()
                    .any(|a| a.is_empty() || a.len() > 512)
            {
                return Err(Error::invalid(
                    "audiences",
                    "give at least one non-empty audience",
                ));
            }
            match (&input.jwks, &input.jwks_uri) {
                (Some(j), None) => {
                    let set = parse_jwks(j)?;
                    if set.keys.is_empty() || set.keys.iter().any(|k| k.common.key_id.is_none()) {
                        return Err(Error::invalid("jwks", "every key needs a kid"));
                    }
                }
                (None, Some(u)) if u.starts_with("https://") || u.starts_with("http://") => {}
                (None, Some(_)) => {
                    return Err(Error::invalid("jwks_uri", "must be an http(s) URL"));
                }
                _ => {
                    return Err(Error::invalid(
                        "jwks",
                        "give exactly one of jwks and jwks_uri",
                    ));
                }
            }
            if input.rules.is_empty() || input.rules.iter().any(|r| r.claims.is_empty()) {
                return Err(Error::invalid(
                    "rules",
                    "give at least one rule, each matching at least one claim",
                ));
            }
            for r in &input.rules {
                let name = PrincipalName::try_new(&r.principal)
                    .map_err(|_| Error::invalid("rules", "a rule names an invalid principal"))?;
                if r.principal == crate::ROOT_PRINCIPAL
                    || self.store.principal(&name).await?.is_none()
                {
                    return Err(Error::invalid(
                        "rules",
                        format!(
                            "principal {} does not exist (create it first; root cannot be mapped)",
                            r.principal
                        ),
                    ));
                }
            }
            let ttl = input.max_ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS / 24);
            if !(60..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
                return Err(Error::invalid("max_ttl", "between 1m and 366d"));
            }
            let now = self.clock.now().0;
            let created_at = self
                .store
                .issuer(&input.name)
                .await?
                .map(|i| i.created_at)
                .unwrap_or(now);
            let rec = IssuerRecord {
                name: input.name,
                issuer: input.issuer,
                audiences: input.audiences,
                jwks: input.jwks,
                jwks_uri: input.jwks_uri,
                rules: input.rules,
                max_ttl_secs: ttl,
                created_at,
                updated_at: now,
            };
            self.audit_before_commit(&mut ev).await?;
            self.store.put_issuer(&rec).await?;
            if let Ok(mut c) = self.jwks.sets.lock() {
                c.remove(&rec.name);
            }
            Ok(rec)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Lists trusted issuers (needs `manage-federation`).
    pub async fn list_issuers(&self, ctx: &RequestContext) -> Result<Vec<IssuerRecord>> {
        let mut ev = self.event(ctx, Operation::ListIssuers);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-federation")?;
            Ok(self.store.issuers().await?)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Removes a trusted issuer (needs `manage-federation`). Tokens already exchanged keep
    /// working until they expire or are revoked.
    pub async fn delete_issuer(&self, ctx: &RequestContext, name: &str) -> Result<()> {
        let mut ev = self.event(ctx, Operation::DeleteIssuer);
        ev.target = Some(name.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-federation")?;
            if self.store.issuer(name).await?.is_none() {
                return Err(Error::not_found("issuer", name));
            }
            self.audit_before_commit(&mut ev).await?;
            self.store.delete_issuer(name).await.map_err(|e| match e {
                StoreError::NotFound(_) => Error::not_found("issuer", name),
                e => e.into(),
            })?;
            if let Ok(mut c) = self.jwks.sets.lock() {
                c.remove(name);
            }
            Ok(())
        }
        .await;
        self.finish(ev, res).await
    }

    async fn jwks_for(&self, i: &IssuerRecord, refresh: bool) -> Result<Option<Arc<JwkSet>>> {
        if let Some(text) = &i.jwks {
            return Ok(Some(Arc::new(parse_jwks(text)?)));
        }
        let Some(uri) = &i.jwks_uri else {
            return Ok(None);
        };
        let cached = self
            .jwks
            .sets
            .lock()
            .ok()
            .and_then(|c| c.get(&i.name).cloned());
        let now = self.clock.now();
        if let Some((set, at)) = &cached
            && (!refresh || now.0 - at.0 < REFRESH_EVERY_SECS)
        {
            return Ok(Some(set.clone()));
        }
        let Some(fetcher) = &self.jwks_fetcher else {
            return Ok(cached.map(|c| c.0));
        };
        match fetcher.fetch(uri).await {
            Ok(text) => {
                let set = Arc::new(parse_jwks(&text).map_err(|_| {
                    Error::Unavailable(format!(
                        "issuer {}: the JWKS at {uri} is not a JWKS document",
                        i.name
                    ))
                })?);
                if let Ok(mut c) = self.jwks.sets.lock() {
                    c.insert(i.name.clone(), (set.clone(), now));
                }
                Ok(Some(set))
            }
            Err(e) => {
                tracing::warn!(issuer = %i.name, %uri, error = %e, "JWKS fetch failed");
                // Remember the attempt so a flood of unknown kids cannot hammer the issuer.
                if let (Some((set, _)), Ok(mut c)) = (&cached, self.jwks.sets.lock()) {
                    c.insert(i.name.clone(), (set.clone(), now));
                }
                Ok(cached.map(|c| c.0))
            }
        }
    }

    /// Exchanges a JWT from a trusted issuer for a Strongroom token acting as the principal
    /// the first matching rule names. `issuer`: the local issuer name, or `None` to pick the
    /// one whose `iss` the token carries. Every failure is the same `Unauthenticated`.
    pub async fn exchange_token(
        &self,
        ctx: &RequestContext,
        issuer: Option<&str>,
        jwt: &str,
        ttl_secs: Option<i64>,
    ) -> Result<NewToken> {
        let mut ev = self.event(ctx, Operation::ExchangeToken);
        ev.auth_method = Some("jwt");
        let res = async {
            let (principal, expires_at, description) = self
                .verify_exchange(ctx, &mut ev, issuer, jwt, ttl_secs)
                .await?;
            self.mint_token(&mut ev, &principal, expires_at, description)
                .await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Exchanges a JWT, as `exchange_token` does, for AWS-style session credentials: an
    /// access key pair and a session token that must accompany every request signed with it
    /// (`X-Amz-Security-Token`), all expiring together. For AWS SDKs run by federated
    /// workloads.
    pub async fn exchange_for_aws_session(
        &self,
        ctx: &RequestContext,
        issuer: Option<&str>,
        jwt: &str,
        ttl_secs: Option<i64>,
    ) -> Result<crate::access_keys::NewAwsSession> {
        let mut ev = self.event(ctx, Operation::ExchangeToken);
        ev.auth_method = Some("jwt");
        let res = async {
            let (principal, expires_at, description) = self
                .verify_exchange(ctx, &mut ev, issuer, jwt, ttl_secs)
                .await?;
            self.mint_aws_session(&mut ev, &principal, expires_at, description)
                .await
        }
        .await;
        self.finish(ev, res).await
    }

    /// Verifies a presented JWT against its trusted issuer and maps it to a principal:
    /// who the new credential acts as, when it expires, and its description.
    async fn verify_exchange(
        &self,
        ctx: &RequestContext,
        ev: &mut strongroom_audit::AuditEvent,
        issuer: Option<&str>,
        jwt: &str,
        ttl_secs: Option<i64>,
    ) -> Result<(String, strongroom_store::Timestamp, String)> {
        {
            if jwt.is_empty() || jwt.len() > MAX_JWT_LEN {
                return Err(refuse(ctx, "empty or oversized token"));
            }
            let header = jsonwebtoken::decode_header(jwt)
                .map_err(|_| refuse(ctx, "malformed header or unsupported alg"))?;
            if !ACCEPTED.contains(&header.alg) {
                return Err(refuse(
                    ctx,
                    "algorithm not accepted (HMAC and none are never accepted)",
                ));
            }
            let kid = header.kid.clone().ok_or_else(|| refuse(ctx, "no kid"))?;
            // Which issuer: the named one, or the one whose iss the (unverified) payload names;
            // the signature check below then proves it.
            let issuers = self.store.issuers().await?;
            let unverified_iss = jwt.split('.').nth(1).and_then(|p| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p.trim_end_matches('='))
                    .ok()
            });
            let unverified_iss = unverified_iss
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["iss"].as_str().map(str::to_string));
            let i = match issuer {
                Some(n) => issuers.into_iter().find(|i| i.name == n),
                None => issuers
                    .into_iter()
                    .find(|i| Some(&i.issuer) == unverified_iss.as_ref()),
            }
            .ok_or_else(|| refuse(ctx, "no trusted issuer for this token"))?;
            ev.target = Some(i.name.clone());
            let mut set = self
                .jwks_for(&i, false)
                .await?
                .ok_or_else(|| refuse(ctx, "issuer has no keys"))?;
            if set.find(&kid).is_none() {
                set = self
                    .jwks_for(&i, true)
                    .await?
                    .ok_or_else(|| refuse(ctx, "issuer has no keys"))?;
            }
            let jwk = set.find(&kid).ok_or_else(|| refuse(ctx, "unknown kid"))?;
            let key =
                DecodingKey::from_jwk(jwk).map_err(|_| refuse(ctx, "unusable key in the JWKS"))?;
            let mut v = Validation::new(header.alg);
            v.leeway = LEEWAY_SECS;
            v.validate_nbf = true;
            v.set_issuer(&[&i.issuer]);
            v.set_audience(&i.audiences);
            v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v)
                .map_err(|e| refuse(ctx, &format!("verification failed: {:?}", e.kind())))?;
            let claims = data.claims;
            let rule = i
                .rules
                .iter()
                .find(|r| rule_matches(r, &claims))
                .ok_or_else(|| refuse(ctx, "no mapping rule matches the token's claims"))?;
            let principal = PrincipalName::try_new(&rule.principal)
                .map_err(|_| refuse(ctx, "rule names an invalid principal"))?;
            let p = self
                .store
                .principal(&principal)
                .await?
                .ok_or_else(|| refuse(ctx, "mapped principal does not exist"))?;
            if p.disabled_at.is_some() {
                return Err(refuse(ctx, "mapped principal is disabled"));
            }
            ev.principal = Some(p.name.to_string());
            let now = self.clock.now();
            let exp = claims["exp"].as_i64().unwrap_or(now.0);
            let ttl = ttl_secs
                .unwrap_or(i.max_ttl_secs)
                .min(i.max_ttl_secs)
                .min(exp.saturating_sub(now.0));
            if ttl < 1 {
                return Err(refuse(ctx, "token expires too soon"));
            }
            let description = format!("exchanged from issuer {}", i.name);
            Ok((p.name.to_string(), now.plus_secs(ttl), description))
        }
    }
}

/// For docs and tests: what a rule set maps a claim set to.
pub fn map_claims<'a>(
    rules: &'a [ClaimRule],
    claims: &BTreeMap<String, String>,
) -> Option<&'a str> {
    let v = serde_json::to_value(claims).ok()?;
    rules
        .iter()
        .find(|r| rule_matches(r, &v))
        .map(|r| r.principal.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches(
            "repo:acme/*",
            "repo:acme/app:ref:refs/heads/main"
        ));
        assert!(!pattern_matches("repo:acme/*", "repo:acmecorp/app"));
        assert!(pattern_matches("exact", "exact"));
        assert!(!pattern_matches("exact", "exactly"));
        let rules = vec![
            ClaimRule {
                claims: BTreeMap::from([("sub".into(), "system:serviceaccount:pay:*".into())]),
                principal: "payments".into(),
            },
            ClaimRule {
                claims: BTreeMap::from([
                    ("repository".into(), "acme/*".into()),
                    ("ref".into(), "refs/heads/main".into()),
                ]),
                principal: "ci".into(),
            },
        ];
        let c = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            map_claims(&rules, &c(&[("sub", "system:serviceaccount:pay:api")])),
            Some("payments")
        );
        assert_eq!(
            map_claims(
                &rules,
                &c(&[("repository", "acme/app"), ("ref", "refs/heads/main")])
            ),
            Some("ci")
        );
        assert_eq!(
            map_claims(
                &rules,
                &c(&[("repository", "acme/app"), ("ref", "refs/heads/dev")])
            ),
            None
        );
        assert_eq!(map_claims(&rules, &c(&[])), None);
    }
}
