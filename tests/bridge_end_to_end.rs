//! End to end against the codex-manager double: serve creates or attaches to sessions, executes tool calls and
//! answers them with the skill's output; `send` runs one turn and returns the reply; startup failures are clear.

mod bridge_support;

use std::time::Duration;

use bridge_support::{WAIT, answer_success, answer_text, args, eventually, listings, only_thread, settings, start};
use serde_json::json;
use skillbridge::cli::send::{SendArgs, SendError, TurnEnd, send_with};
use skillbridge::cli::serve::{ServeError, Serving};
use skillbridge::cli::settings::{ManagerArgs, SendSettings};
use skillbridge::skill;
use skillbridge::skill::Catalog;
use skillbridge_doubles::CodexManagerDouble;
use skillbridge_doubles::codex_manager::TurnScript;

/// Shouts a text: upper case with an exclamation mark.
#[skill]
fn shout(
    /// The text to shout.
    text: String,
) -> String {
    format!("{}!", text.to_uppercase())
}

fn catalog() -> Catalog {
    Catalog::from_registry().unwrap()
}

#[tokio::test]
async fn a_tool_call_is_executed_and_answered_with_the_skills_output() {
    let double = CodexManagerDouble::start().await.unwrap();
    let mut args = args(&double);
    args.prompt = Some("please shout hello".into());
    args.delete_on_exit = true;
    args.session.model = Some("gpt-test".into());
    let serving = start(&args).await;
    let thread = only_thread(&serving);

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

    let report = serving.shutdown().await;
    assert_eq!(report.deleted, std::slice::from_ref(&thread));
    assert!(double.sessions().iter().any(|s| s.id == thread && s.deleted));
}

#[tokio::test]
async fn calls_published_before_the_bridge_connected_are_found_by_listing() {
    let double = CodexManagerDouble::start().await.unwrap();
    let thread = double.create_session(vec![]);
    // Nobody listens yet: the stream events are lost, only the pending row remains.
    let request_id = double.inject_tool_call(&thread, "shout", json!({"text": "early"}));
    let mut args = args(&double);
    args.sessions = Some(0);
    args.attach = vec![thread.clone()];
    args.poll_interval = Some(Duration::from_secs(60)); // no periodic listing: the one at (re)connect finds it
    let serving = start(&args).await;
    assert!(!serving.sessions()[0].created);
    let body = double
        .wait_answered(&request_id, WAIT)
        .await
        .expect("answered after connect");
    assert_eq!(answer_text(&body), "EARLY!");
    let report = serving.shutdown().await;
    assert!(report.deleted.is_empty(), "attached sessions are never deleted");
}

#[tokio::test]
async fn calls_of_sessions_not_served_are_left_alone_unless_all_sessions() {
    let double = CodexManagerDouble::start().await.unwrap();
    let serving = start(&args(&double)).await;
    let ours = only_thread(&serving);
    let foreign = double.create_session(vec![]);

    let theirs = double.inject_tool_call(&foreign, "shout", json!({"text": "not mine"}));
    let mine = double.inject_tool_call(&ours, "shout", json!({"text": "mine"}));
    double.wait_answered(&mine, WAIT).await.expect("our call is answered");
    // Two more listing rounds after our answer: the foreign call is still untouched.
    let seen = listings(&double, &ours);
    eventually("two more listing rounds", || listings(&double, &ours) >= seen + 2).await;
    assert!(double.responses_for(&theirs).is_empty());
    assert_eq!(double.pending(&foreign).len(), 1);
    serving.shutdown().await;

    let mut all = args(&double);
    all.all_sessions = true;
    let serving = start(&all).await;
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
    serving.shutdown().await;
}

#[tokio::test]
async fn several_sessions_are_served_and_each_gets_the_prompt() {
    let double = CodexManagerDouble::start().await.unwrap();
    let mut args = args(&double);
    args.sessions = Some(3);
    args.prompt = Some("go".into());
    let serving = start(&args).await;
    let threads: Vec<String> = serving.sessions().iter().map(|s| s.id.clone()).collect();
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
    let report = serving.shutdown().await;
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
    let mut unreachable = args(&double);
    unreachable.manager.url = Some(format!("http://127.0.0.1:{port}"));
    let error = Serving::start(settings(&unreachable), catalog())
        .await
        .err()
        .expect("fails");
    assert!(matches!(error, ServeError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains(&format!("127.0.0.1:{port}")), "{error}");

    // codex-manager answers 401 to a client without the token: a 4xx on session creation.
    let guarded = CodexManagerDouble::builder()
        .require_bearer("s3cret-token")
        .start()
        .await
        .unwrap();
    let error = Serving::start(settings(&args(&guarded)), catalog())
        .await
        .err()
        .expect("fails");
    assert!(matches!(error, ServeError::CreateSession(_)), "{error:?}");
    assert!(error.to_string().contains("401"), "{error}");
    // With the token it works, and the token never shows in errors or debug output.
    let mut with_token = args(&guarded);
    with_token.manager.token = Some("s3cret-token".parse().unwrap());
    let resolved = settings(&with_token);
    assert!(!format!("{resolved:?}{with_token:?}").contains("s3cret-token"));
    let serving = Serving::start(resolved, catalog())
        .await
        .expect("starts with the token");
    serving.shutdown().await;

    // Attaching to a session codex-manager does not know.
    let mut attach = args(&double);
    attach.attach = vec!["no-such-session".into()];
    let error = Serving::start(settings(&attach), catalog()).await.err().expect("fails");
    assert!(
        matches!(&error, ServeError::Attach { id, .. } if id == "no-such-session"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_taken_admin_port_fails_before_any_session_is_created() {
    let double = CodexManagerDouble::start().await.unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut args = args(&double);
    args.no_admin = false;
    args.admin = Some(taken.local_addr().unwrap());
    let error = Serving::start(settings(&args), catalog()).await.err().expect("fails");
    assert!(matches!(error, ServeError::Admin(_)), "{error:?}");
    assert!(
        error.to_string().contains(&taken.local_addr().unwrap().to_string()),
        "{error}"
    );
    assert!(double.sessions().is_empty(), "nothing was left behind");
}

#[tokio::test]
async fn a_failed_start_deletes_the_sessions_it_already_created() {
    let double = CodexManagerDouble::start().await.unwrap();
    let mut args = args(&double);
    args.sessions = Some(2);
    args.attach = vec!["missing".into()];
    let error = Serving::start(settings(&args), catalog()).await.err().expect("fails");
    assert!(matches!(error, ServeError::Attach { .. }), "{error:?}");
    let sessions = double.sessions();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s.deleted), "{sessions:?}");
}

fn send_settings(double: &CodexManagerDouble, prompt: &str) -> SendSettings {
    let args = SendArgs {
        prompt: prompt.into(),
        manager: ManagerArgs {
            url: Some(double.base_url()),
            ..ManagerArgs::default()
        },
        timeout: Some(WAIT),
        poll_interval: Some(Duration::from_millis(250)),
        ..SendArgs::default()
    };
    SendSettings::resolve(&args, &|_| None).unwrap()
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
    let outcome = send_with(
        send_settings(&double, "hello bridge"),
        catalog(),
        std::future::pending(),
    )
    .await
    .expect("the turn runs");
    assert_eq!(outcome.end, TurnEnd::Completed);
    assert_eq!(outcome.reply.as_deref(), Some("Tool said: HELLO BRIDGE!"));
    assert!(outcome.deleted);
    let session = double
        .sessions()
        .into_iter()
        .find(|s| s.id == outcome.session_id)
        .unwrap();
    assert!(session.deleted);
    assert_eq!(session.messages, ["hello bridge"]);
    assert_eq!(session.tools.len(), 1);
}

#[tokio::test]
async fn send_interrupts_a_turn_on_request_and_on_timeout() {
    // Without a script the double's turn stays in progress until interrupted.
    let double = CodexManagerDouble::start().await.unwrap();
    let watcher = double.clone();
    let interrupt = async move {
        bridge_support::eventually("the turn to start", || {
            watcher.sessions().iter().any(|s| s.active_turn.is_some())
        })
        .await;
    };
    let mut settings = send_settings(&double, "wait forever");
    settings.keep_session = true;
    let outcome = send_with(settings, catalog(), interrupt).await.unwrap();
    assert_eq!(outcome.end, TurnEnd::Interrupted);
    assert_eq!(outcome.end.exit_code(), 1);
    assert!(!outcome.deleted, "--keep-session keeps it");
    assert!(double.received().iter().any(|r| r.path.ends_with("/interrupt")));

    let mut settings = send_settings(&double, "wait forever");
    settings.timeout = Duration::from_secs(1);
    let outcome = send_with(settings, catalog(), std::future::pending()).await.unwrap();
    assert_eq!(outcome.end, TurnEnd::TimedOut);
    assert!(outcome.deleted);
}

#[tokio::test]
async fn send_reports_an_unreachable_codex_manager() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let double = CodexManagerDouble::start().await.unwrap();
    let mut settings = send_settings(&double, "hi");
    settings.manager = skillbridge::manager::ManagerConfig::builder()
        .base_url(format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap();
    let error = send_with(settings, catalog(), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Unreachable { .. }), "{error:?}");
}
