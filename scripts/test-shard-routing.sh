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

work=$(mktemp -d /tmp/rescore-shard-routing.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [ "$(id -u)" -eq 0 ]; then
  id -u "$node_user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$node_user"
  as_node=(setpriv "--reuid=$node_user" "--regid=$node_user" --init-groups --)
else
  as_node=()
fi

# Starts one node in the background; sets node_url.
start_node() {
  local flavor=$1 dist java launcher java_env opts_env extra=()
  case "$flavor" in
    elasticsearch)
      java=$es_java; launcher=elasticsearch; java_env=ES_JAVA_HOME; opts_env=ES_JAVA_OPTS
      extra=(-Expack.security.enabled=false)
      dist="$m2/elasticsearch/distribution/integ-test-zip/elasticsearch/${SHARD_ES_VERSION:-9.5.4}/elasticsearch-${SHARD_ES_VERSION:-9.5.4}.zip";;
    elasticsearch8)
      java=$es_java; launcher=elasticsearch; java_env=ES_JAVA_HOME; opts_env=ES_JAVA_OPTS
      extra=(-Expack.security.enabled=false)
      dist="$m2/elasticsearch/distribution/integ-test-zip/elasticsearch/${SHARD_ES8_VERSION:-8.19.13}/elasticsearch-${SHARD_ES8_VERSION:-8.19.13}.zip";;
    opensearch)
      java=$os_java; launcher=opensearch; java_env=OPENSEARCH_JAVA_HOME; opts_env=OPENSEARCH_JAVA_OPTS
      dist="$m2/opensearch/distribution/integ-test-zip/opensearch/${SHARD_OS_VERSION:-3.8.0}/opensearch-${SHARD_OS_VERSION:-3.8.0}.zip";;
    *) die "unknown engine $flavor (elasticsearch, elasticsearch8 or opensearch)";;
  esac
  [ -f "$dist" ] || die "$dist missing (scripts/test-bridge.sh downloads it through Maven)"
  [ -x "$java/bin/java" ] || die "no JDK at $java (set $java_env)"
  local dir="$work/$flavor"
  mkdir -p "$dir"
  unzip -q "$dist" -d "$dir" || die "cannot unzip $dist"
  local home http_port transport_port
  home=$(find "$dir" -mindepth 1 -maxdepth 1 -type d | head -1)
  http_port=$(free_port); transport_port=$(free_port)
  [ ${#as_node[@]} -eq 0 ] || chown -R "$node_user:$node_user" "$dir"
  env -u JAVA_HOME "$java_env=$java" "$opts_env=-Xms384m -Xmx384m" \
    "${as_node[@]}" "$home/bin/$launcher" \
    -Ecluster.name=shard-routing -Enode.name=shard-routing -Ediscovery.type=single-node \
    -Enetwork.host=127.0.0.1 "-Ehttp.port=$http_port" "-Etransport.port=$transport_port" \
    "-Epath.data=$dir/data" "-Epath.logs=$dir/logs" -Ecluster.routing.allocation.disk.threshold_enabled=false \
    "${extra[@]}" > "$dir/node.log" 2>&1 &
  pids+=($!)
  echo "http://127.0.0.1:$http_port $!" > "$dir/url"
}

wait_node() {
  local flavor=$1 url pid start=$SECONDS
  read -r url pid < "$work/$flavor/url"
  until curl -fsS "$url/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { tail -40 "$work/$flavor/node.log" >&2; die "$flavor exited"; }
    [ $((SECONDS - start)) -lt 240 ] || { tail -40 "$work/$flavor/node.log" >&2; die "$flavor not up within 240 s"; }
    sleep 1
  done
  echo "$url"
}

# Both nodes start at once (their JVMs' start-up is most of the time), then are checked in turn.
for e in $engines; do start_node "$e"; done
for e in $engines; do
  url=$(wait_node "$e")
  echo "== $e up at $url"
  "$python" scripts/shard_routing_check.py "$url" "$e" target/release/rescore-sidecar "$work"
done
echo "shard routing OK on: $engines"
