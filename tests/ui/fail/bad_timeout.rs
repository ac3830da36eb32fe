use skillbridge::skill;

/// Waits.
#[skill(timeout = "soon")]
async fn wait() {}

fn main() {}
