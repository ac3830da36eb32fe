use skillbridge::{State, skill};

struct Pool;

/// Copies between two pools, or does it?
#[skill]
fn copy(from: State<Pool>, to: State<Pool>) -> String {
    let _ = (&*from, &*to);
    "copied".into()
}

fn main() {}
