use skillbridge::skill;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Query {
    text: String,
}

/// Searches.
#[skill]
fn search(#[skill(input)] query: Query, limit: u32) -> String {
    format!("{} {limit}", query.text)
}

fn main() {}
