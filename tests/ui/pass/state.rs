//! Every accepted form of `State<T>` parameters compiles, stays out of the schema, and is recorded.

use std::sync::Mutex;

use skillbridge::skill;
use skillbridge::skill::{Catalog, SkillContext, States};

struct Pool;
struct Log(Mutex<Vec<String>>);

/// A plain enum that happens to be called `State` is an ordinary parameter.
#[derive(serde::Deserialize, schemars::JsonSchema)]
enum State {
    Open,
    Closed,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Input {
    text: String,
}

/// Two states through the full path, the context between them, and a property named like the enum.
#[skill]
async fn full_paths(
    pool: skillbridge::State<Pool>,
    ctx: SkillContext,
    state: State,
    mut log: skillbridge::skill::State<Log>,
) -> String {
    let _ = (&*pool, &ctx, &mut log);
    log.0.lock().unwrap().push(String::new());
    matches!(state, State::Open).to_string()
}

/// A struct input next to a state.
#[skill]
fn with_input(#[skill(input)] input: Input, log: skillbridge::State<Log>) -> String {
    log.0.lock().unwrap().push(input.text.clone());
    input.text
}

fn main() {
    assert!(Catalog::from_registry().is_err(), "the states are missing");
    let mut states = States::new();
    states.insert(Pool).insert(Log(Mutex::new(Vec::new())));
    let catalog = Catalog::from_registry_with(states).expect("every state is supplied");
    let full = catalog.get("full_paths").unwrap();
    assert_eq!(full.parameters(), [("state", true)]);
    let needs: Vec<&str> = full.state_parameters().iter().map(|need| need.parameter()).collect();
    assert_eq!(needs, ["pool", "log"]);
    assert_eq!(catalog.get("with_input").unwrap().parameters(), [("text", true)]);
}
