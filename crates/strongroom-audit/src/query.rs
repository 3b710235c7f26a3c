//! Reading events back out of the log (`GET /v1/audit/events`, `strongroom audit query`).
//!
//! A linear scan of the file: fine for the sizes one node writes between rotations; an index
//! comes with log rotation. Checkpoint and recovery lines are never returned.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

/// Which events to return.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only lines after this sequence number (the cursor from a previous page).
    pub after_seq: Option<u64>,
    /// Events at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Events before this RFC 3339 time.
    pub until: Option<String>,
    /// Only this principal.
    pub principal: Option<String>,
    /// Only this key: `ring/key` or its id.
    pub key: Option<String>,
    /// Only this operation.
    pub operation: Option<String>,
    /// Only `ok` or `error`.
    pub outcome: Option<String>,
    /// Most events to return.
    pub limit: usize,
}

/// One page of events.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// The events, in log order, as written.
    pub events: Vec<Value>,
    /// The `seq` to pass as `after_seq` for the next page, if the page is full.
    pub next_after_seq: Option<u64>,
}

fn matches(v: &Value, f: &Filter) -> bool {
    let s = |k: &str| v[k].as_str();
    if let Some(since) = &f.since
        && s("time").is_none_or(|t| t < since.as_str())
    {
        return false;
    }
    if let Some(until) = &f.until
        && s("time").is_none_or(|t| t >= until.as_str())
    {
        return false;
    }
    if f.principal
        .as_deref()
        .is_some_and(|p| s("principal") != Some(p))
    {
        return false;
    }
    if let Some(k) = &f.key {
        let path = match (s("key_ring"), s("key")) {
            (Some(r), Some(n)) => Some(format!("{r}/{n}")),
            _ => None,
        };
        if path.as_deref() != Some(k.as_str()) && s("key_id") != Some(k.as_str()) {
            return false;
        }
    }
    if f.operation
        .as_deref()
        .is_some_and(|o| s("operation") != Some(o))
    {
        return false;
    }
    if f.outcome
        .as_deref()
        .is_some_and(|o| s("outcome") != Some(o))
    {
        return false;
    }
    true
}

/// Reads matching events from the log at `path`.
pub fn read(path: &Path, f: &Filter) -> std::io::Result<Events> {
    let file = std::fs::File::open(path)?;
    let mut out = Events::default();
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        let Ok(v) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if v["schema"] != crate::chain::EVENT_SCHEMA {
            continue;
        }
        let seq = v["seq"].as_u64().unwrap_or(0);
        if f.after_seq.is_some_and(|a| seq <= a) || !matches(&v, f) {
            continue;
        }
        if out.events.len() == f.limit {
            out.next_after_seq = out.events.last().and_then(|e| e["seq"].as_u64());
            break;
        }
        out.events.push(v);
    }
    Ok(out)
}
