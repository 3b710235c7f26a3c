//! Offline verification of an audit log (`strongroom audit verify`).
//! What each finding means: `docs/formats/audit-log-v1.md`.

use base64::Engine;
use serde_json::Value;
use strongroom_crypto::Algorithm;
use strongroom_crypto::hash::sha256;
use strongroom_crypto::keys::{self, SignInput};

use crate::chain::{self, genesis, hex, key_fingerprint, line_hash};

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// Not JSON, or a required field missing or mistyped.
    MalformedLine,
    /// `prev` does not match the previous line.
    BrokenLink,
    /// `seq` jumped forward.
    MissingRange,
    /// `seq` went backwards or repeated.
    Reordered,
    /// A checkpoint signature does not verify (or names another key).
    ForgedCheckpoint,
    /// The file ends in an incomplete line.
    TornTail,
    /// The last checkpoint is older than expected.
    RolledBack,
}

impl FindingKind {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::MalformedLine => "malformed line",
            FindingKind::BrokenLink => "broken link",
            FindingKind::MissingRange => "missing range",
            FindingKind::Reordered => "reordered",
            FindingKind::ForgedCheckpoint => "forged checkpoint",
            FindingKind::TornTail => "torn tail",
            FindingKind::RolledBack => "rolled back",
        }
    }
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line number in the file.
    pub line: usize,
    /// The line's `seq`, when it has one.
    pub seq: Option<u64>,
    /// What is wrong.
    pub kind: FindingKind,
    /// Details.
    pub detail: String,
}

/// The result of verifying a log.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Lines read (complete ones).
    pub lines: usize,
    /// Event lines.
    pub events: usize,
    /// Checkpoints whose signature verified.
    pub checkpoints: usize,
    /// `seq` of the last verified checkpoint.
    pub last_checkpoint_seq: Option<u64>,
    /// Lines after the last checkpoint (chained, not yet signed).
    pub unsigned_tail: usize,
    /// Problems, in file order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when nothing but a torn tail was found.
    pub fn is_intact(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.kind == FindingKind::TornTail)
    }
}

/// Verifies `log` (the file's bytes). `public_key_der` is the audit signing key's
/// SubjectPublicKeyInfo; without it checkpoints cannot be checked and are reported forged.
/// `expect_checkpoint`: the data dir's last known checkpoint seq, to detect a rollback.
pub fn verify(log: &[u8], public_key_der: Option<&[u8]>, expect_checkpoint: Option<u64>) -> Report {
    let mut r = Report::default();
    let mut prev = genesis();
    let mut expected_seq = 1u64;
    let mut pieces: Vec<&[u8]> = log.split(|b| *b == b'\n').collect();
    let torn = pieces.last().is_some_and(|p| !p.is_empty());
    let last_piece = pieces.pop().unwrap_or_default();
    let fingerprint = public_key_der.map(key_fingerprint);
    let mut pending_fragment: Option<(usize, &[u8])> = None;

    for (i, line) in pieces.iter().enumerate() {
        let n = i + 1;
        let find = |r: &mut Report, seq, kind, detail: String| {
            r.findings.push(Finding {
                line: n,
                seq,
                kind,
                detail,
            })
        };
        let v: Value = match serde_json::from_slice(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                // Maybe a torn fragment the writer terminated; the next line must vouch for it.
                pending_fragment = Some((n, line));
                continue;
            }
        };
        let schema = v["schema"].as_str().unwrap_or("");
        let (Some(seq), Some(prev_hex)) = (v["seq"].as_u64(), v["prev"].as_str()) else {
            if let Some((fl, _)) = pending_fragment.take() {
                r.findings.push(Finding {
                    line: fl,
                    seq: None,
                    kind: FindingKind::MalformedLine,
                    detail: "not a JSON object".into(),
                });
            }
            find(
                &mut r,
                None,
                FindingKind::MalformedLine,
                "missing seq or prev".into(),
            );
            continue;
        };
        if let Some((fl, frag)) = pending_fragment.take() {
            let vouched = schema == chain::RECOVERY_SCHEMA
                && v["torn_bytes"].as_u64() == Some(frag.len() as u64)
                && v["torn_hash"].as_str() == Some(hex(&sha256(frag)).as_str());
            if !vouched {
                r.findings.push(Finding {
                    line: fl,
                    seq: None,
                    kind: FindingKind::MalformedLine,
                    detail: "not a JSON object (edited line?)".into(),
                });
            }
        }
        r.lines += 1;
        if seq > expected_seq {
            find(
                &mut r,
                Some(seq),
                FindingKind::MissingRange,
                format!("lines with seq {expected_seq}..{} are missing", seq - 1),
            );
        } else if seq < expected_seq {
            find(
                &mut r,
                Some(seq),
                FindingKind::Reordered,
                format!("seq {seq} after seq {}", expected_seq - 1),
            );
        }
        if prev_hex != hex(&prev) {
            find(
                &mut r,
                Some(seq),
                FindingKind::BrokenLink,
                "prev does not match the hash of the line before".into(),
            );
        }
        match schema {
            chain::EVENT_SCHEMA => {
                r.events += 1;
                r.unsigned_tail += 1;
            }
            chain::CHECKPOINT_SCHEMA => {
                let ok = match (
                    public_key_der,
                    v["time"].as_str(),
                    v["signature"].as_str(),
                    v["signing_key"].as_str(),
                ) {
                    (Some(pk), Some(t), Some(sig), Some(kid)) => {
                        Some(kid) == fingerprint.as_deref()
                            && base64::engine::general_purpose::STANDARD
                                .decode(sig)
                                .ok()
                                .and_then(|s| {
                                    keys::verify(
                                        Algorithm::Ed25519,
                                        pk,
                                        SignInput::Message(&chain::checkpoint_message(
                                            seq, prev_hex, t,
                                        )),
                                        &s,
                                    )
                                    .ok()
                                })
                                .unwrap_or(false)
                    }
                    _ => false,
                };
                if ok {
                    r.checkpoints += 1;
                    r.last_checkpoint_seq = Some(seq);
                    r.unsigned_tail = 0;
                } else {
                    let why = if public_key_der.is_none() {
                        "no public key given to check it"
                    } else {
                        "signature does not verify under the audit signing key"
                    };
                    find(&mut r, Some(seq), FindingKind::ForgedCheckpoint, why.into());
                }
            }
            chain::RECOVERY_SCHEMA => r.unsigned_tail += 1,
            other => find(
                &mut r,
                Some(seq),
                FindingKind::MalformedLine,
                format!("unknown schema {other:?}"),
            ),
        }
        prev = line_hash(line);
        expected_seq = seq + 1;
    }
    if let Some((fl, _)) = pending_fragment {
        r.findings.push(Finding {
            line: fl,
            seq: None,
            kind: FindingKind::MalformedLine,
            detail: "not a JSON object".into(),
        });
    }
    if torn {
        r.findings.push(Finding {
            line: pieces.len() + 1,
            seq: None,
            kind: FindingKind::TornTail,
            detail: format!(
                "the file ends in an incomplete line of {} bytes (a crash during a write)",
                last_piece.len()
            ),
        });
    }
    if let Some(want) = expect_checkpoint
        && r.last_checkpoint_seq.is_none_or(|got| got < want)
    {
        r.findings.push(Finding {
            line: pieces.len(),
            seq: r.last_checkpoint_seq,
            kind: FindingKind::RolledBack,
            detail: format!("the last checkpoint is {:?}, but the data dir recorded checkpoint {want}: the file is older than it should be", r.last_checkpoint_seq),
        });
    }
    r
}
