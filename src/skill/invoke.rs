//! Running one tool call: argument checks, where the skill runs, its deadline and cancellation, panics.
//!
//! An `async fn` skill is polled right in the caller's task (no task of its own while it runs), its panics caught
//! at every poll; only when it outlives its deadline or its call is cancelled does it move to a task of its own,
//! to clean up for a grace period (`CLEANUP_GRACE`) before it is dropped. A plain `fn` skill runs on Tokio's blocking pool
//! (`spawn_blocking`), so a skill that blocks cannot stall the runtime. Either way a panic becomes a
//! `success: false` result instead of a dead process, and the caller gets an answer by the skill's deadline.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::__private::SkillRun;
use super::catalog::Catalog;
use super::{SkillContext, ToolResult};

/// How long a timed-out or cancelled `async` skill may go on to clean up after its token fired before it is
/// dropped. A plain `fn` skill cannot be aborted; it runs to its end on the blocking pool.
const CLEANUP_GRACE: Duration = Duration::from_secs(5);

/// The answer to one call and how the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// What the upstream receives.
    pub result: ToolResult,
    /// How the call ended.
    pub outcome: Outcome,
}

/// How a call ended. Only [`Outcome::Success`] answers `success: true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The skill returned a successful result.
    Success,
    /// The skill returned an error (or a `success: false` result).
    SkillError,
    /// The arguments did not fit the skill's parameters; the skill did not run.
    InvalidArguments,
    /// No skill has that name.
    UnknownTool,
    /// The skill exists but is not offered in the call's session (its toolset leaves it out); it did not run.
    NotOffered,
    /// The skill panicked.
    Panicked,
    /// The skill ran past its timeout; its cancellation token fired.
    TimedOut,
    /// The call's cancellation token fired (turn interrupted, shutdown) before the skill finished.
    Cancelled,
}

impl Outcome {
    /// A stable snake_case label, for logs and metrics: `success`, `skill_error`, `invalid_arguments`,
    /// `unknown_tool`, `not_offered`, `panicked`, `timed_out`, `cancelled`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::SkillError => "skill_error",
            Outcome::InvalidArguments => "invalid_arguments",
            Outcome::UnknownTool => "unknown_tool",
            Outcome::NotOffered => "not_offered",
            Outcome::Panicked => "panicked",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// `true` for [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        *self == Outcome::Success
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) async fn invoke(catalog: &Catalog, name: &str, arguments: Value, ctx: SkillContext) -> Invocation {
    let started = Instant::now();
    let (result, outcome) = run(catalog, name, arguments, ctx).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Outcome::Success | Outcome::SkillError | Outcome::InvalidArguments => {
            tracing::debug!(
                skill = name,
                outcome = outcome.as_str(),
                elapsed_ms,
                "skill call finished"
            )
        }
        Outcome::Cancelled => tracing::info!(skill = name, elapsed_ms, "skill call cancelled"),
        Outcome::UnknownTool | Outcome::NotOffered | Outcome::Panicked | Outcome::TimedOut => {
            tracing::warn!(skill = name, outcome = outcome.as_str(), elapsed_ms, message = %result.text_content(),
                "skill call failed")
        }
    }
    Invocation { result, outcome }
}

async fn run(catalog: &Catalog, name: &str, arguments: Value, ctx: SkillContext) -> (ToolResult, Outcome) {
    let Some(skill) = catalog.get(name) else {
        let known = catalog.names().collect::<Vec<_>>();
        let message = if known.is_empty() {
            format!("unknown tool `{name}`; no tools are available")
        } else {
            format!("unknown tool `{name}`; the available tools are: {}", known.join(", "))
        };
        return (ToolResult::failure(message), Outcome::UnknownTool);
    };
    let call_token = ctx.cancellation().clone();
    if call_token.is_cancelled() {
        return cancelled(name);
    }
    // A child token: the deadline cancels this run only, while the caller's token still reaches it.
    let run_token = call_token.child_token();
    let ctx = ctx.with_cancellation(run_token.clone());
    // Models omit the arguments of tools without parameters; `null` is checked as the `{}` it stands for.
    let arguments = match arguments {
        Value::Null => Value::Object(serde_json::Map::new()),
        arguments => arguments,
    };
    // Arguments that are not an object at all get the plainer explanation of `prepare`.
    if let Err(violations) = skill.check_arguments(&arguments)
        && arguments.is_object()
    {
        let message = format!("invalid arguments for `{name}`: {violations}");
        return (ToolResult::failure(message), Outcome::InvalidArguments);
    }
    let prepared = match skill.prepare(arguments, ctx, catalog.states()) {
        Ok(prepared) => prepared,
        Err(error) => {
            let message = format!("invalid arguments for `{name}`: {error}");
            return (ToolResult::failure(message), Outcome::InvalidArguments);
        }
    };
    execute(name, skill.timeout(), prepared, &call_token, &run_token).await
}

/// Runs a prepared skill until it answers, `timeout` passes or `call_token` fires; `run_token` is the skill's own
/// token, fired on the deadline.
async fn execute(
    name: &str,
    timeout: Duration,
    prepared: SkillRun,
    call_token: &CancellationToken,
    run_token: &CancellationToken,
) -> (ToolResult, Outcome) {
    let deadline = tokio::time::sleep(timeout);
    match prepared {
        SkillRun::Async(future) => {
            let mut future = AssertUnwindSafe(future).catch_unwind();
            // Biased: a fired call token wins over a result that arrives at the same time (the skill's answer to
            // its own cancellation), and a result wins over the deadline (a skill that made it in time succeeded).
            tokio::select! {
                biased;
                () = call_token.cancelled() => {
                    run_token.cancel();
                    reap(name, future);
                    cancelled(name)
                }
                finished = &mut future => match finished {
                    Ok(result) => finished_with(result),
                    Err(panic) => panicked(name, panic),
                },
                () = deadline => {
                    run_token.cancel();
                    reap(name, future);
                    timed_out(name, timeout)
                }
            }
        }
        SkillRun::Blocking(body) => {
            // On its thread, the skill's events carry the call's span as an async skill's do.
            let span = tracing::Span::current();
            let mut task: JoinHandle<ToolResult> = tokio::task::spawn_blocking(move || span.in_scope(body));
            tokio::select! {
                biased;
                () = call_token.cancelled() => {
                    run_token.cancel();
                    reap(name, task);
                    cancelled(name)
                }
                joined = &mut task => match joined {
                    Ok(result) => finished_with(result),
                    Err(error) if error.is_panic() => panicked(name, error.into_panic()),
                    // The runtime is shutting down and dropped the task.
                    Err(_) => cancelled(name),
                },
                () = deadline => {
                    run_token.cancel();
                    reap(name, task);
                    timed_out(name, timeout)
                }
            }
        }
    }
}

fn finished_with(result: ToolResult) -> (ToolResult, Outcome) {
    let outcome = if result.success {
        Outcome::Success
    } else {
        Outcome::SkillError
    };
    (result, outcome)
}

fn panicked(name: &str, payload: Box<dyn Any + Send>) -> (ToolResult, Outcome) {
    let message = format!("skill {name} panicked: {}", crate::util::panic_message(&*payload));
    (ToolResult::failure(message), Outcome::Panicked)
}

fn timed_out(name: &str, timeout: Duration) -> (ToolResult, Outcome) {
    let message = format!("skill {name} timed out after {}", format_duration(timeout));
    (ToolResult::failure(message), Outcome::TimedOut)
}

fn cancelled(name: &str) -> (ToolResult, Outcome) {
    (
        ToolResult::failure(format!("skill {name} was cancelled")),
        Outcome::Cancelled,
    )
}

/// Lets a skill whose token fired finish on its own for a while on a task of its own, then drops it: that ends an
/// `async` skill; a plain `fn` skill's thread cannot be stopped and runs on until it returns.
fn reap<F>(name: &str, run: F)
where
    F: Future + Send + 'static,
{
    let name = name.to_owned();
    let reaped = async move {
        if tokio::time::timeout(CLEANUP_GRACE, run).await.is_err() {
            tracing::warn!(
                skill = name,
                "skill ignored its cancellation token for {}; aborted (a plain fn skill runs on until it returns)",
                format_duration(CLEANUP_GRACE)
            );
        }
    };
    tokio::spawn(tracing::Instrument::instrument(reaped, tracing::Span::current()));
}

/// `500ms`, `30s`, `2m`, `1h`: the largest unit that divides the duration (as `#[skill(timeout)]` spells it).
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        0 => "0s".to_owned(),
        _ if millis.is_multiple_of(3_600_000) => format!("{}h", millis / 3_600_000),
        _ if millis.is_multiple_of(60_000) => format!("{}m", millis / 60_000),
        _ if millis.is_multiple_of(1000) => format!("{}s", millis / 1000),
        _ => format!("{millis}ms"),
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    /// Says when it is dropped.
    struct DropReport(mpsc::UnboundedSender<&'static str>);

    impl Drop for DropReport {
        fn drop(&mut self) {
            let _ = self.0.send("dropped");
        }
    }

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn an_async_panic_is_a_failed_answer() {
        let (call, run) = (CancellationToken::new(), CancellationToken::new());
        let panics = SkillRun::Async(Box::pin(async {
            tokio::task::yield_now().await;
            panic!("async boom")
        }));
        let (result, outcome) = execute("panics", SHORT, panics, &call, &run).await;
        assert_eq!(outcome, Outcome::Panicked);
        assert_eq!(result.text_content(), "skill panics panicked: async boom");
    }

    #[tokio::test(start_paused = true)]
    async fn a_skill_past_its_deadline_finishes_its_cleanup_after_the_answer() {
        let (call, run) = (CancellationToken::new(), CancellationToken::new());
        let started = tokio::time::Instant::now();
        let (events, mut seen) = mpsc::unbounded_channel();
        let token = run.clone();
        let slow = SkillRun::Async(Box::pin(async move {
            token.cancelled().await;
            tokio::task::yield_now().await;
            let _ = events.send("cleaned up");
            ToolResult::text("late")
        }));
        let (result, outcome) = execute("slow", SHORT, slow, &call, &run).await;
        assert_eq!(
            (outcome, result.text_content()),
            (Outcome::TimedOut, "skill slow timed out after 50ms".into())
        );
        assert_eq!(
            started.elapsed(),
            SHORT,
            "answered at the deadline, not before or after"
        );
        assert!(seen.try_recv().is_err(), "the answer came before the cleanup");
        let event = tokio::time::timeout(CLEANUP_GRACE, seen.recv()).await.unwrap();
        assert_eq!(event, Some("cleaned up"), "the skill went on after the answer");
        assert_eq!(
            started.elapsed(),
            SHORT,
            "and cleaned up at once, not at the end of the grace"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_skill_that_ignores_its_token_is_dropped_after_the_grace() {
        let (call, run) = (CancellationToken::new(), CancellationToken::new());
        let (events, mut seen) = mpsc::unbounded_channel();
        let stubborn = SkillRun::Async(Box::pin(async move {
            let _guard = DropReport(events);
            std::future::pending::<()>().await;
            ToolResult::text("never")
        }));
        let cancel = call.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            cancel.cancel();
        });
        let started = tokio::time::Instant::now();
        let (_, outcome) = execute("stubborn", Duration::from_secs(60), stubborn, &call, &run).await;
        assert_eq!(outcome, Outcome::Cancelled);
        assert_eq!(started.elapsed(), Duration::ZERO, "answered at once");
        assert!(run.is_cancelled(), "the skill's own token fired");
        let early = tokio::time::timeout(CLEANUP_GRACE - Duration::from_millis(1), seen.recv()).await;
        assert!(early.is_err(), "not dropped before the grace is over: {early:?}");
        let event = tokio::time::timeout(CLEANUP_GRACE, seen.recv()).await.unwrap();
        assert_eq!(event, Some("dropped"), "dropped once the grace was over");
        assert_eq!(
            started.elapsed(),
            CLEANUP_GRACE,
            "dropped exactly at the end of the grace"
        );
    }

    #[test]
    fn durations_print_in_the_attribute_syntax() {
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn outcome_labels_are_stable() {
        let labels: Vec<_> = [
            Outcome::Success,
            Outcome::SkillError,
            Outcome::InvalidArguments,
            Outcome::UnknownTool,
            Outcome::NotOffered,
            Outcome::Panicked,
            Outcome::TimedOut,
            Outcome::Cancelled,
        ]
        .iter()
        .map(Outcome::as_str)
        .collect();
        assert_eq!(
            labels,
            [
                "success",
                "skill_error",
                "invalid_arguments",
                "unknown_tool",
                "not_offered",
                "panicked",
                "timed_out",
                "cancelled"
            ]
        );
    }
}
