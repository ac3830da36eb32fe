use skillbridge::skill;

/// Pings.
#[skill(nmae = "ping")]
fn ping() -> String {
    "pong".into()
}

fn main() {}
