//! End to end against the codex-manager double: serve creates or attaches to sessions, executes tool calls and
//! answers them with the skill's output; `send` runs one turn and returns the reply; startup failures are clear.

mod bridge_support;

use std::time::Duration;

use bridge_support::{
    POLL_INTERVAL, WAIT, answer_success, answer_text, bridge_for, builder, client, client_at, eventually, listings,
    only_thread, send, send_bridge, start, upstream,
};
use serde_json::json;
use skillbridge::manager::{CodexManager, CreateSession};
use skillbridge::skill;
use skillbridge::upstream::UpstreamError;
use skillbridge::{BridgeError, CodexManagerUpstream, TurnEnd};
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::TurnScript;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Shouts a text: upper case with an exclamation mark.
#[skill]
fn shout(
    /// The text to shout.
    text: String,
) -> String {
    format!("{}!", text.to_uppercase())
}

#[tokio::test]
async fn a_tool_call_is_executed_and_answered_with_the_skills_output() {
    let double = CodexManagerDouble::start().await.unwrap();
    let upstream = upstream(&double)
        .delete_on_exit(true)
        .session_template(CreateSession::new().model("gpt-test"));
    let bridge = start(builder().upstream(upstream).prompt("please shout hello")).await;
    let thread = only_thread(&bridge);

    // The session was created with the catalog as its dynamic tools, and the prompt was sent to it.
    let session = double.sessions().into_iter().find(|s| s.id == thread).unwrap();
    let tools: Vec<&str> = session.tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(tools, ["shout"]);
    assert_eq!(session.tools[0]["inputSchema"]["properties"]["text"]["type"], "string");
    eventually("the first prompt", || {
        double
            .sessions()
            .iter()
            .any(|s| s.id == thread && s.messages == ["please shout hello"])
    })
    .await;
    let create = double
        .received()
        .into_iter()
        .find(|r| r.path == "/api/sessions")
        .unwrap();
    assert_eq!(create.body["model"], "gpt-test");

    let request_id = double.inject_tool_call(&thread, "shout", json!({"text": "hello"}));
    let body = double
        .wait_answered(&request_id, WAIT)
        .await
        .expect("the call is answered");
    assert_eq!(answer_text(&body), "HELLO!");
    assert!(answer_success(&body));
    assert_eq!(double.responses_for(&request_id).len(), 1);

    let report = bridge.shutdown().await;
    assert_eq!(report.deleted, std::slice::from_ref(&thread));
    assert!(double.sessions().iter().any(|s| s.id == thread && s.deleted));
}

// On the paused clock, so that "before the first periodic listing" is exact.
#[tokio::test(start_paused = true)]
async fn calls_published_before_the_bridge_connected_are_found_by_listing() {
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    // Nobody listens yet: the stream events are lost, only the pending row remains.
    let request_id = double.inject_tool_call(&thread, "shout", json!({"text": "early"}));
    let poll_interval = Duration::from_secs(60);
    let upstream = upstream(&double)
        .sessions(0)
        .attach(thread.clone())
        .poll_interval(poll_interval); // no periodic listing: the one at (re)connect finds it
    let started = Instant::now();
    let bridge = start(builder().upstream(upstream)).await;
    assert!(!bridge.sessions()[0].created);
    let body = double
        .wait_answered(&request_id, WAIT)
        .await
        .expect("answered after connect");
    assert!(
        started.elapsed() < poll_interval,
        "answered after {:?}: by a periodic listing, not the one at connect",
        started.elapsed()
    );
    assert_eq!(answer_text(&body), "EARLY!");
    let report = bridge.shutdown().await;
    assert!(report.deleted.is_empty(), "attached sessions are never deleted");
}

// On the paused clock, so that the listing rounds come exactly on the poll interval.
#[tokio::test(start_paused = true)]
async fn calls_of_sessions_not_served_are_left_alone_unless_all_sessions() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(bridge_for(&double)).await;
    let ours = only_thread(&bridge);
    let foreign = double.create_session(vec![]);

    let theirs = double.inject_tool_call(&foreign, "shout", json!({"text": "not mine"}));
    let mine = double.inject_tool_call(&ours, "shout", json!({"text": "mine"}));
    double.wait_answered(&mine, WAIT).await.expect("our call is answered");
    // Two more listing rounds after our answer, one poll interval apart: the foreign call is still untouched.
    // (Looked for every millisecond, so each round is seen within a millisecond.)
    let seen = listings(&double, &ours);
    let deadline = Instant::now() + WAIT;
    let mut rounds = Vec::new();
    while rounds.len() < 2 {
        assert!(Instant::now() < deadline, "no more listing rounds");
        if listings(&double, &ours) > seen + rounds.len() {
            rounds.push(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let interval = rounds[1] - rounds[0];
    let ms = Duration::from_millis(1);
    assert!(
        interval + ms >= POLL_INTERVAL && interval <= POLL_INTERVAL + ms,
        "listing rounds {interval:?} apart, the poll interval is {POLL_INTERVAL:?}"
    );
    assert!(double.responses_for(&theirs).is_empty());
    assert_eq!(double.pending(&foreign).len(), 1);
    bridge.shutdown().await;

    let bridge = start(builder().upstream(upstream(&double).all_sessions(true))).await;
    let live = double.inject_tool_call(&foreign, "shout", json!({"text": "live"}));
    let body = double
        .wait_answered(&live, WAIT)
        .await
        .expect("--all-sessions answers live calls of any session");
    assert_eq!(answer_text(&body), "LIVE!");
    // Once a session has been seen, its listing finds the call published before the bridge started.
    let body = double
        .wait_answered(&theirs, WAIT)
        .await
        .expect("and its older pending calls");
    assert_eq!(answer_text(&body), "NOT MINE!");
    bridge.shutdown().await;
}

#[tokio::test]
async fn several_sessions_are_served_and_each_gets_the_prompt() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = start(builder().upstream(upstream(&double).sessions(3)).prompt("go")).await;
    let threads: Vec<String> = bridge.sessions().iter().map(|s| s.id.clone()).collect();
    assert_eq!(threads.len(), 3);
    eventually("a prompt in every session", || {
        double.sessions().iter().filter(|s| s.messages == ["go"]).count() == 3
    })
    .await;
    let ids: Vec<String> = threads
        .iter()
        .map(|t| double.inject_tool_call(t, "shout", json!({"text": t})))
        .collect();
    for (thread, id) in threads.iter().zip(&ids) {
        let body = double.wait_answered(id, WAIT).await.expect("answered");
        assert_eq!(answer_text(&body), format!("{}!", thread.to_uppercase()));
    }
    let report = bridge.shutdown().await;
    assert!(report.deleted.is_empty(), "without --delete-on-exit sessions stay");
    assert!(double.sessions().iter().all(|s| !s.deleted));
}

#[tokio::test]
async fn startup_failures_are_clear_errors() {
    // Nothing listens on a port that was just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let double = CodexManagerDouble::start().await.unwrap();
    let unreachable = builder()
        .upstream(CodexManagerUpstream::new(client_at(&format!(
            "http://127.0.0.1:{port}"
        ))))
        .build()
        .unwrap();
    let error = unreachable.start().await.expect_err("fails");
    assert!(
        matches!(error, BridgeError::Upstream(UpstreamError::Unreachable { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")), "{error}");

    // codex-manager answers 401 to a client without the token: a 4xx on session creation.
    let guarded = CodexManagerDouble::builder()
        .require_bearer("s3cret-token")
        .start()
        .await
        .unwrap();
    let error = bridge_for(&guarded).build().unwrap().start().await.expect_err("fails");
    assert!(
        matches!(
            error,
            BridgeError::Upstream(UpstreamError::Refused {
                action: "create a session",
                ..
            })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("401"), "{error}");
    // With the token it works, and the token never shows in errors or debug output.
    let with_token = CodexManager::builder()
        .base_url(guarded.base_url())
        .bearer_token("s3cret-token");
    let shown = format!("{with_token:?}");
    let client = with_token.build().unwrap();
    let shown = format!("{shown}{client:?}{:?}", client.config());
    let bridge = builder().upstream(CodexManagerUpstream::new(client)).build().unwrap();
    let shown = format!("{shown}{bridge:?}");
    assert!(!shown.contains("s3cret-token"), "{shown}");
    bridge.start().await.expect("starts with the token");
    assert!(!format!("{bridge:?}").contains("s3cret-token"));
    bridge.shutdown().await;

    // Attaching to a session codex-manager does not know.
    let attach = builder()
        .upstream(upstream(&double).attach("no-such-session"))
        .build()
        .unwrap();
    let error = attach.start().await.expect_err("fails");
    assert!(
        matches!(&error, BridgeError::Upstream(UpstreamError::Attach { id, .. }) if id == "no-such-session"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_taken_admin_port_fails_before_any_session_is_created() {
    let double = CodexManagerDouble::start().await.unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bridge = bridge_for(&double)
        .admin_addr(taken.local_addr().unwrap())
        .build()
        .unwrap();
    let error = bridge.start().await.expect_err("fails");
    assert!(matches!(error, BridgeError::Admin(_)), "{error:?}");
    assert!(
        error.to_string().contains(&taken.local_addr().unwrap().to_string()),
        "{error}"
    );
    assert!(double.sessions().is_empty(), "nothing was left behind");
}

#[tokio::test]
async fn a_failed_start_deletes_the_sessions_it_already_created() {
    let double = CodexManagerDouble::start().await.unwrap();
    let bridge = builder()
        .upstream(upstream(&double).sessions(2).attach("missing"))
        .build()
        .unwrap();
    let error = bridge.start().await.expect_err("fails");
    assert!(
        matches!(error, BridgeError::Upstream(UpstreamError::Attach { .. })),
        "{error:?}"
    );
    let sessions = double.sessions();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s.deleted), "{sessions:?}");
}

#[tokio::test]
async fn send_answers_the_turns_tool_calls_and_returns_the_reply() {
    let double = CodexManagerDouble::builder()
        .on_message(|message| {
            Some(
                TurnScript::new()
                    .tool_call("shout", json!({"text": message.text}))
                    .final_message_from(|answers| {
                        format!(
                            "Tool said: {}",
                            skillbridge_doubles::codex_manager::answer_text(&answers[0])
                        )
                    }),
            )
        })
        .start()
        .await
        .unwrap();
    let bridge = send_bridge(client(&double), false);
    let outcome = send(&bridge, "hello bridge", WAIT, CancellationToken::new())
        .await
        .expect("the turn runs");
    assert_eq!(outcome.reply.end, TurnEnd::Completed);
    assert_eq!(outcome.reply.reply.as_deref(), Some("Tool said: HELLO BRIDGE!"));
    assert!(outcome.deleted);
    let session = double
        .sessions()
        .into_iter()
        .find(|s| s.id == outcome.reply.session_id)
        .unwrap();
    assert!(session.deleted);
    assert_eq!(session.messages, ["hello bridge"]);
    assert_eq!(session.tools.len(), 1);
}

// On the paused clock, so that the turn's timeout is observed exactly.
#[tokio::test(start_paused = true)]
async fn send_interrupts_a_turn_on_request_and_on_timeout() {
    // Without a script the double's turn stays in progress until interrupted.
    let double = CodexManagerDouble::start().await.unwrap();
    let interrupt = CancellationToken::new();
    let interrupter = {
        let (watcher, interrupt) = (double.clone(), interrupt.clone());
        tokio::spawn(async move {
            bridge_support::eventually("the turn to start", || {
                watcher.sessions().iter().any(|s| s.active_turn.is_some())
            })
            .await;
            interrupt.cancel();
        })
    };
    let bridge = send_bridge(client(&double), true);
    let outcome = send(&bridge, "wait forever", WAIT, interrupt).await.unwrap();
    interrupter.await.unwrap();
    assert_eq!(outcome.reply.end, TurnEnd::Interrupted);
    assert!(!outcome.reply.end.is_completed(), "send exits 1");
    assert!(!outcome.deleted, "--keep-session keeps it");
    assert!(double.received().iter().any(|r| r.path.ends_with("/interrupt")));

    let bridge = send_bridge(client(&double), false);
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let outcome = send(&bridge, "wait forever", timeout, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.reply.end, TurnEnd::TimedOut);
    assert_eq!(
        started.elapsed(),
        timeout,
        "interrupted at its timeout (the rest takes no time on the paused clock)"
    );
    assert!(outcome.deleted);
}

#[tokio::test]
async fn send_reports_an_unreachable_codex_manager() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bridge = send_bridge(client_at(&format!("http://127.0.0.1:{port}")), false);
    let error = send(&bridge, "hi", WAIT, CancellationToken::new()).await.unwrap_err();
    assert!(
        matches!(error, BridgeError::Upstream(UpstreamError::Unreachable { .. })),
        "{error:?}"
    );
}
