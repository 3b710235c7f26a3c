//! Encryption context: caller-supplied pairs bound to a ciphertext as AAD.
//!
//! Canonical form: `docs/formats/ciphertext-v1.md`, "Canonical encryption context".

use std::collections::BTreeMap;

/// Most pairs an encryption context may hold.
pub const MAX_PAIRS: usize = 64;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest canonical encoding, in bytes.
pub const MAX_ENCODED_LEN: usize = 8 * 1024;

/// An encryption context. Pairs are kept sorted by key bytes, which is the canonical order.
///
/// The values are not secret, but they are not logged either: they may identify tenants.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

/// Why an encryption context was refused. Messages never include the pairs themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// More than [`MAX_PAIRS`] pairs.
    #[error("encryption context has more than {MAX_PAIRS} pairs")]
    TooManyPairs,
    /// An empty key.
    #[error("encryption context keys must not be empty")]
    EmptyKey,
    /// A key longer than [`MAX_KEY_LEN`].
    #[error("encryption context keys must be at most {MAX_KEY_LEN} bytes")]
    KeyTooLong,
    /// The canonical form exceeds [`MAX_ENCODED_LEN`].
    #[error("encryption context is larger than {MAX_ENCODED_LEN} bytes")]
    TooLarge,
}

impl std::fmt::Debug for EncryptionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionContext({} pairs)", self.0.len())
    }
}

impl EncryptionContext {
    /// The empty context.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Checks the limits and builds a context.
    pub fn try_new(pairs: BTreeMap<String, String>) -> Result<Self, ContextError> {
        if pairs.len() > MAX_PAIRS {
            return Err(ContextError::TooManyPairs);
        }
        let mut total = 4usize;
        for (k, v) in &pairs {
            if k.is_empty() {
                return Err(ContextError::EmptyKey);
            }
            if k.len() > MAX_KEY_LEN {
                return Err(ContextError::KeyTooLong);
            }
            total += 8 + k.len() + v.len();
        }
        if total > MAX_ENCODED_LEN {
            return Err(ContextError::TooLarge);
        }
        Ok(Self(pairs))
    }

    /// The pairs, sorted by key.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Invariant: try_new bounds the sizes far below u32::MAX.
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (k, v) in &self.0 {
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    }

    /// Reads back [`EncryptionContext::encode`]'s output; `None` unless `bytes` is exactly one
    /// canonical encoding (pairs in key order, no duplicates, within the limits).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if b.len() < n {
                return None;
            }
            let (head, rest) = b.split_at(n);
            *b = rest;
            Some(head)
        }
        fn len(b: &mut &[u8]) -> Option<usize> {
            let l = take(b, 4)?;
            Some(u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        }
        let mut b = bytes;
        let count = len(&mut b)?;
        let mut pairs = BTreeMap::new();
        for _ in 0..count.min(MAX_PAIRS + 1) {
            let kl = len(&mut b)?;
            let k = std::str::from_utf8(take(&mut b, kl)?).ok()?.to_string();
            let vl = len(&mut b)?;
            let v = std::str::from_utf8(take(&mut b, vl)?).ok()?.to_string();
            pairs.insert(k, v);
        }
        let ctx = Self::try_new(pairs).ok()?;
        // Exactly the canonical bytes: no trailing data, no duplicates, no other order.
        (b.is_empty() && ctx.encode() == bytes).then_some(ctx)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        EncryptionContext::try_new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn canonical_form_ignores_order_but_not_case() {
        let a = ctx(&[("b", "2"), ("a", "1")]);
        let b = ctx(&[("a", "1"), ("b", "2")]);
        assert_eq!(a.encode(), b.encode());
        assert_ne!(a.encode(), ctx(&[("A", "1"), ("b", "2")]).encode());
        assert_eq!(
            ctx(&[("a", "1")]).encode(),
            [0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 1, b'1']
        );
        assert_eq!(EncryptionContext::empty().encode(), [0, 0, 0, 0]);
    }

    #[test]
    fn pair_boundaries_are_unambiguous() {
        // "ab"="c" and "a"="bc" must not encode alike.
        assert_ne!(ctx(&[("ab", "c")]).encode(), ctx(&[("a", "bc")]).encode());
    }

    #[test]
    fn limits() {
        let many: BTreeMap<_, _> = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            EncryptionContext::try_new(many),
            Err(ContextError::TooManyPairs)
        );
        let empty_key = BTreeMap::from([(String::new(), "v".to_string())]);
        assert_eq!(
            EncryptionContext::try_new(empty_key),
            Err(ContextError::EmptyKey)
        );
        let long_key = BTreeMap::from([("k".repeat(257), String::new())]);
        assert_eq!(
            EncryptionContext::try_new(long_key),
            Err(ContextError::KeyTooLong)
        );
        let big = BTreeMap::from([("k".to_string(), "v".repeat(9000))]);
        assert_eq!(EncryptionContext::try_new(big), Err(ContextError::TooLarge));
    }
}
