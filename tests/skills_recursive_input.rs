//! A recursive input type cannot be inlined into a portable schema: the catalog refuses it by name.

use schemars::JsonSchema;
use serde::Deserialize;
use skillbridge::skill;
use skillbridge::skill::{Catalog, CatalogError};

/// A folder with sub-folders.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Folder {
    name: String,
    children: Vec<Folder>,
}

/// Counts the folders of a tree.
#[skill]
fn count_folders(tree: Folder) -> usize {
    fn count(folder: &Folder) -> usize {
        1 + folder.children.iter().map(count).sum::<usize>()
    }
    let _ = &tree.name;
    count(&tree)
}

#[test]
fn a_recursive_input_type_is_a_startup_error_naming_the_type() {
    let error = Catalog::from_registry().expect_err("Folder is recursive");
    let CatalogError::RecursiveSchema {
        skill,
        type_name,
        location,
    } = &error
    else {
        panic!("expected RecursiveSchema, got {error:?}");
    };
    assert_eq!(skill, "count_folders");
    assert_eq!(type_name, "Folder");
    assert_eq!(location.module_path, "skills_recursive_input");
    assert!(
        error.to_string().contains("its input type `Folder` is recursive"),
        "{error}"
    );
    let leaf = Folder {
        name: "leaf".into(),
        children: Vec::new(),
    };
    assert_eq!(
        count_folders(Folder {
            name: "root".into(),
            children: vec![leaf]
        }),
        2
    );
}
