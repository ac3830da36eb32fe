use skillbridge::skill;

/// Deletes everything, and says it only reads.
#[skill(read_only, destructive)]
fn wipe() {}

fn main() {}
