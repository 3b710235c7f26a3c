//! Time enters core only through a `Clock`, so tests can move it without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use strongroom_store::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, to the second.
    fn now(&self) -> Timestamp;
}

/// The system clock, optionally shifted by a fixed offset.
///
/// A non-zero offset exists for tests that must observe scheduled work across restarts of the
/// real binary (`serve --dangerous-clock-offset-secs`); it is never set in production.
#[derive(Debug, Default)]
pub struct SystemClock {
    offset_secs: i64,
}

impl SystemClock {
    /// The real time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The real time shifted by `offset_secs`. Testing only.
    pub fn dangerous_with_offset(offset_secs: i64) -> Self {
        Self { offset_secs }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Timestamp(secs.saturating_add(self.offset_secs))
    }
}

/// A clock tests set by hand.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// Starts at `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(AtomicI64::new(t.0))
    }

    /// Moves the clock forward (or back, with a negative value).
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}
