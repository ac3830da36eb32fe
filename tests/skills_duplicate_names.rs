//! Two skills with the same name in one binary: `Catalog::from_registry` refuses to start and names both.

use skillbridge::skill::{Catalog, CatalogError};

mod billing {
    use skillbridge::skill;

    /// Looks up an invoice.
    #[skill]
    pub fn lookup(id: String) -> String {
        id
    }
}

mod support {
    use skillbridge::skill;

    /// Looks up a ticket.
    #[skill(name = "lookup")]
    pub fn find_ticket(id: String) -> String {
        id
    }
}

#[test]
fn duplicate_names_are_a_startup_error_naming_both_definitions() {
    let error = Catalog::from_registry().expect_err("two skills are named lookup");
    let CatalogError::DuplicateName { name, first, second } = &error else {
        panic!("expected DuplicateName, got {error:?}");
    };
    assert_eq!(name, "lookup");
    let mut modules = [first.module_path, second.module_path];
    modules.sort();
    assert_eq!(
        modules,
        ["skills_duplicate_names::billing", "skills_duplicate_names::support"]
    );
    assert!(first.file.ends_with("skills_duplicate_names.rs") && second.file.ends_with("skills_duplicate_names.rs"));
    let message = error.to_string();
    assert!(
        message.starts_with("two skills are named `lookup`: skills_duplicate_names::"),
        "{message}"
    );
    assert!(message.contains(&format!("{}:{}", first.file, first.line)), "{message}");
    assert!(
        message.contains(&format!("{}:{}", second.file, second.line)),
        "{message}"
    );
    // Still usable as an ordinary function.
    assert_eq!(billing::lookup("a".into()), support::find_ticket("a".into()));
}
