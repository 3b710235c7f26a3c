//! JSON codecs every front-end shares: bounded, field-naming parse errors that never echo a
//! value, base64 bytes (secret and not), and string maps that refuse duplicate keys.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use strongroom_core::Plaintext;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn describe(e: &serde_json::Error, path: &str) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!(
            "request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
        Category::Io => "request body could not be read".into(),
        Category::Data => {
            let msg = e.to_string();
            // serde's messages for these cases name fields only; others may quote the value.
            let safe = [
                "missing field",
                "unknown field",
                "duplicate field",
                "is not valid standard base64",
                "has a duplicate key",
            ];
            let detail = safe
                .iter()
                .find(|s| msg.contains(*s))
                .map(|_| msg.split(" at line").next().unwrap_or("").to_string())
                .unwrap_or_else(|| "has the wrong type or an invalid value".into());
            if path.is_empty() || path == "." {
                format!("request body: {detail}")
            } else {
                format!("{path}: {detail}")
            }
        }
    }
}

/// Why a JSON body did not parse. The message names the field at fault (its path) and what
/// is wrong with it, never the value: values may be secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonError {
    /// The body is not JSON at all (as opposed to JSON with wrong fields).
    pub(crate) syntax: bool,
    pub(crate) message: String,
}

/// Parses a JSON body (one value, nothing after it).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    // Most bodies are valid: parse without tracking the path, and only when that fails parse
    // again with it, to say which field is at fault (tracking costs a few per cent of a small
    // request).
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(_) => parse_explained(bytes),
    }
}

/// [`parse`], tracking the path to the field at fault.
fn parse_explained<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let res: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let v = res.map_err(|e| {
        let path = e.path().to_string();
        JsonError {
            syntax: matches!(
                e.inner().classify(),
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof
            ),
            message: describe(e.inner(), &path),
        }
    })?;
    de.end().map_err(|_| JsonError {
        syntax: true,
        message: "request body has trailing data after the JSON value".into(),
    })?;
    Ok(v)
}

/// Base64 bytes that are secret (plaintext, data keys, messages): decoded straight into a
/// zeroizing `Plaintext`, never held in a `String` longer than decoding takes.
pub(crate) struct SecretB64(pub(crate) Plaintext);

impl<'de> Deserialize<'de> for SecretB64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SecretB64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("standard base64 with padding")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SecretB64, E> {
                B64.decode(s)
                    .map(|v| SecretB64(Plaintext::new(v)))
                    .map_err(|_| E::custom("is not valid standard base64"))
            }
            fn visit_string<E: de::Error>(self, mut s: String) -> Result<SecretB64, E> {
                let r = self.visit_str(&s);
                zeroize::Zeroize::zeroize(&mut s);
                r
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for SecretB64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Exposed to return it to the caller who asked for it.
        let mut text = B64.encode(self.0.expose_secret());
        let r = s.serialize_str(&text);
        zeroize::Zeroize::zeroize(&mut text);
        r
    }
}

/// Base64 bytes that are not secret (ciphertexts, signatures, digests, public keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct B64Bytes(pub(crate) Vec<u8>);

impl<'de> Deserialize<'de> for B64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = B64Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("standard base64 with padding")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<B64Bytes, E> {
                B64.decode(s)
                    .map(B64Bytes)
                    .map_err(|_| E::custom("is not valid standard base64"))
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for B64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

/// A string map that refuses duplicate keys (JSON allows them; we do not, rather than let
/// the last one silently win).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StrictMap(pub(crate) BTreeMap<String, String>);

impl<'de> Deserialize<'de> for StrictMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StrictMap, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    if out.insert(k, v).is_some() {
                        return Err(de::Error::custom("has a duplicate key"));
                    }
                }
                Ok(StrictMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A secret string field (a JWT, a grant token), wiped after use and never debug-printed.
pub(crate) struct SecretText(pub(crate) String);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretText)
    }
}

impl Drop for SecretText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Serialize for StrictMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
