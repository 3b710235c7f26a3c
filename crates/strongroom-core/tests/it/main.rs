//! Integration tests of `KeyService`, the one door to keys, through its public API only: each
//! test opens a real data dir with `bootstrap::open` and drives time with a `ManualClock`.
//!
//! Refusals assert the exact `Error` variant and then re-read state to show nothing changed
//! (`shared/RELIABILITY.md` §4).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

#[macro_use]
mod support;

mod access_keys;
mod audit;
mod backup;
mod bootstrap;
mod crypto;
mod external;
mod federation;
mod grants;
mod import;
mod key_sets;
mod lifecycle;
mod policy;
mod properties;
mod scheduler;
mod tokens;
