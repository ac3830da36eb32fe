//! The app-server event loop over an in-memory pipe: tool calls to the sink and answers back with Codex's
//! ids, unhandled requests refused out loud, turn completion and interruption.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use skillbridge::ToolResult;
use skillbridge::telemetry::{BridgeHealth, CallSource};
use skillbridge::upstream::app_server::rpc::RpcConnection;
use skillbridge::upstream::app_server::{AppServerEvents, PendingAnswers};
use skillbridge::upstream::{AnswerOutcome, CallSink, Feed, Submitted, ToolCall, TurnStatus, TurnTracker};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

const STEP: Duration = Duration::from_secs(5);

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/app-server-0.169/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Records what the event loop hands it; takes calls unless told it is closed.
struct RecordingSink {
    calls: mpsc::UnboundedSender<ToolCall>,
    cancelled: Mutex<Vec<String>>,
    open: bool,
}

impl CallSink for RecordingSink {
    fn submit(&self, call: ToolCall, _source: CallSource) -> Submitted {
        self.calls.send(call).unwrap();
        if self.open {
            Submitted::Accepted
        } else {
            Submitted::Closed
        }
    }

    fn cancel_turn(&self, turn_id: &str) {
        self.cancelled.lock().unwrap().push(turn_id.to_owned());
    }
}

struct Harness {
    answers: Arc<PendingAnswers>,
    turns: Arc<TurnTracker>,
    sink: Arc<RecordingSink>,
    calls: mpsc::UnboundedReceiver<ToolCall>,
    lines: Lines<BufReader<ReadHalf<DuplexStream>>>,
    writer: WriteHalf<DuplexStream>,
}

impl Harness {
    fn start(sink_open: bool) -> Self {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (our_read, our_write) = tokio::io::split(ours);
        let (rpc, incoming) = RpcConnection::new(our_read, our_write);
        let answers = Arc::new(PendingAnswers::new(rpc.clone()));
        let turns = Arc::new(TurnTracker::new());
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let sink = Arc::new(RecordingSink {
            calls: calls_tx,
            cancelled: Mutex::new(Vec::new()),
            open: sink_open,
        });
        let feed = Feed::new(sink.clone(), Arc::new(BridgeHealth::new()), turns.clone());
        tokio::spawn(AppServerEvents::new(rpc, answers.clone(), feed).run(incoming));
        let (their_read, writer) = tokio::io::split(theirs);
        Self {
            answers,
            turns,
            sink,
            calls,
            lines: BufReader::new(their_read).lines(),
            writer,
        }
    }

    async fn send(&mut self, message: Value) {
        self.writer.write_all(format!("{message}\n").as_bytes()).await.unwrap();
    }

    /// The next message the client wrote.
    async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(STEP, self.lines.next_line())
            .await
            .expect("the client answered nothing")
            .unwrap()
            .expect("the client closed the pipe");
        serde_json::from_str(&line).unwrap()
    }

    async fn next_call(&mut self) -> ToolCall {
        tokio::time::timeout(STEP, self.calls.recv())
            .await
            .expect("no tool call reached the sink")
            .unwrap()
    }
}

#[tokio::test]
async fn a_tool_call_reaches_the_sink_and_its_answer_goes_back_under_codexs_id() {
    let mut harness = Harness::start(true);
    harness.send(fixture("item-tool-call")).await;

    let call = harness.next_call().await;
    assert_eq!(call.request_id, "0");
    assert_eq!(call.tool, "uppercase");
    assert_eq!(call.arguments, json!({"text": "hello bridge"}));
    assert_eq!(harness.answers.len(), 1);

    let outcome = harness.answers.answer(&call, &ToolResult::text("HELLO BRIDGE")).await;
    assert_eq!(outcome, AnswerOutcome::Delivered);
    assert_eq!(
        harness.read().await,
        json!({"id": 0, "result": {"contentItems": [{"type": "inputText", "text": "HELLO BRIDGE"}], "success": true}})
    );

    let again = harness.answers.answer(&call, &ToolResult::text("twice")).await;
    assert!(
        matches!(again, AnswerOutcome::Rejected { ref reason } if reason.contains("not pending")),
        "{again:?}"
    );
}

#[tokio::test]
async fn approvals_are_declined_and_other_unhandled_requests_get_method_not_found() {
    let mut harness = Harness::start(true);
    harness
        .send(json!({"method": "item/commandExecution/requestApproval", "id": 5, "params": {"command": "rm -rf /"}}))
        .await;
    harness
        .send(json!({"method": "item/fileChange/requestApproval", "id": 6, "params": {}}))
        .await;
    harness
        .send(json!({"method": "execCommandApproval", "id": 7, "params": {}}))
        .await;
    harness
        .send(json!({"method": "account/chatgptAuthTokens/refresh", "id": 8, "params": {}}))
        .await;

    assert_eq!(
        harness.read().await,
        json!({"id": 5, "result": {"decision": "decline"}})
    );
    assert_eq!(
        harness.read().await,
        json!({"id": 6, "result": {"decision": "decline"}})
    );
    // The legacy approvals take a `denied` decision with its reason (Codex 0.169's ReviewDecision schema).
    let legacy = harness.read().await;
    assert_eq!(legacy["id"], 7);
    assert!(
        legacy["result"]["decision"]["denied"]["rejection"].is_string(),
        "{legacy}"
    );
    assert_eq!(
        harness.read().await,
        json!({"id": 8, "error": {"code": -32601, "message": "skillbridge does not handle account/chatgptAuthTokens/refresh"}})
    );
}

#[tokio::test]
async fn a_tool_call_without_a_tool_name_is_answered_invalid_params() {
    let mut harness = Harness::start(true);
    harness
        .send(json!({"method": "item/tool/call", "id": 3, "params": {"threadId": "t", "callId": "c", "arguments": {}}}))
        .await;

    let answer = harness.read().await;
    assert_eq!(answer["id"], 3);
    assert_eq!(answer["error"]["code"], -32602);
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("`tool`"),
        "{answer}"
    );
    assert_eq!(harness.answers.len(), 0);
}

#[tokio::test]
async fn a_call_the_sink_refuses_is_answered_as_a_failure_instead_of_left_waiting() {
    let mut harness = Harness::start(false);
    harness.send(fixture("item-tool-call")).await;

    harness.next_call().await;
    let answer = harness.read().await;
    assert_eq!(answer["id"], 0);
    assert_eq!(answer["result"]["success"], false);
    let text = answer["result"]["contentItems"][0]["text"].as_str().unwrap();
    assert!(text.contains("shutting down") && text.contains("uppercase"), "{text}");
}

#[tokio::test]
async fn the_final_reply_is_the_last_agent_message_of_the_turn() {
    let mut harness = Harness::start(true);
    let turn_id = "01a20b43-f5a9-7eb0-bdfb-61c8fbaaaf01";
    for text in ["thinking...", "The answer is 42."] {
        let mut item = fixture("turn-completed")["params"]["turn"]["items"][0].clone();
        item["text"] = json!(text);
        harness
            .send(json!({"method": "item/completed", "params": {"item": item, "threadId": "t", "turnId": turn_id}}))
            .await;
    }
    let mut completed = fixture("turn-completed");
    completed["params"]["turn"]["items"] = json!([]);
    let thread_id = completed["params"]["threadId"].as_str().unwrap().to_owned();
    harness.send(completed).await;

    let outcome = harness
        .turns
        .wait(&thread_id, turn_id, STEP)
        .await
        .expect("the turn completion was not recorded");
    assert_eq!(outcome.status, TurnStatus::Completed);
    assert_eq!(outcome.final_reply.as_deref(), Some("The answer is 42."));
    assert!(harness.sink.cancelled.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_interrupted_turn_cancels_its_calls_and_a_resolved_call_is_no_longer_answered() {
    let mut harness = Harness::start(true);
    harness.send(fixture("item-tool-call")).await;
    let call = harness.next_call().await;

    let mut interrupted = fixture("turn-completed");
    interrupted["params"]["turn"]["status"] = json!("interrupted");
    interrupted["params"]["turn"]["items"] = json!([]);
    harness.send(interrupted).await;
    harness
        .send(json!({"method": "serverRequest/resolved", "params": {"threadId": call.thread_id, "requestId": 0}}))
        .await;

    let outcome = harness
        .turns
        .wait(&call.thread_id, call.turn_id.as_deref().unwrap(), STEP)
        .await
        .unwrap();
    assert_eq!(outcome.status, TurnStatus::Interrupted);
    assert_eq!(
        *harness.sink.cancelled.lock().unwrap(),
        vec![call.turn_id.clone().unwrap()]
    );
    // `serverRequest/resolved` comes after the completion: wait for the loop to have processed it.
    let deadline = tokio::time::Instant::now() + STEP;
    while !harness.answers.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resolved call stayed pending"
        );
        tokio::task::yield_now().await;
    }
    let late = harness.answers.answer(&call, &ToolResult::failure("cancelled")).await;
    assert!(matches!(late, AnswerOutcome::Rejected { .. }), "{late:?}");
}
