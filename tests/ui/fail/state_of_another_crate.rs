use skillbridge::skill;

/// A generic type of the user's own, called `State`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct State<T> {
    value: T,
}

/// Takes the user's own `State<u8>`, which is not skillbridge's.
#[skill]
fn read(state: State<u8>) -> u8 {
    state.value
}

fn main() {}
