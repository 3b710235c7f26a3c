//! Randomness from aws-lc's DRBG.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::Error;

/// Fills `out` with cryptographically secure random bytes.
pub fn fill(out: &mut [u8]) -> Result<(), Error> {
    SystemRandom::new().fill(out).map_err(|_| Error::Rng)
}

/// Returns `n` random bytes.
pub fn bytes(n: usize) -> Result<Vec<u8>, Error> {
    let mut v = vec![0u8; n];
    fill(&mut v)?;
    Ok(v)
}

/// Returns a fixed-size array of random bytes.
pub fn array<const N: usize>() -> Result<[u8; N], Error> {
    let mut a = [0u8; N];
    fill(&mut a)?;
    Ok(a)
}
