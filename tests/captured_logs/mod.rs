//! [`CapturedLogs`]: this thread's `tracing` output kept in memory, for tests that assert what was logged. The
//! tests run on current-thread runtimes, so the tasks they spawn log here too.
//!
//! A test binary that captures in one test should capture in every test, first thing: while a single scoped
//! subscriber exists, tracing computes a log statement's interest with the default of whichever thread reaches it
//! first, so a test without one running the same code would switch the statement off for the test that captures.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The log output of the thread that installed it.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Captures this thread's events up to `level` until the guard drops.
    pub fn install(&self, level: tracing::Level) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || logs.clone())
            .with_ansi(false)
            .with_max_level(level)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The captured lines containing `text`.
    pub fn lines_with(&self, text: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(text))
            .map(str::to_owned)
            .collect()
    }

    /// Everything captured so far, taken out of the capture.
    pub fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
