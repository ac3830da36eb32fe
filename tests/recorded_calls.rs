//! Recorded calls end to end, in process: a bridge recording arguments (`record_arguments`, what `serve
//! --record-arguments` sets) against the codex-manager double, its admin endpoint's `GET /calls/{id}` over HTTP,
//! and `call --replay URL` of those records (`CallArgs` as `skillbridge call --replay` runs it). The shipped
//! binary has no skill with a redacted parameter or one that shows its context, so these skills are the test's.

mod bridge_support;

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bridge_support::{WAIT, answer_text, bridge_for, only_thread, start};
use serde_json::{Value, json};
use skillbridge::admin::AdminToken;
use skillbridge::cli::CallArgs;
use skillbridge::{Bridge, SkillContext, skill};
use skillbridge_doubles::CodexManagerDouble;

const TOKEN: &str = "rec0rd-token";

/// How many times `log_in` ran.
static LOG_INS: AtomicUsize = AtomicUsize::new(0);

/// Logs in.
#[skill]
fn log_in(
    /// Who.
    user: String,
    /// Never recorded.
    #[skill(redact)]
    password: String,
) -> String {
    LOG_INS.fetch_add(1, Ordering::SeqCst);
    format!("{}:{}", user.len(), password)
}

/// The ids each run of `whoami` was given: (note, thread, turn, call, request, tool).
type Ids = (String, String, Option<String>, String, String, String);
static SEEN: Mutex<Vec<Ids>> = Mutex::new(Vec::new());

/// Says which call this is.
#[skill]
fn whoami(
    /// Any text, to tell runs apart.
    note: String,
    ctx: SkillContext,
) -> String {
    let ids = (note, ctx.thread_id, ctx.turn_id, ctx.call_id, ctx.request_id, ctx.tool);
    SEEN.lock().unwrap().push(ids.clone());
    format!("{ids:?}")
}

/// A started bridge on `double` that records arguments, with its admin endpoint on a free loopback port.
async fn recording_bridge(double: &CodexManagerDouble) -> (Bridge, String) {
    let bridge = start(
        bridge_for(double)
            .record_arguments(true)
            .admin_addr("127.0.0.1:0".parse().unwrap())
            .admin_token(AdminToken::new(TOKEN).unwrap()),
    )
    .await;
    let admin = format!("http://{}", bridge.admin_addr().await.expect("admin endpoint"));
    (bridge, admin)
}

/// `GET /calls/{request_id}` once the call is recorded (just after its answer was delivered): the record and its
/// raw text.
async fn recorded(admin: &str, request_id: &str) -> (Value, String) {
    let url = format!("{admin}/calls/{request_id}");
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        if response.status() == 200 {
            let text = response.text().await.unwrap();
            return (serde_json::from_str(&text).unwrap(), text);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "call {request_id} was never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Runs `skillbridge call --replay URL` with this test binary's skills.
async fn replay(url: String) -> ExitCode {
    CallArgs {
        name: None,
        arguments: None,
        json: false,
        config: None,
        replay: Some(url),
        admin_token: Some(TOKEN.to_owned()),
    }
    .run()
    .await
}

/// A `log_in` user name long enough that the call's recorded (redacted) arguments are `size` bytes of JSON.
fn user_for_recorded_size(size: usize) -> String {
    let recorded_size = |user: &str| {
        serde_json::to_vec(&json!({"user": user, "password": "<redacted>"}))
            .unwrap()
            .len()
    };
    let user = "u".repeat(size - recorded_size(""));
    assert_eq!(recorded_size(&user), size);
    user
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_arguments_show_redacted_parameters_as_redacted_and_leave_out_oversized_ones() {
    let double = CodexManagerDouble::start().await.unwrap();
    let (bridge, admin) = recording_bridge(&double).await;
    let thread = only_thread(&bridge);

    // The skill gets the password; the record shows it redacted.
    let request = double.inject_tool_call(&thread, "log_in", json!({"user": "ada", "password": "s3cret"}));
    let answer = double.wait_answered(&request, WAIT).await.expect("answered");
    assert_eq!(answer_text(&answer), "3:s3cret");
    let (record, text) = recorded(&admin, &request).await;
    assert_eq!(record["tool"], "log_in");
    assert_eq!(record["arguments"], json!({"user": "ada", "password": "<redacted>"}));
    assert_eq!(record.get("arguments_omitted"), None);
    assert!(!text.contains("s3cret"), "{text}");

    // Up to 4096 bytes of (redacted) JSON are kept; one more, and the record says why they are left out.
    let (long, longer) = (user_for_recorded_size(4096), user_for_recorded_size(4097));
    let kept = double.inject_tool_call(&thread, "log_in", json!({"user": long, "password": "s3cret"}));
    let dropped = double.inject_tool_call(&thread, "log_in", json!({"user": longer, "password": "s3cret"}));
    for request in [&kept, &dropped] {
        let answer = double.wait_answered(request, WAIT).await.expect("answered");
        assert!(
            answer_text(&answer).ends_with(":s3cret"),
            "the skill ran with the whole arguments"
        );
    }
    let (record, text) = recorded(&admin, &kept).await;
    assert_eq!(record["arguments"], json!({"user": long, "password": "<redacted>"}));
    assert_eq!(record.get("arguments_omitted"), None);
    assert!(!text.contains("s3cret"), "{text}");
    let (record, text) = recorded(&admin, &dropped).await;
    assert_eq!(record.get("arguments"), None, "{text}");
    assert_eq!(
        record["arguments_omitted"],
        "the arguments were 4097 bytes of JSON, more than the 4096 a record keeps"
    );
    assert!(!text.contains("s3cret"), "{text}");

    // Neither can be replayed (a usage error), and the skill does not run for it.
    let runs = LOG_INS.load(Ordering::SeqCst);
    assert_eq!(replay(format!("{admin}/calls/{request}")).await, ExitCode::from(2));
    assert_eq!(replay(format!("{admin}/calls/{dropped}")).await, ExitCode::from(2));
    assert_eq!(LOG_INS.load(Ordering::SeqCst), runs);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_runs_with_the_recorded_calls_thread_turn_call_and_request_ids() {
    let double = CodexManagerDouble::start().await.unwrap();
    let (bridge, admin) = recording_bridge(&double).await;
    let thread = only_thread(&bridge);
    let seen = |note: &str| -> Vec<Ids> {
        SEEN.lock()
            .unwrap()
            .iter()
            .filter(|ids| ids.0 == note)
            .cloned()
            .collect()
    };

    let issued = double.inject_call(&thread, "whoami", json!({"note": "live"}));
    double.wait_answered(&issued.request_id, WAIT).await.expect("answered");
    let live = seen("live");
    assert_eq!(live.len(), 1);
    let (_, live_thread, live_turn, live_call, live_request, live_tool) = live[0].clone();
    assert_eq!(
        (
            live_thread.as_str(),
            live_call.as_str(),
            live_request.as_str(),
            live_tool.as_str()
        ),
        (
            thread.as_str(),
            issued.call_id.as_str(),
            issued.request_id.as_str(),
            "whoami"
        )
    );
    let (record, _) = recorded(&admin, &issued.request_id).await;
    assert_eq!(record["turn_id"].as_str(), live_turn.as_deref());
    assert!(live_turn.is_some(), "the double's call belongs to a turn");

    // The replay runs here, in this process, with the recorded call's ids.
    let code = replay(format!("{admin}/calls/{}", issued.request_id)).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(seen("live"), [live[0].clone(), live[0].clone()]);

    // A plain `call` has none.
    let code = CallArgs {
        name: Some("whoami".into()),
        arguments: Some(r#"{"note": "by hand"}"#.into()),
        json: false,
        config: None,
        replay: None,
        admin_token: None,
    }
    .run()
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(
        seen("by hand"),
        [(
            "by hand".to_owned(),
            String::new(),
            None,
            String::new(),
            String::new(),
            "whoami".to_owned()
        )]
    );
    bridge.shutdown().await;
}
