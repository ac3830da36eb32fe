use skillbridge::skill;

struct Greeter;

impl Greeter {
    /// Greets.
    #[skill]
    fn greet(&self, name: String) -> String {
        format!("hi {name}")
    }
}

fn main() {}
