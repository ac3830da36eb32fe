use skillbridge::skill;

/// Reads a record.
#[skill(tags = ["records", ""])]
fn read(key: String) -> String {
    key
}

fn main() {}
