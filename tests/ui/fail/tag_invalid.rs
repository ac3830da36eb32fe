use skillbridge::skill;

/// Reads a record.
#[skill(tags = ["Records", "-read", "a-tag-that-is-far-longer-than-32-bytes"])]
fn read(key: String) -> String {
    key
}

fn main() {}
