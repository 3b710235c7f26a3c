//! One timeline from several nodes' audit logs: each node keeps its own hash chain (verify
//! each with [`crate::verify::verify`] first); merging takes their events, labels each with
//! its node, and orders them by time, then node, then sequence number.

use serde_json::Value;

/// The events of every log (checkpoint and recovery lines left out), each with a `node`
/// field, in time order. `logs` pairs a node name with its log's bytes. Times are RFC 3339
/// UTC with a fixed width, so they order as text.
pub fn merge(logs: &[(String, Vec<u8>)]) -> Vec<Value> {
    let mut events: Vec<(String, String, u64, Value)> = Vec::new();
    for (node, log) in logs {
        for line in log.split(|b| *b == b'\n') {
            let Ok(mut v) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            if v["schema"] != crate::chain::EVENT_SCHEMA {
                continue;
            }
            let time = v["time"].as_str().unwrap_or_default().to_string();
            let seq = v["seq"].as_u64().unwrap_or(0);
            if let Some(o) = v.as_object_mut() {
                o.insert("node".into(), Value::String(node.clone()));
            }
            events.push((time, node.clone(), seq, v));
        }
    }
    events.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    events.into_iter().map(|e| e.3).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(seq: u64, time: &str, op: &str) -> String {
        format!(
            "{{\"schema\":\"{}\",\"seq\":{seq},\"time\":\"{time}\",\"operation\":\"{op}\"}}\n",
            crate::chain::EVENT_SCHEMA
        )
    }

    #[test]
    fn events_of_all_nodes_in_time_order() {
        let a = [
            line(1, "2026-12-01T10:00:00Z", "a1"),
            "{\"schema\":\"strongroom.audit.checkpoint.v1\",\"seq\":2}\n".into(),
            line(3, "2026-12-01T10:00:02Z", "a3"),
            "torn".into(),
        ]
        .concat();
        let b = [
            line(1, "2026-12-01T10:00:01Z", "b1"),
            line(2, "2026-12-01T10:00:02Z", "b2"),
        ]
        .concat();
        let merged = merge(&[("b".into(), b.into_bytes()), ("a".into(), a.into_bytes())]);
        let got: Vec<(String, String)> = merged
            .iter()
            .map(|e| {
                (
                    e["node"].as_str().unwrap().to_string(),
                    e["operation"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want = [("a", "a1"), ("b", "b1"), ("a", "a3"), ("b", "b2")];
        assert_eq!(
            got,
            want.iter()
                .map(|(n, o)| (n.to_string(), o.to_string()))
                .collect::<Vec<_>>()
        );
    }
}
