//! Scripted turns: a message plays tool calls, then the final agent message and
//! `app_server.turn.completed`, the way a `send` client sees a real turn.

mod common;

use common::{Rest, Ws};
use serde_json::{Value, json};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::{TurnScript, answer_text};

/// Reads frames, answering each tool call with its uppercased `text`, until the turn completes;
/// returns the frame types seen and the completed frame.
async fn bridge_until_completed(ws: &mut Ws, rest: &Rest) -> (Vec<String>, Value) {
    let mut types = Vec::new();
    for _ in 0..100 {
        let frame = ws.next().await;
        let kind = frame["type"].as_str().unwrap().to_owned();
        types.push(kind.clone());
        match kind.as_str() {
            "app_server.request.item.tool.call" => {
                let id = frame["payload"]["requestId"].as_u64().unwrap().to_string();
                let text = frame["payload"]["params"]["arguments"]["text"]
                    .as_str()
                    .unwrap()
                    .to_uppercase();
                let reply = rest
                    .respond(&id, json!({"contentItems": [{"type": "inputText", "text": text}]}))
                    .await;
                assert_eq!(reply.status, 200);
            }
            "app_server.turn.completed" => return (types, frame),
            _ => {}
        }
    }
    panic!("the turn did not complete within 100 frames: {types:?}");
}

#[tokio::test]
async fn a_scripted_turn_runs_tool_calls_then_completes_with_the_message() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![common::tool("uppercase")]);
    double.script_turn(
        &thread,
        TurnScript::new()
            .tool_call("uppercase", json!({"text": "hello"}))
            .tool_call("uppercase", json!({"text": "bridge"}))
            .final_message_from(|answers| {
                format!(
                    "Tool said: {}",
                    answers.iter().map(answer_text).collect::<Vec<_>>().join(" ")
                )
            }),
    );
    let mut ws = Ws::connect(&double, Some(&thread)).await;
    let accepted = rest
        .post(
            &format!("/api/sessions/{thread}/messages"),
            json!({"text": "Please uppercase"}),
        )
        .await;
    assert_eq!(accepted.status, 202);
    let turn_id = accepted.body["turnId"].as_str().unwrap().to_owned();

    let (types, completed) = bridge_until_completed(&mut ws, &rest).await;
    assert_eq!(
        types,
        [
            "app_server.turn.started",
            "notification",
            "app_server.request.item.tool.call",
            "tool_call_requested",
            "tool_call_resolved",
            "app_server.request.item.tool.call",
            "tool_call_requested",
            "tool_call_resolved",
            "app_server.item.completed",
            "notification",
            "app_server.turn.completed",
        ],
        "calls are sequential: the second is issued after the first is answered"
    );
    let turn = &completed["payload"]["params"]["turn"];
    assert_eq!(turn["id"], turn_id.as_str());
    assert_eq!(turn["status"], "completed");
    assert_eq!(turn["items"][0]["type"], "agentMessage");
    assert_eq!(turn["items"][0]["text"], "Tool said: HELLO BRIDGE");

    let read = rest.get(&format!("/api/sessions/{thread}")).await;
    assert_eq!(read.body["thread"]["turns"][0]["status"], "completed");
    assert_eq!(read.body["transcript"][1]["content"], "Tool said: HELLO BRIDGE");
    assert_eq!(double.sessions()[0].active_turn, None);
}

#[tokio::test]
async fn parallel_calls_are_issued_together() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![]);
    double.script_turn(
        &thread,
        TurnScript::new()
            .tool_call("uppercase", json!({"text": "a"}))
            .tool_call("uppercase", json!({"text": "b"}))
            .parallel(true)
            .final_message("both done"),
    );
    let mut ws = Ws::connect(&double, Some(&thread)).await;
    rest.post(&format!("/api/sessions/{thread}/messages"), json!({"text": "go"}))
        .await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(ws.next().await["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen[2..],
        [
            "app_server.request.item.tool.call",
            "tool_call_requested",
            "app_server.request.item.tool.call",
            "tool_call_requested"
        ]
    );
    assert_eq!(double.pending(&thread).len(), 2);
    for row in double.pending(&thread) {
        rest.respond(row["requestId"].as_str().unwrap(), json!({"text": "x"}))
            .await;
    }
    let (_, completed) = bridge_until_completed(&mut ws, &rest).await;
    assert_eq!(completed["payload"]["params"]["turn"]["items"][0]["text"], "both done");
}

#[tokio::test]
async fn the_default_script_and_the_hook_choose_turns() {
    let double = CodexManagerDouble::builder()
        .default_turn(TurnScript::new().final_message("default"))
        .on_message(|message| {
            message.text.starts_with("shout ").then(|| {
                TurnScript::new()
                    .tool_call("uppercase", json!({"text": &message.text[6..]}))
                    .final_message_from(|answers| answer_text(&answers[0]))
            })
        })
        .start()
        .await
        .unwrap();
    let rest = Rest::new(&double);
    let thread = double.create_session(vec![]);
    let mut ws = Ws::connect(&double, Some(&thread)).await;

    rest.post(
        &format!("/api/sessions/{thread}/messages"),
        json!({"text": "shout hey"}),
    )
    .await;
    let (_, completed) = bridge_until_completed(&mut ws, &rest).await;
    assert_eq!(completed["payload"]["params"]["turn"]["items"][0]["text"], "HEY");

    rest.post(&format!("/api/sessions/{thread}/messages"), json!({"text": "whisper"}))
        .await;
    let (types, completed) = bridge_until_completed(&mut ws, &rest).await;
    assert!(!types.iter().any(|t| t == "app_server.request.item.tool.call"));
    assert_eq!(completed["payload"]["params"]["turn"]["items"][0]["text"], "default");
    assert_eq!(double.sessions()[0].messages, ["shout hey", "whisper"]);
}
