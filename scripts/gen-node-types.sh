#!/usr/bin/env bash
# Regenerates sdk-node/src/schema.ts (the @tandem/node API types) from openapi/openapi.json
# with the openapi-typescript pinned in sdk-node/package-lock.json. Run it after
# regenerating the spec; sdk-node/test/schema.test.mjs fails while the two differ.
# `--check` only compares (exit 1 on drift).
set -euo pipefail
cd "$(dirname "$0")/../sdk-node"
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.tandem-installed-lock; then
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json node_modules/.tandem-installed-lock
fi
out=src/schema.ts
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp "${TMPDIR:-/tmp}/tandem-schema.XXXXXX.ts")
  trap 'rm -f "$out"' EXIT
fi
node_modules/.bin/openapi-typescript ../openapi/openapi.json --empty-objects-unknown --output "$out" >/dev/null 2>&1 \
  || node_modules/.bin/openapi-typescript ../openapi/openapi.json --empty-objects-unknown --output "$out"
if [ "${1:-}" = "--check" ]; then
  if ! cmp -s "$out" src/schema.ts; then
    echo "sdk-node/src/schema.ts is out of date: run scripts/gen-node-types.sh" >&2
    exit 1
  fi
  echo "sdk-node/src/schema.ts matches openapi/openapi.json"
else
  echo "wrote sdk-node/src/schema.ts"
fi
