use skillbridge::{State, skill};

struct Pool;

/// Borrows its state.
#[skill]
fn query(pool: &State<Pool>) -> String {
    let _ = &**pool;
    "ok".into()
}

fn main() {}
