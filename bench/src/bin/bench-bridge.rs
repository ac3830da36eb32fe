//! The bridge under test: the full skillbridge binary (`serve`, `skills`, `call`, ..) built in a user's own
//! crate, with the benchmark's skills linked in. This is also the smallest example of that path: a `main`
//! that hands over to [`skillbridge::cli::main`] and `#[skill]` functions next to it.

use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use skillbridge::skill;
use skillbridge_bench::clients::RUN_LOG_ENV;

/// The allocator the shipped `skillbridge` binary uses (see `skills/src/main.rs`), so that the benchmark measures
/// what users run. Optional in a crate of your own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns its input unchanged (the trivial skill of workload W1).
#[skill]
fn noop(
    /// Any text; it comes back as the answer.
    text: String,
) -> String {
    text
}

/// Returns its input unchanged, as an `async fn` (run on a Tokio task instead of the blocking pool).
#[skill]
async fn noop_async(
    /// Any text; it comes back as the answer.
    text: String,
) -> String {
    text
}

/// Waits 50 ms without holding a thread, then answers `slept` (the skill of workload W2).
#[skill]
async fn sleep_50ms() -> &'static str {
    tokio::time::sleep(Duration::from_millis(50)).await;
    "slept"
}

/// Answers its call's id, after `sleep_ms` if given: the skill of the fault suite, whose double adds every call's id
/// to its arguments and checks that each answer names its own call. Notes `start <call_id>` and `done <call_id>` in
/// the run log (see [`RUN_LOG_ENV`]), so that runs can be counted across bridge processes.
#[skill]
async fn echo_call(
    /// The call's id (the double's `call_id` argument).
    call_id: String,
    /// How long to take, in milliseconds.
    sleep_ms: Option<u64>,
) -> String {
    note_run("start", &call_id);
    if let Some(ms) = sleep_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    note_run("done", &call_id);
    call_id
}

/// An order whose every field is bounded: the input of the validation row.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct BoundedOrder {
    /// Like T-123.
    #[schemars(regex(pattern = r"^T-[0-9]+$"))]
    ticket_id: String,
    /// 1 to 50.
    #[schemars(range(min = 1, max = 50))]
    quantity: u32,
    /// One to five item names.
    #[schemars(length(min = 1, max = 5))]
    items: Vec<String>,
    /// Who to tell.
    #[schemars(email)]
    contact: String,
    /// A share, 0 to 1.
    #[schemars(range(min = 0.0, max = 1.0))]
    share: f64,
    /// How urgent.
    priority: Priority,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Priority {
    Low,
    High,
}

/// Confirms an order whose every field is checked against its bounds before the skill runs (the validation row).
#[skill]
async fn bounded_order(#[skill(input)] order: BoundedOrder) -> String {
    format!(
        "{} x{} {:?}: {} items for {} at {}",
        order.ticket_id,
        order.quantity,
        order.priority,
        order.items.len(),
        order.contact,
        order.share
    )
}

/// Appends `<event> <call_id>` to the run log, if there is one. One `write` per line on a file opened for
/// appending, so lines of concurrent runs (and of two bridge processes) never interleave.
fn note_run(event: &str, call_id: &str) {
    static RUN_LOG: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    let log = RUN_LOG.get_or_init(|| {
        let path = std::env::var_os(RUN_LOG_ENV)?;
        let file = File::options().create(true).append(true).open(&path);
        Some(Mutex::new(file.unwrap_or_else(|error| {
            panic!("cannot open the run log {}: {error}", path.display())
        })))
    });
    if let Some(log) = log {
        let line = format!("{event} {call_id}\n");
        let mut file = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = file.write_all(line.as_bytes()) {
            panic!("cannot write the run log: {error}");
        }
    }
}

fn main() -> ExitCode {
    skillbridge::cli::main()
}
