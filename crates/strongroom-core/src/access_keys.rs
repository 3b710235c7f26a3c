//! AWS-style access key pairs: an access key id and a secret access key that authenticate a
//! principal on the AWS-compatible API by signing requests (SigV4). SigV4 needs the secret
//! itself to recompute a signature, so unlike tokens the secret is kept, sealed under the
//! root key (binding `access-key\0` + id), and shown once when the pair is created.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use strongroom_audit::AuditEvent;
use strongroom_crypto::{hash, rand, sigv4};
use strongroom_store::{AccessKeyRecord, PrincipalName, StoreError, Timestamp};

use crate::error::{Error, Result};
use crate::request::{Operation, RequestContext, SecretAccessKey, SigV4Request};
use crate::service::{Caller, KeyService};
use crate::types::validate_description;

/// Prefix of the access key ids Strongroom makes (AWS's own start with `AKIA`/`ASIA`).
const ID_PREFIX: &str = "SRAK";
/// Prefix of session credentials' access key ids (from a token exchange).
const SESSION_ID_PREFIX: &str = "SRSK";
/// Prefix of session tokens.
const SESSION_TOKEN_PREFIX: &str = "srst_";
/// Active (unrevoked) access keys a principal may hold: two, as in AWS IAM, so a key can be
/// rotated by creating the new one before revoking the old.
pub const MAX_ACTIVE_ACCESS_KEYS: usize = 2;
/// How far a SigV4 signing time may be from the server's clock, as AWS allows.
pub const SIGV4_MAX_SKEW_SECS: i64 = 15 * 60;

/// An access key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    /// The access key id (not secret).
    pub id: String,
    /// The principal it authenticates as.
    pub principal: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// When revoked.
    pub revoked_at: Option<Timestamp>,
    /// When session credentials expire (`None` for long-term pairs).
    pub expires_at: Option<Timestamp>,
}

/// AWS-style session credentials from a token exchange: the pair and the session token
/// that must accompany every request signed with it, returned exactly once.
#[derive(Debug)]
pub struct NewAwsSession {
    /// The pair's description (with its expiry).
    pub info: AccessKeyInfo,
    /// The secret access key.
    pub secret: SecretAccessKey,
    /// The session token (`X-Amz-Security-Token`, `AWS_SESSION_TOKEN`).
    pub session_token: crate::request::BearerToken,
}

/// A newly created access key pair: the secret is returned exactly once.
#[derive(Debug)]
pub struct NewAccessKey {
    /// The pair's description.
    pub info: AccessKeyInfo,
    /// The secret access key.
    pub secret: SecretAccessKey,
}

fn info(r: &AccessKeyRecord) -> AccessKeyInfo {
    AccessKeyInfo {
        id: r.id.clone(),
        principal: r.principal.clone(),
        description: r.description.clone(),
        created_at: r.created_at,
        revoked_at: r.revoked_at,
        expires_at: r.expires_at,
    }
}

fn binding(id: &str) -> Vec<u8> {
    let mut b = b"access-key\0".to_vec();
    b.extend_from_slice(id.as_bytes());
    b
}

/// Access key ids are 1 to 128 characters of `A-Z a-z 0-9 _` (AWS: `[\w]+`).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn new_id(prefix: &str) -> Result<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = rand::bytes(16)?;
    let mut s = String::from(prefix);
    s.extend(bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char));
    Ok(s)
}

fn new_secret() -> Result<SecretAccessKey> {
    // 30 random bytes: 40 characters of standard base64, the length of AWS's secrets.
    let bytes = rand::bytes(30)?;
    Ok(SecretAccessKey::new(
        base64::engine::general_purpose::STANDARD.encode(&bytes),
    ))
}

/// `YYYYMMDD` of a time, as SigV4 credential scopes write dates.
fn scope_date(t: i64) -> String {
    Timestamp(t)
        .to_rfc3339()
        .get(..10)
        .unwrap_or("")
        .replace('-', "")
}

impl KeyService {
    /// Creates an access key pair for a principal (an administrator handing out credentials:
    /// the `create-principal-token` permission). A principal holds at most
    /// [`MAX_ACTIVE_ACCESS_KEYS`] unrevoked pairs; root holds none.
    pub async fn create_access_key(
        &self,
        ctx: &RequestContext,
        principal: &PrincipalName,
        description: String,
    ) -> Result<NewAccessKey> {
        let mut ev = self.event(ctx, Operation::CreateAccessKey);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "create-principal-token")?;
            if principal.as_str() == crate::ROOT_PRINCIPAL {
                return Err(Error::invalid(
                    "principal",
                    "root has no access keys; create a principal for AWS clients",
                ));
            }
            validate_description(&description)?;
            let p = self
                .store
                .principal(principal)
                .await?
                .ok_or_else(|| Error::not_found("principal", principal.to_string()))?;
            if p.disabled_at.is_some() {
                return Err(Error::InvalidState {
                    resource: format!("principal {principal}"),
                    state: "disabled",
                    operation: Operation::CreateAccessKey.as_str(),
                    requirement: "needs it enabled",
                });
            }
            // Session credentials expire by themselves and do not count.
            let active = self
                .store
                .access_keys_of(principal.as_str())
                .await?
                .iter()
                .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none())
                .count();
            if active >= MAX_ACTIVE_ACCESS_KEYS {
                return Err(Error::InvalidState {
                    resource: format!("principal {principal}"),
                    state: "at its limit of 2 active access keys",
                    operation: Operation::CreateAccessKey.as_str(),
                    requirement: "needs one revoked first",
                });
            }
            self.mint_access_key(
                &mut ev,
                new_id(ID_PREFIX)?,
                principal.as_str(),
                description,
                None,
                None,
            )
            .await
            .map(|(k, _)| k)
        }
        .await;
        self.finish(ev, res).await
    }

    /// Session credentials for `principal` until `expires_at` (after a verified exchange).
    pub(crate) async fn mint_aws_session(
        &self,
        ev: &mut AuditEvent,
        principal: &str,
        expires_at: Timestamp,
        description: String,
    ) -> Result<NewAwsSession> {
        let (k, token) = self
            .mint_access_key(
                ev,
                new_id(SESSION_ID_PREFIX)?,
                principal,
                description,
                None,
                Some(expires_at),
            )
            .await?;
        let NewAccessKey { info, secret } = k;
        let session_token =
            token.ok_or_else(|| Error::Internal("session credentials without a token".into()))?;
        Ok(NewAwsSession {
            info,
            secret,
            session_token,
        })
    }

    /// Seals and stores an access key (after writing the audit event ahead). `secret` is
    /// generated unless given (dev mode's configured pair). With `expires_at`, the pair is
    /// session credentials and a session token is made too (only its hash is kept).
    async fn mint_access_key(
        &self,
        ev: &mut AuditEvent,
        id: String,
        principal: &str,
        description: String,
        secret: Option<SecretAccessKey>,
        expires_at: Option<Timestamp>,
    ) -> Result<(NewAccessKey, Option<crate::request::BearerToken>)> {
        let secret = match secret {
            Some(s) => s,
            None => new_secret()?,
        };
        let session_token = match expires_at {
            Some(_) => Some(crate::request::BearerToken::new(format!(
                "{SESSION_TOKEN_PREFIX}{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::bytes(32)?)
            ))),
            None => None,
        };
        ev.target = Some(id.clone());
        let rec = AccessKeyRecord {
            // Exposed to seal it: the only way the secret reaches the store.
            sealed_secret: self
                .root
                .seal(&binding(&id), secret.expose_secret().as_bytes())?,
            id,
            principal: principal.to_string(),
            description,
            created_at: self.clock.now(),
            revoked_at: None,
            expires_at,
            // Exposed to hash it; only the hash is stored.
            session_token_hash: session_token
                .as_ref()
                .map(|t| hash::sha256(t.expose_secret().as_bytes()).to_vec()),
        };
        self.audit_before_commit(ev).await?;
        self.store
            .insert_access_key(&rec)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists(_) => Error::AlreadyExists {
                    kind: "access key",
                    name: rec.id.clone(),
                },
                e => e.into(),
            })?;
        Ok((
            NewAccessKey {
                info: info(&rec),
                secret,
            },
            session_token,
        ))
    }

    /// Gives root the access key pair dev mode was configured with (first start only).
    pub(crate) async fn insert_root_access_key(
        &self,
        id: &str,
        secret: SecretAccessKey,
    ) -> Result<()> {
        if !valid_id(id) {
            return Err(Error::invalid(
                "access key id",
                "must be 1 to 128 characters of A-Z a-z 0-9 _",
            ));
        }
        let len = secret.expose_secret().len();
        if len == 0 || len > 128 {
            return Err(Error::invalid(
                "secret access key",
                "must be 1 to 128 characters",
            ));
        }
        // Not a request: the bootstrap itself, like the root token.
        let mut ev = AuditEvent::new(
            self.clock.now().to_rfc3339(),
            crate::new_request_id(),
            "bootstrap",
            Operation::CreateAccessKey.as_str(),
        );
        ev.principal = Some(crate::ROOT_PRINCIPAL.into());
        self.mint_access_key(
            &mut ev,
            id.to_string(),
            crate::ROOT_PRINCIPAL,
            "dev mode access key (STRONGROOM_DEV_AWS_ACCESS_KEY_ID)".into(),
            Some(secret),
            None,
        )
        .await
        .map(|_| ())
    }

    /// A principal's access keys, revoked ones included (never their secrets).
    pub async fn list_access_keys(
        &self,
        ctx: &RequestContext,
        principal: &PrincipalName,
    ) -> Result<Vec<AccessKeyInfo>> {
        let mut ev = self.event(ctx, Operation::ListAccessKeys);
        ev.target = Some(principal.to_string());
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-principals")?;
            if principal.as_str() != crate::ROOT_PRINCIPAL
                && self.store.principal(principal).await?.is_none()
            {
                return Err(Error::not_found("principal", principal.to_string()));
            }
            let keys = self.store.access_keys_of(principal.as_str()).await?;
            Ok(keys.iter().map(info).collect())
        }
        .await;
        self.finish(ev, res).await
    }

    /// Revokes an access key; requests signed with it fail at once. Idempotent.
    pub async fn revoke_access_key(&self, ctx: &RequestContext, id: &str) -> Result<AccessKeyInfo> {
        let mut ev = self.event(ctx, Operation::RevokeAccessKey);
        let res = async {
            let who = self.authenticate(ctx, &mut ev).await?;
            self.check_system(&who, ctx, &mut ev, "manage-principals")?;
            if !valid_id(id) {
                return Err(Error::invalid("id", "not an access key id"));
            }
            ev.target = Some(id.to_string());
            if self.store.access_key(id).await?.is_none() {
                return Err(Error::not_found("access key", id));
            }
            self.audit_before_commit(&mut ev).await?;
            self.store
                .revoke_access_key(id, self.clock.now())
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => Error::not_found("access key", id),
                    e => e.into(),
                })?;
            let k = self
                .store
                .access_key(id)
                .await?
                .ok_or_else(|| Error::not_found("access key", id))?;
            Ok(info(&k))
        }
        .await;
        self.finish(ev, res).await
    }

    /// Verifies a SigV4 signature. An unknown or revoked access key, or one whose principal
    /// is disabled, is `Unauthenticated`; a known key with a signature that does not match,
    /// a scope date that is not the signing date, or a signing time more than
    /// [`SIGV4_MAX_SKEW_SECS`] from the server's clock is `InvalidSignature`.
    pub(crate) async fn authenticate_sigv4(
        &self,
        req: &SigV4Request,
        ev: &mut AuditEvent,
    ) -> Result<Caller> {
        if !valid_id(&req.access_key_id) {
            return Err(Error::Unauthenticated);
        }
        let rec = self
            .store
            .access_key(&req.access_key_id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let now = self.clock.now().0;
        if rec.revoked_at.is_some() || rec.expires_at.is_some_and(|t| t.0 <= now) {
            return Err(Error::Unauthenticated);
        }
        // Session credentials need their session token; long-term pairs take none.
        match (&rec.session_token_hash, &req.session_token) {
            (None, None) => {}
            (Some(want), Some(got)) => {
                // Exposed to hash it; compared in constant time.
                let h = hash::sha256(got.expose_secret().as_bytes());
                if !hash::constant_time_eq(want, &h) {
                    return Err(Error::Unauthenticated);
                }
            }
            _ => return Err(Error::Unauthenticated),
        }
        if (now - req.signed_at).abs() > SIGV4_MAX_SKEW_SECS {
            return Err(Error::InvalidSignature(format!(
                "signature expired: signed at {}, more than 15 minutes from the server's time {}",
                Timestamp(req.signed_at),
                Timestamp(now)
            )));
        }
        if scope_date(req.signed_at) != req.scope_date {
            return Err(Error::InvalidSignature(
                "the credential scope's date is not the date of X-Amz-Date".into(),
            ));
        }
        let scope = SigningScope {
            date: &req.scope_date,
            region: &req.region,
            service: &req.service,
        };
        let signing_key = match self.sigv4_keys.get(&rec.id, scope, &rec.sealed_secret) {
            Some(k) => k,
            None => {
                let secret = self
                    .root
                    .unseal(&binding(&rec.id), &rec.sealed_secret)
                    .map_err(|_| {
                        Error::Internal(format!(
                            "sealed secret of access key {} failed its integrity check",
                            rec.id
                        ))
                    })?;
                // Exposed to derive the signing key, which only ever checks signatures.
                let k = Arc::new(sigv4::SigningKey::derive(
                    secret.expose_secret(),
                    &req.scope_date,
                    &req.region,
                    &req.service,
                ));
                self.sigv4_keys
                    .put(&rec.id, scope, &rec.sealed_secret, k.clone());
                k
            }
        };
        let expected = signing_key.sign(req.string_to_sign.as_bytes());
        if !hash::constant_time_eq(&expected, &req.signature) {
            return Err(Error::InvalidSignature(
                "the request signature does not match the one computed with the access key's secret; \
                 check the secret access key and the signing method"
                    .into(),
            ));
        }
        self.caller(&rec.principal, rec.id.clone(), "sigv4", ev)
            .await
    }
}

/// The credential scope a signing key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SigningScope<'a> {
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

/// Most access keys whose signing key is kept; past it, all are forgotten and derived again
/// as needed.
const SIGNING_KEYS_KEPT: usize = 4096;

/// SigV4 signing keys already derived, so a request's signature costs one HMAC rather than
/// five (and no unsealing): one per access key, for the scope it last signed with (a server
/// accepts one region and service, so the scope changes once a day). An entry is used only
/// with that scope and the sealed secret it was derived from: a key whose secret changed
/// under the same id (a restore, say) is derived again. A key removed or disabled never gets
/// this far: its record is checked first, on every request.
#[derive(Debug, Default)]
pub(crate) struct SigningKeys(std::sync::Mutex<HashMap<String, KeptSigningKey>>);

/// A kept signing key with its scope (date, region, service) and the sealed secret it was
/// derived from.
#[derive(Debug)]
pub(crate) struct KeptSigningKey {
    scope: (String, String, String),
    sealed_secret: Vec<u8>,
    key: Arc<sigv4::SigningKey>,
}

impl SigningKeys {
    fn get(
        &self,
        access_key_id: &str,
        scope: SigningScope<'_>,
        sealed_secret: &[u8],
    ) -> Option<Arc<sigv4::SigningKey>> {
        let m = self.0.lock().ok()?;
        let kept = m.get(access_key_id)?;
        let (date, region, service) = &kept.scope;
        (scope.date == date
            && scope.region == region
            && scope.service == service
            && kept.sealed_secret == sealed_secret)
            .then(|| kept.key.clone())
    }

    fn put(
        &self,
        access_key_id: &str,
        scope: SigningScope<'_>,
        sealed_secret: &[u8],
        key: Arc<sigv4::SigningKey>,
    ) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= SIGNING_KEYS_KEPT && !m.contains_key(access_key_id) {
                m.clear();
            }
            let scope = (
                scope.date.to_string(),
                scope.region.to_string(),
                scope.service.to_string(),
            );
            m.insert(
                access_key_id.to_string(),
                KeptSigningKey {
                    scope,
                    sealed_secret: sealed_secret.to_vec(),
                    key,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signing_keys_are_kept_per_scope_and_sealed_secret() {
        use super::{SigningKeys, SigningScope, sigv4::SigningKey};
        use std::sync::Arc;
        let keys = SigningKeys::default();
        let scope = |date| SigningScope {
            date,
            region: "us-east-1",
            service: "kms",
        };
        let k = Arc::new(SigningKey::derive(
            b"secret",
            "20261202",
            "us-east-1",
            "kms",
        ));
        keys.put("SRAKTEST", scope("20261202"), b"sealed-1", k.clone());
        let got = keys
            .get("SRAKTEST", scope("20261202"), b"sealed-1")
            .unwrap();
        assert_eq!(got.sign(b"sts"), k.sign(b"sts"));
        assert!(
            keys.get("SRAKTEST", scope("20261203"), b"sealed-1")
                .is_none()
        );
        assert!(
            keys.get("SRAKTEST", scope("20261202"), b"sealed-2")
                .is_none()
        );
        assert!(
            keys.get("SRAKOTHER", scope("20261202"), b"sealed-1")
                .is_none()
        );
        for n in 0..super::SIGNING_KEYS_KEPT + 1 {
            keys.put(
                &format!("SRAK{n}"),
                scope("20261202"),
                b"sealed-1",
                k.clone(),
            );
        }
        assert!(keys.0.lock().unwrap().len() <= super::SIGNING_KEYS_KEPT);
    }

    #[test]
    fn ids_and_dates() {
        let id = super::new_id(super::ID_PREFIX).unwrap();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("SRAK") && super::valid_id(&id));
        assert!(
            !super::valid_id("") && !super::valid_id("a-b") && !super::valid_id(&"A".repeat(129))
        );
        assert_eq!(super::new_secret().unwrap().expose_secret().len(), 40);
        // 2015-08-30T12:36:00Z
        assert_eq!(super::scope_date(1_440_938_160), "20150830");
    }
}
