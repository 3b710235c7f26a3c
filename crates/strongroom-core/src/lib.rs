//! The domain of Strongroom: key rings, keys, immutable versions, their lifecycle state
//! machine, and `KeyService`, the one door every front-end calls.
//!
//! No HTTP and no wire types here: front-ends convert their requests into the inputs in
//! [`types`] and map [`Error`] to their protocol. Authentication, state checks, sealing and
//! audit all happen inside `KeyService`, so no front-end can skip them.
//! Specs: `docs/key-states.md` (state machine), `docs/sealing.md` (root key and sealing),
//! `docs/audit.md` (events).

#![warn(missing_docs)]

pub mod access_keys;
pub mod backup;
pub mod bootstrap;
pub mod clock;
mod crypto_ops;
pub mod error;
pub mod external;
pub mod failover;
pub mod federation;
mod governance;
pub mod grants;
pub mod import;
pub mod keysets;
mod lifecycle;
pub mod metrics;
pub mod providers;
pub mod quota;
pub mod request;
mod service;
pub mod states;
pub mod tokens;
pub mod types;

pub use access_keys::{AccessKeyInfo, NewAccessKey, NewAwsSession};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use governance::{PolicyTest, PrincipalInput, PrincipalUpdate, TestResource};
pub use grants::{GrantInfo, GrantInput, GrantRef, NewGrant};
pub use lifecycle::{AliasInfo, JobReport};
pub use request::{
    Authorized, BearerToken, Operation, Principal, Protocol, RequestContext, SecretAccessKey,
    SigV4Request,
};
pub use service::{Health, KeyService, Readiness};
pub use strongroom_crypto::{
    Algorithm, EncryptionContext, KeyId, Plaintext, Purpose, Sha2, SignatureScheme,
};
pub use strongroom_policy::{DEFAULT_POLICIES, Decision, SCHEMA as POLICY_SCHEMA};
pub use strongroom_store::{
    AliasName, ClaimRule, ExternalKey, IssuerRecord, KeyName, KeyOrigin, KeyRecord, KeyRingRecord,
    KeyState, Labels, Page, PageRequest, PolicyRecord, PostgresOptions, PrincipalName,
    PrincipalRecord, Protection, RingName, Timestamp, VersionOrigin, VersionState,
};

/// The built-in principal of the root token: allowed everything, by no policy.
pub const ROOT_PRINCIPAL: &str = "root";

/// The principal named in audit events for scheduled jobs.
pub const SCHEDULER_PRINCIPAL: &str = "strongroom-scheduler";

/// A fresh request id: `req_` and 24 hex digits.
pub fn new_request_id() -> String {
    let b = strongroom_crypto::rand::array::<12>().unwrap_or_default();
    let mut s = String::with_capacity(28);
    s.push_str("req_");
    s.push_str(&strongroom_crypto::hash::hex(&b));
    s
}
