//! A bridge's life when things go wrong at start: a start abandoned midway leaves nothing behind, and a bridge
//! that was shut down cannot start again.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use skillbridge::skill::Catalog;
use skillbridge::telemetry::ServedSession;
use skillbridge::upstream::{AnswerOutcome, Feed, ToolCall, Upstream, UpstreamError};
use skillbridge::{BoxFuture, Bridge, BridgeError, ToolResult};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Creates one session, then never finishes opening; closing deletes what it created.
#[derive(Default)]
struct StuckOpening {
    created: Mutex<Vec<String>>,
    opening: Notify,
}

impl Upstream for StuckOpening {
    fn name(&self) -> &'static str {
        "stuck"
    }

    fn open<'a>(&'a self, _catalog: &'a Catalog) -> BoxFuture<'a, Result<Vec<ServedSession>, UpstreamError>> {
        Box::pin(async move {
            self.created.lock().unwrap().push("half-made".into());
            self.opening.notify_one();
            std::future::pending().await
        })
    }

    fn run<'a>(&'a self, _feed: Feed, stop: CancellationToken) -> BoxFuture<'a, Result<(), UpstreamError>> {
        Box::pin(async move {
            stop.cancelled().await;
            Ok(())
        })
    }

    fn answer<'a>(&'a self, _call: &'a ToolCall, _result: &'a ToolResult) -> BoxFuture<'a, AnswerOutcome> {
        Box::pin(async { AnswerOutcome::Delivered })
    }

    fn close(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move { std::mem::take(&mut *self.created.lock().unwrap()) })
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test]
async fn a_start_abandoned_midway_is_cleaned_up_and_a_stopped_bridge_stays_stopped() {
    let upstream = std::sync::Arc::new(StuckOpening::default());
    let admin = free_port();
    let bridge = Bridge::builder()
        .catalog(Catalog::from_registry().unwrap())
        .upstream(upstream.clone())
        .admin_addr(admin)
        .build()
        .unwrap();

    tokio::select! {
        started = bridge.start() => panic!("the start cannot finish: {started:?}"),
        _ = upstream.opening.notified() => {}
    }
    // The start future is dropped here, while the upstream is half open and the admin endpoint listens.

    let report = bridge.shutdown().await;
    assert_eq!(
        report.deleted,
        ["half-made"],
        "what the abandoned start created is cleaned up"
    );
    let closed = async {
        while TcpStream::connect(admin).is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the admin endpoint of the abandoned start stops listening");
    assert!(matches!(bridge.start().await, Err(BridgeError::ShutDown)));
    assert_eq!(bridge.shutdown().await, report, "shutting down again reports the same");
}
