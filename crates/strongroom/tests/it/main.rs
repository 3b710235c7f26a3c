//! End-to-end tests: each starts the real `strongroom` binary on a free loopback port and
//! drives it over HTTP and through the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test code

mod aws;
mod backup;
mod cli;
mod envelope;
mod errors;
mod federation;
mod key_sets;
mod native;
mod policy;
mod postgres;
mod providers;
mod restart;
mod support;
mod tidy;
mod tls;
mod traces;
