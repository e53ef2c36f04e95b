#!/usr/bin/env bash
# Starts the built sidecar with the demo model on a free loopback port, replays the held-out
# queries through POST /v1/rescore and prints NDCG@10 baseline vs re-ranked; stops the sidecar.
# Then the gamed-listing guard evaluation (docs/demo.md): the same model over the items of a
# world with 2% gamed listings, each query under guard policy off, flag and cap; the replay
# checks the issue 19 targets. DEMO_GAMED_SHARE=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$scratch"' EXIT

# start_sidecar ITEMS DATA_DIR: sets pid and addr.
start_sidecar() {
  local log="$scratch/sidecar.log"
  target/release/rescore-sidecar --models models --items "$1" --data-dir "$2" --listen 127.0.0.1:0 2>"$log" &
  pid=$!
  addr=""
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*listen=\([0-9.:]*\).*/\1/p' "$log" | head -1)
    if [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "sidecar exited" >&2; exit 1; fi
    sleep 0.1
  done
  curl -fsS "http://$addr/readyz" >/dev/null || { cat "$log" >&2; echo "sidecar not ready" >&2; exit 1; }
}

stop_sidecar() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

start_sidecar demo/items.jsonl target/rescore-data
target/release/rescore-demo replay --url "http://$addr" "$@"
stop_sidecar

share=${DEMO_GAMED_SHARE:-0.02}
if [ "$share" != "0" ]; then
  target/release/rescore-demo gamed-items --gamed-share "$share" --out "$scratch/gamed-items.jsonl"
  start_sidecar "$scratch/gamed-items.jsonl" "$scratch/data"
  target/release/rescore-demo replay --url "http://$addr" --gamed-share "$share"
  stop_sidecar
fi
