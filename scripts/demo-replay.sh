#!/usr/bin/env bash
# Starts the built sidecar with the demo model on a free loopback port, replays the held-out
# queries through POST /v1/rescore and prints NDCG@10 baseline vs re-ranked; stops the sidecar.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
target/release/rescore-sidecar --models models --items demo/items.jsonl --data-dir target/rescore-data --listen 127.0.0.1:0 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
addr=""
for _ in $(seq 1 300); do
  addr=$(sed -n 's/.*listen=\([0-9.:]*\).*/\1/p' "$log" | head -1)
  if [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "sidecar exited" >&2; exit 1; fi
  sleep 0.1
done
curl -fsS "http://$addr/readyz" >/dev/null || { cat "$log" >&2; echo "sidecar not ready" >&2; exit 1; }
target/release/rescore-demo replay --url "http://$addr" "$@"
