#!/usr/bin/env bash
# How often the default drift and outlier thresholds fire on traffic that has not shifted: the
# demo model with reference statistics of its own training data (rescore-demo training-data,
# rescore-sidecar reference), then WINDOWS fresh drift windows, each one a newly started
# sidecar (default [monitoring.drift]) that receives one replay of the held-out queries
# (rescore-demo replay) and is asked GET /v1/drift. Prints one line per window and a summary
# (docs/monitoring.md). Usage: scripts/drift-false-alarms.sh [WINDOWS] (default 20);
# QUERIES=N replays the first N held-out queries per window (default all 500).
set -euo pipefail
cd "$(dirname "$0")/.."
windows=${1:-20}
queries=${QUERIES:-500}
tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/models/marketplace/1"
cp models/marketplace/1/model.txt models/marketplace/1/manifest.toml "$tmp/models/marketplace/1/"
target/release/rescore-demo training-data --out "$tmp/train.libsvm" >&2
target/release/rescore-sidecar reference --model "$tmp/models/marketplace/1" --data "$tmp/train.libsvm" >&2
for w in $(seq 1 "$windows"); do
  log="$tmp/sidecar.log"
  target/release/rescore-sidecar --models "$tmp/models" --items demo/items.jsonl \
    --data-dir target/rescore-data --listen 127.0.0.1:0 2>"$log" &
  pid=$!
  addr=""
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*listen=\([0-9.:]*\).*/\1/p' "$log" | head -1)
    if [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "sidecar exited" >&2; exit 1; fi
    sleep 0.1
  done
  target/release/rescore-demo replay --url "http://$addr" --queries "$queries" --min-gain=-1 \
    --models-dir "$tmp/models" >/dev/null
  curl -fsS "http://$addr/v1/drift" >"$tmp/window-$w.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
python3 - "$tmp" "$windows" <<'PY'
import json, sys
tmp, n = sys.argv[1], int(sys.argv[2])
feature_alerts = score_alerts = outlier_alerts = 0
over_by_feature = {}
psi_by_feature = {}
for w in range(1, n + 1):
    d = json.load(open(f"{tmp}/window-{w}.json"))
    m = d["models"][0]["drift"]
    psis = {f["name"]: f["psi"] for f in m["features"]}
    for name, p in psis.items():
        psi_by_feature.setdefault(name, []).append(p)
        if p is not None and p >= d["feature_psi_threshold"]:
            over_by_feature[name] = over_by_feature.get(name, 0) + 1
    outliers = max(m["out_of_range_ratio"] or 0.0, m["unseen_category_ratio"] or 0.0)
    feature_alerts += m["features_over_threshold"] > 0
    score_alerts += bool(m["score_over_threshold"])
    outlier_alerts += outliers > 0.05
    top = max(((p, k) for k, p in psis.items() if p is not None), default=(None, None))
    print(f"window {w:3}: rows {m['window_rows']:5} requests {m.get('window_requests', '-')}"
          f" enough {m['enough_rows']!s:5} features over {m['features_over_threshold']}"
          f" score psi {m['score']['psi']} max feature psi {top[0]} ({top[1]})"
          f" outliers {outliers:.4f}")
print(f"\n{n} windows: feature drift alert in {feature_alerts}, score drift alert in {score_alerts},"
      f" outlier alert (> 5%) in {outlier_alerts}")
for name, ps in psi_by_feature.items():
    vals = [p for p in ps if p is not None]
    if vals:
        print(f"  {name:14} psi median {sorted(vals)[len(vals)//2]:.4f} max {max(vals):.4f}"
              f" over threshold in {over_by_feature.get(name, 0)} windows")
    else:
        print(f"  {name:14} psi not reported (too few observations)")
PY
