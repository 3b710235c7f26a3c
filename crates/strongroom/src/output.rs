//! Printing: JSON (`--output json`) or human tables. The CLI is the one place that prints.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

/// Output format for read commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Human-readable tables.
    Table,
    /// The API's JSON, pretty-printed.
    Json,
}

pub(crate) fn line(s: &str) {
    println!("{s}");
}

pub(crate) fn error_line(s: &str) {
    eprintln!("error: {s}");
}

pub(crate) fn warn_line(s: &str) {
    eprintln!("{s}");
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) if m.is_empty() => "-".into(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join("\n"),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Prints one object as a two-column table (or JSON).
pub(crate) fn object(fmt: Format, v: &Value) {
    match fmt {
        Format::Json => line(&serde_json::to_string_pretty(v).unwrap_or_default()),
        Format::Table => {
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic);
            if let Some(m) = v.as_object() {
                for (k, val) in m {
                    if let Some(inner) = val.as_object().filter(|_| k == "first_version") {
                        for (ik, iv) in inner {
                            t.add_row(vec![format!("first_version.{ik}"), cell(iv)]);
                        }
                    } else {
                        t.add_row(vec![k.clone(), cell(val)]);
                    }
                }
            }
            line(&t.to_string());
        }
    }
}

/// Prints a list response's items with the given columns (or the JSON).
pub(crate) fn list(fmt: Format, v: &Value, columns: &[&str]) {
    match fmt {
        Format::Json => line(&serde_json::to_string_pretty(v).unwrap_or_default()),
        Format::Table => {
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic);
            t.set_header(columns.iter().map(|c| c.to_uppercase()));
            let items = v["items"].as_array().cloned().unwrap_or_default();
            for it in &items {
                t.add_row(columns.iter().map(|c| cell(&it[*c])));
            }
            if items.is_empty() {
                line("(none)");
            } else {
                line(&t.to_string());
            }
            if let Some(next) = v["next_page_token"].as_str() {
                line(&format!("more: --page-token {next}"));
            }
        }
    }
}
