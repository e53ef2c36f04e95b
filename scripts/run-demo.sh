#!/usr/bin/env bash
# Sets up the machine, builds, and serves the demo model on embedded defaults:
# models/ (marketplace v1) and the demo item snapshot, on 127.0.0.1:9209.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin rescore-sidecar
# The embedded item store is built (once, then reused) under target/ unless RESCORE_DATA_DIR says otherwise.
RESCORE_DATA_DIR="${RESCORE_DATA_DIR:-target/rescore-data}" exec target/release/rescore-sidecar --models models --items demo/items.jsonl "$@"
