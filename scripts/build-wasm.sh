#!/usr/bin/env bash
# Builds the npm package @tandem/client (sdk-wasm/npm/): the tandem-wasm crate for
# wasm32 in release, wasm-opt -Oz, wasm-bindgen (ESM, --target web) at exactly the
# version in Cargo.lock, into sdk-wasm/npm/wasm/. Installs what is missing (the
# wasm32 target, wasm-bindgen-cli, Debian's binaryen when run as root with apt).
# With --pack, also runs `npm pack` and prints the tarball's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"
pkg=sdk-wasm/npm
out=$pkg/wasm

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$want" ] || { echo "build-wasm.sh: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  echo "build-wasm.sh: installing wasm-bindgen-cli $want (found '${have:-none}')"
  cargo install wasm-bindgen-cli --version "$want"
fi

if ! command -v wasm-opt >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build-wasm.sh: installing binaryen (wasm-opt)"
    apt-get install -y binaryen >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y binaryen >/dev/null; }
  else
    echo "build-wasm.sh: wasm-opt is missing: install Debian's binaryen (apt-get install -y binaryen)" >&2
    exit 1
  fi
fi

cargo build -p tandem-wasm --target wasm32-unknown-unknown --release --locked
rm -rf "$out"
mkdir -p "$out"
# wasm-opt runs on the compiler's output, before wasm-bindgen: Debian's binaryen (108)
# rewrites the externref table that wasm-bindgen adds (any pass, even -O1, leaves a
# module that fails `Table.set` at init), while wasm-bindgen keeps an optimised input
# as it is. Debug info is stripped by wasm-bindgen.
opt=$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/tandem_wasm.opt.wasm
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  -o "$opt" "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/tandem_wasm.wasm"
wasm-bindgen --target web --out-dir "$out" --out-name tandem_wasm --no-typescript "$opt"

raw=$(wc -c <"$out/tandem_wasm_bg.wasm")
gz=$(gzip -9c "$out/tandem_wasm_bg.wasm" | wc -c)
echo "build-wasm.sh: tandem_wasm_bg.wasm ${raw} bytes raw, ${gz} bytes gzipped (wasm-opt -Oz)"

if [ "${1:-}" = "--pack" ]; then
  dest=$CARGO_TARGET_DIR/wasm-pkg
  mkdir -p "$dest"
  tarball=$(cd "$pkg" && npm pack --silent --pack-destination "$dest" | tail -n1)
  echo "$dest/$tarball"
fi
