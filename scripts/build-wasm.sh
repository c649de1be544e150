#!/usr/bin/env bash
# Packs the npm package @tandem/client (sdk-wasm/npm/). The package is plain ESM over the
# app's `yjs` (see docs/architecture.md "JS SDK": no WebAssembly is shipped any more, so
# there is nothing to compile). Prints the packed and gzipped sizes of its JavaScript.
# With --pack, runs `npm pack` and prints the tarball's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"
pkg=sdk-wasm/npm

for f in index.js policy.js react.js; do
  node --check "$pkg/$f"
done
raw=$(cat "$pkg/index.js" "$pkg/policy.js" | wc -c)
gz=$(cat "$pkg/index.js" "$pkg/policy.js" | gzip -9c | wc -c)
echo "build-wasm.sh: @tandem/client core ${raw} bytes raw, ${gz} bytes gzipped (unminified, without yjs/y-protocols/lib0)"

if [ "${1:-}" = "--pack" ]; then
  dest=$CARGO_TARGET_DIR/wasm-pkg
  mkdir -p "$dest"
  tarball=$(cd "$pkg" && npm pack --silent --pack-destination "$dest" | tail -n1)
  echo "$dest/$tarball"
fi
