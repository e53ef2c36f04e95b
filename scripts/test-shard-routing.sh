#!/usr/bin/env bash
# Shard-filtered imports against real search nodes (docs/feature-store.md#shard-filtered-snapshots,
# ADR 0009): starts single-node Elasticsearch 9.x and 8.x (the two routing functions) and
# OpenSearch 3.x side by side (the
# integ-test-zip distributions Maven downloaded for es-plugin-bridge's tests; no plugin needed),
# and runs scripts/shard_routing_check.py against each: indices of 6 shards (default routing
# shards), 3 shards with number_of_routing_shards 24 and 5 shards, 2,000 documents each with
# non-ASCII ids and custom routings; `items import --index-shards N/R --keep-shards S` must hold
# exactly the ids the engine put on shard S, for every shard. Everything it starts is stopped
# by its pid on exit.
#
# Needs target/release/rescore-sidecar and the pipelines' venv (pyarrow; scripts/pipeline-setup.sh).
# Environment (optional):
#   SHARD_ENGINES="elasticsearch elasticsearch8 opensearch"   which engines
#   SHARD_ES_VERSION=9.5.4, SHARD_ES8_VERSION=8.19.13, SHARD_OS_VERSION=3.8.0   versions (in ~/.m2)
#   ES_JAVA_HOME, OPENSEARCH_JAVA_HOME         JDKs (default: Temurin 25 for both)
#   SHARD_NODE_USER=rescore-it                 the unprivileged user nodes run as when run as root
set -euo pipefail
cd "$(dirname "$0")/.."
engines="${SHARD_ENGINES:-elasticsearch elasticsearch8 opensearch}"
m2="$HOME/.m2/repository/org"
es_java="${ES_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
os_java="${OPENSEARCH_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
node_user="${SHARD_NODE_USER:-rescore-it}"
python=.tools/pipeline-venv/bin/python

die() { echo "test-shard-routing: $*" >&2; exit 1; }
[ -x target/release/rescore-sidecar ] || die "target/release/rescore-sidecar missing (cargo build --release --bin rescore-sidecar)"
"$python" -c 'import pyarrow' 2>/dev/null || scripts/pipeline-setup.sh

source scripts/lib/engine-node.sh
work=$(mktemp -d /tmp/rescore-shard-routing.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  rm -rf "$work"
}
trap cleanup EXIT
node_user_setup "$node_user"

# Starts one node in the background; its url and pid go to $work/FLAVOR/url.
start_node() {
  local flavor=$1 dist java
  engine_kind "$flavor"
  case "$flavor" in
    elasticsearch)
      java=$es_java
      dist="$m2/elasticsearch/distribution/integ-test-zip/elasticsearch/${SHARD_ES_VERSION:-9.5.4}/elasticsearch-${SHARD_ES_VERSION:-9.5.4}.zip";;
    elasticsearch8)
      java=$es_java
      dist="$m2/elasticsearch/distribution/integ-test-zip/elasticsearch/${SHARD_ES8_VERSION:-8.19.13}/elasticsearch-${SHARD_ES8_VERSION:-8.19.13}.zip";;
    opensearch)
      java=$os_java
      dist="$m2/opensearch/distribution/integ-test-zip/opensearch/${SHARD_OS_VERSION:-3.8.0}/opensearch-${SHARD_OS_VERSION:-3.8.0}.zip";;
    *) die "unknown engine $flavor (elasticsearch, elasticsearch8 or opensearch)";;
  esac
  node_unpack "$dist" "$java" "$work/$flavor"
  node_launch "$java" "$work/$flavor" 384m shard-routing
  pids+=("$node_pid")
  echo "$node_url $node_pid" > "$work/$flavor/url"
}

# All nodes start at once (their JVMs' start-up is most of the time), then are checked in turn.
for e in $engines; do start_node "$e"; done
for e in $engines; do
  read -r url pid < "$work/$e/url"
  node_wait "$url" "$pid" "$work/$e/node.log" 240
  echo "== $e up at $url"
  "$python" scripts/shard_routing_check.py "$url" "$e" target/release/rescore-sidecar "$work"
done
echo "shard routing OK on: $engines"
