use skillbridge::skill;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Query {
    text: String,
}

/// Searches.
#[skill]
fn search(#[skill(input)] #[schemars(length(min = 1))] query: Query) -> String {
    query.text
}

fn main() {}
