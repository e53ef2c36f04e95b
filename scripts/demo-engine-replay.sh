#!/usr/bin/env bash
# The demo through real search engines, one at a time: a single-node Elasticsearch 9.x, then
# OpenSearch 3.x (the versions of the plugin zips es-plugin-bridge built, es9 and os3; the servers
# are the integ-test-zip distributions Maven downloaded for its tests), each with the plugin zip
# installed by the engine's own installer and pointed at the
# sidecar release binary (demo model + item snapshot); `rescore-demo index` loads the catalogue into
# a 2-shard index and `rescore-demo replay --engine` searches the held-out queries without and with
# the `sidecar` rescore clause, prints the NDCG@10/latency table and fails below a gain of 0.05 or
# on any failed search. Everything it starts is stopped on exit.
#
# Needs target/release/{rescore-sidecar,rescore-demo} and the plugin zips (scripts/test-bridge.sh
# builds them). Environment (all optional):
#   DEMO_ENGINES="elasticsearch opensearch"   which engines, in this order
#   DEMO_QUERIES=300                          held-out queries per engine
#   ES_PLUGIN_ZIP, OS_PLUGIN_ZIP              plugin zips (default: es-plugin-bridge/elasticsearch/es9
#                                             and opensearch/os3 target/*.zip)
#   ES_DIST, OS_DIST                          distribution zips (default: ~/.m2, the version in the
#                                             plugin zip's name)
#   ES_JAVA_HOME, OPENSEARCH_JAVA_HOME        JDKs (default: Temurin 25 for both)
#   DEMO_NODE_USER=rescore-it                 the unprivileged user nodes run as when run as root
#   DEMO_HEAP=512m                            the nodes' heap
#   DEMO_RUN                                  a bash command run instead of index + replay while a
#                                             node is up, with $url and $flavor set (bench/engine-demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
engines="${DEMO_ENGINES:-elasticsearch opensearch}"
queries="${DEMO_QUERIES:-300}"
m2="$HOME/.m2/repository/org"
es_java="${ES_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
os_java="${OPENSEARCH_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
node_user="${DEMO_NODE_USER:-rescore-it}"
export RUST_LIB_BACKTRACE=0   # error chains without backtraces (panics keep theirs)

die() { echo "demo-engine-replay: $*" >&2; exit 1; }
for b in rescore-sidecar rescore-demo; do
  [ -x "target/release/$b" ] || die "target/release/$b missing (cargo build --release --bin $b)"
done
one_zip() { # the single file matching a glob, or a clear error
  local matches=( $1 )
  [ ${#matches[@]} -eq 1 ] && [ -f "${matches[0]}" ] || die "expected one plugin zip matching $1 (mvn package in es-plugin-bridge), found: ${matches[*]}"
  echo "${matches[0]}"
}

source scripts/lib/engine-node.sh
work=$(mktemp -d /tmp/rescore-engine-replay.XXXXXX)
chmod 755 "$work"
sidecar_pid=""
node_pid=""
stop_node() {
  if [ -n "$node_pid" ]; then
    stop_pid "$node_pid"
    node_pid=""
  fi
}
cleanup() {
  stop_node
  if [ -n "$sidecar_pid" ]; then kill "$sidecar_pid" 2>/dev/null || true; wait "$sidecar_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The sidecar: the release binary with the demo model and item snapshot, on a free loopback port.
target/release/rescore-sidecar --models models --items demo/items.jsonl --data-dir "$work/sidecar-data" \
  --listen 127.0.0.1:0 2>"$work/sidecar.log" &
sidecar_pid=$!
addr=""
for _ in $(seq 1 300); do
  addr=$(sed -n 's/.*listen=\([0-9.:]*\).*/\1/p' "$work/sidecar.log" | head -1)
  if [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$sidecar_pid" 2>/dev/null || { cat "$work/sidecar.log" >&2; die "the sidecar exited"; }
  sleep 0.1
done
curl -fsS "http://$addr/readyz" >/dev/null || { cat "$work/sidecar.log" >&2; die "the sidecar is not ready"; }
echo "sidecar: http://$addr (models/marketplace/1, demo/items.jsonl)"

node_user_setup "$node_user"

run_engine() {
  local flavor=$1 dist zip version java
  engine_kind "$flavor"
  case "$flavor" in
    elasticsearch)
      java=$es_java
      zip=$(one_zip "${ES_PLUGIN_ZIP:-es-plugin-bridge/elasticsearch/es9/target/rescore-sidecar-elasticsearch-*.zip}") || exit 1
      version=${zip##*-es}; version=${version%.zip}
      dist="${ES_DIST:-$m2/elasticsearch/distribution/integ-test-zip/elasticsearch/$version/elasticsearch-$version.zip}";;
    opensearch)
      java=$os_java
      zip=$(one_zip "${OS_PLUGIN_ZIP:-es-plugin-bridge/opensearch/os3/target/rescore-sidecar-opensearch-*.zip}") || exit 1
      version=${zip##*-os}; version=${version%.zip}
      dist="${OS_DIST:-$m2/opensearch/distribution/integ-test-zip/opensearch/$version/opensearch-$version.zip}";;
    *) die "unknown engine $flavor (elasticsearch or opensearch)";;
  esac
  echo
  echo "== $flavor: $(basename "$dist"), plugin $(basename "$zip")"
  local dir="$work/$flavor"
  node_unpack "$dist" "$java" "$dir"
  cp "$zip" "$dir/plugin.zip"
  env -u JAVA_HOME "$java_env=$java" "$node_home/bin/$plugin_cli" install --batch "file://$dir/plugin.zip" > "$dir/install.log" 2>&1 \
    || { cat "$dir/install.log" >&2; die "$plugin_cli install failed"; }
  node_launch "$java" "$dir" "${DEMO_HEAP:-512m}" demo-replay "-Esidecar.url=http://$addr"
  local url=$node_url start=$SECONDS
  node_wait "$url" "$node_pid" "$dir/node.log" 180
  echo "$flavor up at $url after $((SECONDS - start)) s"
  local rc=0
  if [ -n "${DEMO_RUN:-}" ]; then
    url=$url flavor=$flavor bash -c "$DEMO_RUN" || rc=$?
  else
    target/release/rescore-demo index --engine "$url" --flavor "$flavor" --replace || die "indexing into $flavor failed"
    target/release/rescore-demo replay --engine "$url" --flavor "$flavor" --queries "$queries" || rc=$?
  fi
  stop_node
  return $rc
}

failed=()
for e in $engines; do
  run_engine "$e" || failed+=("$e")
done
echo
[ ${#failed[@]} -eq 0 ] || die "replay failed on: ${failed[*]}"
echo "engine replay OK on: $engines"
