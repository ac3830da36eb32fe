use skillbridge::skill;

/// Looks up a user.
#[skill]
fn user(#[schemars(rename = "id")] user_id: String) -> String {
    user_id
}

fn main() {}
