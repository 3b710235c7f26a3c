//! Architecture rules that must not erode, checked against `cargo tree` (the dependency graph
//! as actually compiled, per crate, normal edges only).

use std::collections::BTreeSet;
use std::process::Command;

fn normal_deps(krate: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree", "--locked", "-e", "normal", "--prefix", "none", "--format", "{p}", "-p", krate,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn lower_layers_stay_free_of_frameworks() {
    for (krate, banned) in [
        (
            "strongroom-crypto",
            &["tokio", "axum", "hyper", "sqlx", "clap", "serde"][..],
        ),
        (
            "strongroom-core",
            &["axum", "hyper", "tonic", "clap", "reqwest"][..],
        ),
        (
            "strongroom-store",
            &["axum", "hyper", "clap", "reqwest"][..],
        ),
    ] {
        let deps = normal_deps(krate);
        assert!(
            deps.contains(krate),
            "cargo tree output not understood: {deps:?}"
        );
        for b in banned {
            assert!(
                !deps.contains(*b),
                "{krate} must not depend on {b} (see shared/STYLE.md)"
            );
        }
    }
    let all = normal_deps("strongroom");
    assert!(all.contains("aws-lc-rs"));
    for b in ["ring", "openssl-sys", "openssl"] {
        assert!(
            !all.contains(b),
            "{b} is in the strongroom binary: aws-lc-rs is the one crypto library"
        );
    }
}
