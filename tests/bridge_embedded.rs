//! A bridge embedded in another program, built from code: its admin routes mounted under `/skillbridge` of the
//! program's own axum app, next to the app's routes, and its life driven by the program's cancellation token.

mod bridge_support;

use axum::Router;
use axum::routing::get;
use bridge_support::{WAIT, answer_success, answer_text, client, eventually_async, only_thread, sample};
use serde_json::{Value, json};
use skillbridge::skill::Catalog;
use skillbridge::{Bridge, CodexManagerUpstream, skill};
use skillbridge_doubles::CodexManagerDouble;
use tokio_util::sync::CancellationToken;

/// Reverses a text.
#[skill]
fn reverse(
    /// The text to reverse.
    text: String,
) -> String {
    text.chars().rev().collect()
}

/// `GET base + path`: the status and the body.
async fn get_text(http: &reqwest::Client, base: &str, path: &str) -> (u16, String) {
    let response = http.get(format!("{base}{path}")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_mounted_in_an_app_and_a_run_ended_by_a_token() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = Bridge::builder()
        .catalog(Catalog::from_registry().unwrap())
        .upstream(
            CodexManagerUpstream::new(client(&double))
                .poll_interval(bridge_support::POLL_INTERVAL)
                .delete_on_exit(true),
        )
        .grace(bridge_support::GRACE)
        .build()
        .unwrap();
    assert_eq!(bridge.admin_addr().await, None, "no admin endpoint of its own");

    // The program's own app, with the bridge's admin routes inside.
    let app = Router::new()
        .route("/", get(|| async { "my service" }))
        .nest("/skillbridge", bridge.admin_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop_app = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stop_app.clone().cancelled_owned())
            .into_future(),
    );
    let http = reqwest::Client::new();

    // Not ready before the bridge serves a session over a connected stream.
    let (status, body) = get_text(&http, &base, "/skillbridge/readyz").await;
    assert_eq!(status, 503, "{body}");

    bridge.start().await.expect("the bridge starts");
    assert!(bridge.wait_connected(WAIT).await, "the bridge's stream connects");
    let thread = only_thread(&bridge);
    let (status, body) = get_text(&http, &base, "/skillbridge/readyz").await;
    assert_eq!(status, 200, "{body}");

    // A tool call is answered with the skill's output.
    let id = double.inject_tool_call(&thread, "reverse", json!({"text": "bridge"}));
    let answer = double.wait_answered(&id, WAIT).await.expect("the call is answered");
    assert!(answer_success(&answer), "{answer}");
    assert_eq!(answer_text(&answer), "egdirb");
    assert_eq!(double.responses_for(&id).len(), 1);

    // The mounted admin routes show it, once the bridge has recorded the delivered answer.
    let listed = || async {
        let (status, body) = get_text(&http, &base, "/skillbridge/calls").await;
        assert_eq!(status, 200, "{body}");
        let calls: Value = serde_json::from_str(&body).unwrap();
        calls.as_array().unwrap().iter().any(|call| {
            call["request_id"] == id.as_str()
                && call["tool"] == "reverse"
                && call["session"] == thread.as_str()
                && call["outcome"] == "success"
                && call["submit_status"] == "delivered"
        })
    };
    eventually_async("/skillbridge/calls to list the call", listed).await;
    let counted = || async {
        let (status, metrics) = get_text(&http, &base, "/skillbridge/metrics").await;
        assert_eq!(status, 200, "{metrics}");
        sample(
            &metrics,
            r#"skillbridge_calls_total{skill="reverse",outcome="success"}"#,
        ) == 1.0
            && sample(&metrics, r#"skillbridge_answer_attempts_total{result="delivered"}"#) == 1.0
    };
    eventually_async("/skillbridge/metrics to count the call", counted).await;
    let (status, skills) = get_text(&http, &base, "/skillbridge/skills").await;
    assert_eq!(status, 200, "{skills}");
    assert!(skills.contains("reverse"), "{skills}");

    // The app's own route still answers, and unknown admin routes get the admin 404.
    assert_eq!(get_text(&http, &base, "/").await, (200, "my service".to_owned()));
    let (status, body) = get_text(&http, &base, "/skillbridge/nope").await;
    assert_eq!(status, 404, "{body}");

    // The program runs the bridge until its token is cancelled; the run then shuts it down cleanly.
    let shutdown = CancellationToken::new();
    let run = {
        let (bridge, shutdown) = (bridge.clone(), shutdown.clone());
        tokio::spawn(async move { bridge.run(shutdown.cancelled()).await })
    };
    shutdown.cancel();
    let report = tokio::time::timeout(WAIT, run)
        .await
        .expect("the run ends once the token is cancelled")
        .unwrap()
        .expect("a run ended by its token is Ok");
    assert_eq!(report.cancelled, 0);
    assert!(!report.answers_abandoned);
    assert_eq!(
        report.deleted,
        std::slice::from_ref(&thread),
        "delete_on_exit deletes the created session"
    );
    let session = double.sessions().into_iter().find(|s| s.id == thread).unwrap();
    assert!(session.deleted);
    assert!(matches!(bridge.start().await, Err(skillbridge::BridgeError::ShutDown)));

    // The app outlives the bridge.
    assert_eq!(get_text(&http, &base, "/").await, (200, "my service".to_owned()));
    stop_app.cancel();
    tokio::time::timeout(WAIT, server)
        .await
        .expect("the app stops")
        .unwrap()
        .unwrap();
}
