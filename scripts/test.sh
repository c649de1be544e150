#!/usr/bin/env bash
# Runs the whole test suite. This is the README's test command and what .ci/run calls.
# It installs what the tests need first (the npm clients in tests/js), so a fresh clone
# needs nothing but Rust, Node 20 and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"

# npm clients we did not write (yjs, y-websocket) for the interop tests. `npm ci` again
# only when the lock file changed since the last install.
js=tests/js
if [ ! -f "$js/node_modules/.package-lock.json" ] || ! cmp -s "$js/package-lock.json" "$js/node_modules/.tandem-installed-lock"; then
  echo "test.sh: installing npm packages in $js"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$js/package-lock.json" "$js/node_modules/.tandem-installed-lock"
fi

cargo test --workspace --locked "$@"

# The npm package @tandem/client: built, packed, installed into a fresh project and
# tested in Node and headless Chromium against the real binary.
scripts/test-wasm.sh

# The npm package @tandem/node: built, packed, installed into a fresh project and tested
# against the real binary (with stock y-websocket clients and tsc).
scripts/test-node-sdk.sh

# The tenant dashboard in headless Chromium against the real binary.
scripts/test-dashboard.sh
