use skillbridge::skill;

/// Not `Serialize`, not a result type.
struct Report {
    lines: Vec<String>,
}

/// Builds a report.
#[skill]
fn report() -> Report {
    Report { lines: Vec::new() }
}

fn main() {}
