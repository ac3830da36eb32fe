use skillbridge::{State, skill};

mod db {
    pub struct Pool;
}

type Primary = db::Pool;

/// Two names, one type.
#[skill]
fn copy(from: State<db::Pool>, to: State<Primary>) -> String {
    let _ = (&*from, &*to);
    "copied".into()
}

fn main() {}
