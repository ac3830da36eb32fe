//! The scripted Responses-API model over HTTP: every turn's calls get call ids of their own, and the final
//! message quotes the turn's outputs only, with the conversation history sent the way Codex sends it.

mod common;

use std::collections::HashSet;

use common::WAIT;
use serde_json::{Value, json};
use skillbridge_doubles::model::{ModelScript, ScriptedModel, tool_outputs, turn_outputs};

/// Posts a request and returns the output items of the streamed response.
async fn respond(model: &ScriptedModel, input: &[Value]) -> Vec<Value> {
    let response = reqwest::Client::new()
        .post(format!("{}/responses", model.base_url()))
        .json(&json!({"model": "fake-model", "input": input, "stream": true}))
        .timeout(WAIT)
        .send()
        .await
        .expect("the model answers");
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str::<Value>(data).unwrap())
        .filter(|event| event["type"] == "response.output_item.done")
        .map(|event| event["item"].clone())
        .collect()
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

fn output(call: &Value, text: &str) -> Value {
    json!({"type": "function_call_output", "call_id": call["call_id"], "output": text})
}

/// Plays one turn of a conversation: the user message, the model's calls, their outputs (`answer` of the
/// call's arguments), the model's message. Returns the call ids and the final message's text.
async fn turn(
    model: &ScriptedModel,
    history: &mut Vec<Value>,
    prompt: &str,
    answer: impl Fn(&Value) -> String,
) -> (Vec<String>, String) {
    history.push(user(prompt));
    let calls = respond(model, history).await;
    assert!(calls.iter().all(|item| item["type"] == "function_call"), "{calls:?}");
    let mut ids = Vec::new();
    for call in &calls {
        ids.push(call["call_id"].as_str().unwrap().to_owned());
        history.push(call.clone());
    }
    for call in &calls {
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        history.push(output(call, &answer(&arguments)));
    }
    let reply = respond(model, history).await;
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0]["type"], "message");
    history.push(reply[0].clone());
    let text = reply[0]["content"][0]["text"].as_str().unwrap().to_owned();
    (ids, text)
}

fn upper(arguments: &Value) -> String {
    arguments["text"].as_str().unwrap().to_uppercase()
}

#[tokio::test]
async fn every_turn_gets_call_ids_of_its_own_and_quotes_its_own_outputs() {
    let script = ModelScript::new()
        .call("uppercase", json!({"text": "a"}))
        .call("uppercase", json!({"text": "b"}));
    let model = ScriptedModel::start(script.clone()).await;

    let mut conversation = Vec::new();
    let (first_ids, first) = turn(&model, &mut conversation, "one", upper).await;
    assert_eq!(first_ids, [ModelScript::call_id(0, 0), ModelScript::call_id(0, 1)]);
    assert_eq!(first, "Tool said: A | B");
    let (second_ids, second) = turn(&model, &mut conversation, "two", |args| format!("2{}", upper(args))).await;
    assert_eq!(second_ids, ["call_1_0", "call_1_1"]);
    assert_eq!(second, "Tool said: 2A | 2B", "only this turn's outputs are quoted");

    let mut other = Vec::new();
    let (other_ids, _) = turn(&model, &mut other, "elsewhere", upper).await;
    assert_eq!(other_ids, ["call_2_0", "call_2_1"], "unique across conversations too");

    let all = model.call_ids();
    assert_eq!(all.len(), 6);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 6, "{all:?}");
    // What the helpers read from the last request of the second turn.
    let requests = model.requests();
    let last_of_second = &requests[3];
    assert_eq!(
        tool_outputs(last_of_second).len(),
        4,
        "the history carries the first turn's outputs"
    );
    let outputs = turn_outputs(last_of_second);
    assert_eq!(
        outputs,
        [
            ("call_1_0".to_owned(), "2A".to_owned()),
            ("call_1_1".to_owned(), "2B".to_owned())
        ]
    );
    assert!(script.all_answered(&outputs));
    assert_eq!(script.final_text(&outputs), second);
}

#[tokio::test]
async fn a_turn_whose_outputs_are_missing_gets_new_calls_not_old_ones() {
    let model = ScriptedModel::start(ModelScript::new().call("uppercase", json!({"text": "a"}))).await;
    let mut history = vec![user("one")];
    let calls = respond(&model, &history).await;
    assert_eq!(calls[0]["call_id"], "call_0_0");
    history.push(calls[0].clone());
    // A new user message before the output arrived: a new turn, which starts with new calls.
    history.push(user("two"));
    let calls = respond(&model, &history).await;
    assert_eq!(calls[0]["type"], "function_call");
    assert_eq!(calls[0]["call_id"], "call_1_0");
    assert_eq!(calls[0]["id"], "fc_1_0");
}
