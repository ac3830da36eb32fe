//! `Catalog::invoke` on every failure path: each answers `success: false` with a message for the model,
//! the process lives on, and nothing hangs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use serde_json::json;
use skillbridge::skill;
use skillbridge::skill::{Catalog, Invocation, Outcome, SkillContext, SkillError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a test waits for an event before it fails (never reached when the code works).
const DEADLINE: Duration = Duration::from_secs(10);

/// Looks up a ticket.
#[skill]
fn lookup(ticket_id: String, filter: Option<Filter>) -> Result<String, SkillError> {
    Ok(format!("{ticket_id} limit={:?}", filter.map(|f| f.limit)))
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct Filter {
    limit: u32,
}

/// Panics in async code.
#[skill]
async fn explode(reason: String) -> String {
    panic!("boom: {reason}");
}

/// Panics in sync code.
#[skill]
fn explode_sync() -> String {
    let numbers: Vec<u32> = Vec::new();
    numbers[3].to_string()
}

static ASYNC_TOKEN_FIRED: Notify = Notify::const_new();

/// Waits for its cancellation, then reports it.
#[skill(timeout = "100ms")]
async fn sleeper(ctx: SkillContext) -> String {
    ctx.cancelled().await;
    ASYNC_TOKEN_FIRED.notify_one();
    "woke up".into()
}

static SYNC_TOKEN_FIRED: AtomicBool = AtomicBool::new(false);
static SYNC_STOPPED: Notify = Notify::const_new();

/// A blocking loop that stops when cancelled.
#[skill(timeout = "100ms")]
fn busy(ctx: SkillContext) -> String {
    let started = std::time::Instant::now();
    while !ctx.is_cancelled() && started.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(5));
    }
    SYNC_TOKEN_FIRED.store(ctx.is_cancelled(), Ordering::SeqCst);
    SYNC_STOPPED.notify_one();
    "stopped".into()
}

static LONG_RUNNING_STARTED: Notify = Notify::const_new();
static INTERRUPTED: Notify = Notify::const_new();

/// Runs until its call is interrupted.
#[skill(timeout = "1m")]
async fn long_running(ctx: SkillContext) -> String {
    LONG_RUNNING_STARTED.notify_one();
    ctx.cancelled().await;
    INTERRUPTED.notify_one();
    "interrupted".into()
}

/// Waits for its cancellation and says nothing about it.
#[skill(timeout = "1m")]
async fn waits_forever(ctx: SkillContext) -> String {
    ctx.cancelled().await;
    "cancelled".into()
}

/// The release signal for `blocker`, sent by the test.
static RELEASE: Mutex<Option<mpsc::Receiver<()>>> = Mutex::new(None);

/// Blocks its thread until the test releases it.
#[skill(timeout = "30s")]
fn blocker() -> String {
    let receiver = RELEASE
        .lock()
        .unwrap()
        .take()
        .expect("the test installs the release channel");
    receiver
        .recv_timeout(DEADLINE)
        .map(|()| "released".into())
        .unwrap_or_else(|_| "never released".into())
}

/// Answers at once.
#[skill]
async fn quick() -> &'static str {
    "quick"
}

fn catalog() -> Catalog {
    Catalog::from_registry().unwrap()
}

async fn invoke(name: &str, arguments: serde_json::Value) -> Invocation {
    catalog()
        .invoke_detailed(name, arguments, SkillContext::detached(name))
        .await
}

#[tokio::test]
async fn arguments_of_the_wrong_type_name_the_path_and_the_expected_type() {
    let invocation = invoke("lookup", json!({"ticket_id": 5})).await;
    assert_eq!(invocation.outcome, Outcome::InvalidArguments);
    assert!(!invocation.result.success);
    assert_eq!(
        invocation.result.text_content(),
        "invalid arguments for `lookup`: ticket_id: 5 is not of type \"string\""
    );

    let nested = invoke("lookup", json!({"ticket_id": "T-1", "filter": {"limit": -2}})).await;
    assert_eq!(nested.outcome, Outcome::InvalidArguments);
    assert_eq!(
        nested.result.text_content(),
        "invalid arguments for `lookup`: filter.limit: -2 is less than the minimum of 0"
    );
}

#[tokio::test]
async fn missing_and_non_object_arguments_are_explained() {
    let missing = invoke("lookup", json!({})).await;
    assert_eq!(missing.outcome, Outcome::InvalidArguments);
    assert_eq!(
        missing.result.text_content(),
        "invalid arguments for `lookup`: \"ticket_id\" is a required property"
    );

    let array = invoke("lookup", json!(["T-1"])).await;
    assert_eq!(array.outcome, Outcome::InvalidArguments);
    assert_eq!(
        array.result.text_content(),
        "invalid arguments for `lookup`: the arguments must be a JSON object, not an array"
    );
}

#[tokio::test]
async fn an_unknown_tool_names_the_known_tools() {
    let invocation = invoke("lookpu", json!({})).await;
    assert_eq!(invocation.outcome, Outcome::UnknownTool);
    assert!(!invocation.result.success);
    let known = catalog().names().collect::<Vec<_>>().join(", ");
    assert_eq!(
        invocation.result.text_content(),
        format!("unknown tool `lookpu`; the available tools are: {known}")
    );
    assert!(known.contains("lookup"));
}

#[tokio::test]
async fn a_panicking_skill_fails_and_the_process_lives_on() {
    let invocation = invoke("explode", json!({"reason": "bad input"})).await;
    assert_eq!(invocation.outcome, Outcome::Panicked);
    assert_eq!(
        invocation.result.text_content(),
        "skill explode panicked: boom: bad input"
    );

    let sync = invoke("explode_sync", json!({})).await;
    assert_eq!(sync.outcome, Outcome::Panicked);
    assert!(
        sync.result
            .text_content()
            .starts_with("skill explode_sync panicked: index out of bounds"),
        "{}",
        sync.result.text_content()
    );

    assert_eq!(invoke("quick", json!({})).await.outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn an_async_skill_past_its_timeout_fails_and_its_token_fires() {
    let started = tokio::time::Instant::now();
    let invocation = invoke("sleeper", json!({})).await;
    assert_eq!(invocation.outcome, Outcome::TimedOut);
    assert!(!invocation.result.success);
    assert_eq!(invocation.result.text_content(), "skill sleeper timed out after 100ms");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "answered at its deadline"
    );
    tokio::time::timeout(DEADLINE, ASYNC_TOKEN_FIRED.notified())
        .await
        .expect("the skill saw its cancellation token fire");
}

// On the real clock: the skill polls its token from a blocking-pool thread, and while a `spawn_blocking` task runs
// the paused clock does not auto-advance, so its 100 ms deadline would never come.
#[tokio::test]
async fn a_blocking_skill_past_its_timeout_fails_and_its_token_fires() {
    let invocation = invoke("busy", json!({})).await;
    assert_eq!(invocation.outcome, Outcome::TimedOut);
    assert_eq!(invocation.result.text_content(), "skill busy timed out after 100ms");
    tokio::time::timeout(DEADLINE, SYNC_STOPPED.notified())
        .await
        .expect("the blocking skill stopped");
    assert!(
        SYNC_TOKEN_FIRED.load(Ordering::SeqCst),
        "it stopped because its token fired"
    );
}

#[tokio::test]
async fn cancelling_the_call_cancels_the_skill() {
    let token = CancellationToken::new();
    let ctx = SkillContext::new("t", None, "c", "1", "waits_forever", token.clone());
    let catalog = catalog();
    let call = tokio::spawn(async move { catalog.invoke_detailed("waits_forever", json!({}), ctx).await });
    // Whether the skill already started or not, the answer is `Cancelled`, and at once.
    token.cancel();
    let invocation = tokio::time::timeout(DEADLINE, call).await.expect("answered").unwrap();
    assert_eq!(invocation.outcome, Outcome::Cancelled);
    assert_eq!(invocation.result.text_content(), "skill waits_forever was cancelled");

    // A call whose token already fired does not start the skill.
    let fired = CancellationToken::new();
    fired.cancel();
    let ctx = SkillContext::new("t", None, "c", "2", "quick", fired);
    let invocation = Catalog::from_registry()
        .unwrap()
        .invoke_detailed("quick", json!({}), ctx)
        .await;
    assert_eq!(invocation.outcome, Outcome::Cancelled);
}

#[tokio::test]
async fn cancelling_a_running_skill_fires_its_token() {
    let token = CancellationToken::new();
    let ctx = SkillContext::new("t", None, "c", "3", "long_running", token.clone());
    let catalog = catalog();
    let call = tokio::spawn(async move { catalog.invoke_detailed("long_running", json!({}), ctx).await });
    tokio::time::timeout(DEADLINE, LONG_RUNNING_STARTED.notified())
        .await
        .expect("the skill started");
    let interrupted = INTERRUPTED.notified();
    token.cancel();
    tokio::time::timeout(DEADLINE, interrupted)
        .await
        .expect("the skill saw the interruption");
    assert_eq!(call.await.unwrap().outcome, Outcome::Cancelled);
}

#[tokio::test(flavor = "current_thread")]
async fn a_blocking_skill_does_not_stall_the_runtime() {
    let (release, receiver) = mpsc::channel();
    *RELEASE.lock().unwrap() = Some(receiver);
    let catalog = catalog();
    let blocked = {
        let catalog = catalog.clone();
        tokio::spawn(async move {
            catalog
                .invoke("blocker", json!({}), SkillContext::detached("blocker"))
                .await
        })
    };
    // On a single-threaded runtime this only completes if `blocker` runs off the runtime's thread.
    let quick = tokio::time::timeout(
        DEADLINE,
        catalog.invoke("quick", json!({}), SkillContext::detached("quick")),
    )
    .await
    .expect("the runtime kept serving while a skill blocked");
    assert_eq!(quick.text_content(), "quick");
    release.send(()).unwrap();
    let blocked = tokio::time::timeout(DEADLINE, blocked)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(blocked.text_content(), "released");
}
