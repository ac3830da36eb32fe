use skillbridge::skill;

/// Looks things up.
#[skill(name = "look up")]
fn look_up(key: String) -> String {
    key
}

fn main() {}
