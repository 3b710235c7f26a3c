//! Helpers for Strongroom's own tests; never a dependency of shipped code.

pub mod peers;
pub mod postgres;
pub mod replay;
