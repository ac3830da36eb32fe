//! Golden files pin what Codex sees of every shipped skill: `tests/golden/<skill>.json` holds its description,
//! timeout, input schema and output schema. A change to a skill's signature, docs or types shows up as a diff
//! of these files in review.
//!
//! After an intended change, rewrite them with `UPDATE_GOLDEN=1 cargo test -p skillbridge-skills --test golden`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use skillbridge::skill::{Catalog, SkillInfo, format_duration};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn golden_value(skill: &SkillInfo) -> Value {
    json!({
        "name": skill.name(),
        "description": skill.description(),
        "timeout": format_duration(skill.timeout()),
        "inputSchema": skill.input_schema(),
        "outputSchema": skill.output_schema(),
    })
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value != "0")
}

#[test]
fn every_skill_matches_its_golden_file() {
    skillbridge_skills::link();
    let catalog = Catalog::from_registry_with(skillbridge_skills::states(Default::default()).unwrap())
        .expect("the shipped skills form a valid catalog");
    assert!(!catalog.is_empty());
    let dir = golden_dir();
    let mut mismatches = Vec::new();
    for skill in catalog.iter() {
        let path = dir.join(format!("{}.json", skill.name()));
        let expected = serde_json::to_string_pretty(&golden_value(skill)).unwrap() + "\n";
        if updating() {
            std::fs::write(&path, &expected).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(actual) if actual == expected => {}
            Ok(actual) => mismatches.push(format!(
                "{} differs from the skill:\n--- golden\n{actual}\n+++ skill\n{expected}",
                path.display()
            )),
            Err(error) => mismatches.push(format!("{}: {error}", path.display())),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n\nIf the change is intended: UPDATE_GOLDEN=1 cargo test -p skillbridge-skills --test golden",
        mismatches.join("\n\n")
    );
}

#[test]
fn no_golden_file_outlives_its_skill() {
    skillbridge_skills::link();
    let catalog = Catalog::from_registry_with(skillbridge_skills::states(Default::default()).unwrap()).unwrap();
    let skills: BTreeSet<String> = catalog.names().map(|name| format!("{name}.json")).collect();
    let files: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let stale: Vec<_> = files.difference(&skills).collect();
    if updating() {
        for file in &stale {
            std::fs::remove_file(golden_dir().join(file)).unwrap();
        }
        return;
    }
    assert!(
        stale.is_empty(),
        "golden files without a skill: {stale:?}; delete them (or run with UPDATE_GOLDEN=1)"
    );
}
