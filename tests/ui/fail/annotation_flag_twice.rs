use skillbridge::skill;

/// Overwrites a record.
#[skill(idempotent, destructive, idempotent, destructive = false)]
fn overwrite(key: String) -> String {
    key
}

fn main() {}
