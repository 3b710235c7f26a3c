//! The audit log v1 line format: sequence numbers, hash links and signed checkpoints.
//! Specification: `docs/formats/audit-log-v1.md`.

use std::io::Write as _;

use base64::Engine;
use serde::Serialize;
use strongroom_crypto::hash::sha256;
use strongroom_crypto::keys::{self, SignInput};
use strongroom_crypto::{Algorithm, KeyMaterial};

use crate::AuditEvent;

/// Schema of event lines.
pub const EVENT_SCHEMA: &str = "strongroom.audit.v1";
/// Schema of checkpoint lines.
pub const CHECKPOINT_SCHEMA: &str = "strongroom.audit.checkpoint.v1";
/// Schema of recovery lines.
pub const RECOVERY_SCHEMA: &str = "strongroom.audit.recovery.v1";
const GENESIS: &[u8] = b"strongroom-audit-v1-genesis";
const CHECKPOINT_LABEL: &str = "strongroom-audit-checkpoint-v1";

/// The `prev` of the first line.
pub fn genesis() -> [u8; 32] {
    sha256(GENESIS)
}

/// Lower-case hex.
pub use strongroom_crypto::hash::hex;

/// The hash a line contributes to the chain: SHA-256 of its bytes without the newline.
pub fn line_hash(line: &[u8]) -> [u8; 32] {
    sha256(line)
}

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    schema: &'a str,
    seq: u64,
    prev: String,
    #[serde(flatten)]
    body: &'a T,
}

fn encode<T: Serialize>(schema: &str, seq: u64, prev: &[u8; 32], body: &T) -> Vec<u8> {
    // Invariant: these types serialise to JSON objects without fallible parts.
    serde_json::to_vec(&Line {
        schema,
        seq,
        prev: hex(prev),
        body,
    })
    .unwrap_or_default()
}

/// An event line.
pub fn event_line(seq: u64, prev: &[u8; 32], event: &AuditEvent) -> Vec<u8> {
    event_line_of(seq, prev, &event_body(event))
}

/// An event's fields as a JSON object, serialised once by whoever records it (so the one
/// writer thread only links lines).
pub fn event_body(event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::new();
    event_body_into(&mut out, event);
    out
}

/// Appends [`event_body`] to `out`. A compact JSON body holds no line break.
pub fn event_body_into(out: &mut Vec<u8>, event: &AuditEvent) {
    // Invariant: an event serialises to a JSON object without fallible parts; writing to a
    // Vec cannot fail. Were it to fail, the event is still recorded, as an empty object.
    let start = out.len();
    if serde_json::to_writer(&mut *out, event).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"{}");
    }
}

/// The event line of a body from [`event_body`]: the same bytes as serialising the line
/// with the body's fields flattened in — `{"schema":…,"seq":…,"prev":…,` then the body's
/// fields.
pub fn event_line_of(seq: u64, prev: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(body.len() + 128);
    push_event_line(&mut line, seq, prev, body);
    line
}

/// Appends [`event_line_of`] to `out` (without a line break).
pub fn push_event_line(out: &mut Vec<u8>, seq: u64, prev: &[u8; 32], body: &[u8]) {
    let fields = body
        .strip_prefix(b"{")
        .filter(|f| f.len() > 1)
        .unwrap_or(b"}");
    out.reserve(body.len() + 128);
    out.extend_from_slice(b"{\"schema\":\"");
    out.extend_from_slice(EVENT_SCHEMA.as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{seq}");
    out.extend_from_slice(b",\"prev\":\"");
    strongroom_crypto::hash::hex_bytes_into(out, prev);
    out.push(b'"');
    if fields != b"}" {
        out.push(b',');
    }
    out.extend_from_slice(fields);
}

/// The bytes a checkpoint signature covers.
pub fn checkpoint_message(seq: u64, prev_hex: &str, time: &str) -> Vec<u8> {
    format!("{CHECKPOINT_LABEL}\n{seq}\n{prev_hex}\n{time}").into_bytes()
}

/// Short id of a signing public key: hex of the first 8 bytes of its SHA-256.
pub fn key_fingerprint(public_key_der: &[u8]) -> String {
    hex(&sha256(public_key_der)[..8])
}

/// The audit signing key (Ed25519, PKCS#8) and its public key.
pub struct Signer {
    material: KeyMaterial,
    public_key_der: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", key_fingerprint(&self.public_key_der))
    }
}

impl Signer {
    /// Wraps an Ed25519 PKCS#8 key.
    pub fn new(material: KeyMaterial) -> Result<Self, strongroom_crypto::Error> {
        let public_key_der = keys::public_key_der(Algorithm::Ed25519, &material)?;
        Ok(Self {
            material,
            public_key_der,
        })
    }

    /// The public key (SubjectPublicKeyInfo DER).
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        // Invariant: the key was validated by `new`; Ed25519 signing of a message cannot fail.
        keys::sign(Algorithm::Ed25519, &self.material, SignInput::Message(msg)).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct CheckpointBody<'a> {
    time: &'a str,
    signing_key: String,
    signature: String,
}

/// A signed checkpoint line.
pub fn checkpoint_line(seq: u64, prev: &[u8; 32], time: &str, signer: &Signer) -> Vec<u8> {
    let sig = signer.sign(&checkpoint_message(seq, &hex(prev), time));
    let body = CheckpointBody {
        time,
        signing_key: key_fingerprint(signer.public_key_der()),
        signature: base64::engine::general_purpose::STANDARD.encode(sig),
    };
    encode(CHECKPOINT_SCHEMA, seq, prev, &body)
}

#[derive(Serialize)]
struct RecoveryBody<'a> {
    time: &'a str,
    torn_bytes: usize,
    torn_hash: String,
}

/// A recovery line naming a torn fragment.
pub fn recovery_line(seq: u64, prev: &[u8; 32], time: &str, fragment: &[u8]) -> Vec<u8> {
    let body = RecoveryBody {
        time,
        torn_bytes: fragment.len(),
        torn_hash: hex(&sha256(fragment)),
    };
    encode(RECOVERY_SCHEMA, seq, prev, &body)
}

/// RFC 3339 UTC now, to the second.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outcome, ProviderCall};

    /// Splicing a pre-serialised body gives the bytes of serialising the whole line with
    /// the body flattened in (the format's definition), for sparse and full events.
    #[test]
    fn spliced_event_lines_equal_flattened_ones() {
        let sparse = AuditEvent::new(
            "2026-12-02T00:00:00Z".into(),
            "r1".into(),
            "native",
            "encrypt",
        );
        let mut full = sparse.clone();
        full.principal = Some("app \"quoted\" \u{e9}".into());
        full.key_ring = Some("ring".into());
        full.key = Some("k".into());
        full.version = Some(7);
        full.outcome = Outcome::Error;
        full.error_code = Some("access_denied");
        full.providers.push(ProviderCall {
            provider: "aws".into(),
            key: "alias/x".into(),
            outcome: Outcome::Ok,
            error: None,
            request_id: Some("req-1".into()),
        });
        for (seq, e) in [(1u64, &sparse), (u64::MAX, &full)] {
            let prev = sha256(b"prev");
            assert_eq!(
                event_line(seq, &prev, e),
                encode(EVENT_SCHEMA, seq, &prev, e),
                "{}",
                String::from_utf8_lossy(&event_line(seq, &prev, e))
            );
        }
    }
}
