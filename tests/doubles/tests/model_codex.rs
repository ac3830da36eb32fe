//! The scripted model under the real `codex app-server` (0.169): two turns in one thread get call ids of
//! their own, as a real model's are, while Codex keeps numbering its requests; each turn's final message
//! quotes that turn's outputs only. Needs the Codex binary (`scripts/install-codex.sh`); skipped with
//! `SKILLBRIDGE_SKIP_CODEX=1`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use skillbridge_doubles::model::{CodexHome, ModelScript, ScriptedModel, require_codex, turn_outputs};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A bound on each wait for the real process (start-up included): a fail-safe, not a margin.
const PROCESS_WAIT: Duration = Duration::from_secs(60);

/// `codex app-server` over JSON-RPC lines.
struct AppServer {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl AppServer {
    fn spawn(codex: &std::path::Path, home: &CodexHome) -> AppServer {
        let mut child = Command::new(codex)
            .arg("app-server")
            .env("CODEX_HOME", home.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("codex app-server starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        AppServer {
            _child: child,
            stdin,
            lines,
            next_id: 100,
        }
    }

    async fn send(&mut self, message: Value) {
        let line = format!("{message}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("write to codex");
    }

    async fn read(&mut self) -> Value {
        let line = tokio::time::timeout(PROCESS_WAIT, self.lines.next_line())
            .await
            .expect("codex says something within the wait")
            .expect("readable stdout")
            .expect("codex is still running");
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("{line:?} is not JSON: {err}"))
    }

    /// Sends a request and returns its result, skipping notifications meanwhile.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"id": id, "method": method, "params": params})).await;
        loop {
            let message = self.read().await;
            if message["id"] == id && message.get("method").is_none() {
                assert!(message.get("error").is_none(), "{method} failed: {message}");
                return message["result"].clone();
            }
        }
    }
}

/// What one turn showed the client.
struct Turn {
    /// `(JSON-RPC request id, call id)` of each `item/tool/call`.
    calls: Vec<(u64, String)>,
    final_message: Option<String>,
}

/// Runs a turn, answering each tool call with its uppercased `text` prefixed by `prefix`.
async fn turn(app: &mut AppServer, thread: &str, prompt: &str, prefix: &str) -> Turn {
    let input = json!([{"type": "text", "text": prompt, "text_elements": []}]);
    app.request("turn/start", json!({"threadId": thread, "input": input}))
        .await;
    let mut calls = Vec::new();
    let mut final_message = None;
    loop {
        let message = app.read().await;
        match message["method"].as_str() {
            Some("item/tool/call") => {
                let params = &message["params"];
                calls.push((
                    message["id"].as_u64().expect("a numeric request id"),
                    params["callId"].as_str().unwrap().to_owned(),
                ));
                let text = format!(
                    "{prefix}{}",
                    params["arguments"]["text"].as_str().unwrap().to_uppercase()
                );
                let result = json!({"contentItems": [{"type": "inputText", "text": text}], "success": true});
                app.send(json!({"id": message["id"], "result": result})).await;
            }
            Some("item/completed") if message["params"]["item"]["type"] == "agentMessage" => {
                final_message = message["params"]["item"]["text"].as_str().map(str::to_owned);
            }
            Some("turn/completed") => return Turn { calls, final_message },
            _ => {}
        }
    }
}

#[tokio::test]
async fn two_turns_in_one_thread_get_call_ids_of_their_own() {
    let Some(codex) = require_codex("two_turns_in_one_thread_get_call_ids_of_their_own") else {
        return;
    };
    let script = ModelScript::new()
        .call("uppercase", json!({"text": "a"}))
        .call("uppercase", json!({"text": "b"}));
    let model = ScriptedModel::start(script.clone()).await;
    let home = CodexHome::new(&model.base_url()).unwrap();
    let workdir = home.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    let mut app = AppServer::spawn(&codex, &home);
    app.request(
        "initialize",
        json!({"clientInfo": {"name": "skillbridge-doubles", "version": "0"}, "capabilities": {"experimentalApi": true}}),
    )
    .await;
    app.send(json!({"method": "initialized"})).await;
    let tool = json!({
        "type": "function",
        "name": "uppercase",
        "description": "Uppercase a text.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    });
    let started = app
        .request("thread/start", json!({"cwd": workdir, "dynamicTools": [tool]}))
        .await;
    let thread = started["thread"]["id"].as_str().unwrap().to_owned();

    let first = turn(&mut app, &thread, "first", "").await;
    let second = turn(&mut app, &thread, "second", "2").await;

    let call_ids = |turn: &Turn| turn.calls.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>();
    let mut first_ids = call_ids(&first);
    first_ids.sort();
    let mut second_ids = call_ids(&second);
    second_ids.sort();
    assert_eq!(first_ids, ["call_0_0", "call_0_1"]);
    assert_eq!(second_ids, ["call_1_0", "call_1_1"], "the second turn's calls are new");
    assert_eq!(model.call_ids(), ["call_0_0", "call_0_1", "call_1_0", "call_1_1"]);
    let mut request_ids: Vec<u64> = first.calls.iter().chain(&second.calls).map(|(id, _)| *id).collect();
    request_ids.sort_unstable();
    request_ids.dedup();
    assert_eq!(request_ids.len(), 4, "Codex numbers its requests on: {request_ids:?}");
    assert_eq!(first.final_message.as_deref(), Some("Tool said: A | B"));
    assert_eq!(
        second.final_message.as_deref(),
        Some("Tool said: 2A | 2B"),
        "the second turn quotes its own outputs, not the history's"
    );
    let last = model.requests().pop().expect("the model was asked");
    assert_eq!(script.final_text(&turn_outputs(&last)), "Tool said: 2A | 2B");
}
