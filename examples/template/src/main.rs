//! A skills binary of your own: one async skill that takes shared state, and the whole skillbridge command line
//! (`skills`, `call`, `serve`, `send`) named after this crate.
//!
//! ```sh
//! cargo run -- skills
//! cargo run -- call greet '{"name": "Ada"}'
//! cargo run -- serve --manager-url http://127.0.0.1:3001
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use skillbridge::{State, skill};

/// Greetings so far, shared by every call.
#[derive(Default)]
struct Greetings(AtomicU64);

/// Greets someone by name and says how many greetings there have been.
#[skill(tags = ["demo"])]
async fn greet(
    greetings: State<Greetings>,
    /// Who to greet.
    name: String,
) -> String {
    let count = greetings.0.fetch_add(1, Ordering::Relaxed) + 1;
    format!("Hello, {name}! (greeting #{count})")
}

fn main() -> std::process::ExitCode {
    skillbridge::app!().state(Greetings::default()).run()
}
