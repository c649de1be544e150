#!/usr/bin/env bash
# Tests of the WASM SDK's npm package: builds it (scripts/build-wasm.sh --pack), installs
# the tarball into a fresh temporary project as a user would, then runs tests/wasm
# (the JS API against the real `tandem` binary in Node, and the example app in headless
# Chromium). Needs the debug `tandem` binary (cargo build -p tandem-server).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"

cargo build -p tandem-server --bin tandem --locked
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
react=$(node -p "require('./$t/package.json').devDependencies.react")
cat >"$project/package.json" <<JSON
{ "name": "tandem-client-user", "version": "0.0.0", "private": true, "type": "module" }
JSON
(cd "$project" && npm install --no-audit --no-fund --loglevel=error "$tarball" "react@$react" "react-dom@$react")

export TANDEM_CLIENT_DIR="$project"
export TANDEM_ARTIFACTS="${TANDEM_ARTIFACTS:-$CARGO_TARGET_DIR/wasm-artifacts}"
mkdir -p "$TANDEM_ARTIFACTS"
cd "$t"
node --test --test-concurrency=1 --test-timeout=120000 ./*.test.mjs
