//! The bridge under test: the full skillbridge binary (`serve`, `skills`, `call`, ..) built in a user's own
//! crate, with the benchmark's skills linked in. This is also the smallest example of that path: a `main`
//! that hands over to [`skillbridge::cli::main`] and `#[skill]` functions next to it.

use std::process::ExitCode;
use std::time::Duration;

use skillbridge::skill;

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

fn main() -> ExitCode {
    skillbridge::cli::main()
}
