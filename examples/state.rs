//! A skills binary whose skills share state: the README's `State<T>` example, compiled with the crate.
//!
//! ```sh
//! cargo run --example state -- call visit '{"page": "home"}'
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use skillbridge::{State, skill};

/// Page visits, shared by every call of every skill that takes `State<Visits>`.
#[derive(Default)]
struct Visits(Mutex<HashMap<String, u64>>);

/// Counts a visit to a page and says how many there were.
#[skill]
async fn visit(
    /// The page visited.
    page: String,
    visits: State<Visits>,
) -> u64 {
    let mut counts = visits.0.lock().unwrap();
    let count = counts.entry(page).or_default();
    *count += 1;
    *count
}

fn main() -> std::process::ExitCode {
    // `skills`, `call`, `serve` and `send` all see the state; without it they stop at start-up with
    // "skill `visit` needs State<state::Visits>, which was not provided".
    skillbridge::cli::App::new().state(Visits::default()).run()
}
