use skillbridge::skill;

#[skill]
fn undocumented(text: String) -> String {
    text
}

fn main() {}
