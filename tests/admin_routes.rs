//! The admin endpoint's contract, route by route, through `Router::oneshot`: status codes, bodies, the token,
//! limits, and the refusal to listen publicly without a token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use skillbridge::admin::{self, AdminError, AdminState, AdminToken};
use skillbridge::skill;
use skillbridge::skill::Catalog;
use skillbridge::telemetry::{BridgeHealth, BridgeStats, LinkStatus, ServedSession};
use tower::ServiceExt;

const TOKEN: &str = "admin-s3cret";

/// Reverses a text.
#[skill(title = "Reverse", read_only, open_world = false, tags = ["text", "demo"])]
fn reverse(
    /// The text to reverse.
    text: String,
) -> String {
    text.chars().rev().collect()
}

/// Multiplies two numbers.
#[skill(timeout = "3s")]
fn multiply(
    /// The first factor.
    x: f64,
    /// The second factor (1 when left out).
    y: Option<f64>,
) -> f64 {
    x * y.unwrap_or(1.0)
}

struct Link(AtomicBool);

impl LinkStatus for Link {
    fn connected(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn reconnects(&self) -> u64 {
        3
    }

    fn malformed_frames(&self) -> u64 {
        2
    }
}

struct Admin {
    router: axum::Router,
    health: Arc<BridgeHealth>,
    link: Arc<Link>,
}

fn admin(token: Option<&str>) -> Admin {
    let catalog = Catalog::from_registry().unwrap();
    let stats = Arc::new(BridgeStats::new());
    let health = Arc::new(BridgeHealth::new());
    let link = Arc::new(Link(AtomicBool::new(false)));
    health.attach_link(link.clone());
    let state = AdminState::new(catalog, stats, Arc::clone(&health), token.and_then(AdminToken::new));
    Admin {
        router: admin::router(state),
        health,
        link,
    }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

async fn call(router: &axum::Router, method: &str, uri: &str, token: Option<&str>, body: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(!text.contains(TOKEN), "a response shows the token: {text}");
    Reply {
        status,
        content_type,
        text,
    }
}

async fn get(router: &axum::Router, uri: &str) -> Reply {
    call(router, "GET", uri, None, "").await
}

#[tokio::test]
async fn healthz_is_always_ok() {
    let admin = admin(None);
    let reply = get(&admin.router, "/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_needs_a_connected_upstream_and_a_session() {
    let admin = admin(None);
    let reply = get(&admin.router, "/readyz").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json()["reasons"],
        json!(["upstream not connected", "no session served yet"])
    );

    admin.link.0.store(true, Ordering::Relaxed);
    let reply = get(&admin.router, "/readyz").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["reasons"], json!(["no session served yet"]));

    admin.health.add_session(ServedSession {
        id: "thread-1".into(),
        upstream: "codex-manager",
        created: true,
        tools: Some(vec!["reverse".into()]),
    });
    let reply = get(&admin.router, "/readyz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["status"], "ready");

    admin.link.0.store(false, Ordering::Relaxed);
    assert_eq!(
        get(&admin.router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn skills_lists_the_catalog_with_schemas_and_counts() {
    let admin = admin(None);
    let reply = get(&admin.router, "/skills").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    let skills = reply.json();
    let names: Vec<&str> = skills
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["multiply", "reverse"], "sorted by name");
    let multiply = &skills[0];
    assert_eq!(multiply["description"], "Multiplies two numbers.");
    assert_eq!(multiply["inputSchema"]["type"], "object");
    assert_eq!(multiply["inputSchema"]["required"], json!(["x"]));
    assert_eq!(multiply["timeoutMs"], 3000);
    assert_eq!(multiply["calls"]["total"], 0);

    // Hints a skill does not give are absent, not false.
    assert_eq!(multiply["annotations"], json!({}));
    assert_eq!(multiply["tags"], json!([]));
    assert_eq!(multiply["states"], json!([]));
    assert_eq!(
        skills[1]["annotations"],
        json!({"title": "Reverse", "readOnlyHint": true, "openWorldHint": false})
    );
    assert_eq!(skills[1]["tags"], json!(["text", "demo"]));

    let reply = get(&admin.router, "/skills/reverse").await;
    assert_eq!(reply.status, StatusCode::OK);
    let reverse = reply.json();
    assert_eq!(reverse["inputSchema"]["properties"]["text"]["type"], "string");
    assert_eq!(reverse["annotations"]["readOnlyHint"], true);
    assert_eq!(reverse["tags"], json!(["text", "demo"]));

    let reply = get(&admin.router, "/skills/nope").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("nope") && error.contains("multiply, reverse"), "{error}");
}

#[tokio::test]
async fn invoke_needs_the_token_and_runs_the_skill() {
    // Without a configured token, invoke is off.
    let open = admin(None);
    let reply = call(
        &open.router,
        "POST",
        "/skills/reverse/invoke",
        None,
        r#"{"text":"abc"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.json()["error"].as_str().unwrap().contains("--admin-token"));

    let guarded = admin(Some(TOKEN));
    let path = "/skills/reverse/invoke";
    let reply = call(&guarded.router, "POST", path, None, r#"{"text":"abc"}"#).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = call(&guarded.router, "POST", path, Some("wrong"), r#"{"text":"abc"}"#).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let reply = call(&guarded.router, "POST", path, Some(TOKEN), r#"{"text":"abc"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["outcome"], "success");
    assert_eq!(body["result"]["contentItems"][0]["text"], "cba");
    assert_eq!(body["result"]["success"], true);

    // Bad arguments run nothing and say why; not JSON is a 400; unknown skills a 404.
    let reply = call(&guarded.router, "POST", path, Some(TOKEN), r#"{"text":7}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["outcome"], "invalid_arguments");
    assert_eq!(reply.json()["result"]["success"], false);
    let reply = call(&guarded.router, "POST", path, Some(TOKEN), "{not json").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = call(&guarded.router, "POST", "/skills/nope/invoke", Some(TOKEN), "{}").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // Invocations count in the skill's numbers and the journal.
    let reply = call(&guarded.router, "GET", "/skills/reverse", Some(TOKEN), "").await;
    assert_eq!(reply.json()["calls"]["total"], 2);
    assert_eq!(reply.json()["calls"]["by_outcome"]["success"], 1);
    let reply = call(&guarded.router, "GET", "/calls", Some(TOKEN), "").await;
    let calls = reply.json();
    assert_eq!(calls[0]["outcome"], "invalid_arguments");
    assert_eq!(calls[0]["source"], "admin");
}

#[tokio::test]
async fn a_token_guards_every_route_but_health_and_readiness() {
    let admin = admin(Some(TOKEN));
    for path in ["/skills", "/skills/reverse", "/metrics", "/sessions", "/calls"] {
        let reply = get(&admin.router, path).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        let reply = call(&admin.router, "GET", path, Some("not-the-token"), "").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        let reply = call(&admin.router, "GET", path, Some(TOKEN), "").await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    assert_eq!(get(&admin.router, "/healthz").await.status, StatusCode::OK);
    assert_eq!(
        get(&admin.router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(!format!("{:?}", AdminToken::new(TOKEN).unwrap()).contains(TOKEN));
}

/// The status of `GET /metrics` with this `Authorization` value.
async fn with_authorization(router: &axum::Router, authorization: &str) -> StatusCode {
    let request = Request::builder()
        .uri("/metrics")
        .header(header::AUTHORIZATION, authorization)
        .body(Body::empty())
        .unwrap();
    router.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case_and_the_token_exactly() {
    let admin = admin(Some(TOKEN));
    for accepted in [
        format!("Bearer {TOKEN}"),
        format!("bearer {TOKEN}"),
        format!("BEARER {TOKEN}"),
        format!("bEaReR {TOKEN}"),
        format!("  Bearer   {TOKEN}  "),
        format!("Bearer\t{TOKEN}"),
    ] {
        assert_eq!(
            with_authorization(&admin.router, &accepted).await,
            StatusCode::OK,
            "{accepted:?}"
        );
    }
    for refused in [
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}", &TOKEN[1..]),
        format!("Bearer {}", TOKEN.to_uppercase()),
        format!("Bearer {TOKEN} {TOKEN}"),
        "bearer not-the-token".to_owned(),
        format!("Basic {TOKEN}"),
        format!("Token {TOKEN}"),
        format!("Bearer{TOKEN}"),
        format!("Bearers {TOKEN}"),
        TOKEN.to_owned(),
        "Bearer".to_owned(),
        "Bearer   ".to_owned(),
        String::new(),
    ] {
        assert_eq!(
            with_authorization(&admin.router, &refused).await,
            StatusCode::UNAUTHORIZED,
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn metrics_sessions_and_calls() {
    let admin = admin(None);
    admin.health.add_session(ServedSession {
        id: "thread-9".into(),
        upstream: "codex-manager",
        created: false,
        tools: None,
    });
    let reply = get(&admin.router, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.content_type.starts_with("text/plain"), "{}", reply.content_type);
    for line in [
        "# TYPE skillbridge_calls_total counter",
        "# TYPE skillbridge_call_duration_seconds histogram",
        "# TYPE skillbridge_answer_attempts_total counter",
        "skillbridge_calls_in_flight 0",
        "skillbridge_reconnects_total 3",
        "skillbridge_malformed_frames_total 2",
        "skillbridge_upstream_connected 0",
        "skillbridge_sessions 1",
    ] {
        assert!(
            reply.text.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            reply.text
        );
    }

    let reply = get(&admin.router, "/sessions").await;
    assert_eq!(
        reply.json(),
        json!([{"id": "thread-9", "upstream": "codex-manager", "created": false, "tools": null, "lastCallAtMs": null}])
    );
    // A session created here lists the tools it was offered.
    admin.health.add_session(ServedSession {
        id: "thread-10".into(),
        upstream: "codex-manager",
        created: true,
        tools: Some(vec!["reverse".into()]),
    });
    let sessions = get(&admin.router, "/sessions").await.json();
    let created = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "thread-10")
        .unwrap()
        .clone();
    assert_eq!(created["tools"], json!(["reverse"]));

    let reply = get(&admin.router, "/calls").await;
    assert_eq!(reply.json(), json!([]));
    let reply = get(&admin.router, "/calls?limit=abc").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn limits_and_unknown_routes() {
    let admin = admin(Some(TOKEN));
    let big = format!(r#"{{"text":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let reply = call(&admin.router, "POST", "/skills/reverse/invoke", Some(TOKEN), &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let reply = get(&admin.router, "/nowhere").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.json()["error"].as_str().unwrap().contains("/skills"));
}

#[tokio::test]
async fn binding_refuses_a_public_address_without_a_token() {
    let catalog = Catalog::from_registry().unwrap();
    let state = AdminState::new(
        catalog,
        Arc::new(BridgeStats::new()),
        Arc::new(BridgeHealth::new()),
        None,
    );
    let public = "0.0.0.0:0".parse().unwrap();
    let error = admin::bind(public, state.clone(), std::future::pending())
        .await
        .err()
        .expect("refused");
    assert!(matches!(error, AdminError::PublicWithoutToken(_)), "{error:?}");
    assert!(error.to_string().contains("--admin-token"), "{error}");

    // Loopback is fine without a token, and the bound port is reported.
    let (addr, server) = admin::bind("127.0.0.1:0".parse().unwrap(), state, std::future::ready(()))
        .await
        .expect("binds loopback");
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    server.await.unwrap();
}

#[tokio::test]
async fn cluster_shows_the_group_of_a_bridge_in_one_and_is_404_otherwise() {
    let admin = admin(None);
    let alone = get(&admin.router, "/cluster").await;
    assert_eq!(alone.status, StatusCode::NOT_FOUND);
    assert!(
        alone.json()["error"].as_str().unwrap().contains("--cluster"),
        "{}",
        alone.text
    );
    assert!(
        !get(&admin.router, "/metrics")
            .await
            .text
            .contains("skillbridge_cluster_")
    );

    let status = skillbridge::telemetry::ClusterStatus::new("tickets", "host-1", "redis://<redacted>@10.0.0.9:6379/0");
    admin.health.attach_cluster(Arc::new(status));
    let view = get(&admin.router, "/cluster").await;
    assert_eq!(view.status, StatusCode::OK);
    let view = view.json();
    assert_eq!(view["group"], "tickets");
    assert_eq!(view["this"], "host-1");
    assert_eq!(view["store"], "redis://<redacted>@10.0.0.9:6379/0");
    assert_eq!(view["reachable"], false);
    assert_eq!(view["unreachableReason"], "not connected yet");
    assert_eq!(view["bridges"], json!([]));
    assert_eq!(view["claims"][0], json!(["won", 0]));
    let ready = get(&admin.router, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let reasons = ready.json()["reasons"].to_string();
    assert!(reasons.contains("not connected yet: no new call is taken"), "{reasons}");
    let metrics = get(&admin.router, "/metrics").await.text;
    for line in [
        "skillbridge_cluster_store_up 0",
        "skillbridge_cluster_claims_total{result=\"taken_over\"} 0",
        "skillbridge_cluster_store_seconds_count 0",
        "skillbridge_cluster_bridges 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}
