//! The hash-chained, group-committed audit log writer.
//!
//! One writer thread owns the file. Callers serialise their event, append it to the open
//! batch (one buffer under a lock: no allocation, no message per event) and wait for that
//! batch. The writer takes the whole batch at once, assigns sequence numbers and hash links,
//! adds a signed checkpoint when one is due, writes it with one `write` and makes it durable
//! with one `fdatasync`, then wakes everyone waiting on it. So the cost of a durable audit
//! write is shared by all requests in flight (group commit), and no response leaves before
//! its event is on disk. The writer is only woken when it is waiting: under load it finds
//! the next batch ready when its `fdatasync` returns.
//!
//! After a failed write the writer knows nothing about the file's tail, so it marks itself
//! unhealthy and, on the next event, re-reads the tail (exactly as at start) before writing
//! again: when the disk recovers, auditing resumes without a restart.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

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
    /// Most events waiting for the writer; an append beyond it fails at once ("backed up")
    /// rather than queueing without bound behind a slow disk.
    pub max_batch: usize,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            max_batch: 4096,
        }
    }
}

/// The outcome of one batch, for everyone whose event is in it.
#[derive(Default)]
struct Batch {
    result: OnceLock<Result<(), String>>,
    done: Notify,
}

impl Batch {
    fn finish(&self, res: Result<(), String>) {
        let _ = self.result.set(res);
        self.done.notify_waiters();
    }

    async fn wait(&self) -> Result<(), String> {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            // Registered before the check, so a finish between the two is not missed.
            notified.as_mut().enable();
            if let Some(r) = self.result.get() {
                return r.clone();
            }
            notified.await;
        }
    }
}

/// What callers have handed the writer and it has not taken yet.
struct Open {
    /// Event bodies ([`chain::event_body`]), each followed by a line break.
    bodies: Vec<u8>,
    events: usize,
    /// The batch those events go out in.
    batch: Arc<Batch>,
    /// A caller asked for a checkpoint (`close`).
    checkpoint: bool,
    /// The sink was dropped: write what is open with a final checkpoint and stop.
    stop: bool,
    /// The writer has exited (or panicked): nothing more will be written.
    gone: bool,
    /// The writer is asleep on `Queue::wake`: the caller that brings the open batch to
    /// `wake_at` events must wake it.
    writer_waiting: bool,
    wake_at: usize,
}

/// The hand-off between callers and the writer thread.
struct Queue {
    open: Mutex<Open>,
    wake: Condvar,
}

impl Open {
    /// No event, checkpoint or stop is waiting for the writer.
    fn nothing_asked(&self) -> bool {
        self.events == 0 && !self.checkpoint && !self.stop
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Open> {
        // A panic while holding the lock leaves only plain data behind; carry on with it.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer sleeps until a caller brings the open batch to `wake_at` events (or asks
    /// for a checkpoint, or the sink is dropped), at most `timeout`; returns whether it
    /// timed out.
    fn sleep<'a>(
        &self,
        mut open: MutexGuard<'a, Open>,
        wake_at: usize,
        timeout: Duration,
    ) -> (MutexGuard<'a, Open>, bool) {
        open.writer_waiting = true;
        open.wake_at = wake_at;
        let (mut open, waited) = self
            .wake
            .wait_timeout(open, timeout)
            .unwrap_or_else(|e| e.into_inner());
        open.writer_waiting = false;
        open.wake_at = 1;
        (open, waited.timed_out())
    }
}

thread_local! {
    /// Where a caller serialises its event before copying it into the open batch.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The audit log: a file of hash-chained JSON lines with signed checkpoints.
pub struct ChainedFileSink {
    queue: Arc<Queue>,
    max_pending: usize,
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
    /// The batch being written, kept between batches.
    out: Vec<u8>,
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
        buf.extend_from_slice(&line);
        buf.push(b'\n');
        self.linked(line_hash(&line), is_checkpoint);
    }

    /// Links the next event line, built straight into `buf`.
    fn push_event(&mut self, buf: &mut Vec<u8>, body: &[u8]) {
        let start = buf.len();
        chain::push_event_line(buf, self.tail.next_seq, &self.tail.prev, body);
        let hash = line_hash(&buf[start..]);
        buf.push(b'\n');
        self.linked(hash, false);
    }

    /// Moves the chain past a line with `hash`.
    fn linked(&mut self, hash: [u8; 32], is_checkpoint: bool) {
        self.tail.prev = hash;
        self.tail.next_seq += 1;
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

    /// Writes a batch (`bodies`: event bodies, each followed by a line break); on failure
    /// restores the in-memory chain and marks the writer unhealthy.
    fn commit(&mut self, bodies: &[u8], force_checkpoint: bool) -> Result<(), String> {
        self.ensure_open()
            .inspect_err(|_| self.healthy.store(false, Ordering::SeqCst))?;
        let saved = (
            self.tail.next_seq,
            self.tail.prev,
            self.tail.unsigned,
            self.first_unsigned_at,
        );
        let mut buf = std::mem::take(&mut self.out);
        buf.clear();
        buf.reserve(bodies.len() + bodies.len() / 4);
        for body in bodies.split(|b| *b == b'\n').filter(|b| !b.is_empty()) {
            self.push_event(&mut buf, body);
            if self.tail.unsigned >= self.opts.checkpoint_every {
                self.push_checkpoint(&mut buf);
            }
        }
        if self.checkpoint_due() || (force_checkpoint && self.tail.unsigned > 0) {
            self.push_checkpoint(&mut buf);
        }
        if buf.is_empty() {
            self.out = buf;
            return Ok(());
        }
        let res = match self.file.as_mut() {
            Some(f) => f
                .write_all(&buf)
                .and_then(|()| f.sync_data())
                .map_err(|e| e.to_string()),
            None => Err("audit log is not open".to_string()),
        };
        // Kept for the next batch, unless one was unusually large.
        if buf.capacity() <= KEEP_BUFFER {
            self.out = buf;
        }
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

    fn run(mut self, queue: &Queue) {
        let mut taken = Vec::new();
        let mut busy = false;
        loop {
            let mut open = queue.lock();
            while open.nothing_asked() {
                let timed_out;
                (open, timed_out) = queue.sleep(open, 1, CHECKPOINT_POLL);
                if timed_out && open.nothing_asked() {
                    drop(open);
                    if self.checkpoint_due() && self.healthy.load(Ordering::SeqCst) {
                        let _ = self.commit(&[], false);
                    }
                    open = queue.lock();
                }
            }
            // Under load (the last batch held more than one event), let a small batch fill
            // a little before paying a sync for it: each `fdatasync` costs the same CPU and
            // device round trips however few events it carries. One client making one
            // request at a time never causes this (its batches hold one event).
            let full = LINGER_FULL.min(self.opts.max_batch.max(1));
            if busy && open.events < full && !open.checkpoint && !open.stop {
                (open, _) = queue.sleep(open, full, LINGER);
            }
            busy = open.events > 1;
            taken.clear();
            std::mem::swap(&mut taken, &mut open.bodies);
            open.events = 0;
            // Failed with "stopped" if the commit panics, rather than left to time out.
            let batch = InFlight(std::mem::take(&mut open.batch));
            let checkpoint = std::mem::take(&mut open.checkpoint);
            let stop = open.stop;
            drop(open);
            let res = self.commit(&taken, checkpoint || stop);
            batch.0.finish(res);
            if stop {
                return;
            }
            if taken.capacity() > KEEP_BUFFER {
                taken = Vec::new();
            }
        }
    }
}

/// How long the writer lets a small batch fill under load, and the size that ends the wait
/// early. Measured on this project's 2-core machine (Encrypt, 64 connections): audit
/// thread CPU -25 %, throughput +5 to +11 %, p99 at half of peak unchanged
/// (`docs/performance.md`).
const LINGER: Duration = Duration::from_micros(150);
const LINGER_FULL: usize = 16;

/// How often an idle writer checks whether a checkpoint is due.
const CHECKPOINT_POLL: Duration = Duration::from_millis(500);

/// A caller's scratch buffer is kept up to this size between events.
const KEEP_SCRATCH: usize = 64 << 10;

/// Buffers up to this size are reused from batch to batch.
const KEEP_BUFFER: usize = 4 << 20;

/// The batch being written: if the writer unwinds before finishing it, its callers are
/// told the writer stopped.
struct InFlight(Arc<Batch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.result.get().is_none() {
            self.0.finish(Err(WRITER_STOPPED.into()));
        }
    }
}

/// What callers are told once the writer thread has ended.
const WRITER_STOPPED: &str = "the audit writer has stopped";

/// Marks the queue as without a writer when the writer thread ends, however it ends, and
/// fails the batch then open: its callers learn at once instead of at their timeout.
struct WriterGone(Arc<Queue>, Arc<AtomicBool>);

impl Drop for WriterGone {
    fn drop(&mut self) {
        self.1.store(false, Ordering::SeqCst);
        let mut open = self.0.lock();
        open.gone = true;
        open.events = 0;
        open.bodies.clear();
        let open_batch = InFlight(std::mem::take(&mut open.batch));
        drop(open);
        drop(open_batch);
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
        let queue = Arc::new(Queue {
            open: Mutex::new(Open {
                bodies: Vec::new(),
                events: 0,
                batch: Arc::default(),
                checkpoint: false,
                stop: false,
                gone: false,
                writer_waiting: false,
                wake_at: 1,
            }),
            wake: Condvar::new(),
        });
        let writer = Writer {
            out: Vec::new(),
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
            .spawn({
                let gone = WriterGone(queue.clone(), healthy.clone());
                move || writer.run(&gone.0)
            })
            .map_err(|e| err(format!("cannot start the audit writer: {e}")))?;
        Ok(Self {
            queue,
            max_pending: opts.max_batch.max(1),
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

    /// Lets `add` record what the caller brings in the open batch; returns that batch.
    fn enqueue(&self, add: impl FnOnce(&mut Open)) -> Result<Arc<Batch>, AuditError> {
        let mut open = self.queue.lock();
        if open.gone {
            return Err(self.error(WRITER_STOPPED));
        }
        if open.events >= self.max_pending {
            return Err(self.error("the audit writer is backed up"));
        }
        add(&mut open);
        if open.writer_waiting && (open.events >= open.wake_at || open.checkpoint) {
            open.writer_waiting = false;
            self.queue.wake.notify_one();
        }
        Ok(open.batch.clone())
    }

    /// Waits until `batch` is durable (or failed), at most the write timeout.
    async fn wait(&self, batch: Arc<Batch>) -> Result<(), AuditError> {
        match tokio::time::timeout(self.write_timeout, batch.wait()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error(e)),
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

impl std::fmt::Debug for ChainedFileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainedFileSink")
            .field("path", &self.path)
            .field("healthy", &self.healthy.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl Drop for ChainedFileSink {
    fn drop(&mut self) {
        // The writer writes what is open, with a final checkpoint, and exits.
        let mut open = self.queue.lock();
        open.stop = true;
        drop(open);
        self.queue.wake.notify_one();
    }
}

#[async_trait::async_trait]
impl AuditSink for ChainedFileSink {
    async fn append(&self, event: &AuditEvent) -> Result<(), AuditError> {
        // Serialised outside the lock, into this thread's scratch buffer, then copied in.
        let batch = SCRATCH.with_borrow_mut(|body| {
            body.clear();
            if body.capacity() > KEEP_SCRATCH {
                body.shrink_to(KEEP_SCRATCH);
            }
            chain::event_body_into(body, event);
            self.enqueue(|open| {
                open.bodies.extend_from_slice(body);
                open.bodies.push(b'\n');
                open.events += 1;
            })
        })?;
        self.wait(batch).await
    }

    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    fn durable_seq(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }

    async fn close(&self) -> Result<(), AuditError> {
        let batch = self.enqueue(|open| open.checkpoint = true)?;
        self.wait(batch).await
    }
}
