#!/usr/bin/env bash
# Soak of the release sidecar (issue 17; figures in docs/reliability.md#soak): mixed traffic
# (windows of 10-1,000 hits, several clients with think time) for --minutes (30), a new model
# version installed and promoted every --reload-every minutes (5), an item stream into Redis,
# and a Redis restart (--redis-restart-at, default 40% of the run); the sidecar's RSS, RssAnon,
# file descriptors, threads and metric series are sampled and their slopes over the second half
# checked against bounds (bench/soak.py). Exit 1 on any failed request, a reload or restart that
# did not take effect, or growth beyond a bound.
#
#   scripts/soak.sh                      # the full run (30 minutes)
#   scripts/soak.sh --minutes 60 --reload-every 10 --redis-restart-at 25
#   scripts/soak.sh --smoke              # 1 minute, compressed schedule (scripts/test.sh)
#
# Needs redis-server and redis-cli (scripts/setup.sh installs them). Ports are chosen free at
# run time; everything lives in a temp dir that is removed at the end (--keep keeps it); the
# samples and summary go to target/soak/<time>/ (or --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin rescore-sidecar --bin rescore-demo
args=("$@")
if [ "${1:-}" = "--smoke" ]; then
  # One minute: installs at 18, 36 and 54 s, Redis down from 24 s for 5 s, items every 10 s.
  # It checks requests, installs, the restart and the series; 30 s after a Redis restart is no
  # steady state, so descriptors and threads may move by 8 (the Redis pool reconnecting, the
  # blocking pool following load) and RSS by 32 MiB (its second half loads two versions), and
  # the short warm-up need not see every outcome, so up to 4 lazily made series (e.g. the first
  # outcome="fallback") may appear late.
  args=(--minutes 1 --reload-every 0.3 --redis-restart-at 0.4 --redis-down-seconds 5
        --etl-every 10 --clients 4 --sample-seconds 1 --series-slack 4 --fd-bound 8
        --thread-bound 8 --rss-bound-mib 32 "${@:2}")
fi
exec python3 bench/soak.py "${args[@]}"
