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

/// Random bytes a request id takes: 96 bits, so ids from any number of nodes do not collide.
const REQUEST_ID_BYTES: usize = 12;

/// Request ids drawn from one random draw at a time, per thread: the system random source
/// costs about a microsecond a call, a noticeable part of a request. Ids are not secrets,
/// only unique and unpredictable; the bytes still come from the system random source.
struct RequestIdPool {
    bytes: [u8; REQUEST_ID_BYTES * 32],
    used: usize,
}

thread_local! {
    static REQUEST_IDS: std::cell::RefCell<RequestIdPool> = const {
        std::cell::RefCell::new(RequestIdPool { bytes: [0; REQUEST_ID_BYTES * 32], used: REQUEST_ID_BYTES * 32 })
    };
}

/// A fresh request id: `req_` and 24 hex digits of random.
pub fn new_request_id() -> String {
    let mut s = String::with_capacity(4 + 2 * REQUEST_ID_BYTES);
    s.push_str("req_");
    let pooled = REQUEST_IDS.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used == pool.bytes.len() {
            strongroom_crypto::rand::fill(&mut pool.bytes).ok()?;
            pool.used = 0;
        }
        let at = pool.used;
        pool.used += REQUEST_ID_BYTES;
        strongroom_crypto::hash::hex_into(&mut s, &pool.bytes[at..at + REQUEST_ID_BYTES]);
        Some(())
    });
    if !matches!(pooled, Ok(Some(()))) {
        // The thread is exiting or the pool could not be filled: one draw of its own.
        let b = strongroom_crypto::rand::array::<REQUEST_ID_BYTES>().unwrap_or_default();
        strongroom_crypto::hash::hex_into(&mut s, &b);
    }
    s
}

#[cfg(test)]
mod request_id_tests {
    #[test]
    fn request_ids_are_distinct_past_the_pool_and_well_formed() {
        let ids: Vec<String> = (0..200).map(|_| super::new_request_id()).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            let hex = id.strip_prefix("req_").expect("prefix");
            assert_eq!(hex.len(), 24);
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
        // Another thread draws its own pool: its ids are fresh too.
        let other = std::thread::spawn(super::new_request_id)
            .join()
            .expect("thread");
        assert!(!distinct.contains(&other));
    }
}
