use skillbridge::skill;

/// Lists items.
#[skill]
fn list(#[schemars(range(minimum = 1))] limit: u32) -> u32 {
    limit
}

fn main() {}
