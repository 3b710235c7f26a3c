//! The hash-chained, group-committed audit log writer.
//!
//! One writer thread owns the file. Callers hand it events and wait; it takes every event
//! queued at that moment, assigns sequence numbers and hash links, adds a signed checkpoint
//! when one is due, writes the batch with one `write` and makes it durable with one
//! `fdatasync`, then answers everyone. So the cost of a durable audit write is shared by all
//! requests in flight (group commit), and no response leaves before its event is on disk.
//!
//! After a failed write the writer knows nothing about the file's tail, so it marks itself
//! unhealthy and, on the next event, re-reads the tail (exactly as at start) before writing
//! again: when the disk recovers, auditing resumes without a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::chain::{self, Signer, genesis, line_hash};
use crate::{AuditError, AuditEvent, AuditSink};

/// Writer settings.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// A checkpoint after this many lines…
    pub checkpoint_every: u64,
    /// …or this long after the first unsigned line, whichever comes first.
    pub checkpoint_interval: Duration,
    /// How long `append` waits for the disk before failing the operation (a blocked disk
    /// must not hang requests forever).
    pub write_timeout: Duration,
    /// Most events per batch.
    pub max_batch: usize,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            max_batch: 1024,
        }
    }
}

type Reply = oneshot::Sender<Result<(), String>>;

enum Msg {
    /// An event's body, serialised by the caller ([`chain::event_body`]).
    Event(Vec<u8>, Reply),
    Close(Reply),
}

/// The audit log: a file of hash-chained JSON lines with signed checkpoints.
#[derive(Debug)]
pub struct ChainedFileSink {
    tx: SyncSender<Msg>,
    healthy: Arc<AtomicBool>,
    durable: Arc<std::sync::atomic::AtomicU64>,
    path: PathBuf,
    write_timeout: Duration,
}

struct Tail {
    next_seq: u64,
    prev: [u8; 32],
    unsigned: u64,
}

/// Reads the end of the log to continue its chain. Repairs a torn last line (a crash during a
/// write) by terminating it and appending a recovery line; never removes a complete line.
fn resume(file: &mut File, path: &Path) -> Result<Tail, String> {
    let len = file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    if len == 0 {
        return Ok(Tail {
            next_seq: 1,
            prev: genesis(),
            unsigned: 0,
        });
    }
    // Lines are small (well under 64 KiB); read enough of the end to hold the last two.
    let window = len.min(256 * 1024);
    file.seek(SeekFrom::Start(len - window))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; window as usize];
    file.read_exact(&mut buf).map_err(|e| e.to_string())?;
    let (complete, fragment) = match buf.iter().rposition(|b| *b == b'\n') {
        Some(i) => (&buf[..i], &buf[i + 1..]),
        None if window == len => (&buf[..0], &buf[..]),
        None => return Err("the last 256 KiB of the audit log hold no line break".into()),
    };
    let last_line = match complete.iter().rposition(|b| *b == b'\n') {
        Some(i) => Some(&complete[i + 1..]),
        None if window == len => (!complete.is_empty()).then_some(complete),
        None => return Err("the audit log's last line is longer than 256 KiB".into()),
    };
    let (mut next_seq, mut prev) = match last_line {
        None => (1, genesis()),
        Some(l) => {
            let v: serde_json::Value = serde_json::from_slice(l).map_err(|_| {
                format!(
                    "the last complete line of {} is not valid JSON; run `strongroom audit verify`",
                    path.display()
                )
            })?;
            let seq = v["seq"].as_u64().ok_or_else(|| {
                format!(
                    "the last complete line of {} has no seq; run `strongroom audit verify`",
                    path.display()
                )
            })?;
            (seq + 1, line_hash(l))
        }
    };
    let mut unsigned =
        match last_line.and_then(|l| serde_json::from_slice::<serde_json::Value>(l).ok()) {
            Some(v) if v["schema"] == chain::CHECKPOINT_SCHEMA => 0,
            Some(_) => 1,
            None => 0,
        };
    if !fragment.is_empty() {
        let rec = chain::recovery_line(next_seq, &prev, &chain::now_rfc3339(), fragment);
        let mut out = Vec::with_capacity(rec.len() + 2);
        out.push(b'\n');
        out.extend_from_slice(&rec);
        out.push(b'\n');
        file.write_all(&out).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
        tracing::warn!(path = %path.display(), torn_bytes = fragment.len(), "audit log ended in a torn line (crash during a write); terminated it and wrote a recovery line");
        prev = line_hash(&rec);
        next_seq += 1;
        unsigned += 1;
    }
    Ok(Tail {
        next_seq,
        prev,
        unsigned,
    })
}

fn open_file(path: &Path) -> Result<File, String> {
    let mut opts = OpenOptions::new();
    opts.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(|e| e.to_string())
}

struct Writer {
    path: PathBuf,
    file: Option<File>,
    tail: Tail,
    first_unsigned_at: Option<Instant>,
    signer: Signer,
    opts: SinkOptions,
    healthy: Arc<AtomicBool>,
    /// The sequence number of the last line known to be on stable storage.
    durable: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    fn ensure_open(&mut self) -> Result<(), String> {
        if self.file.is_some() && self.healthy.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut f = open_file(&self.path)?;
        self.tail = resume(&mut f, &self.path)?;
        self.first_unsigned_at = (self.tail.unsigned > 0).then(Instant::now);
        self.file = Some(f);
        Ok(())
    }

    fn push_line(&mut self, buf: &mut Vec<u8>, line: Vec<u8>, is_checkpoint: bool) {
        self.tail.prev = line_hash(&line);
        self.tail.next_seq += 1;
        buf.extend_from_slice(&line);
        buf.push(b'\n');
        if is_checkpoint {
            self.tail.unsigned = 0;
            self.first_unsigned_at = None;
        } else {
            self.tail.unsigned += 1;
            self.first_unsigned_at.get_or_insert_with(Instant::now);
        }
    }

    fn push_checkpoint(&mut self, buf: &mut Vec<u8>) {
        let line = chain::checkpoint_line(
            self.tail.next_seq,
            &self.tail.prev,
            &chain::now_rfc3339(),
            &self.signer,
        );
        self.push_line(buf, line, true);
    }

    fn checkpoint_due(&self) -> bool {
        self.tail.unsigned > 0
            && (self.tail.unsigned >= self.opts.checkpoint_every
                || self
                    .first_unsigned_at
                    .is_some_and(|t| t.elapsed() >= self.opts.checkpoint_interval))
    }

    /// Writes a batch; on failure restores the in-memory chain and marks the writer unhealthy.
    fn commit(&mut self, events: &[Vec<u8>], force_checkpoint: bool) -> Result<(), String> {
        self.ensure_open()
            .inspect_err(|_| self.healthy.store(false, Ordering::SeqCst))?;
        let saved = (
            self.tail.next_seq,
            self.tail.prev,
            self.tail.unsigned,
            self.first_unsigned_at,
        );
        let mut buf = Vec::with_capacity(events.len() * 512);
        for e in events {
            let line = chain::event_line_of(self.tail.next_seq, &self.tail.prev, e);
            self.push_line(&mut buf, line, false);
            if self.tail.unsigned >= self.opts.checkpoint_every {
                self.push_checkpoint(&mut buf);
            }
        }
        if self.checkpoint_due() || (force_checkpoint && self.tail.unsigned > 0) {
            self.push_checkpoint(&mut buf);
        }
        if buf.is_empty() {
            return Ok(());
        }
        let res = match self.file.as_mut() {
            Some(f) => f
                .write_all(&buf)
                .and_then(|()| f.sync_data())
                .map_err(|e| e.to_string()),
            None => Err("audit log is not open".to_string()),
        };
        match res {
            Ok(()) => {
                self.healthy.store(true, Ordering::SeqCst);
                self.durable.store(self.tail.next_seq - 1, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                (
                    self.tail.next_seq,
                    self.tail.prev,
                    self.tail.unsigned,
                    self.first_unsigned_at,
                ) = saved;
                self.healthy.store(false, Ordering::SeqCst);
                tracing::error!(path = %self.path.display(), error = %e, "audit write failed; operations are refused until a write succeeds");
                Err(e)
            }
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        loop {
            let first = match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    if self.checkpoint_due() && self.healthy.load(Ordering::SeqCst) {
                        let _ = self.commit(&[], false);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.commit(&[], true);
                    return;
                }
            };
            let mut events = Vec::new();
            let mut replies = Vec::new();
            let mut close: Option<Reply> = None;
            let mut next = Some(first);
            while let Some(m) = next {
                match m {
                    Msg::Event(e, r) => {
                        events.push(e);
                        replies.push(r);
                    }
                    Msg::Close(r) => {
                        close = Some(r);
                        break;
                    }
                }
                next = if events.len() < self.opts.max_batch {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            let res = self.commit(&events, close.is_some());
            for r in replies {
                let _ = r.send(res.clone());
            }
            if let Some(r) = close {
                let _ = r.send(res);
            }
        }
    }
}

impl ChainedFileSink {
    /// Opens (or creates, mode 0600) the log, continues its chain (repairing a torn tail),
    /// and starts the writer thread.
    pub fn open(path: &Path, signer: Signer, opts: SinkOptions) -> Result<Self, AuditError> {
        let err = |reason: String| AuditError {
            path: path.display().to_string(),
            reason,
        };
        let mut file = open_file(path).map_err(err)?;
        let tail = resume(&mut file, path).map_err(err)?;
        let healthy = Arc::new(AtomicBool::new(true));
        let durable = Arc::new(std::sync::atomic::AtomicU64::new(tail.next_seq - 1));
        let (tx, rx) = mpsc::sync_channel(4096);
        let writer = Writer {
            path: path.to_path_buf(),
            file: Some(file),
            first_unsigned_at: (tail.unsigned > 0).then(Instant::now),
            tail,
            signer,
            opts: opts.clone(),
            healthy: healthy.clone(),
            durable: durable.clone(),
        };
        std::thread::Builder::new()
            .name("strongroom-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| err(format!("cannot start the audit writer: {e}")))?;
        Ok(Self {
            tx,
            healthy,
            durable,
            path: path.to_path_buf(),
            write_timeout: opts.write_timeout,
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl Into<String>) -> AuditError {
        AuditError {
            path: self.path.display().to_string(),
            reason: reason.into(),
        }
    }

    async fn send(&self, msg: impl FnOnce(Reply) -> Msg) -> Result<(), AuditError> {
        let (rtx, rrx) = oneshot::channel();
        self.tx.try_send(msg(rtx)).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => self.error("the audit writer is backed up"),
            mpsc::TrySendError::Disconnected(_) => self.error("the audit writer has stopped"),
        })?;
        match tokio::time::timeout(self.write_timeout, rrx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(self.error(e)),
            Ok(Err(_)) => Err(self.error("the audit writer has stopped")),
            Err(_) => {
                self.healthy.store(false, Ordering::SeqCst);
                Err(self.error(format!(
                    "no write completed within {:?}",
                    self.write_timeout
                )))
            }
        }
    }
}

#[async_trait::async_trait]
impl AuditSink for ChainedFileSink {
    async fn append(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let body = chain::event_body(event);
        self.send(|r| Msg::Event(body, r)).await
    }

    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    fn durable_seq(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }

    async fn close(&self) -> Result<(), AuditError> {
        self.send(Msg::Close).await
    }
}
