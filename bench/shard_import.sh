#!/usr/bin/env bash
# `items import` of one snapshot file whole and shard-filtered to 6 of 60 shards (10 % of the
# items, ADR 0009), JSON Lines and Parquet, alternating, two rounds, with the load average.
# Figures in docs/benchmarks.md#shard-filtered-import.
#   bench/shard_import.sh [N=1000000] [DIR=/tmp/shard-import-bench]
# Writes DIR/items.{jsonl,parquet} (N items x 30 random features, seeded) unless present; needs
# target/release/rescore-sidecar and numpy + pyarrow (the pipelines' venv).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
dir=${2:-/tmp/shard-import-bench}
python=.tools/pipeline-venv/bin/python
mkdir -p "$dir"
if [ ! -f "$dir/items.parquet" ] || [ ! -f "$dir/items.jsonl" ]; then
  "$python" - "$n" "$dir" <<'PY'
import json, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
n, out = int(sys.argv[1]), sys.argv[2]
values = np.random.default_rng(7).random((n, 30)).round(6)
ids = [f"item-{i}" for i in range(n)]
names = [f"f{j:02d}" for j in range(30)]
pq.write_table(pa.table({"id": ids, **{names[j]: values[:, j] for j in range(30)}}), f"{out}/items.parquet")
with open(f"{out}/items.jsonl", "w") as f:
    for i in range(n):
        f.write(json.dumps({"id": ids[i], "features": dict(zip(names, values[i].tolist()))}) + "\n")
PY
fi
uptime
for round in 1 2; do
  for file in items.jsonl items.parquet; do
    for filter in whole 6-of-60; do
      rm -rf "$dir/data"
      flags=()
      [ "$filter" = whole ] || flags=(--index-shards 60/960 --keep-shards 0,10,20,30,40,50)
      summary=$(target/release/rescore-sidecar items import "$dir/$file" --data-dir "$dir/data" "${flags[@]}")
      echo "round $round $file $filter: $(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print("%.2f s, %d items, %.1f MB" % (s["seconds"], s["items"], s["bytes"] / 1e6))' "$summary")"
    done
  done
done
uptime
rm -rf "$dir/data"
