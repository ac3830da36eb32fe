//! Restarts, as codex-manager restarts: sessions survive, request ids start at 0 again, pending calls and
//! sockets do not; and the answer identity check that exposes an answer delivered to the wrong call.
//!
//! A restart cuts every connection, pooled keep-alive ones included, so each test uses a fresh REST client
//! after one, as a client whose pooled connection failed would.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Rest, WAIT, Ws, eventually};
use serde_json::{Value, json};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::{Misdelivery, RestartReport, TurnScript};

/// Creates a session over REST and returns its id.
async fn session(rest: &Rest) -> String {
    let created = rest
        .post("/api/sessions", json!({"dynamicTools": [common::tool("uppercase")]}))
        .await;
    assert_eq!(created.status, 200);
    created.body["session"]["sessionId"].as_str().unwrap().to_owned()
}

/// An answer whose text is the call's arguments, as a skill that echoes them answers.
fn echo(arguments: &Value) -> Value {
    json!({"contentItems": [{"type": "inputText", "text": arguments.to_string()}]})
}

#[tokio::test]
async fn restart_keeps_sessions_and_numbers_request_ids_from_zero() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = session(&rest).await;
    double.script_turn(&thread, TurnScript::new().final_message("done"));
    let sent = rest
        .post(&format!("/api/sessions/{thread}/messages"), json!({"text": "hello"}))
        .await;
    assert_eq!(sent.status, 202);
    assert!(eventually(|| double.sessions()[0].active_turn.is_none()).await);
    let before = rest.get(&format!("/api/sessions/{thread}")).await.body;
    let first = double.inject_call(&thread, "uppercase", json!({"text": "a"}));
    let second = double.inject_call(&thread, "uppercase", json!({"text": "b"}));
    assert_eq!((first.request_id.as_str(), second.request_id.as_str()), ("0", "1"));

    let report = double.restart();

    assert_eq!(
        report,
        RestartReport {
            sockets_closed: 0,
            connections_cut: report.connections_cut,
            calls_forgotten: 2,
            turns_interrupted: 0,
            sessions_lost: 0,
        }
    );
    let rest = Rest::new(&double);
    let after = rest.get(&format!("/api/sessions/{thread}")).await;
    assert_eq!(after.status, 200, "the session survives");
    assert_eq!(after.body["thread"]["turns"], before["thread"]["turns"]);
    assert_eq!(after.body["transcript"], before["transcript"]);
    assert_eq!(after.body["transcript"][1]["content"], "done");
    assert_eq!(double.sessions()[0].messages, ["hello"]);
    let listed = rest.get(&format!("/api/sessions/{thread}/tool-calls")).await;
    assert_eq!(listed.body, json!({"data": []}), "the old process's calls are gone");

    let again = double.inject_call(&thread, "uppercase", json!({"text": "c"}));
    assert_eq!(again.request_id, "0", "a new process numbers its requests from 0");
    assert!(
        ![&first.call_id, &second.call_id].contains(&&again.call_id),
        "call ids are never reused: {again:?}"
    );
    let listed = rest.get(&format!("/api/sessions/{thread}/tool-calls")).await;
    assert_eq!(listed.body["data"][0]["requestId"], "0");
    assert_eq!(listed.body["data"][0]["callId"], again.call_id.as_str());
    // The session still takes messages.
    let sent = rest
        .post(&format!("/api/sessions/{thread}/messages"), json!({"text": "again"}))
        .await;
    assert_eq!(sent.status, 202);
}

#[tokio::test]
async fn an_answer_to_an_old_request_id_gets_404_unless_a_new_call_holds_it() {
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    assert_eq!(
        double.inject_tool_call(&thread, "uppercase", json!({"text": "old a"})),
        "0"
    );
    assert_eq!(
        double.inject_tool_call(&thread, "uppercase", json!({"text": "old b"})),
        "1"
    );

    double.restart();

    let rest = Rest::new(&double);
    let gone = rest.respond("1", json!({"text": "OLD B"})).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body, json!({"status": "not_found", "requestId": "1"}));
    let new = double.inject_call(&thread, "uppercase", json!({"text": "new"}));
    assert_eq!(new.request_id, "0");
    // The hazard: an answer meant for the old call 0 is accepted for the new call 0.
    let stale = rest.respond("0", json!({"text": "OLD A"})).await;
    assert_eq!(stale.status, 200);
    assert_eq!(
        stale.body,
        json!({"status": "ok", "requestId": "0", "threadId": thread})
    );
    assert_eq!(
        double.wait_answered("0", WAIT).await,
        Some(json!({"text": "OLD A"})),
        "the new call took the old call's answer"
    );
    assert!(double.pending(&thread).is_empty());
    assert!(double.misdelivered().is_empty(), "nothing is checked unless asked");
}

#[tokio::test]
async fn the_identity_check_records_an_answer_meant_for_another_call() {
    let double = CodexManagerDouble::builder()
        .check_answer_identity(true)
        .start()
        .await
        .unwrap();
    let thread = double.create_session(vec![]);
    let old = double.inject_call(&thread, "echo", json!({"text": "old"}));
    let old_arguments = double.pending(&thread)[0]["arguments"].clone();
    assert_eq!(old_arguments, json!({"text": "old", "call_id": old.call_id}));

    double.restart();

    let new = double.inject_call(&thread, "echo", json!({"text": "new"}));
    assert_eq!(new.request_id, old.request_id);
    let rest = Rest::new(&double);
    // A bridge that answers the old call by its request id after the restart.
    let stale = rest.respond(&old.request_id, echo(&old_arguments)).await;
    assert_eq!(stale.status, 200, "answered as the real server would");
    assert_eq!(
        double.misdelivered(),
        [Misdelivery {
            request_id: new.request_id.clone(),
            expected_call_id: new.call_id.clone(),
            answer_text: old_arguments.to_string(),
        }]
    );

    // Answers that name their own call are not recorded, failures included.
    let third = double.inject_call(&thread, "echo", Value::Null);
    let arguments = double.pending(&thread)[0]["arguments"].clone();
    assert_eq!(arguments, json!({"call_id": third.call_id}));
    let failure = json!({"success": false, "text": format!("bad input: {arguments}")});
    assert_eq!(rest.respond(&third.request_id, failure).await.status, 200);
    assert_eq!(double.misdelivered().len(), 1);
}

#[tokio::test]
async fn websocket_clients_see_the_socket_closed_and_a_new_ready_on_reconnect() {
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    let mut filtered = Ws::connect(&double, Some(&thread)).await;
    let mut unfiltered = Ws::connect(&double, None).await;

    let report = double.restart();

    assert_eq!(report.sockets_closed, 2);
    assert_eq!(double.socket_count(), 0);
    filtered.end().await;
    unfiltered.end().await;
    // Events published while no socket is connected are lost, as on the real server; the call stays pending.
    let lost = double.inject_tool_call(&thread, "uppercase", json!({"text": "unseen"}));
    assert_eq!(lost, "0");
    let mut again = Ws::connect(&double, Some(&thread)).await;
    assert_eq!(again.frames_until_pong().await, Vec::<Value>::new());
    assert_eq!(double.pending(&thread)[0]["requestId"], "0");
    // The new socket gets what is published from now on.
    double.inject_tool_call(&thread, "uppercase", json!({"text": "seen"}));
    let signal = again.next().await;
    assert_eq!(signal["type"], "app_server.request.item.tool.call");
    assert_eq!(signal["payload"]["requestId"], json!(1));
}

#[tokio::test]
async fn a_restart_ends_turns_in_progress_and_stops_their_scripts() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = session(&rest).await;
    double.script_turn(
        &thread,
        TurnScript::new()
            .tool_call("uppercase", json!({"text": "first"}))
            .tool_call("uppercase", json!({"text": "second"}))
            .final_message("never said"),
    );
    let mut ws = Ws::connect(&double, Some(&thread)).await;
    let sent = rest
        .post(&format!("/api/sessions/{thread}/messages"), json!({"text": "go"}))
        .await;
    let turn_id = sent.body["turnId"].as_str().unwrap().to_owned();
    let signal = loop {
        let frame = ws.next().await;
        if frame["type"] == "app_server.request.item.tool.call" {
            break frame;
        }
    };
    assert_eq!(signal["payload"]["requestId"], json!(0));

    let report = double.restart();

    assert_eq!((report.turns_interrupted, report.calls_forgotten), (1, 1));
    let tail: Vec<Value> = ws
        .frames_until_end()
        .await
        .iter()
        .map(|text| serde_json::from_str(text).unwrap())
        .collect();
    assert!(
        tail.iter().all(|frame| frame["type"] == "tool_call_requested"),
        "only what was sent before the restart: {tail:?}"
    );
    let rest = Rest::new(&double);
    let read = rest.get(&format!("/api/sessions/{thread}")).await;
    let turn = &read.body["thread"]["turns"][0];
    assert_eq!(
        (turn["id"].as_str(), turn["status"].as_str()),
        (Some(turn_id.as_str()), Some("interrupted"))
    );
    assert!(turn["completedAt"].is_i64());
    assert_eq!(double.sessions()[0].active_turn, None);
    let interrupt = rest.post(&format!("/api/sessions/{thread}/interrupt"), json!({})).await;
    assert_eq!(interrupt.status, 409, "no turn is in progress any more");

    // The script stopped: answering its call is refused, and it issues no second call and no message.
    let mut ws = Ws::connect(&double, Some(&thread)).await;
    assert_eq!(rest.respond("0", json!({"text": "FIRST"})).await.status, 404);
    assert_eq!(ws.frames_until_pong().await, Vec::<Value>::new());
    assert!(double.pending(&thread).is_empty());
}

#[tokio::test]
async fn restart_and_lose_sessions_answers_404_on_the_session_routes() {
    let double = CodexManagerDouble::start().await.unwrap();
    let rest = Rest::new(&double);
    let thread = session(&rest).await;
    double.inject_tool_call(&thread, "uppercase", json!({"text": "x"}));

    let report = double.restart_and_lose_sessions();

    assert_eq!((report.sessions_lost, report.calls_forgotten), (1, 1));
    assert!(double.sessions().is_empty());
    let rest = Rest::new(&double);
    let missing = json!({"status": "not_found", "sessionId": thread});
    let read = rest.get(&format!("/api/sessions/{thread}")).await;
    assert_eq!((read.status, &read.body), (404, &missing));
    let sent = rest
        .post(&format!("/api/sessions/{thread}/messages"), json!({"text": "hi"}))
        .await;
    assert_eq!((sent.status, &sent.body), (404, &missing));
    let interrupted = rest.post(&format!("/api/sessions/{thread}/interrupt"), json!({})).await;
    assert_eq!(interrupted.status, 404);
    assert_eq!(rest.delete(&format!("/api/sessions/{thread}")).await.status, 404);
    // As for any unknown session, the listing is empty rather than 404.
    let listed = rest.get(&format!("/api/sessions/{thread}/tool-calls")).await;
    assert_eq!((listed.status, listed.body), (200, json!({"data": []})));
    assert_eq!(rest.respond("0", json!({"text": "X"})).await.status, 404);
}

#[tokio::test]
async fn an_answer_in_flight_during_a_restart_gets_no_response_and_is_not_accepted() {
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    let old = double.inject_call(&thread, "uppercase", json!({"text": "old"}));
    // Long enough that only the restart can end the request within the wait.
    double.set_response_delay(WAIT * 10);
    let answering = {
        let url = format!("{}/api/tool-calls/{}/response", double.base_url(), old.request_id);
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"text": "OLD"}))
                .timeout(WAIT)
                .send()
                .await
        })
    };
    // The body is recorded once the call is claimed: the answer is in flight.
    assert!(eventually(|| !double.responses_for(&old.request_id).is_empty()).await);

    double.restart();
    double.set_response_delay(Duration::ZERO);
    let new = double.inject_call(&thread, "uppercase", json!({"text": "new"}));

    let outcome = answering.await.unwrap();
    let error = outcome.expect_err("the restart cut the connection before any response");
    assert!(!error.is_timeout(), "cut, not timed out: {error}");
    assert_eq!(new.request_id, old.request_id);
    assert_eq!(double.pending(&thread)[0]["callId"], new.call_id.as_str());
    assert_eq!(double.wait_answered(&new.request_id, Duration::ZERO).await, None);
}

/// Reads frames, answering each tool call by echoing its arguments, until the turn completes; returns the
/// calls seen as `(request id, call id)`.
async fn bridge_turn(ws: &mut Ws, rest: &Rest) -> Vec<(String, String)> {
    let mut calls = Vec::new();
    for _ in 0..100 {
        let frame = ws.next().await;
        match frame["type"].as_str().unwrap() {
            "app_server.request.item.tool.call" => {
                let request_id = frame["payload"]["requestId"].as_u64().unwrap().to_string();
                let params = &frame["payload"]["params"];
                calls.push((request_id.clone(), params["callId"].as_str().unwrap().to_owned()));
                let reply = rest.respond(&request_id, echo(&params["arguments"])).await;
                assert_eq!(reply.status, 200);
            }
            "app_server.turn.completed" => return calls,
            _ => {}
        }
    }
    panic!("the turn did not complete within 100 frames");
}

#[tokio::test]
async fn call_ids_never_repeat_across_turns_sessions_or_restarts() {
    let script = TurnScript::new()
        .tool_call("uppercase", json!({"text": "a"}))
        .tool_call("uppercase", json!({"text": "b"}))
        .final_message("done");
    let double = CodexManagerDouble::builder()
        .default_turn(script)
        .check_answer_identity(true)
        .start()
        .await
        .unwrap();
    let threads = [double.create_session(vec![]), double.create_session(vec![])];
    let mut request_ids = Vec::new();
    let mut call_ids = Vec::new();
    for round in 0..2 {
        let rest = Rest::new(&double);
        for thread in &threads {
            for _turn in 0..2 {
                let mut ws = Ws::connect(&double, Some(thread)).await;
                let sent = rest
                    .post(&format!("/api/sessions/{thread}/messages"), json!({"text": "go"}))
                    .await;
                assert_eq!(sent.status, 202);
                for (request_id, call_id) in bridge_turn(&mut ws, &rest).await {
                    request_ids.push((round, request_id));
                    call_ids.push(call_id);
                }
            }
        }
        if round == 0 {
            double.restart();
        }
    }
    assert_eq!(call_ids.len(), 16);
    let distinct: HashSet<&String> = call_ids.iter().collect();
    assert_eq!(distinct.len(), call_ids.len(), "a call id was reused: {call_ids:?}");
    let numbered = |round| -> Vec<String> {
        request_ids
            .iter()
            .filter(|(r, _)| *r == round)
            .map(|(_, id)| id.clone())
            .collect()
    };
    let expected: Vec<String> = (0..8).map(|n: u32| n.to_string()).collect();
    assert_eq!(numbered(0), expected);
    assert_eq!(numbered(1), expected, "request ids start at 0 again after the restart");
    assert!(double.misdelivered().is_empty(), "{:?}", double.misdelivered());
}
