#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (nightly toolchain, libFuzzer) over the committed seed
# corpora. New inputs go to a scratch corpus, never into fuzz/corpus; a crash stops the run with
# the input under fuzz/artifacts/<target>/ (make it a regression test, fuzz/README.md).
#   scripts/fuzz.sh                      smoke: 2,000 runs per target (the test command)
#   scripts/fuzz.sh --long 1000000       up to 1M runs per target (docs/reliability.md)
#   FUZZ_TARGETS="model_text" scripts/fuzz.sh --long 1000000 --max-time 3600
set -euo pipefail
cd "$(dirname "$0")/.."
runs=2000
max_time=0
while [ $# -gt 0 ]; do
  case "$1" in
    --long) runs="$2"; shift 2 ;;
    --max-time) max_time="$2"; shift 2 ;;
    *) echo "usage: scripts/fuzz.sh [--long RUNS] [--max-time SECONDS]" >&2; exit 2 ;;
  esac
done
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
rustup toolchain list | grep -q '^nightly' || { echo "fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
targets=${FUZZ_TARGETS:-"rescore_request model_text manifest_toml routing_toml items_jsonl items_parquet"}
scratch=$(mktemp -d /tmp/rescore-fuzz-corpus.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
# The nightly build compiles LightGBM's C++ again (rescore-model links it): keep it in a stable
# place so that clean clones (CI) reuse it, as .ci/run does for the main build.
export CARGO_TARGET_DIR="${RESCORE_FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
cd fuzz
cargo +nightly fuzz build -O >/dev/null
for t in $targets; do
  max_len=4096
  case "$t" in model_text|items_parquet) max_len=16384 ;; esac
  mkdir -p "$scratch/$t" "corpus/$t"
  log="$scratch/$t.log"
  echo "== fuzz $t: up to $runs runs"
  if ! cargo +nightly fuzz run -O "$t" "$scratch/$t" "corpus/$t" -- \
      -runs="$runs" -max_total_time="$max_time" -max_len="$max_len" -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $t failed: see fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb|^#[0-9]+ +DONE' "$log" | tr '\n' ' '
  echo
done
