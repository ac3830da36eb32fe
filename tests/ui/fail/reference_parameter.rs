use skillbridge::skill;

/// Shouts.
#[skill]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

fn main() {}
