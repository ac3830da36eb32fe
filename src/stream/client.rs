//! [`StreamClient`]: the reconnecting loop around [`ConnectionDriver`], plus the dispatch task that runs handlers.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::connection::{ConnectionDriver, ConnectionEnd, Dispatch, Item};
use super::malformed::MalformedLog;
use super::options::StreamOptions;
use super::router::Router;
use super::stats::{Counter, StreamReport, StreamStats};
use super::transport::{ConnectError, ConnectRequest, Connector, WsConnector};
use crate::manager::{ManagerConfig, redact_url};
use crate::util::Backoff;

/// Why [`StreamClient::run`] gave up. A dropped socket, a refused connection or a rejected upgrade (401, 5xx) is
/// never one of these: the stream reconnects and reports them in [`StreamStats::last_error`].
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The options cannot work (e.g. a zero ping interval).
    #[error("invalid stream options: {0}")]
    InvalidOptions(String),
    /// A connection error that retrying cannot fix (an unusable URL).
    #[error(transparent)]
    Connect(ConnectError),
    /// The handler dispatch task ended unexpectedly.
    #[error("the stream's handler dispatch task stopped unexpectedly")]
    DispatcherStopped,
    /// [`StreamClient::run_blocking`] could not build its runtime.
    #[error("cannot start a runtime for the blocking stream: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The codex-manager websocket stream client. Cloning shares the connector and the [`StreamStats`].
#[derive(Clone)]
pub struct StreamClient {
    config: ManagerConfig,
    connector: Arc<dyn Connector>,
    stats: Arc<StreamStats>,
}

impl fmt::Debug for StreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamClient")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl StreamClient {
    /// A client for the codex-manager at `config`, connecting over TCP (TLS for `https://`, as its REST client does)
    /// with the config's headers (auth) on the upgrade request and its timeout as the handshake limit.
    pub fn new(config: ManagerConfig) -> Self {
        let connector = WsConnector::for_manager(&config);
        Self::with_connector(config, connector)
    }

    /// A client that opens its connections with `connector` (e.g. in-memory channels in tests).
    pub fn with_connector(config: ManagerConfig, connector: impl Connector) -> Self {
        Self {
            config,
            connector: Arc::new(connector),
            stats: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// Live counters (connected, reconnects, frames, malformed frames, ..), readable while `run` works.
    pub fn stats(&self) -> Arc<StreamStats> {
        Arc::clone(&self.stats)
    }

    /// The websocket URL for a thread: `ws://host/api/stream?threadId=<id>` (`/stream` without a thread).
    pub fn stream_url(&self, thread_id: Option<&str>) -> String {
        match thread_id {
            Some(id) => self
                .config
                .ws_url(&format!("/stream?threadId={}", crate::util::percent_encode(id))),
            None => self.config.ws_url("/stream"),
        }
    }

    /// Streams events into `router` until `options.stop` fires, then closes the socket and returns this run's
    /// report. Dropped sockets, missing pongs and failed connects only lead to a reconnect with backoff; `run`
    /// returns `Err` only for options or a URL that can never work.
    ///
    /// Frames not yet handled when the stop fires are discarded and a running handler is cancelled at its next
    /// `.await`; handlers that must finish work should hand it to a task of their own.
    pub async fn run(&self, router: Router, options: StreamOptions) -> Result<StreamReport, StreamError> {
        options.validate().map_err(StreamError::InvalidOptions)?;
        let start = self.stats.snapshot();
        let (queue, pending) = mpsc::channel(options.event_buffer);
        let dispatcher = tokio::spawn(dispatch_loop(router.clone(), pending, Arc::clone(&self.stats)));
        let malformed = MalformedLog::default();
        let result = self.connect_loop(&options, &queue, &router, &malformed).await;
        dispatcher.abort();
        self.stats.set_connected(false);
        result.map(|()| self.stats.snapshot().since(&start))
    }

    /// [`run`](Self::run) for programs without an async runtime: builds one and blocks on it. Must not be called
    /// from inside a Tokio runtime.
    pub fn run_blocking(&self, router: Router, options: StreamOptions) -> Result<StreamReport, StreamError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(self.run(router, options))
    }

    async fn connect_loop(
        &self,
        options: &StreamOptions,
        queue: &mpsc::Sender<Dispatch>,
        router: &Router,
        malformed: &MalformedLog,
    ) -> Result<(), StreamError> {
        let stop = &options.stop;
        let url = self.stream_url(options.thread_id.as_deref());
        let backoff = Backoff {
            initial: options.backoff_initial,
            max: options.backoff_max,
        };
        // Failed attempts since the last healthy connection.
        let mut failures: u32 = 0;
        let mut connections: u64 = 0;
        loop {
            let request = ConnectRequest {
                url: url.clone(),
                headers: self.config.headers(),
                thread_id: options.thread_id.clone(),
            };
            let attempt = tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                attempt = self.connector.connect(request) => attempt,
            };
            match attempt {
                Err(error) if error.is_fatal() => {
                    self.stats.set_last_error(error.to_string());
                    return Err(StreamError::Connect(error));
                }
                Err(error) => {
                    self.stats.add(Counter::ConnectFailures, 1);
                    tracing::warn!("the stream cannot connect: {error}; trying again with backoff");
                    self.stats.set_last_error(error.to_string());
                }
                Ok(socket) => {
                    if connections > 0 {
                        self.stats.add(Counter::Reconnects, 1);
                    }
                    let number = self.stats.connection_opened();
                    tracing::debug!(url = %redact_url(&url), reconnects = connections, "stream connected");
                    let driver = ConnectionDriver {
                        options,
                        stats: &self.stats,
                        dispatch: queue,
                        router,
                        reconnect_count: connections,
                        connection: number,
                        malformed,
                    };
                    connections += 1;
                    let outcome = driver.drive(socket).await;
                    self.stats.set_connected(false);
                    if outcome.healthy {
                        failures = 0;
                    }
                    match outcome.end {
                        ConnectionEnd::Stopped => return Ok(()),
                        ConnectionEnd::DispatcherGone => return Err(StreamError::DispatcherStopped),
                        ConnectionEnd::Overflow => {
                            self.stats.set_last_error(format!(
                                "handlers fell {} frames behind; frames were dropped and the stream resubscribes",
                                options.event_buffer
                            ));
                            // Resubscribe only once the handlers have caught up, so the fresh `ready` frame (the
                            // cue to re-list pending tool calls) is not dropped too.
                            tokio::select! {
                                biased;
                                _ = stop.cancelled() => return Ok(()),
                                permits = queue.reserve_many(options.event_buffer) => {
                                    if permits.is_err() {
                                        return Err(StreamError::DispatcherStopped);
                                    }
                                }
                            }
                            continue;
                        }
                        ConnectionEnd::PongTimeout => {
                            tracing::warn!(timeout = ?options.pong_timeout, "no pong from codex-manager; reconnecting");
                            self.stats
                                .set_last_error(format!("no pong within {:?}", options.pong_timeout));
                        }
                        ConnectionEnd::Closed(reason) => {
                            tracing::info!(%reason, "stream connection lost; reconnecting");
                            self.stats.set_last_error(reason);
                        }
                    }
                }
            }
            failures = failures.saturating_add(1);
            let delay = backoff.jittered(failures);
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Runs the handlers for each queued frame, one frame at a time, in arrival order.
async fn dispatch_loop(router: Router, mut pending: mpsc::Receiver<Dispatch>, stats: Arc<StreamStats>) {
    while let Some(Dispatch { item, ctx }) = pending.recv().await {
        let summary = match item {
            Item::Frame(frame) => router.dispatch_owned(frame, &ctx).await,
            Item::Signal { event_type, signal } => router.dispatch_signal(&event_type, signal, &ctx).await,
        };
        stats.add(Counter::HandlerFailures, summary.failed as u64);
    }
}

impl crate::manager::CodexManager {
    /// The websocket event stream of this codex-manager, with the same address and credentials. (Defined with
    /// the stream, so that the REST client does not depend on it.)
    ///
    /// ```no_run
    /// use skillbridge::manager::CodexManager;
    /// use skillbridge::stream::{Router, StreamOptions};
    ///
    /// # async fn listen() -> Result<(), Box<dyn std::error::Error>> {
    /// let cm = CodexManager::from_profile("local")?;
    /// let mut router = Router::new();
    /// router.on_app_server_request("item.tool.call", |signal, _ctx| async move {
    ///     println!("tool call request {:?}", signal.request_id);
    /// });
    /// cm.stream().run(router, StreamOptions::new().thread_id("<session-id>")).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream(&self) -> StreamClient {
        StreamClient::new(self.config().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls() {
        let config = ManagerConfig::builder()
            .base_url("http://127.0.0.1:4100")
            .build()
            .unwrap();
        let client = StreamClient::new(config);
        assert_eq!(client.stream_url(None), "ws://127.0.0.1:4100/api/stream");
        assert_eq!(
            client.stream_url(Some("01a20b39-6909")),
            "ws://127.0.0.1:4100/api/stream?threadId=01a20b39-6909"
        );
        assert_eq!(
            client.stream_url(Some("a b&c")),
            "ws://127.0.0.1:4100/api/stream?threadId=a%20b%26c"
        );
    }
}
