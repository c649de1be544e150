#!/usr/bin/env bash
# Version history's cost (docs/benchmarks.md, "Version history"): rebuilding a room's
# document at a past time on rooms with 1,000 and 100,000 updates, and the storage the
# history keeps next to the compacted document. Runs the ignored measurement in
# server/src/store/suite/history_bench.rs against SQLite in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p tandem-server --lib ${RELEASE:+--release} history_bench -- --ignored --nocapture \
  | grep '^history_bench'
