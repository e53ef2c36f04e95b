#!/usr/bin/env bash
# The model loop on the demo world (docs/pipelines.md): BM25-only traffic -> SQL pipelines ->
# v1 trained on click judgments -> gate -> package -> traffic served by v1 -> pipelines -> v2
# with LightGBM's position-bias correction -> gate -> package; then NDCG@10 against the
# world's hidden grades (BM25, v1, v2, a true-label model; v2 must recover >= 70 % of the
# true-label model's gain over BM25), a broken input that must fail the pipeline naming table
# and rule, and (unless PIPELINE_SPARK=0) the same SQL on Spark compared row by row.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/pipeline-setup.sh
RP=(.tools/pipeline-venv/bin/rescore-pipeline)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
if [ ! -x "$BIN/rescore-demo" ]; then cargo build --release -p rescore-demo; fi
SIDECAR=none
if [ -x "$BIN/rescore-sidecar" ]; then SIDECAR=$BIN/rescore-sidecar; fi
WORK=${PIPELINE_WORK:-$(mktemp -d)}
rm -rf "$WORK/raw" "$WORK/raw1" "$WORK/p1" "$WORK/p2" "$WORK/models" "$WORK/broken" "$WORK/sidecar-data"
mkdir -p "$WORK"
P=pipelines/params
SEED=${SEED:-42}

echo "== world (seed $SEED) -> $WORK"
"$BIN/rescore-demo" export-world --seed "$SEED" --out "$WORK/world"

echo "== round 1: BM25-only traffic, days 0-6"
"${RP[@]}" traffic --world "$WORK/world" --raw "$WORK/raw" --round 1 --first-day 0 --days 7 --seed "$SEED"
"${RP[@]}" run --raw "$WORK/raw" --out "$WORK/p1"
cp -r "$WORK/raw" "$WORK/raw1"   # round 1's inputs, for the Spark comparison
"${RP[@]}" train --data "$WORK/p1/training_set.parquet" --params $P/clicks.toml --out "$WORK/v1.txt"
"${RP[@]}" evaluate --training-set "$WORK/p1/training_set.parquet" --candidate "$WORK/v1.txt" --out "$WORK/ev1.json"
"${RP[@]}" gate --evaluation "$WORK/ev1.json" --config $P/gate.toml
"${RP[@]}" package --model "$WORK/v1.txt" --models-dir "$WORK/models" --evaluation "$WORK/ev1.json" \
    --training-set "$WORK/p1/training_set.parquet" --sidecar "$SIDECAR" \
    --data "$WORK"/raw/*.parquet "$WORK/p1/training_set.parquet"

echo "== round 2: traffic served by marketplace/1, days 7-13"
"${RP[@]}" traffic --world "$WORK/world" --raw "$WORK/raw" --round 2 --first-day 7 --days 7 --seed "$SEED" \
    --model "$WORK/models/marketplace/1" --model-version 1 --features "$WORK/p1/candidate_features.parquet"
"${RP[@]}" run --raw "$WORK/raw" --out "$WORK/p2"
"${RP[@]}" train --data "$WORK/p2/training_set.parquet" --params $P/clicks_position.toml --out "$WORK/v2.txt"
# ablation for the report: the same round-2 data without the position-bias correction
"${RP[@]}" train --data "$WORK/p2/training_set.parquet" --params $P/clicks.toml --out "$WORK/v2-nopos.txt"
"${RP[@]}" evaluate --training-set "$WORK/p2/training_set.parquet" --candidate "$WORK/v2.txt" \
    --live "$WORK/models/marketplace/1/model.txt" --out "$WORK/ev2.json"
"${RP[@]}" gate --evaluation "$WORK/ev2.json" --config $P/gate.toml
"${RP[@]}" package --model "$WORK/v2.txt" --models-dir "$WORK/models" --evaluation "$WORK/ev2.json" \
    --training-set "$WORK/p2/training_set.parquet" --sidecar "$SIDECAR" \
    --data "$WORK"/raw/*.parquet "$WORK/p2/training_set.parquet"

echo "== the gate refuses a regression: v1 as the candidate against v2 live"
"${RP[@]}" evaluate --training-set "$WORK/p2/training_set.parquet" --candidate "$WORK/v1.txt" \
    --live "$WORK/v2.txt" --out "$WORK/ev-regression.json" > /dev/null
status=0
"${RP[@]}" gate --evaluation "$WORK/ev-regression.json" --config $P/gate.toml || status=$?
if [ "$status" != 3 ]; then echo "FAILED: the gate did not refuse v1 against v2 (exit $status)" >&2; exit 1; fi

if [ "$SIDECAR" != none ]; then
    echo "== the latest packaged model served by the sidecar with the pipelines' item store snapshot"
    latest=$(ls "$WORK/models/marketplace" | sort -n | tail -1)
    log="$WORK/sidecar.log"
    "$SIDECAR" --models "$WORK/models" --items "$WORK/p2/item_store_snapshot.parquet" \
        --data-dir "$WORK/sidecar-data" --listen 127.0.0.1:0 2>"$log" &
    spid=$!
    trap 'kill "$spid" 2>/dev/null || true' EXIT
    addr=""
    for _ in $(seq 1 300); do
        addr=$(sed -n 's/.*listen=\([0-9.:]*\).*/\1/p' "$log" | head -1)
        if [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1; then break; fi
        if ! kill -0 "$spid" 2>/dev/null; then cat "$log" >&2; echo "sidecar exited" >&2; exit 1; fi
        sleep 0.1
    done
    "${RP[@]}" serve-check --url "http://$addr" --model "$WORK/models/marketplace/$latest" \
        --candidate-features "$WORK/p2/candidate_features.parquet" --queries "$WORK/raw/queries.parquet"
    kill "$spid"; wait "$spid" 2>/dev/null || true; trap - EXIT
fi

echo "== offline truth: held-out queries, full candidate lists, hidden grades"
"${RP[@]}" oracle-report --world "$WORK/world" --candidate-features "$WORK/p2/candidate_features.parquet" \
    --true-params $P/true_labels.toml --work "$WORK" \
    --model "v1 (clicks)=$WORK/v1.txt" --model "v2 (clicks, position)=$WORK/v2.txt" --model "v2 data, no position=$WORK/v2-nopos.txt" \
    --require "v2 (clicks, position)" --min-recovery 0.7

echo "== broken input: a null seller_rating in one item snapshot"
mkdir -p "$WORK/broken"
cp "$WORK"/raw/*.parquet "$WORK/broken/"
.tools/pipeline-venv/bin/python - "$WORK/broken/item_snapshots.parquet" <<'PY'
import sys, pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
col = t["seller_rating"].to_pylist(); col[0] = None
pq.write_table(t.set_column(t.schema.get_field_index("seller_rating"), "seller_rating", pa.array(col, pa.float64())), sys.argv[1])
PY
if "${RP[@]}" run --raw "$WORK/broken" --out "$WORK/broken-out" 2> "$WORK/broken.err"; then
    echo "FAILED: the pipeline accepted a null seller_rating" >&2; exit 1
fi
cat "$WORK/broken.err"
grep -q "table item_features, rule \`not_null: " "$WORK/broken.err"
grep -q "null values in \`seller_rating\`" "$WORK/broken.err"

echo "== unit tests and the no-leakage test (pipelines/tests)"
(cd pipelines && PIPELINE_WORK="$WORK" ../.tools/pipeline-venv/bin/python -m unittest discover -s tests)

if [ "${PIPELINE_SPARK:-1}" != 0 ]; then
    echo "== the same SQL on Spark (local mode), compared with DuckDB's round-1 tables"
    "${RP[@]}" spark-compare --raw "$WORK/raw1" --duckdb-out "$WORK/p1" 2> >(grep -v -e WARN -e "log4j" -e setLogLevel >&2)
fi
echo "pipeline loop OK"
