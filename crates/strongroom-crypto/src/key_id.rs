//! The 128-bit key id carried in ciphertexts.

use std::fmt;
use std::str::FromStr;

/// A key's immutable 128-bit id, written as a lower-case hyphenated UUID (version 4 layout).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 16]);

impl KeyId {
    /// A fresh random id (RFC 9562 version 4 layout).
    pub fn generate() -> Result<Self, crate::Error> {
        let mut b: [u8; 16] = crate::rand::array()?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(Self(b))
    }

    /// Wraps raw bytes.
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Built in a stack buffer and written once: key ids are formatted on every request
        // (responses, audit events), and a `write!` per byte showed in profiles.
        use crate::hash::HEX_DIGITS as DIGITS;
        let mut out = [0u8; 36];
        let mut n = 0;
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out[n] = b'-';
                n += 1;
            }
            out[n] = DIGITS[usize::from(b >> 4)];
            out[n + 1] = DIGITS[usize::from(b & 0x0f)];
            n += 2;
        }
        // Invariant: only ASCII hex digits and hyphens were written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The text is not a hyphenated UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a key id (expected a UUID such as 1b4e28ba-2fa1-41d2-883f-0016d3cca427)")]
pub struct BadKeyId;

impl FromStr for KeyId {
    type Err = BadKeyId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(BadKeyId);
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return Err(BadKeyId);
                }
                i += 1;
                continue;
            }
            let hi = hex_val(b[i]).ok_or(BadKeyId)?;
            let lo = hex_val(b[i + 1]).ok_or(BadKeyId)?;
            out[n] = (hi << 4) | lo;
            n += 1;
            i += 2;
        }
        Ok(Self(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        let id = KeyId::generate().unwrap();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(s.as_bytes()[14], b'4');
        assert_eq!(s.parse::<KeyId>(), Ok(id));
        assert_eq!(s.to_uppercase().parse::<KeyId>(), Ok(id));
        assert_eq!("not-a-uuid".parse::<KeyId>(), Err(BadKeyId));
        assert_eq!(s.replace('-', "x").parse::<KeyId>(), Err(BadKeyId));
        // A known id, and padding/width flags are not part of the format.
        let known = KeyId::from_bytes([
            0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1, 0x41, 0xd2, 0x88, 0x3f, 0x00, 0x16, 0xd3, 0xcc,
            0xa4, 0x27,
        ]);
        assert_eq!(known.to_string(), "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
        assert_eq!(
            format!("{known:?}"),
            "KeyId(1b4e28ba-2fa1-41d2-883f-0016d3cca427)"
        );
    }
}
