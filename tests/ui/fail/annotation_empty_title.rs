use skillbridge::skill;

/// Reads a record.
#[skill(title = "  ")]
fn read(key: String) -> String {
    key
}

fn main() {}
