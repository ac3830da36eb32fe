use skillbridge::skill;

/// Settings.
#[skill]
struct Settings {
    verbose: bool,
}

fn main() {}
