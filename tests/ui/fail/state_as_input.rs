use skillbridge::{State, skill};

struct Pool;

/// State cannot be the input.
#[skill]
fn query(#[skill(input)] pool: State<Pool>) -> String {
    let _ = &*pool;
    "ok".into()
}

fn main() {}
