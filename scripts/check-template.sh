#!/usr/bin/env bash
# Builds examples/template as a user would: a new crate outside this workspace, skillbridge added with
# `cargo add`, the template's src/main.rs copied in. Checks that it lists and runs its skill, that `--version`
# names the crate, and that its Cargo.toml is the one in examples/template (dependencies included).
set -euo pipefail
checkout="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The workspace's build directory and lock file: the dependencies are the workspace's, already built.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$checkout/target}"

cd "$work"
cargo new --quiet --vcs none my-tools
cd my-tools
cp "$checkout/Cargo.lock" .
cargo add --quiet skillbridge --path "$checkout"
cp "$checkout/examples/template/src/main.rs" src/main.rs

fail() { echo "check-template: $*" >&2; exit 1; }
# The user's manifest differs from the template's only in where skillbridge comes from.
diff <(grep -v '^#' "$checkout/examples/template/Cargo.toml" | sed '/^$/d') \
     <(sed -e 's|{ version = "\([0-9]*\.[0-9]*\)\.[0-9]*", path = "[^"]*" }|"\1"|' -e '/^$/d' Cargo.toml) \
  || fail "examples/template/Cargo.toml is not what cargo new + cargo add make"

version="$(cargo run --quiet -- --version)"
[ "$version" = "my-tools 0.1.0" ] || fail "--version printed '$version', not 'my-tools 0.1.0'"
cargo run --quiet -- skills | grep -q '^greet ' || fail "skills does not list greet"
reply="$(cargo run --quiet -- call greet '{"name": "Ada"}')"
[ "$reply" = "Hello, Ada! (greeting #1)" ] || fail "call greet answered '$reply'"
echo "check-template: my-tools builds outside the workspace, names itself and runs its skill"
