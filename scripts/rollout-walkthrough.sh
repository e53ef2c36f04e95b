#!/usr/bin/env bash
# The model rollout of docs/operations.md, command for command, against the demo models:
# version 2 is built and uploaded, scored in the shadow, canaried to 10% of users, promoted,
# and rolled back (by one admin call, then by one line of the routing file). Every step checks
# its effect; any failure exits non-zero. CI runs it (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d)
log="$work/sidecar.log"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "walkthrough FAILED: $*" >&2; tail -n 30 "$log" >&2 || true; exit 1; }
step() { printf '\n== %s\n' "$*"; }

# --- 0. A deployment: a copy of the demo models, version 1 pinned live, the admin token.
step "0. start the sidecar (demo models, version 1 pinned live, admin API on loopback)"
mkdir -p "$work/deploy"
cp -r "$repo/models" "$work/deploy/models"
MODELS="$work/deploy/models"
printf '[models.marketplace]\nlive = 1\n' > "$MODELS/routing.toml"
export RESCORE_ADMIN_TOKEN
RESCORE_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
target/release/rescore-sidecar --models "$MODELS" --items demo/items.jsonl --data-dir "$work/data" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 2>"$log" &
pid=$!
for _ in $(seq 1 300); do
  SIDECAR=$(sed -n 's/.*rescore-sidecar listening listen=\([0-9.:]*\).*/http:\/\/\1/p' "$log" | head -1)
  ADMIN=$(sed -n 's/.*admin API listening admin_listen=\([0-9.:]*\).*/http:\/\/\1/p' "$log" | head -1)
  if [ -n "$SIDECAR" ] && curl -fsS "$SIDECAR/readyz" >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || fail "sidecar exited"
  sleep 0.1
done
curl -fsS "$SIDECAR/readyz" >/dev/null || fail "sidecar not ready"
[ -n "$ADMIN" ] || fail "admin API not announced"
admin() { curl -fsS -H "Authorization: Bearer $RESCORE_ADMIN_TOKEN" -H 'content-type: application/json' "$@"; }
live() { curl -fsS "$SIDECAR/v1/models" | jq -r '.models[] | select(.name=="marketplace") | .live_version'; }
role() { curl -fsS "$SIDECAR/v1/models" | jq -r ".models[] | select(.name==\"marketplace\") | .versions[] | select(.version==\"$1\") | .role"; }
wait_role() {
  for _ in $(seq 1 200); do [ "$(role "$1")" = "$2" ] && return 0; sleep 0.05; done
  fail "version $1 is $(role "$1"), expected $2"
}
replay() { target/release/rescore-demo replay --url "$SIDECAR" --models-dir "$MODELS" --queries "$1"; }
echo "sidecar $SIDECAR, admin $ADMIN, live version $(live)"
[ "$(live)" = 1 ] || fail "version 1 is not live"

# --- 1. Build version 2 beside the deployment and move it in with one rename.
step "1. upload version 2 (built aside, renamed into place; the pin keeps version 1 live)"
target/release/rescore-demo build --models-dir "$work/staging" --items-out "$work/staging/items.jsonl" \
  --version 2 --trees 120 | tail -n 3
mv "$work/staging/marketplace/2" "$MODELS/marketplace/2"
wait_role 2 available
[ "$(live)" = 1 ] || fail "the upload changed the live version"

# --- 2. Shadow: version 2 scores every request after the response; users see version 1.
step "2. shadow version 2"
admin -X PUT "$ADMIN/admin/v1/models/marketplace/routing" -d '{"live": 1, "shadows": [2]}' | jq -c '{result, loaded}'
[ "$(role 2)" = shadow ] || fail "version 2 is not a shadow"
replay 100 | grep -E 'served by|NDCG@10 re-ranked'
sleep 1
curl -fsS "$SIDECAR/metrics" | grep -E '^rescore_shadow_(requests_total|kendall_tau_count|topk_overlap_sum)' | tee "$work/shadow.txt"
grep -q 'rescore_shadow_requests_total{model="marketplace",result="scored"}' "$work/shadow.txt" || fail "no shadow scoring"

# --- 3. Canary: 10% of users (sticky by user_id) get version 2 as variant `v2`.
step "3. canary version 2 to 10% of users"
admin -X PUT "$ADMIN/admin/v1/models/marketplace/routing" \
  -d '{"live": 1, "experiment": {"salt": "marketplace-v2", "variants": [{"name": "v2", "version": 2, "share": 0.1}]}}' \
  | jq -c '{result, loaded, unloaded}'
[ "$(role 2)" = candidate ] || fail "version 2 is not a candidate"
replay 300 | tee "$work/canary.txt" | grep -E 'served by|NDCG@10 re-ranked|vs local'
grep -q 'marketplace/2/v2' "$work/canary.txt" || fail "no request served by the v2 variant"
curl -fsS "$SIDECAR/metrics" | grep -E '^rescore_requests_total\{model="marketplace"'

# --- 4. Promote: version 2 live for everyone, the experiment ends.
step "4. promote version 2"
admin -X PUT "$ADMIN/admin/v1/models/marketplace/routing" -d '{"live": 2}' | jq -c '{result, loaded, unloaded}'
[ "$(live)" = 2 ] || fail "version 2 is not live"
[ "$(role 1)" = standby ] || fail "version 1 is not kept warm for a rollback"
replay 100 | grep -E 'served by'

# --- 5. Roll back with one call: the previous live version, still loaded, serves at once.
step "5. roll back (one admin call)"
admin -X POST "$ADMIN/admin/v1/models/marketplace/rollback" | jq -c '{result, loaded, duration_ms}'
[ "$(live)" = 1 ] || fail "rollback did not make version 1 live"
grep -q '^live = 1' "$MODELS/routing.toml" || fail "the routing file does not record the rollback"

# --- 6. Roll forward and back by editing one line of the routing file (SIGHUP or the watch).
step "6. one line of the routing file: live = 2, then SIGHUP"
sed -i 's/^live = 1$/live = 2/' "$MODELS/routing.toml"
kill -HUP "$pid"
for _ in $(seq 1 200); do [ "$(live)" = 2 ] && break; sleep 0.05; done
[ "$(live)" = 2 ] || fail "the edited routing file was not applied"
curl -fsS "$SIDECAR/v1/models" | jq -c '.routing.last_reload | {trigger, result, errors}'

# --- 7. A broken upload is refused; the live version keeps serving.
step "7. a broken version 3 cannot be promoted"
mkdir -p "$work/staging/broken" && echo "not a model" > "$work/staging/broken/model.txt"
mv "$work/staging/broken" "$MODELS/marketplace/3"
wait_role 3 available
code=$(curl -s -o "$work/refused.json" -w '%{http_code}' -H "Authorization: Bearer $RESCORE_ADMIN_TOKEN" \
  -X POST "$ADMIN/admin/v1/models/marketplace/live" -d '{"version": 3}')
jq -c . "$work/refused.json"
[ "$code" = 409 ] || fail "promoting a broken version answered $code"
[ "$(live)" = 2 ] || fail "the refused promotion changed the live version"
[ "$(curl -fsS "$SIDECAR/v1/models" | jq -r .routing.last_reload.result)" = failure ] \
  || fail "the refused change is not the last reload's result"
replay 50 | grep -E 'served by|fallbacks'

curl -fsS "$SIDECAR/metrics" | grep -E '^rescore_(reloads_total|model_live_version)' | grep -v ' 0$'
echo
echo "rollout walkthrough OK"
