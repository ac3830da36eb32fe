use skillbridge::skill;

/// Reads a record.
#[skill(read_only = true, open_world = "no", idempotent(yes))]
fn read(key: String) -> String {
    key
}

fn main() {}
