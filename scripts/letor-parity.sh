#!/usr/bin/env bash
# LETOR parity (docs/pipelines.md): train on DATA_DIR/rank.train with LightGBM's lambdarank
# example parameters (pipelines/params/letor.toml) through rescore-pipeline (Python LightGBM
# 4.7.0) and rescore-train (lightgbm3, the LightGBM the sidecar links); NDCG@5 on rank.test must
# be within 0.01 of Python LightGBM's own metric. DATA_DIR holds rank.train, rank.test and their
# .query files (LightGBM's examples/lambdarank layout).
set -euo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 DATA_DIR" >&2; exit 2; fi
DATA=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
scripts/pipeline-setup.sh
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
cargo build --release -p rescore-train
.tools/pipeline-venv/bin/rescore-pipeline letor-parity --data "$DATA" \
    --params pipelines/params/letor.toml --tolerance 0.01 --rust-train "$BIN/rescore-train"
