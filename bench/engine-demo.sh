#!/usr/bin/env bash
# The demo's searches through real engine nodes, timed (not a test): for each engine of
# scripts/demo-engine-replay.sh (Elasticsearch 9.x, then OpenSearch 3.x, one at a time, plugin zip
# installed, the sidecar release binary with the demo model) and each catalogue size, index the
# catalogue (BENCH_COPIES x 10,000 documents, 2 shards) and run `rescore-demo bench-engine`: the same
# searches without rescore and with the sidecar rescore at each window, at each client concurrency,
# one Markdown table per (engine, size) with p50/p95/p99, searches/s and the per-call split.
#
#   bench/engine-demo.sh                                   # 10k and 1M documents, both engines
#   BENCH_COPIES=1 BENCH_SEARCHES=50 DEMO_ENGINES=elasticsearch bench/engine-demo.sh   # a smoke
#
# Environment: BENCH_COPIES ("1 100": 10k and 1M documents), BENCH_SEARCHES (400 per cell),
# BENCH_WINDOWS (0,10,100,1000; 0 = no rescore), BENCH_CONCURRENCY (1,8), plus everything
# scripts/demo-engine-replay.sh reads (DEMO_ENGINES, DEMO_HEAP, plugin zips, JDKs).
# Needs a quiet machine for figures worth keeping; 1M documents take minutes to index per engine.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_COPIES="${BENCH_COPIES:-1 100}" BENCH_SEARCHES="${BENCH_SEARCHES:-400}"
export BENCH_WINDOWS="${BENCH_WINDOWS:-0,10,100,1000}" BENCH_CONCURRENCY="${BENCH_CONCURRENCY:-1,8}"
export DEMO_HEAP="${DEMO_HEAP:-1g}"
echo "machine: $(nproc) cores, $(uptime)"
# shellcheck disable=SC2016  # expanded by demo-engine-replay.sh's bash -c, with $url and $flavor
export DEMO_RUN='
set -e
for copies in $BENCH_COPIES; do
  echo "-- $flavor, $((copies * 10000)) documents"
  target/release/rescore-demo index --engine "$url" --flavor "$flavor" --replace --copies "$copies"
  target/release/rescore-demo bench-engine --engine "$url" --flavor "$flavor" \
    --searches "$BENCH_SEARCHES" --windows "$BENCH_WINDOWS" --concurrency "$BENCH_CONCURRENCY"
done'
exec scripts/demo-engine-replay.sh
