use std::rc::Rc;

use skillbridge::skill;

/// Holds an `Rc` across an `.await`.
#[skill]
async fn not_send() -> String {
    let shared = Rc::new(String::from("shared"));
    tokio::task::yield_now().await;
    shared.to_string()
}

fn main() {}
