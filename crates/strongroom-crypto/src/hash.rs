//! Hashing helpers.

use aws_lc_rs::digest;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The SHA-2 digest of `data`.
pub fn digest(hash: crate::Sha2, data: &[u8]) -> Vec<u8> {
    digest::digest(hash.digest_algorithm(), data)
        .as_ref()
        .to_vec()
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 example "abc".
        assert_eq!(super::sha256(b"abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert!(super::constant_time_eq(b"ab", b"ab"));
        assert!(!super::constant_time_eq(b"ab", b"ac"));
        assert!(!super::constant_time_eq(b"ab", b"abc"));
    }
}
