#!/usr/bin/env bash
# Issue 17's fault matrix through a real Elasticsearch 9.5.4 node with the plugin zip and the real
# rescore-sidecar release binary (demo model and items), with a real redis-server for the Redis
# rows (bench/fault_matrix.py does the work; the table and what each row means are in
# docs/reliability.md). Each row: healthy load, the fault, recovery; the script fails on any
# failed search, on rescoring not resuming within the bound, or on a fault that did not show in
# the counter it must move. Everything it starts is stopped on exit; every port is chosen free.
#
#   scripts/fault-matrix.sh                 # the full matrix, 15 rows (about 6 minutes warm)
#   scripts/fault-matrix.sh --quick         # killed, hung, garbage, broken model, Redis paused (about 90 s; scripts/test.sh)
#   scripts/fault-matrix.sh --rows redis_paused,disk_full --fault 20
#   scripts/fault-matrix.sh --rows sidecar_hung --node-setting sidecar.breaker.consecutive_failures=0
#
# Needs target/release/{rescore-sidecar,rescore-demo}, the es9 plugin zip (built here with Maven
# if missing), the Elasticsearch integ-test-zip in ~/.m2 (scripts/test-bridge.sh resolves it),
# redis-server/redis-cli for the Redis rows, and mount rights for the disk-full row (a 16 MiB
# tmpfs; without them that row is reported as skipped). Environment: ES_JAVA_HOME (Temurin 25).
set -euo pipefail
cd "$(dirname "$0")/.."
for b in rescore-sidecar rescore-demo; do
  [ -x "target/release/$b" ] || { echo "fault-matrix: target/release/$b missing (cargo build --release --bin $b)" >&2; exit 1; }
done
if ! compgen -G "es-plugin-bridge/elasticsearch/es9/target/rescore-sidecar-elasticsearch-*-es9.5.4.zip" >/dev/null; then
  echo "fault-matrix: building the es9 plugin zip (mvn package -pl elasticsearch/es9 -am)"
  (cd es-plugin-bridge && mvn -B -q package -DskipTests -pl elasticsearch/es9 -am)
fi
exec python3 bench/fault_matrix.py "$@"
