#!/usr/bin/env bash
# Issue 17's fault matrix through a real Elasticsearch 9.5.4 node (or, with --engine opensearch, an
# OpenSearch 3.8.0 node) with the plugin zip and the real rescore-sidecar release binary (demo model
# and items), with a real redis-server for the Redis rows (bench/fault_matrix.py does the work; the
# table and what each row means are in docs/reliability.md). Each row: healthy load, the fault,
# recovery; the script fails on any failed search, on rescoring not resuming within the bound, or
# on a fault that did not show in the counter it must move. Everything it starts is stopped on
# exit; every port is chosen free.
#
#   scripts/fault-matrix.sh                 # the full matrix, 15 rows (about 6 minutes warm)
#   scripts/fault-matrix.sh --quick         # killed, hung, garbage, broken model, Redis paused (about 90 s; scripts/test.sh)
#   scripts/fault-matrix.sh --engine opensearch --rows killed,hung   # the same on OpenSearch (scripts/test.sh)
#   scripts/fault-matrix.sh --rows redis_paused,disk_full --fault 20
#   scripts/fault-matrix.sh --rows hung --node-setting sidecar.breaker.consecutive_failures=0
#
# Needs target/release/{rescore-sidecar,rescore-demo}, the engine's plugin zip (built here with
# Maven if missing), the engine's integ-test-zip in ~/.m2 (scripts/test-bridge.sh resolves it),
# redis-server/redis-cli for the Redis rows, and mount rights for the disk-full row (a 16 MiB
# tmpfs; without them that row is reported as skipped). Environment: ES_JAVA_HOME (Temurin 25;
# used for either engine).
set -euo pipefail
cd "$(dirname "$0")/.."
for b in rescore-sidecar rescore-demo; do
  [ -x "target/release/$b" ] || { echo "fault-matrix: target/release/$b missing (cargo build --release --bin $b)" >&2; exit 1; }
done
module=elasticsearch/es9; zip="es-plugin-bridge/elasticsearch/es9/target/rescore-sidecar-elasticsearch-*-es9.5.4.zip"
for arg in "$@"; do
  if [ "$arg" = opensearch ]; then
    module=opensearch/os3; zip="es-plugin-bridge/opensearch/os3/target/rescore-sidecar-opensearch-*-os3.8.0.zip"
  fi
done
if ! compgen -G "$zip" >/dev/null; then
  echo "fault-matrix: building the plugin zip (mvn package -pl $module -am)"
  (cd es-plugin-bridge && mvn -B -q package -DskipTests -pl "$module" -am)
fi
exec python3 bench/fault_matrix.py "$@"
