#!/usr/bin/env bash
# Tests of the @tandem/node npm package: builds and packs sdk-node/, installs the tarball
# into a fresh temporary project as a user would, then runs tests/node-sdk against the
# real `tandem` binary (every method, a stock y-websocket client with its tokens, 429s,
# the types under tsc, and the drift check of the generated API types).
# npm packages are installed again only when a lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"

cargo build -p tandem-server --bin tandem --locked

install_locked() {
  if [ ! -f "$1/node_modules/.package-lock.json" ] || ! cmp -s "$1/package-lock.json" "$1/node_modules/.tandem-installed-lock"; then
    echo "test-node-sdk.sh: installing npm packages in $1"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$1/package-lock.json" "$1/node_modules/.tandem-installed-lock"
  fi
}
install_locked sdk-node
install_locked tests/node-sdk

# Build and pack into the target dir (no build output in the source tree's git status).
out="$CARGO_TARGET_DIR/node-sdk"
mkdir -p "$out"
(cd sdk-node && npm run --silent build)
tarball=$(cd sdk-node && npm pack --silent --pack-destination "$out" | tail -n1)
tarball="$out/$tarball"
echo "test-node-sdk.sh: package $tarball"

# A fresh project that installs the tarball (the package has no runtime dependencies).
project=$(mktemp -d "${TMPDIR:-/tmp}/tandem-node-project.XXXXXX")
trap 'rm -rf "$project"' EXIT
cat >"$project/package.json" <<JSON
{ "name": "tandem-node-user", "version": "0.0.0", "private": true, "type": "module" }
JSON
(cd "$project" && npm install --no-audit --no-fund --loglevel=error --offline "$tarball")
# The tests import the package through this file, so the project's resolution (the
# package's "exports") is what they exercise.
echo "export * from '@tandem/node';" >"$project/esm-entry.mjs"

export TANDEM_NODE_PROJECT="$project"
cd tests/node-sdk
node --test --test-concurrency=1 --test-timeout=180000 ./*.test.mjs
