//! The bridge's admin endpoint under a row's faults: `/healthz` probed on a fresh connection at a fixed interval
//! (as a liveness probe does), and idle TCP connections held open against it (as a careless or hostile client
//! does), each re-opened a second after the bridge closes it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a closed idle connection waits before it is opened again.
const REOPEN_DELAY: Duration = Duration::from_secs(1);

/// How long opening one idle connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the `/healthz` probes saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeStats {
    /// Probes sent.
    pub probes: usize,
    /// Probes without a 200 within the timeout.
    pub failures: usize,
    /// The slowest answered probe, in milliseconds.
    pub max_latency_ms: f64,
    /// What went wrong the first time, if anything did.
    pub first_failure: Option<String>,
}

/// Probes `/healthz` until stopped.
pub struct Probe {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<ProbeStats>,
}

impl Probe {
    /// Starts probing `<admin_url>/healthz` every `interval`; a probe fails without a 200 within `timeout`.
    pub fn start(admin_url: &str, interval: Duration, timeout: Duration) -> Result<Probe> {
        // No idle connection is kept: every probe connects anew.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(timeout)
            .build()?;
        let url = format!("{admin_url}/healthz");
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut stats = ProbeStats::default();
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return stats,
                        _ = tick.tick() => {}
                    }
                    stats.probes += 1;
                    let sent = Instant::now();
                    let failure = match http.get(&url).send().await {
                        Ok(response) if response.status().is_success() => None,
                        Ok(response) => Some(format!("status {}", response.status())),
                        Err(error) => Some(error.to_string()),
                    };
                    match failure {
                        None => stats.max_latency_ms = stats.max_latency_ms.max(sent.elapsed().as_secs_f64() * 1000.0),
                        Some(failure) => {
                            stats.failures += 1;
                            stats.first_failure.get_or_insert(failure);
                        }
                    }
                }
            }
        });
        Ok(Probe { stop, task })
    }

    /// Stops probing and returns what was seen.
    pub async fn stop(self) -> Result<ProbeStats> {
        self.stop.cancel();
        self.task.await.context("the probe task failed")
    }
}

/// What the idle connections went through.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FloodStats {
    /// Connections opened, re-openings included.
    pub opened: usize,
    /// Connections the bridge closed.
    pub closed_by_bridge: usize,
    /// Attempts to connect that failed or timed out.
    pub connect_failures: usize,
}

impl FloodStats {
    fn add(&mut self, other: FloodStats) {
        self.opened += other.opened;
        self.closed_by_bridge += other.closed_by_bridge;
        self.connect_failures += other.connect_failures;
    }
}

/// Idle connections held open to an address until stopped.
pub struct Flood {
    stop: CancellationToken,
    tasks: JoinSet<FloodStats>,
}

impl Flood {
    /// Opens `connections` connections to `addr` (`host:port`) that send nothing, and keeps them open: one the
    /// bridge closes is opened again after [`REOPEN_DELAY`]. Returns once each has been opened (or failed to).
    pub async fn start(addr: &str, connections: usize) -> Flood {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(connections.max(1));
        for _ in 0..connections {
            let (addr, stop, opened) = (addr.to_owned(), stop.clone(), opened_tx.clone());
            tasks.spawn(async move { hold(&addr, &stop, &opened).await });
        }
        drop(opened_tx);
        for _ in 0..connections {
            if opened_rx.recv().await.is_none() {
                break;
            }
        }
        Flood { stop, tasks }
    }

    /// Closes every connection and returns what they went through.
    pub async fn stop(mut self) -> Result<FloodStats> {
        self.stop.cancel();
        let mut stats = FloodStats::default();
        while let Some(joined) = self.tasks.join_next().await {
            stats.add(joined.context("an idle connection's task failed")?);
        }
        Ok(stats)
    }
}

/// One idle connection, re-opened whenever the bridge closes it, until `stop`. Reports its first attempt on
/// `opened`.
async fn hold(addr: &str, stop: &CancellationToken, opened: &tokio::sync::mpsc::Sender<()>) -> FloodStats {
    let mut stats = FloodStats::default();
    let mut first = true;
    while !stop.is_cancelled() {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
        if std::mem::take(&mut first) {
            let _ = opened.send(()).await;
        }
        match connected {
            Ok(Ok(mut stream)) => {
                stats.opened += 1;
                let mut byte = [0u8; 1];
                tokio::select! {
                    _ = stop.cancelled() => return stats,
                    // The bridge sends nothing unasked: a read that ends means it closed the connection.
                    _ = stream.read(&mut byte) => stats.closed_by_bridge += 1,
                }
            }
            _ => stats.connect_failures += 1,
        }
        tokio::select! {
            _ = stop.cancelled() => return stats,
            _ = tokio::time::sleep(REOPEN_DELAY) => {}
        }
    }
    stats
}
