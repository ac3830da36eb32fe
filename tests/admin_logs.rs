//! What the admin endpoint logs about its own answers: `/readyz` answering 503 while the bridge is not ready is its
//! answer, not a failure, so a load balancer probing it does not fill the log with errors.

mod captured_logs;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use captured_logs::CapturedLogs;
use skillbridge::admin::{self, AdminState};
use skillbridge::skill::Catalog;
use skillbridge::telemetry::{BridgeHealth, BridgeStats};
use tower::ServiceExt;

#[tokio::test]
async fn a_not_ready_answer_is_a_debug_line_not_an_error() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::TRACE);
    let state = AdminState::new(
        Catalog::from_registry().unwrap(),
        Arc::new(BridgeStats::new()),
        Arc::new(BridgeHealth::new()),
        None,
    );
    let router = admin::router(state);
    for _ in 0..3 {
        let request = Request::get("/readyz").body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let text = logs.text();
    assert_eq!(logs.lines_with("answered 503 Service Unavailable").len(), 3, "{text}");
    assert!(!text.contains("ERROR") && !text.contains("WARN"), "{text}");
}
