#!/usr/bin/env bash
# Runs `tmctl bench` from a release build with the `bench` feature (the product build has no
# benchmark code); JSON results land in target/bench/. The Python harnesses: see benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${CARGO_TARGET_DIR:-target}/bench"
mkdir -p "$out"
cargo build --release --locked --features bench
bin="${CARGO_TARGET_DIR:-target}/release/tmctl"
"$bin" bench --repeat "${REPEAT:-5}" --json | tee "$out/orchestration.json"
