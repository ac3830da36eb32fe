#!/usr/bin/env bash
# Install the pinned Codex CLI (npm package @openai/codex) into the repo's git-ignored cache, not system-wide.
#
# usage: scripts/install-codex.sh
#   env SKILLBRIDGE_CODEX_VERSION  version to install (default 0.169.0, the one the tests and fixtures pin)
#   env SKILLBRIDGE_CODEX_CACHE    cache folder (default <repo>/.cache/codex)
#
# Idempotent: when <cache>/<version>/bin/codex already reports the right version, nothing is downloaded.
# The last line on stdout is the path of the native codex binary (a stable symlink into the platform package);
# the tests find it there, or wherever SKILLBRIDGE_CODEX_BIN points.
set -euo pipefail

version="${SKILLBRIDGE_CODEX_VERSION:-0.169.0}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SKILLBRIDGE_CODEX_CACHE:-$repo/.cache/codex}"
prefix="$cache/$version"
link="$prefix/bin/codex"

log() { printf 'install-codex: %s\n' "$*" >&2; }

reports_version() {
    [[ -x "$1" ]] && [[ "$("$1" --version 2>/dev/null)" == "codex-cli $version" ]]
}

if reports_version "$link"; then
    log "codex $version already installed"
    echo "$link"
    exit 0
fi

command -v npm >/dev/null || { log "npm is required (install Node.js >= 18)"; exit 1; }

# Install into a fresh staging folder and swap it in, so an interrupted run never leaves a half-installed prefix.
mkdir -p "$cache"
staging="$(mktemp -d "$cache/.staging-$version.XXXXXX")"
chmod 755 "$staging"
trap 'rm -rf "$staging"' EXIT
log "installing @openai/codex@$version into $prefix"
npm install --prefix "$staging" --no-save --no-audit --no-fund --loglevel=error "@openai/codex@$version" >&2

# The npm package is a Node launcher; the native binary ships in a platform package (an optional dependency):
# node_modules/@openai/codex-<platform>/vendor/<target-triple>/bin/codex.
native="$(find "$staging/node_modules/@openai" -path '*/vendor/*/bin/codex' -type f -perm -u+x | head -n 1)"
if [[ -z "$native" ]]; then
    log "no native codex binary for this platform ($(uname -sm)) in the npm package"
    exit 1
fi
mkdir -p "$staging/bin"
# Relative, so the prefix can be moved into place below.
ln -sfn "../${native#"$staging/"}" "$staging/bin/codex"

rm -rf "$prefix"
mv "$staging" "$prefix"
trap - EXIT

if ! reports_version "$link"; then
    log "installed, but $link --version does not report codex-cli $version"
    exit 1
fi
log "codex $version installed"
echo "$link"
