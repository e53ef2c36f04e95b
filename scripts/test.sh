#!/usr/bin/env bash
# Every test: the Prometheus rules (promtool), formatting, lints, unit/router/end-to-end tests
# (including the dashboard/rules-to-metrics check), and the demo replayed over HTTP
# through the real binary (fails if re-ranking does not beat BM25 by >= 0.05 NDCG@10), the
# data pipelines' model loop on DuckDB and Spark (docs/pipelines.md), the model rollout
# walkthrough, a one-minute soak smoke (model installs, a Redis restart, resources sampled),
# the search-engine bridge (mvn verify, docker-compose config), the sidecar image's user and
# paths outside Docker, the demo replayed as real searches on Elasticsearch and OpenSearch with
# the plugin zips the bridge build produced, shard-filtered item imports checked against the
# shards real Elasticsearch and OpenSearch nodes put documents on, and the quick subset of the
# fault matrix through a real Elasticsearch node, plus its killed and hung rows on a real
# OpenSearch node (0 failed searches, rescoring resumed after each fault).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== Prometheus alert rules: promtool check rules, promtool test rules"
promtool check rules deploy/prometheus/rules/rescore-sidecar.rules.yml
promtool test rules deploy/prometheus/rules/rescore-sidecar.rules.test.yml
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== cargo deny check licenses bans sources (deny.toml)"
command -v cargo-deny >/dev/null 2>&1 || cargo install --locked cargo-deny
cargo deny --log-level error check licenses bans sources
echo "== cargo test"
cargo test --release --workspace
echo "== item store benches, smoke size (docs/benchmarks.md has the real runs)"
cargo build --release -p rescore-features --example store_bench
cargo build --release --bin rescore-sidecar
store_smoke=$(mktemp -d)
target/release/examples/store_bench 20000 "$store_smoke" --smoke
python3 bench/store_memory.py "$store_smoke/items.parquet" "$store_smoke/mapped-parquet" 20000 5
rm -rf "$store_smoke"
echo "== fuzz targets, smoke: 2,000 runs each over the committed corpora (scripts/fuzz.sh; docs/reliability.md)"
scripts/fuzz.sh
echo "== demo replay through the sidecar's HTTP API"
cargo build --release --bin rescore-sidecar --bin rescore-demo
scripts/demo-replay.sh
echo "== data pipelines and model loop (DuckDB and Spark, docs/pipelines.md)"
scripts/pipeline-loop.sh
echo "== model rollout walkthrough of docs/operations.md (shadow, canary, promote, rollback)"
scripts/rollout-walkthrough.sh
echo "== soak smoke: 1 minute of mixed traffic, 3 model installs, a Redis restart (scripts/soak.sh; docs/reliability.md#soak)"
scripts/soak.sh --smoke
echo "== search-engine bridge: mvn verify in es-plugin-bridge (real Elasticsearch and OpenSearch nodes)"
scripts/test-bridge.sh
echo "== the sidecar image's entrypoint, user and paths outside Docker (docker-compose.yml)"
scripts/test-containers.sh
echo "== demo replay through real Elasticsearch and OpenSearch nodes with the plugin (sidecar rescore)"
scripts/demo-engine-replay.sh
echo "== shard-filtered item import vs the engines' own routing: Elasticsearch 9 and 8, OpenSearch (scripts/test-shard-routing.sh; ADR 0009)"
scripts/test-shard-routing.sh
echo "== fault matrix, quick subset: sidecar killed, hung, garbage answers, a broken model version, Redis paused, through a real Elasticsearch node (scripts/fault-matrix.sh; docs/reliability.md)"
scripts/fault-matrix.sh --quick
echo "== fault matrix on OpenSearch 3.8.0: sidecar killed and hung (scripts/fault-matrix.sh --engine opensearch)"
scripts/fault-matrix.sh --engine opensearch --rows killed,hung --healthy 2 --fault 4
