#!/usr/bin/env bash
# Runs every benchmark from a release build; JSON results land in target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${CARGO_TARGET_DIR:-target}/bench"
mkdir -p "$out"
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-target}/release/tmctl"
"$bin" bench --repeat "${REPEAT:-5}" --json | tee "$out/orchestration.json"
