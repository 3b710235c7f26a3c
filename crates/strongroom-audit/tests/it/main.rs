//! The audit log against tampering, crashes and concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strongroom_audit::verify::{FindingKind, verify};
use strongroom_audit::{AuditEvent, AuditSink, ChainedFileSink, Outcome, Signer, SinkOptions};
use strongroom_crypto::{Algorithm, keys};

fn signer() -> (Signer, Vec<u8>) {
    let m = keys::generate(Algorithm::Ed25519).unwrap();
    let s = Signer::new(m).unwrap();
    let pk = s.public_key_der().to_vec();
    (s, pk)
}

fn event(i: usize) -> AuditEvent {
    let mut e = AuditEvent::new(
        "2026-11-22T00:00:00Z".into(),
        format!("req_{i}"),
        "native",
        "encrypt",
    );
    e.key = Some(format!("k{i}"));
    if i.is_multiple_of(3) {
        e.outcome = Outcome::Error;
        e.error_code = Some("invalid_state");
    }
    e
}

fn opts(every: u64) -> SinkOptions {
    SinkOptions {
        checkpoint_every: every,
        checkpoint_interval: Duration::from_secs(3600),
        ..SinkOptions::default()
    }
}

/// Writes `n` events (checkpoint every `every` lines) and a final checkpoint.
async fn write_log(path: &Path, n: usize, every: u64) -> Vec<u8> {
    let (s, pk) = signer();
    let sink = ChainedFileSink::open(path, s, opts(every)).unwrap();
    for i in 0..n {
        sink.append(&event(i)).await.unwrap();
    }
    sink.close().await.unwrap();
    pk
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn rewrite(path: &Path, ls: &[String]) {
    std::fs::write(
        path,
        ls.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

fn kinds(log: &[u8], pk: &[u8]) -> Vec<FindingKind> {
    verify(log, Some(pk), None)
        .findings
        .iter()
        .map(|f| f.kind)
        .collect()
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let pk = write_log(&p, 25, 10).await;
    let r = verify(&std::fs::read(&p).unwrap(), Some(&pk), None);
    assert!(r.is_intact(), "{:?}", r.findings);
    assert_eq!(r.events, 25);
    // Checkpoints after lines 10 and 20 (event lines 10 and 19 with checkpoints counted as
    // lines) and one at close.
    assert_eq!(r.checkpoints, 3);
    assert_eq!(r.unsigned_tail, 0);
    let first: serde_json::Value = serde_json::from_str(&lines(&p)[0]).unwrap();
    assert_eq!(
        (first["schema"].as_str(), first["seq"].as_u64()),
        (Some("strongroom.audit.v1"), Some(1))
    );
    assert_eq!(first["request_id"], "req_0");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test]
async fn each_kind_of_tampering_is_reported_distinctly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let pk = write_log(&p, 30, 10).await;
    let orig = lines(&p);
    type Tamper = Box<dyn Fn(&mut Vec<String>)>;
    let cases: Vec<(&str, Tamper, FindingKind)> = vec![
        (
            "delete a line",
            Box::new(|l| {
                l.remove(5);
            }),
            FindingKind::MissingRange,
        ),
        (
            "swap two lines",
            Box::new(|l| l.swap(4, 5)),
            FindingKind::Reordered,
        ),
        (
            "edit a field",
            Box::new(|l| l[3] = l[3].replace("\"encrypt\"", "\"decrypt\"")),
            FindingKind::BrokenLink,
        ),
        (
            "duplicate a line",
            Box::new(|l| {
                let d = l[7].clone();
                l.insert(8, d);
            }),
            FindingKind::Reordered,
        ),
        (
            "garbage line",
            Box::new(|l| l[2] = "not json".into()),
            FindingKind::MalformedLine,
        ),
        (
            "forge a checkpoint signature",
            Box::new(|l| {
                let i = l.iter().position(|x| x.contains("checkpoint.v1")).unwrap();
                let mut v: serde_json::Value = serde_json::from_str(&l[i]).unwrap();
                v["time"] = "2030-01-01T00:00:00Z".into();
                l[i] = serde_json::to_string(&v).unwrap();
            }),
            FindingKind::ForgedCheckpoint,
        ),
    ];
    for (what, f, expected) in cases {
        let mut l = orig.clone();
        f(&mut l);
        rewrite(&p, &l);
        let k = kinds(&std::fs::read(&p).unwrap(), &pk);
        assert!(
            k.contains(&expected),
            "{what}: expected {expected:?}, got {k:?}"
        );
    }
    // A checkpoint signed by another key is forged too.
    rewrite(&p, &orig);
    let (_, other_pk) = signer();
    let k = kinds(&std::fs::read(&p).unwrap(), &other_pk);
    assert_eq!(k, vec![FindingKind::ForgedCheckpoint; 3]);
    // Truncated mid-line.
    let bytes = std::fs::read(&p).unwrap();
    let k = kinds(&bytes[..bytes.len() - 7], &pk);
    assert_eq!(k, vec![FindingKind::TornTail]);
    // An older copy of the file: intact on its own, caught against the recorded checkpoint.
    let older: Vec<String> = orig[..11].to_vec();
    rewrite(&p, &older);
    let r = verify(&std::fs::read(&p).unwrap(), Some(&pk), Some(31));
    assert_eq!(
        r.findings.iter().map(|f| f.kind).collect::<Vec<_>>(),
        vec![FindingKind::RolledBack]
    );
}

#[tokio::test]
async fn a_torn_tail_is_repaired_on_open_without_losing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let key = keys::generate(Algorithm::Ed25519).unwrap();
    let pk = same_signer(&key).public_key_der().to_vec();
    let sink = ChainedFileSink::open(&p, same_signer(&key), opts(1000)).unwrap();
    for i in 0..5 {
        sink.append(&event(i)).await.unwrap();
    }
    sink.close().await.unwrap();
    drop(sink);
    // Simulate a crash in the middle of writing a line.
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    std::io::Write::write_all(
        &mut f,
        b"{\"schema\":\"strongroom.audit.v1\",\"seq\":6,\"pr",
    )
    .unwrap();
    drop(f);
    let before = lines(&p);

    let sink = ChainedFileSink::open(&p, same_signer(&key), opts(1000)).unwrap();
    sink.append(&event(99)).await.unwrap();
    sink.close().await.unwrap();
    drop(sink);
    let after = lines(&p);
    assert_eq!(
        &after[..5],
        &before[..5],
        "complete lines are never touched"
    );
    // Line 6 is the checkpoint written when the first sink closed; then the terminated
    // fragment, the recovery line, and the new event.
    assert!(after[5].contains("checkpoint.v1"), "{}", after[5]);
    let r = verify(&std::fs::read(&p).unwrap(), Some(&pk), None);
    assert!(r.is_intact(), "{:?}", r.findings);
    assert_eq!(r.events, 6);
}

/// A signer over a copy of `key`, as a restarted server gets from unsealing the same key.
fn same_signer(key: &strongroom_crypto::KeyMaterial) -> Signer {
    Signer::new(strongroom_crypto::KeyMaterial::copy_from(
        key.expose_secret(),
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_group_committed_in_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let (s, pk) = signer();
    let sink = Arc::new(ChainedFileSink::open(&p, s, opts(100)).unwrap());
    let mut tasks = Vec::new();
    for i in 0..400 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move { sink.append(&event(i)).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    sink.close().await.unwrap();
    let r = verify(&std::fs::read(&p).unwrap(), Some(&pk), None);
    assert!(r.is_intact(), "{:?}", r.findings);
    assert_eq!(r.events, 400);
    let mut ids: Vec<String> = lines(&p)
        .iter()
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok()?["request_id"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 400, "every event written exactly once");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_failed_write_refuses_and_reports() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let (s, _) = signer();
    let sink = ChainedFileSink::open(Path::new("/dev/full"), s, opts(1000)).unwrap();
    let err = sink.append(&event(1)).await.unwrap_err();
    assert!(err.to_string().contains("/dev/full"), "{err}");
    assert!(!sink.is_healthy());
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_failed_writes_the_log_resumes_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let (s, pk) = signer();
    // A "full disk": the log's path leads to /dev/full, which fails every write.
    std::os::unix::fs::symlink("/dev/full", &p).unwrap();
    let sink = Arc::new(ChainedFileSink::open(&p, s, opts(1000)).unwrap());
    let failing: Vec<_> = (0..8)
        .map(|i| {
            let sink = sink.clone();
            tokio::spawn(async move { sink.append(&event(i)).await })
        })
        .collect();
    for t in failing {
        let err = t.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("audit.log"), "{err}");
    }
    assert!(!sink.is_healthy());
    // Space again: the same sink reopens the path and writes on.
    let real = dir.path().join("real.log");
    let back = dir.path().join("back");
    std::os::unix::fs::symlink(&real, &back).unwrap();
    std::fs::rename(&back, &p).unwrap();
    for i in 20..23 {
        sink.append(&event(i)).await.unwrap();
    }
    sink.close().await.unwrap();
    assert!(sink.is_healthy());
    let r = verify(&std::fs::read(&real).unwrap(), Some(&pk), None);
    assert!(r.is_intact(), "{:?}", r.findings);
    assert_eq!(
        r.events, 3,
        "only the events that were acknowledged are in the log"
    );
}

#[tokio::test]
async fn dropping_the_sink_signs_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let (s, pk) = signer();
    let sink = ChainedFileSink::open(&p, s, opts(1000)).unwrap();
    for i in 0..3 {
        sink.append(&event(i)).await.unwrap();
    }
    drop(sink);
    // The writer finishes on its own thread: wait for its final checkpoint.
    let mut tries = 0;
    while !std::fs::read_to_string(&p)
        .unwrap()
        .contains("checkpoint.v1")
    {
        tries += 1;
        assert!(
            tries < 500,
            "no final checkpoint after the sink was dropped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = verify(&std::fs::read(&p).unwrap(), Some(&pk), None);
    assert!(r.is_intact(), "{:?}", r.findings);
    assert_eq!(r.events, 3);
}

#[tokio::test]
async fn a_log_whose_last_line_was_edited_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    write_log(&p, 3, 1000).await;
    let mut l = lines(&p);
    let last = l.len() - 1;
    l[last] = "{\"not\": \"a chain line\"}".into();
    rewrite(&p, &l);
    let err = ChainedFileSink::open(&p, signer().0, opts(1000)).unwrap_err();
    assert!(err.to_string().contains("audit verify"), "{err}");
}

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/audit-log-v1");

/// The checked-in log keeps verifying: the v1 format is a contract.
#[test]
fn golden_log_v1_verifies() {
    let log = std::fs::read(format!("{GOLDEN}/audit.log")).unwrap();
    let pem = std::fs::read_to_string(format!("{GOLDEN}/audit-signing.pub")).unwrap();
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    let r = verify(&log, Some(&der), None);
    assert!(r.is_intact(), "{:?}", r.findings);
    assert_eq!((r.events, r.checkpoints, r.unsigned_tail), (7, 3, 0));
    assert!(r.events > 0);
}

/// Writes the golden files. Run by hand once (`cargo test -p strongroom-audit --test it --
/// --ignored generate_golden`); the files it writes never change afterwards.
#[tokio::test]
#[ignore = "generator: run by hand once; the golden files never change"]
async fn generate_golden() {
    std::fs::create_dir_all(GOLDEN).unwrap();
    let p = Path::new(GOLDEN).join("audit.log");
    assert!(
        !p.exists(),
        "golden files exist already; they must not be regenerated"
    );
    let key = keys::generate(Algorithm::Ed25519).unwrap();
    let pk = same_signer(&key).public_key_der().to_vec();
    std::fs::write(
        Path::new(GOLDEN).join("audit-signing.pub"),
        keys::pem("PUBLIC KEY", &pk),
    )
    .unwrap();
    let sink = ChainedFileSink::open(&p, same_signer(&key), opts(4)).unwrap();
    for i in 0..5 {
        sink.append(&event(i)).await.unwrap();
    }
    sink.close().await.unwrap();
    drop(sink);
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    std::io::Write::write_all(
        &mut f,
        b"{\"schema\":\"strongroom.audit.v1\",\"seq\":8,\"pre",
    )
    .unwrap();
    drop(f);
    let sink = ChainedFileSink::open(&p, same_signer(&key), opts(4)).unwrap();
    for i in 5..7 {
        sink.append(&event(i)).await.unwrap();
    }
    sink.close().await.unwrap();
}
