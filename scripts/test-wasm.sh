#!/usr/bin/env bash
# Tests of the browser SDK's npm package: packs it (scripts/build-wasm.sh --pack), installs
# the tarball into a fresh temporary project as a user would (with the editor, bundler
# and type-checker packages the browser tests use, at tests/wasm/package.json's pinned
# versions), then runs tests/wasm (the JS API against the real `tandem` binary in Node;
# ProseMirror editors, the example app and a React app bundled with esbuild in headless
# Chromium; tsc --noEmit on the .d.ts). Needs the debug `tandem` binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"

# TANDEM_BIN=path tests a given binary instead of building the debug one.
[ -n "${TANDEM_BIN:-}" ] || cargo build -p tandem-server --bin tandem --locked
tarball=$(scripts/build-wasm.sh --pack | tail -n1)
echo "test-wasm.sh: package $tarball"

t=tests/wasm
if [ ! -f "$t/node_modules/.package-lock.json" ] || ! cmp -s "$t/package-lock.json" "$t/node_modules/.tandem-installed-lock"; then
  (cd "$t" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$t/package-lock.json" "$t/node_modules/.tandem-installed-lock"
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test-wasm.sh: installing Debian's chromium"
    apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
  else
    echo "test-wasm.sh: /usr/bin/chromium is missing: apt-get install -y chromium" >&2
    exit 1
  fi
fi

# A fresh project that installs the tarball (and React, for the ./react entry).
project=$(mktemp -d "${TMPDIR:-/tmp}/tandem-client-project.XXXXXX")
trap 'rm -rf "$project"' EXIT
# Everything a user's app would install next to the package, at the versions pinned here.
wanted=$(node -e '
  const d = require("./'"$t"'/package.json").devDependencies;
  const names = ["yjs", "react", "react-dom", "esbuild", "typescript", "@types/react", "y-indexeddb",
    "y-prosemirror", "prosemirror-model", "prosemirror-state", "prosemirror-view",
    "prosemirror-schema-basic", "prosemirror-keymap", "prosemirror-commands",
    "y-codemirror.next", "@codemirror/state", "@codemirror/view"];
  console.log(names.map((n) => `${n}@${d[n]}`).join(" "));')
cat >"$project/package.json" <<JSON
{ "name": "tandem-client-user", "version": "0.0.0", "private": true, "type": "module" }
JSON
# shellcheck disable=SC2086
(cd "$project" && npm install --no-audit --no-fund --loglevel=error "$tarball" $wanted)

export TANDEM_CLIENT_DIR="$project"
export TANDEM_ARTIFACTS="${TANDEM_ARTIFACTS:-$CARGO_TARGET_DIR/wasm-artifacts}"
mkdir -p "$TANDEM_ARTIFACTS"
cd "$t"
# Arguments name test files to run (default: all).
if [ "$#" -gt 0 ]; then files=("$@"); else files=(./*.test.mjs); fi
node --test --test-concurrency=1 --test-timeout=180000 "${files[@]}"
