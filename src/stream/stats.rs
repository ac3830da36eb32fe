//! Counters of a stream, readable while it runs ([`StreamStats`]), and the summary `run` returns ([`StreamReport`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::frame::FrameError;
use crate::util::lock;

/// Live counters of a [`StreamClient`](super::StreamClient), shared through an `Arc` and updated while `run` works.
/// Counters accumulate over every `run` of the client; each run's own numbers are in its [`StreamReport`].
#[derive(Debug, Default)]
pub struct StreamStats {
    connected: AtomicBool,
    connects: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    frames: AtomicU64,
    unhandled_frames: AtomicU64,
    /// By [`FrameError::kind`], in the order of [`FrameError::KINDS`].
    malformed_frames: [AtomicU64; FrameError::KINDS.len()],
    dropped_frames: AtomicU64,
    handler_failures: AtomicU64,
    pong_timeouts: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// When the last connection was lost, while no other is up.
    lost_at: Mutex<Option<tokio::time::Instant>>,
    /// How long the stream was down before its latest connection, until [`take_outage`](Self::take_outage).
    outage: Mutex<Option<std::time::Duration>>,
}

/// Which counter to bump.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Reconnects,
    ConnectFailures,
    Frames,
    UnhandledFrames,
    /// Of the kind with this index in [`FrameError::KINDS`].
    MalformedFrames(usize),
    DroppedFrames,
    HandlerFailures,
    PongTimeouts,
}

impl StreamStats {
    /// `true` while a socket is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Successful connections, the first one included.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Successful connections after the first one of a run.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Connection attempts that failed (refused, rejected upgrade, timeout).
    pub fn connect_failures(&self) -> u64 {
        self.connect_failures.load(Ordering::Relaxed)
    }

    /// Valid frames received (control frames and events).
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Valid event frames that no handler takes ([`Router::handles_event`](super::Router::handles_event)): counted
    /// in [`frames`](Self::frames) too, then dropped without building their payload.
    pub fn unhandled_frames(&self) -> u64 {
        self.unhandled_frames.load(Ordering::Relaxed)
    }

    /// Frames that did not parse; they are skipped.
    pub fn malformed_frames(&self) -> u64 {
        self.malformed_frames.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    /// [`malformed_frames`](Self::malformed_frames) by [`FrameError::kind`]: every kind, in the order of
    /// [`FrameError::KINDS`], zero or not.
    pub fn malformed_frames_by_kind(&self) -> Vec<(&'static str, u64)> {
        (FrameError::KINDS.iter().zip(&self.malformed_frames))
            .map(|(kind, n)| (*kind, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Frames dropped because the handlers were `event_buffer` frames behind.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames.load(Ordering::Relaxed)
    }

    /// Handler runs that returned `Err` or panicked.
    pub fn handler_failures(&self) -> u64 {
        self.handler_failures.load(Ordering::Relaxed)
    }

    /// Connections given up because a ping went unanswered.
    pub fn pong_timeouts(&self) -> u64 {
        self.pong_timeouts.load(Ordering::Relaxed)
    }

    /// The latest connection problem, with its cause (`cannot connect to ws://..: Connection refused (os error
    /// 111)`); never contains credentials.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// All counters at this moment.
    pub fn snapshot(&self) -> StreamReport {
        StreamReport {
            connects: self.connects(),
            reconnects: self.reconnects(),
            connect_failures: self.connect_failures(),
            frames: self.frames(),
            unhandled_frames: self.unhandled_frames(),
            malformed_frames: self.malformed_frames(),
            dropped_frames: self.dropped_frames(),
            handler_failures: self.handler_failures(),
            pong_timeouts: self.pong_timeouts(),
            last_error: self.last_error(),
        }
    }

    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let cell = match counter {
            Counter::Reconnects => &self.reconnects,
            Counter::ConnectFailures => &self.connect_failures,
            Counter::Frames => &self.frames,
            Counter::UnhandledFrames => &self.unhandled_frames,
            Counter::MalformedFrames(kind) => &self.malformed_frames[kind],
            Counter::DroppedFrames => &self.dropped_frames,
            Counter::HandlerFailures => &self.handler_failures,
            Counter::PongTimeouts => &self.pong_timeouts,
        };
        cell.fetch_add(n, Ordering::Relaxed);
    }

    /// A connection is up: counts it and marks the stream connected; returns its number (1 for the first).
    pub(crate) fn connection_opened(&self) -> u64 {
        let number = self.connects.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(lost_at) = lock(&self.lost_at).take() {
            *lock(&self.outage) = Some(lost_at.elapsed());
        }
        self.set_connected(true);
        number
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        let was = self.connected.swap(connected, Ordering::Relaxed);
        if was && !connected {
            *lock(&self.lost_at) = Some(tokio::time::Instant::now());
        }
    }

    /// How long the stream was down before it reconnected, once per reconnect (`None` after the first connection,
    /// and once taken).
    pub(crate) fn take_outage(&self) -> Option<std::time::Duration> {
        lock(&self.outage).take()
    }

    pub(crate) fn set_last_error(&self, error: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.into());
    }
}

/// What one `run` did (or, from [`StreamStats::snapshot`], the client's totals).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamReport {
    /// Successful connections, the first one included.
    pub connects: u64,
    /// Successful connections after the first.
    pub reconnects: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Valid frames received.
    pub frames: u64,
    /// Of those, events no handler takes (dropped unbuilt).
    pub unhandled_frames: u64,
    /// Frames that did not parse (skipped).
    pub malformed_frames: u64,
    /// Frames dropped because the handlers fell `event_buffer` frames behind.
    pub dropped_frames: u64,
    /// Handler runs that returned `Err` or panicked.
    pub handler_failures: u64,
    /// Connections given up because a ping went unanswered.
    pub pong_timeouts: u64,
    /// The latest connection problem, if any.
    pub last_error: Option<String>,
}

impl StreamReport {
    /// The counts accumulated since `earlier` (same client), keeping this report's `last_error`.
    pub(crate) fn since(&self, earlier: &StreamReport) -> StreamReport {
        StreamReport {
            connects: self.connects - earlier.connects,
            reconnects: self.reconnects - earlier.reconnects,
            connect_failures: self.connect_failures - earlier.connect_failures,
            frames: self.frames - earlier.frames,
            unhandled_frames: self.unhandled_frames - earlier.unhandled_frames,
            malformed_frames: self.malformed_frames - earlier.malformed_frames,
            dropped_frames: self.dropped_frames - earlier.dropped_frames,
            handler_failures: self.handler_failures - earlier.handler_failures,
            pong_timeouts: self.pong_timeouts - earlier.pong_timeouts,
            last_error: self.last_error.clone(),
        }
    }
}
