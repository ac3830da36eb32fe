//! What a bridge process uses while a row runs, sampled every 50 ms on a thread of its own (so that sampling never
//! waits for the harness's async work, nor delays it): peak resident memory (`VmHWM`), peak open descriptors, and
//! peak TCP sockets to the double. Sockets are counted when the descriptors reach a new peak (a socket is a
//! descriptor) and every 500 ms: reading the kernel's TCP table walks all of it, which at 50 ms took a tenth of the
//! machine's CPU away from the processes measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::Serialize;
use skillbridge_bench::procfs::{open_fds, status_kib, tcp_sockets_to};

/// How often the process is sampled.
const PERIOD: Duration = Duration::from_millis(50);

/// Samples between two counts of sockets, unless the descriptors reach a new peak.
const SOCKETS_EVERY: usize = 10;

/// The peaks of one or more processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Peak resident memory (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Most descriptors open at once.
    pub peak_fds: usize,
    /// Most TCP sockets to the double at once.
    pub peak_sockets: usize,
    /// Samples taken.
    pub samples: usize,
}

impl Usage {
    /// The peaks of two processes that ran one after the other.
    pub fn max(self, other: Usage) -> Usage {
        Usage {
            peak_rss_kib: self.peak_rss_kib.max(other.peak_rss_kib),
            peak_fds: self.peak_fds.max(other.peak_fds),
            peak_sockets: self.peak_sockets.max(other.peak_sockets),
            samples: self.samples + other.samples,
        }
    }

    fn sample(&mut self, pid: u32, upstream_port: u16) -> bool {
        let Some(rss) = status_kib(pid, "VmHWM") else {
            return false;
        };
        self.peak_rss_kib = self.peak_rss_kib.max(rss);
        let fds = open_fds(pid).unwrap_or(0);
        if fds > self.peak_fds || self.samples.is_multiple_of(SOCKETS_EVERY) {
            self.peak_sockets = self.peak_sockets.max(tcp_sockets_to(pid, upstream_port).unwrap_or(0));
        }
        self.peak_fds = self.peak_fds.max(fds);
        self.samples += 1;
        true
    }
}

/// Samples one process until stopped (or until it is gone).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Usage>,
}

impl Sampler {
    /// Starts sampling process `pid`, counting its sockets to `upstream_port`.
    pub fn start(pid: u32, upstream_port: u16) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut usage = Usage::default();
                while !stop.load(Ordering::Relaxed) && usage.sample(pid, upstream_port) {
                    std::thread::sleep(PERIOD);
                }
                // One last look: the peak of the final moments.
                usage.sample(pid, upstream_port);
                usage
            }
        });
        Sampler { stop, thread }
    }

    /// Stops sampling and returns the peaks.
    pub fn stop(self) -> Result<Usage> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| anyhow!("the sampler thread panicked"))
    }
}
