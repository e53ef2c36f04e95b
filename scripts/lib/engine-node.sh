# Single-node Elasticsearch and OpenSearch test nodes from the integ-test-zip distributions
# Maven downloaded (scripts/test-bridge.sh), shared by scripts/test-shard-routing.sh and
# scripts/demo-engine-replay.sh. Source it after defining `die MESSAGE`; it defines functions
# and the array `as_node`, and starts nothing by itself.

# A free loopback TCP port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# node_user_setup USER: the engines refuse to run as root, so when this runs as root `as_node`
# becomes the command prefix that runs a node as USER (created as a system user if missing).
node_user_setup() {
  if [ "$(id -u)" -eq 0 ]; then
    id -u "$1" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$1"
    as_node=(setpriv "--reuid=$1" "--regid=$1" --init-groups --)
    node_owner=$1
  else
    as_node=()
    node_owner=""
  fi
}
as_node=()
node_owner=""

# engine_kind FLAVOR: sets launcher, plugin_cli, java_env, opts_env and the array engine_opts
# (settings every node of that engine gets) for elasticsearch* or opensearch* flavors.
engine_kind() {
  case "$1" in
    elasticsearch*)
      launcher=elasticsearch; plugin_cli=elasticsearch-plugin
      java_env=ES_JAVA_HOME; opts_env=ES_JAVA_OPTS; engine_opts=(-Expack.security.enabled=false);;
    opensearch*)
      launcher=opensearch; plugin_cli=opensearch-plugin
      java_env=OPENSEARCH_JAVA_HOME; opts_env=OPENSEARCH_JAVA_OPTS; engine_opts=();;
    *) die "unknown engine $1";;
  esac
}

# node_unpack DIST JAVA DIR: checks the distribution zip and the JDK (after engine_kind), unzips
# into DIR and sets node_home.
node_unpack() {
  local dist=$1 java=$2 dir=$3
  [ -f "$dist" ] || die "$dist missing (scripts/test-bridge.sh downloads it through Maven)"
  [ -x "$java/bin/java" ] || die "no JDK at $java (set $java_env)"
  mkdir -p "$dir"
  unzip -q "$dist" -d "$dir" || die "cannot unzip $dist"
  node_home=$(find "$dir" -mindepth 1 -maxdepth 1 -type d | head -1)
}

# node_launch JAVA DIR HEAP NAME [-Esetting=value ...]: starts the node unpacked in DIR in the
# background (as `as_node`, logging to DIR/node.log, data and logs under DIR) on free ports;
# sets node_pid and node_url.
node_launch() {
  local java=$1 dir=$2 heap=$3 name=$4
  shift 4
  local http_port transport_port
  http_port=$(free_port); transport_port=$(free_port)
  [ -z "$node_owner" ] || chown -R "$node_owner:$node_owner" "$dir"
  env -u JAVA_HOME "$java_env=$java" "$opts_env=-Xms$heap -Xmx$heap" \
    "${as_node[@]}" "$node_home/bin/$launcher" \
    "-Ecluster.name=$name" "-Enode.name=$name" -Ediscovery.type=single-node \
    -Enetwork.host=127.0.0.1 "-Ehttp.port=$http_port" "-Etransport.port=$transport_port" \
    "-Epath.data=$dir/data" "-Epath.logs=$dir/logs" -Ecluster.routing.allocation.disk.threshold_enabled=false \
    "${engine_opts[@]}" "$@" > "$dir/node.log" 2>&1 &
  node_pid=$!
  node_url="http://127.0.0.1:$http_port"
}

# node_wait URL PID LOG LIMIT_S: waits for the node's yellow health; the log's tail and a
# failure when the node exits or is not up within LIMIT_S seconds.
node_wait() {
  local url=$1 pid=$2 log=$3 limit=$4 start=$SECONDS
  until curl -fsS "$url/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { tail -40 "$log" >&2; die "the node at $url exited"; }
    [ $((SECONDS - start)) -lt "$limit" ] || { tail -40 "$log" >&2; die "the node at $url is not up within $limit s"; }
    sleep 1
  done
}

# stop_pid PID: asks the process to stop, waits up to 60 s, then kills it; reaps it.
stop_pid() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$1" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
