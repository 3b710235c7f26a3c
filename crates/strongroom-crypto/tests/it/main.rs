//! Published test vectors and golden files for strongroom-crypto.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod envelope;
mod golden;
mod wycheproof;
