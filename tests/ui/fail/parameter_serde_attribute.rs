use skillbridge::skill;

/// Looks up a user.
#[skill]
fn user(#[serde(alias = "id")] user_id: String) -> String {
    user_id
}

fn main() {}
