//! `default-features = false` gives a crate that only defines skills: none of the bridge's (HTTP, TLS, websocket) or
//! the command line's crates are in its dependency tree, while the default features bring them all.

use std::collections::BTreeSet;
use std::process::Command;

/// The crates of `cargo tree -p skillbridge -e normal` with these feature flags.
fn dependencies(flags: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "skillbridge",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .args(flags)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

const BRIDGE_AND_CLI_CRATES: [&str; 8] = [
    "axum",
    "reqwest",
    "rustls",
    "tokio-rustls",
    "tokio-tungstenite",
    "clap",
    "tracing-subscriber",
    "hyper",
];

#[test]
fn without_default_features_no_http_tls_websocket_or_command_line_crate_is_linked() {
    let lean = dependencies(&["--no-default-features"]);
    let linked: Vec<&str> = BRIDGE_AND_CLI_CRATES
        .into_iter()
        .filter(|name| lean.contains(*name))
        .collect();
    assert!(linked.is_empty(), "linked without default features: {linked:?}");
    for needed in ["schemars", "inventory", "serde_json", "tokio"] {
        assert!(lean.contains(needed), "{needed} is needed to define and run skills");
    }

    let full = dependencies(&[]);
    for name in BRIDGE_AND_CLI_CRATES {
        assert!(full.contains(name), "the default features link {name}");
    }
}
