//! `strongroom envelope encrypt|decrypt` against a running server: files round trip, a
//! changed or truncated envelope leaves no output behind, and the data key is bound to the
//! envelope's context.

use serde_json::json;

use crate::support::{TestServer, cli};

#[tokio::test(flavor = "multi_thread")]
async fn files_round_trip_and_tampering_leaves_nothing_behind() {
    let srv = TestServer::dev();
    srv.ring("app").await;
    srv.key("app/data", json!({})).await;
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let data: Vec<u8> = (0..300_001u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(p("in.bin"), &data).unwrap();

    let (code, out, err) = cli(
        &srv,
        &[
            "envelope",
            "encrypt",
            "--key",
            "app/data",
            "--context",
            "tenant=acme",
            "--chunk-size",
            "4096",
            "--in",
            &p("in.bin"),
            "--out",
            &p("in.srenv"),
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["encrypted"], 300_001);
    assert_eq!(v["members"][0], "strongroom:app/data");
    let env = std::fs::read(p("in.srenv")).unwrap();
    assert_eq!(&env[..4], b"SREV");
    assert!(
        !env.windows(64).any(|w| data.windows(64).next() == Some(w)),
        "plaintext in the envelope"
    );

    let (code, out, err) = cli(
        &srv,
        &[
            "envelope",
            "decrypt",
            "--in",
            &p("in.srenv"),
            "--out",
            &p("out.bin"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(p("out.bin")).unwrap(), data);
    // Never over an existing file.
    let (code, _, err) = cli(
        &srv,
        &[
            "envelope",
            "decrypt",
            "--in",
            &p("in.srenv"),
            "--out",
            &p("out.bin"),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("exists"), "{err}");

    // Changed in the body, cut short, or with its context edited: refused, no output file.
    let mut body = env.clone();
    let at = env.len() - 5000;
    body[at] ^= 1;
    let mut ctx = env.clone();
    let i = ctx.windows(4).position(|w| w == b"acme").unwrap();
    ctx[i] = b'A';
    for (name, bytes, want) in [
        ("body", body, "failed authentication"),
        // The final chunk (300001 % 4096 bytes and its tag) dropped at a chunk boundary.
        (
            "cut",
            env[..env.len() - (300_001 % 4096 + 16)].to_vec(),
            "truncated",
        ),
        ("context", ctx, "no member could unwrap"),
    ] {
        std::fs::write(p(&format!("{name}.srenv")), &bytes).unwrap();
        let out_file = p(&format!("{name}.out"));
        let (code, _, err) = cli(
            &srv,
            &[
                "envelope",
                "decrypt",
                "--in",
                &p(&format!("{name}.srenv")),
                "--out",
                &out_file,
            ],
        );
        assert_ne!(code, 0, "{name}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            !std::path::Path::new(&out_file).exists(),
            "{name}: plaintext was left behind"
        );
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: {leftovers:?}");
    }

    // Without permission to decrypt with the key: refused by the server, nothing written.
    let (s, _) = srv
        .call(
            "POST",
            "/v1/principals",
            Some(json!({"name": "nobody", "kind": "workload", "roles": []})),
        )
        .await;
    assert_eq!(s, 201);
    let t = srv
        .ok(
            "POST",
            "/v1/principals/nobody/tokens",
            Some(json!({"ttl": "1h"})),
        )
        .await;
    let (code, _, err) = crate::support::cli_as(
        &srv.addr,
        t["token"].as_str().unwrap(),
        &[
            "envelope",
            "decrypt",
            "--in",
            &p("in.srenv"),
            "--out",
            &p("denied.out"),
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("access_denied"), "{err}");
    assert!(!tmp.path().join("denied.out").exists());
}

/// Several keys wrap one data key: any one opens the envelope (here after the first is
/// disabled), and rewrap replaces the wrapped keys without touching the body.
#[tokio::test(flavor = "multi_thread")]
async fn several_members_fail_over_and_rewrap_keeps_the_body() {
    let srv = TestServer::dev();
    srv.ring("app").await;
    for k in ["a", "b", "c"] {
        srv.key(&format!("app/{k}"), json!({})).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let data = vec![0x5au8; 100_000];
    std::fs::write(p("in.bin"), &data).unwrap();
    let (code, out, err) = cli(
        &srv,
        &[
            "envelope",
            "encrypt",
            "--key",
            "app/a",
            "--key",
            "app/b",
            "--in",
            &p("in.bin"),
            "--out",
            &p("e.srenv"),
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["members"],
        json!(["strongroom:app/a", "strongroom:app/b"])
    );

    // The first member is disabled: the second opens it.
    srv.ok("POST", "/v1/keyrings/app/keys/a/disable", None)
        .await;
    let (code, out, err) = cli(
        &srv,
        &[
            "envelope",
            "decrypt",
            "--in",
            &p("e.srenv"),
            "--out",
            &p("1.bin"),
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["member"],
        "strongroom:app/b"
    );
    assert_eq!(std::fs::read(p("1.bin")).unwrap(), data);

    // Rewrapped under c alone: the same body, and only c opens it now.
    let before = std::fs::read(p("e.srenv")).unwrap();
    let (code, out, err) = cli(
        &srv,
        &["envelope", "rewrap", "--key", "app/c", &p("e.srenv")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("[1/1]"), "{out}");
    let after = std::fs::read(p("e.srenv")).unwrap();
    let body = 100_000 + 2 * 16; // two 64 KiB chunks and their tags
    assert_eq!(
        after[after.len() - body..],
        before[before.len() - body..],
        "the body changed"
    );
    assert_ne!(after, before);
    srv.ok("POST", "/v1/keyrings/app/keys/b/disable", None)
        .await;
    let (code, out, err) = cli(
        &srv,
        &[
            "envelope",
            "decrypt",
            "--in",
            &p("e.srenv"),
            "--out",
            &p("2.bin"),
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["member"],
        "strongroom:app/c"
    );
    assert_eq!(std::fs::read(p("2.bin")).unwrap(), data);
    srv.ok("POST", "/v1/keyrings/app/keys/c/disable", None)
        .await;
    let (code, _, err) = cli(
        &srv,
        &[
            "envelope",
            "decrypt",
            "--in",
            &p("e.srenv"),
            "--out",
            &p("3.bin"),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no member could unwrap"), "{err}");
    // A rewrap that cannot unwrap leaves the file as it was.
    let (code, _, _) = cli(
        &srv,
        &["envelope", "rewrap", "--key", "app/a", &p("e.srenv")],
    );
    assert_ne!(code, 0);
    assert_eq!(std::fs::read(p("e.srenv")).unwrap(), after);
}

/// The SDK's data-key cache: within its limits, many envelopes make few calls to the server
/// (counted in the audit log), and every envelope still opens.
#[tokio::test(flavor = "multi_thread")]
async fn the_data_key_cache_saves_server_calls_within_its_limits() {
    use std::sync::Arc;
    use strongroom_client::envelope::{CachePolicy, DataKeyCache, Envelopes};
    let srv = TestServer::dev();
    srv.ring("app").await;
    srv.key("app/data", json!({})).await;
    let client = strongroom_client::Client::new(&srv.addr, Some(srv.token.clone())).unwrap();
    let policy = CachePolicy {
        max_age: std::time::Duration::from_secs(300),
        max_messages: 10,
        max_bytes: 1000,
    };
    let cache = Arc::new(DataKeyCache::new(policy));
    let env = Envelopes::new(client.clone(), Some(cache.clone()));
    let keys = vec!["app/data".to_string()];
    let ctx = strongroom_crypto::EncryptionContext::try_new(
        [("tenant".to_string(), "acme".to_string())].into(),
    )
    .unwrap();
    let mut sealed = Vec::new();
    for i in 0..35u32 {
        sealed.push((i, env.encrypt(&keys, &ctx, &i.to_be_bytes()).await.unwrap()));
    }
    // Larger than max_bytes: never cached.
    let big = env.encrypt(&keys, &ctx, &[0u8; 2000]).await.unwrap();
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (31, 5), "{s:?}");
    let count = |op: &'static str| {
        let srv = &srv;
        async move {
            let (st, v) = srv
                .call(
                    "GET",
                    &format!("/v1/audit/events?operation={op}&limit=1000"),
                    None,
                )
                .await;
            assert_eq!(st, 200, "{v}");
            v["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(
        count("generate-data-key").await,
        5,
        "one per 10 envelopes, and the big one"
    );

    // Decrypting with a cache: one unwrap per distinct data key.
    let reader = Envelopes::new(client.clone(), Some(Arc::new(DataKeyCache::new(policy))));
    for (i, e) in &sealed {
        assert_eq!(reader.decrypt(e).await.unwrap(), i.to_be_bytes());
    }
    assert_eq!(reader.decrypt(&big).await.unwrap(), vec![0u8; 2000]);
    assert_eq!(count("decrypt").await, 5);
    // Without a cache every envelope costs a call.
    let plain = Envelopes::new(client, None);
    for (i, e) in sealed.iter().take(3) {
        assert_eq!(plain.decrypt(e).await.unwrap(), i.to_be_bytes());
    }
    assert_eq!(count("decrypt").await, 8);
}
