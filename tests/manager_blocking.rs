//! The blocking facade: every call works from a plain thread with hooks, and calling or dropping it
//! inside an async context neither panics nor deadlocks.

mod manager_support;

use std::sync::{Arc, Mutex};

use http::Method;
use serde_json::json;
use skillbridge::ToolResult;
use skillbridge::manager::blocking;
use skillbridge::manager::{CodexManager, CreateSession, ManagerError, SendMessage};

use manager_support::Stub;

/// The stub runs on its own runtime; the blocking client is used from plain threads.
fn stub_on_runtime() -> (tokio::runtime::Runtime, Stub) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stub = runtime.block_on(Stub::start());
    (runtime, stub)
}

#[test]
fn every_operation_works_from_a_plain_thread() {
    let (_runtime, stub) = stub_on_runtime();
    let operations: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut cm = blocking::CodexManager::new(stub.config().bearer_token("tok").build().unwrap()).unwrap();
    cm.after("*", {
        let operations = operations.clone();
        move |call, response| {
            operations
                .lock()
                .unwrap()
                .push(format!("{} {}", call.operation, response.status.as_u16()))
        }
    });
    let created_body = stub.reply_fixture("rest-sessions-create-200.json");
    stub.reply_fixture("rest-sessions-send-message-202.json");
    stub.reply_fixture("rest-tool-calls-list-200-pending.json");
    stub.reply_fixture("rest-tool-calls-respond-200.json");
    stub.reply_fixture("rest-tool-calls-respond-404-already-answered.json");
    stub.reply_json(200, json!({"status": "ok"}));
    stub.reply_fixture("rest-sessions-get-200.json");
    stub.reply_fixture("rest-sessions-delete.json");
    stub.reply_json(200, json!({"data": []}));

    let worker = std::thread::spawn(move || {
        let created = cm.create_session(&CreateSession::new().cwd("/work")).unwrap();
        assert_eq!(
            created.session_id,
            created_body["session"]["sessionId"].as_str().unwrap()
        );
        let accepted = cm.send_message(&created.session_id, &SendMessage::new("hi")).unwrap();
        assert!(!accepted.turn_id.is_empty());
        let pending = cm.list_tool_calls(&created.session_id).unwrap();
        assert_eq!(pending.len(), 1);
        let ack = cm
            .respond_tool_call(&pending[0].request_id, &ToolResult::text("HI"))
            .unwrap();
        assert_eq!(ack.request_id, "1");
        let again = cm.respond_tool_call("1", &ToolResult::text("HI")).unwrap_err();
        assert!(again.is_already_answered(), "{again}");
        cm.interrupt(&created.session_id, Some(&accepted.turn_id)).unwrap();
        cm.get_session(&created.session_id).unwrap();
        cm.delete_session(&created.session_id).unwrap();
        cm.request("sessions.list", Method::GET, "/sessions", None).unwrap();
    });
    worker.join().unwrap();

    let received = stub.received();
    let routes: Vec<String> = received.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    let sid = "01a20b31-f8aa-7ee1-a8ed-f30e81e9ab3b";
    assert_eq!(
        routes,
        [
            "POST /api/sessions".to_owned(),
            format!("POST /api/sessions/{sid}/messages"),
            format!("GET /api/sessions/{sid}/tool-calls"),
            "POST /api/tool-calls/1/response".to_owned(),
            "POST /api/tool-calls/1/response".to_owned(),
            format!("POST /api/sessions/{sid}/interrupt"),
            format!("GET /api/sessions/{sid}"),
            format!("DELETE /api/sessions/{sid}"),
            "GET /api/sessions".to_owned(),
        ]
    );
    assert!(received.iter().all(|r| r.headers["authorization"] == "Bearer tok"));
    assert_eq!(
        received[5].body,
        Some(json!({"turnId": "01a20b39-691e-7b11-8a24-82d515e83aaa"}))
    );
    assert_eq!(
        operations.lock().unwrap().as_slice(),
        [
            "sessions.create 200",
            "sessions.send_message 202",
            "sessions.tool_calls.list 200",
            "tool_calls.respond 200",
            "sessions.interrupt 200",
            "sessions.get 200",
            "sessions.delete 200",
            "sessions.list 200",
        ]
    );
}

#[test]
fn builder_hooks_carry_over_to_the_blocking_client() {
    let (_runtime, stub) = stub_on_runtime();
    let cm = CodexManager::builder()
        .config(stub.config().build().unwrap())
        .before("*", |call| {
            call.headers.insert("x-origin", "blocking".parse().unwrap());
        })
        .build_blocking()
        .unwrap();
    stub.reply_json(200, json!({}));
    cm.get_session("s").unwrap();
    assert_eq!(stub.received()[0].headers["x-origin"], "blocking");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_and_dropping_inside_an_async_context_does_not_panic() {
    let stub = Stub::start().await;
    let cm = blocking::CodexManager::new(stub.config().build().unwrap()).unwrap();
    stub.reply_json(200, json!({"status": "ok"}));
    // Blocks this worker thread for the call; the stub keeps running on the other worker.
    assert_eq!(cm.delete_session("s").unwrap(), json!({"status": "ok"}));
    let clone = cm.clone();
    drop(cm);
    stub.reply_json(503, json!({"status": "error"}));
    let err = clone.get_session("s").unwrap_err();
    assert!(
        matches!(err, ManagerError::Status { .. }) && err.is_retryable(),
        "{err:?}"
    );
    drop(clone);
}
