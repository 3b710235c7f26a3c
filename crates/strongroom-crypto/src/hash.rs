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

/// Hash functions offered for hashing data on its own (no key): SHA-2 and SHA-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFunction {
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// SHA3-256.
    Sha3_256,
    /// SHA3-384.
    Sha3_384,
    /// SHA3-512.
    Sha3_512,
}

impl HashFunction {
    /// Every function.
    pub const ALL: [HashFunction; 7] = [
        HashFunction::Sha224,
        HashFunction::Sha256,
        HashFunction::Sha384,
        HashFunction::Sha512,
        HashFunction::Sha3_256,
        HashFunction::Sha3_384,
        HashFunction::Sha3_512,
    ];

    /// The name, as Vault spells it: `sha2-256`, `sha3-256`, …
    pub fn name(self) -> &'static str {
        match self {
            HashFunction::Sha224 => "sha2-224",
            HashFunction::Sha256 => "sha2-256",
            HashFunction::Sha384 => "sha2-384",
            HashFunction::Sha512 => "sha2-512",
            HashFunction::Sha3_256 => "sha3-256",
            HashFunction::Sha3_384 => "sha3-384",
            HashFunction::Sha3_512 => "sha3-512",
        }
    }

    /// The function of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    fn algorithm(self) -> &'static digest::Algorithm {
        match self {
            HashFunction::Sha224 => &digest::SHA224,
            HashFunction::Sha256 => &digest::SHA256,
            HashFunction::Sha384 => &digest::SHA384,
            HashFunction::Sha512 => &digest::SHA512,
            HashFunction::Sha3_256 => &digest::SHA3_256,
            HashFunction::Sha3_384 => &digest::SHA3_384,
            HashFunction::Sha3_512 => &digest::SHA3_512,
        }
    }

    /// The digest of `data`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.algorithm(), data).as_ref().to_vec()
    }
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::HashFunction;

    /// The "abc" examples of FIPS 180-2 and FIPS 202 (first four bytes).
    #[test]
    fn hash_functions_known_answers() {
        let want: [(HashFunction, [u8; 4], usize); 7] = [
            (HashFunction::Sha224, [0x23, 0x09, 0x7d, 0x22], 28),
            (HashFunction::Sha256, [0xba, 0x78, 0x16, 0xbf], 32),
            (HashFunction::Sha384, [0xcb, 0x00, 0x75, 0x3f], 48),
            (HashFunction::Sha512, [0xdd, 0xaf, 0x35, 0xa1], 64),
            (HashFunction::Sha3_256, [0x3a, 0x98, 0x5d, 0xa7], 32),
            (HashFunction::Sha3_384, [0xec, 0x01, 0x49, 0x82], 48),
            (HashFunction::Sha3_512, [0xb7, 0x51, 0x85, 0x0b], 64),
        ];
        for (f, prefix, len) in want {
            let d = f.hash(b"abc");
            assert_eq!((&d[..4], d.len()), (&prefix[..], len), "{}", f.name());
            assert_eq!(HashFunction::from_name(f.name()), Some(f));
        }
        assert_eq!(HashFunction::from_name("md5"), None);
    }

    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 example "abc".
        assert_eq!(super::sha256(b"abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert!(super::constant_time_eq(b"ab", b"ab"));
        assert!(!super::constant_time_eq(b"ab", b"ac"));
        assert!(!super::constant_time_eq(b"ab", b"abc"));
    }
}

/// Lower-case hex of `b` (digests, fingerprints, ids): one place, without a `format!` per byte.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    hex_into(&mut s, b);
    s
}

/// Appends the lower-case hex of `b` to `s`.
pub fn hex_into(s: &mut String, b: &[u8]) {
    s.reserve(b.len() * 2);
    s.extend(hex_digits(b).map(char::from));
}

/// Appends the lower-case hex of `b` to a byte buffer (lines being built).
pub fn hex_bytes_into(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len() * 2);
    out.extend(hex_digits(b));
}

/// The lower-case hex digits of `b`, two a byte, high nibble first.
fn hex_digits(b: &[u8]) -> impl Iterator<Item = u8> + '_ {
    b.iter().flat_map(|x| {
        [
            HEX_DIGITS[usize::from(x >> 4)],
            HEX_DIGITS[usize::from(x & 0x0f)],
        ]
    })
}

/// Lower-case hex digits, by value (for [`hex`] and key ids).
pub(crate) const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod hex_tests {
    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(super::hex(&[]), "");
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        let mut s = String::from("x_");
        super::hex_into(&mut s, &[0xab, 0x01]);
        assert_eq!(s, "x_ab01");
        let mut v = b"y".to_vec();
        super::hex_bytes_into(&mut v, &[0xff, 0x10]);
        assert_eq!(v, b"yff10");
    }
}
