//! A skill declared inside a function body (as doc tests do) still registers.

use skillbridge::skill::Catalog;

fn main() {
    use skillbridge::skill;

    /// Defined locally.
    #[skill]
    fn local(x: i64) -> i64 {
        x * 2
    }

    let catalog = Catalog::from_registry().unwrap();
    assert_eq!(catalog.names().collect::<Vec<_>>(), ["local"]);
    assert_eq!(local(2), 4);
}
