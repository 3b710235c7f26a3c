//! Request parameters as Vault reads them: a JSON object whose values are typed weakly (a
//! bool may come as `"true"`, an int as `"3"`, a duration as `"24h"` or seconds), where
//! unknown parameters are ignored with a warning rather than refused.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Map, Value};
use strongroom_core::Plaintext;
use zeroize::Zeroize;

use super::VaultError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The parameters of one request (or of one batch item).
#[derive(Debug, Default)]
pub(crate) struct Params {
    map: Map<String, Value>,
    seen: BTreeSet<String>,
}

impl Params {
    pub(crate) fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            seen: BTreeSet::new(),
        }
    }

    /// Sets a parameter captured from the URL path (it wins over the body, as in Vault).
    pub(crate) fn set_from_path(&mut self, key: &str, value: &str) {
        self.map.insert(key.into(), Value::String(value.into()));
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.seen.insert(key.to_string());
        match self.map.remove(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Whether the parameter was given (and not null), without consuming it.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// Whether any `batch_input` item gives `key` (without consuming anything).
    pub(crate) fn batch_items_have(&self, key: &str) -> bool {
        match self.map.get("batch_input") {
            Some(Value::Array(items)) => items
                .iter()
                .any(|i| i.get(key).is_some_and(|v| !v.is_null())),
            _ => false,
        }
    }

    pub(crate) fn str(&mut self, key: &str) -> Result<Option<String>, VaultError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(VaultError::bad(format!("{key}: expected a string"))),
        }
    }

    pub(crate) fn bool(&mut self, key: &str) -> Result<Option<bool>, VaultError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(Some(true)),
                "false" | "0" | "f" | "F" | "FALSE" | "False" | "" => Ok(Some(false)),
                _ => Err(VaultError::bad(format!("{key}: expected a bool"))),
            },
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(_) => Err(VaultError::bad(format!("{key}: expected a bool"))),
        }
    }

    pub(crate) fn int(&mut self, key: &str) -> Result<Option<i64>, VaultError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| VaultError::bad(format!("{key}: expected an integer"))),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| VaultError::bad(format!("{key}: expected an integer"))),
            Some(_) => Err(VaultError::bad(format!("{key}: expected an integer"))),
        }
    }

    /// A duration: seconds as a number or string, or Go-style `1h30m`, `24h`, `90s`
    /// (and `d` for days).
    pub(crate) fn duration(&mut self, key: &str) -> Result<Option<i64>, VaultError> {
        let bad = || VaultError::bad(format!("{key}: expected a duration such as 24h or 86400"));
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) => parse_duration(&s).map(Some).ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// Base64 bytes that are not secret (contexts, associated data, ciphertext payloads).
    pub(crate) fn b64(&mut self, key: &str) -> Result<Option<Vec<u8>>, VaultError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => B64
                .decode(s.as_bytes())
                .map(Some)
                .map_err(|_| VaultError::bad(format!("{key}: not valid base64"))),
            Some(_) => Err(VaultError::bad(format!("{key}: expected a base64 string"))),
        }
    }

    /// Base64 bytes that are secret (plaintexts, inputs to MAC or sign): decoded into a
    /// zeroizing `Plaintext`, and the request's copy of the text is wiped.
    pub(crate) fn secret_b64(&mut self, key: &str) -> Result<Option<Plaintext>, VaultError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(mut s)) => {
                let decoded = B64.decode(s.as_bytes());
                s.zeroize();
                decoded
                    .map(|b| Some(Plaintext::new(b)))
                    .map_err(|_| VaultError::bad(format!("{key}: not valid base64")))
            }
            Some(_) => Err(VaultError::bad(format!("{key}: expected a base64 string"))),
        }
    }

    /// `batch_input`: a list of objects.
    pub(crate) fn batch(&mut self) -> Result<Option<Vec<Params>>, VaultError> {
        match self.take("batch_input") {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(Params::new(m)),
                    _ => Err(VaultError::bad(format!(
                        "failed to parse batch input: [{i}] is not an object"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(VaultError::bad("batch_input: expected a list of objects")),
        }
    }

    /// The warning Vault gives for parameters the endpoint does not know, if any.
    pub(crate) fn unknown_warning(&self) -> Option<String> {
        let unknown: Vec<&str> = self
            .map
            .keys()
            .filter(|k| !self.seen.contains(*k))
            .map(String::as_str)
            .collect();
        (!unknown.is_empty()).then(|| {
            format!(
                "Endpoint ignored these unrecognized parameters: [{}]",
                unknown.join(" ")
            )
        })
    }
}

impl Drop for Params {
    fn drop(&mut self) {
        // Whatever the endpoint did not read (a plaintext in an unused field) is wiped too.
        for (_, v) in self.map.iter_mut() {
            if let Value::String(s) = v {
                s.zeroize();
            }
        }
    }
}

/// `90`, `90s`, `30m`, `24h`, `1h30m`, `7d` → seconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
        let n: i64 = num.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        num.clear();
    }
    num.is_empty().then_some(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    fn params(v: Value) -> Params {
        match v {
            Value::Object(m) => Params::new(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn weak_types_as_vault_reads_them() {
        let mut p = params(serde_json::json!({
            "a": "true", "b": false, "c": "3", "d": 4, "e": "24h", "f": 90, "g": "1h30m",
            "h": "bad", "n": null, "x": 1
        }));
        assert_eq!(p.bool("a").unwrap(), Some(true));
        assert_eq!(p.bool("b").unwrap(), Some(false));
        assert_eq!(p.int("c").unwrap(), Some(3));
        assert_eq!(p.int("d").unwrap(), Some(4));
        assert_eq!(p.duration("e").unwrap(), Some(86400));
        assert_eq!(p.duration("f").unwrap(), Some(90));
        assert_eq!(p.duration("g").unwrap(), Some(5400));
        assert!(p.int("h").is_err());
        assert_eq!(p.str("n").unwrap(), None);
        assert_eq!(p.str("missing").unwrap(), None);
        assert_eq!(
            p.unknown_warning().as_deref(),
            Some("Endpoint ignored these unrecognized parameters: [x]")
        );
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("0", Some(0)),
            ("45s", Some(45)),
            ("2m", Some(120)),
            ("1d", Some(86400)),
            ("", None),
            ("h", None),
            ("5x", None),
            ("10", Some(10)),
            ("1h5", None),
        ] {
            assert_eq!(parse_duration(s), want, "{s}");
        }
    }
}
