#!/usr/bin/env bash
# The sidecar image of docker-compose.yml, exercised without Docker (no Docker engine here): reads
# docker/sidecar/Dockerfile (its final stage: the user and directories it creates, what it copies
# where, USER, ENV, VOLUME, ENTRYPOINT, HEALTHCHECK) and the resolved docker-compose.yml (the
# sidecar's and the loader's command, entrypoint and volumes), builds that file system as a chroot
# from the release binaries, and runs in a private network and mount namespace, as the image's
# non-root user with the same paths and command lines:
#   1. the sidecar: `ENTRYPOINT + command`, until the image's HEALTHCHECK command passes, then
#      checks that the embedded item store was written into the volume directory as that user;
#   2. the same with the data directory owned by root (what a volume without the image's directory
#      would give): must fail with a clear error, so the first check can fail;
#   3. the loader (`rescore-demo index ...`, the compose command verbatim): starts as that user and
#      waits for Elasticsearch; with no wait it fails with a clear error. Its indexing against a
#      real node is what scripts/demo-engine-replay.sh runs.
# Needs root (useradd, chroot, unshare) and target/release/{rescore-sidecar,rescore-demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi   # useradd, chroot, unshare
for b in rescore-sidecar rescore-demo; do
  [ -x "target/release/$b" ] || { echo "test-containers: target/release/$b missing (cargo build --release)" >&2; exit 1; }
done
compose="${COMPOSE:-.tools/compose-venv/bin/docker-compose}"
python="$(dirname "$compose")/python"
[ -x "$compose" ] || { echo "test-containers: $compose missing (scripts/test-bridge.sh installs it)" >&2; exit 1; }

work=$(mktemp -d /tmp/rescore-containers.XXXXXX)
chmod 755 "$work"
# The chroot's /proc and /dev are mounted only inside a private mount namespace (unshare --mount);
# never remove the tree while anything is still mounted under it (that would reach the host's /dev).
cleanup() {
  if grep -q " $work/" /proc/self/mounts; then
    echo "test-containers: something is still mounted under $work; left in place" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
"$compose" -f docker-compose.yml config > "$work/compose.yml"

# The image as a plan: one shell line per step, from the Dockerfile's final stage and compose.
"$python" - docker/sidecar/Dockerfile "$work/compose.yml" > "$work/plan.env" <<'PY'
import json, re, shlex, sys, yaml
text = open(sys.argv[1]).read().replace("\\\n", " ")
stage = re.split(r"(?m)^FROM .*$", text)[-1]
compose = yaml.safe_load(open(sys.argv[2]))["services"]
out = {}
def put(k, v): out[k] = v
m = re.search(r"useradd ([^&\n]*)", stage)
user = m.group(1).split()[-1]
put("IMG_USER_CREATED", user)
dirs = re.findall(r"install -d -o (\S+) -g (\S+) -m (\S+) (\S+)", stage)
put("IMG_DIRS", " ".join(":".join(d) for d in dirs))
copies = re.findall(r"(?m)^COPY (--from=\S+ )?(\S+) (\S+)$", stage)
put("IMG_COPIES", " ".join(("build" if f else "ctx") + ":" + s + ":" + d for f, s, d in copies))
put("IMG_USER", re.search(r"(?m)^USER (\S+)$", stage).group(1))
env = re.search(r"(?m)^ENV (.*)$", stage).group(1)
put("IMG_ENV", env)
put("IMG_VOLUMES", " ".join(re.findall(r"(?m)^VOLUME (\S+)$", stage)))
put("IMG_ENTRYPOINT", " ".join(shlex.quote(a) for a in json.loads(re.search(r"(?m)^ENTRYPOINT (.*)$", stage).group(1))))
hc = re.search(r"HEALTHCHECK .*?CMD (\[.*\])", stage)
put("IMG_HEALTHCHECK", " ".join(shlex.quote(a) for a in json.loads(hc.group(1))))
sc = compose["sidecar"]
put("SIDECAR_COMMAND", " ".join(shlex.quote(a) for a in sc["command"]))
vols = [v for v in sc.get("volumes", []) if (v.get("type") if isinstance(v, dict) else "volume") == "volume"]
put("SIDECAR_VOLUME_TARGETS", " ".join(v["target"] if isinstance(v, dict) else v.split(":")[1] for v in vols))
put("COMPOSE_HEALTHCHECK", " ".join(shlex.quote(a) for a in sc["healthcheck"]["test"][1:]))
ld = compose["loader"]
assert ld["image"] == sc["image"], "the loader runs the sidecar image"
put("LOADER_ENTRYPOINT", " ".join(shlex.quote(a) for a in ld["entrypoint"]))
put("LOADER_COMMAND", " ".join(shlex.quote(a) for a in ld["command"]))
for k, v in out.items():
    print(f"{k}={shlex.quote(v)}")
PY
# shellcheck disable=SC1091
. "$work/plan.env"
echo "image: user $IMG_USER, dirs $IMG_DIRS, volumes $IMG_VOLUMES; ENTRYPOINT $IMG_ENTRYPOINT; sidecar command $SIDECAR_COMMAND"
[ "$IMG_USER" = "$IMG_USER_CREATED" ] || { echo "FAIL: USER $IMG_USER is not the user the image creates ($IMG_USER_CREATED)" >&2; exit 1; }
[ "$IMG_HEALTHCHECK" = "$COMPOSE_HEALTHCHECK" ] || { echo "FAIL: compose health check ($COMPOSE_HEALTHCHECK) differs from the image's ($IMG_HEALTHCHECK)" >&2; exit 1; }
for t in $SIDECAR_VOLUME_TARGETS; do
  case " $IMG_DIRS " in *":$t "*) ;; *) echo "FAIL: compose mounts a volume at $t, which the image does not create for its user" >&2; exit 1;; esac
done
for v in $IMG_VOLUMES; do
  case " $SIDECAR_VOLUME_TARGETS " in *" $v "*) ;; *) echo "FAIL: image VOLUME $v has no named volume in compose (an anonymous one is lost on down)" >&2; exit 1;; esac
done

# The image's user, as its RUN line creates it.
id -u "$IMG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$IMG_USER"
uid=$(id -u "$IMG_USER"); gid=$(id -g "$IMG_USER")

# The root file system: the image's copies, the shared libraries of its binaries, its directories.
root="$work/root"
mkdir -p "$root"/{etc,tmp,proc,dev}
chmod 1777 "$root/tmp"
grep -E "^(root|$IMG_USER):" /etc/passwd > "$root/etc/passwd"
grep -E "^(root|$IMG_USER):" /etc/group > "$root/etc/group"
printf '127.0.0.1 localhost\n127.0.0.1 elasticsearch\n' > "$root/etc/hosts"
bins=()
for c in $IMG_COPIES; do
  IFS=: read -r from src dest <<<"$c"
  if [ "$from" = build ]; then src="target/release/${src#/src/target/release/}"; bins+=("$src"); fi
  mkdir -p "$root$(dirname "$dest")"
  cp -a "$src" "$root$dest"
done
for b in "${bins[@]}"; do
  for lib in $(ldd "$b" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
  done
done
mk_dirs() {
  for d in $IMG_DIRS; do
    IFS=: read -r o g m path <<<"$d"
    rm -rf "${root:?}$path"; install -d -o "$o" -g "$g" -m "$m" "$root$path"
  done
}
mk_dirs

# Runs "$@" inside the container-like namespaces: own network (loopback only) and mounts, /proc
# and /dev, chrooted, as the image's user with its ENV only.
in_container() {
  unshare --net --mount --pid --fork --mount-proc --kill-child /bin/bash -c '
    set -e
    root=$1; shift
    ip link set lo up
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    exec "$@"' _ "$root" "$@"
}
# shellcheck disable=SC2086
run_as_image_user() { exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $IMG_ENV chroot --userspec="$uid:$gid" "$root" "$@"; }

# 1. The sidecar with the container's command line; health check = the image's HEALTHCHECK command.
echo "== sidecar as $IMG_USER: $IMG_ENTRYPOINT $SIDECAR_COMMAND"
export -f run_as_image_user
export IMG_ENV uid gid root
cat > "$work/sidecar-test.sh" <<EOF
set -u
run_as_image_user $IMG_ENTRYPOINT $SIDECAR_COMMAND > "$work/sidecar.log" 2>&1 &
pid=\$!
for _ in \$(seq 1 600); do
  if $IMG_HEALTHCHECK 2>/dev/null; then
    owner=\$(stat -c %U "$root$SIDECAR_VOLUME_TARGETS")
    files=\$(find "$root$SIDECAR_VOLUME_TARGETS" -mindepth 1 -not -user "$IMG_USER" | wc -l)
    written=\$(find "$root$SIDECAR_VOLUME_TARGETS" -mindepth 1 -type f | wc -l)
    procuser=\$(ps -o user= -p \$pid)
    kill \$pid; wait \$pid 2>/dev/null
    echo "healthy; process user \$procuser; data dir owner \$owner, \$written files written, \$files not owned by $IMG_USER"
    [ "\$procuser" = "$IMG_USER" ] && [ "\$owner" = "$IMG_USER" ] && [ "\$written" -gt 0 ] && [ "\$files" -eq 0 ] && exit 0
    exit 1
  fi
  kill -0 \$pid 2>/dev/null || { wait \$pid; echo "sidecar exited with \$?"; exit 1; }
  sleep 0.2
done
echo "not healthy within 120 s"; kill \$pid; exit 1
EOF
if ! in_container /bin/bash "$work/sidecar-test.sh"; then
  echo "FAIL: the sidecar does not become healthy as $IMG_USER:" >&2; tail -20 "$work/sidecar.log" >&2; exit 1
fi
grep -q "listen=0.0.0.0:9209" "$work/sidecar.log" || { echo "FAIL: sidecar log does not show listen=0.0.0.0:9209" >&2; tail "$work/sidecar.log" >&2; exit 1; }

# 2. Negative control: a root-owned data directory must fail clearly (the bug this image fixes).
echo "== control: the same with a root-owned data directory must fail"
for t in $SIDECAR_VOLUME_TARGETS; do rm -rf "${root:?}$t"; install -d -o root -g root -m 0755 "$root$t"; done
set +e
# shellcheck disable=SC2086
in_container /bin/bash -c "run_as_image_user $IMG_ENTRYPOINT $SIDECAR_COMMAND" > "$work/control.log" 2>&1
rc=$?
set -e
if [ "$rc" -eq 0 ] || ! grep -q "Permission denied" "$work/control.log"; then
  echo "FAIL: expected a permission error with a root-owned data dir, got exit $rc:" >&2; tail "$work/control.log" >&2; exit 1
fi
echo "failed as expected (exit $rc): $(grep -o 'Permission denied.*' "$work/control.log" | head -1)"
mk_dirs

# 3. The loader with the compose command line: runs as the user and waits for Elasticsearch.
echo "== loader as $IMG_USER: $LOADER_ENTRYPOINT $LOADER_COMMAND"
cat > "$work/loader-test.sh" <<EOF
set -u
run_as_image_user $LOADER_ENTRYPOINT $LOADER_COMMAND > "$work/loader.log" 2>&1 &
pid=\$!
sleep 3
kill -0 \$pid 2>/dev/null || { wait \$pid; echo "loader exited early (\$?):"; cat "$work/loader.log"; exit 1; }
user=\$(ps -o user= -p \$pid)
kill \$pid; wait \$pid 2>/dev/null
echo "still waiting for Elasticsearch after 3 s, as user \$user"
[ "\$user" = "$IMG_USER" ] || exit 1
EOF
in_container /bin/bash "$work/loader-test.sh" || { echo "FAIL: loader" >&2; exit 1; }
set +e
# shellcheck disable=SC2086
in_container /bin/bash -c "run_as_image_user $LOADER_ENTRYPOINT $(sed -E 's/--wait-secs [0-9]+/--wait-secs 0/' <<<"$LOADER_COMMAND")" > "$work/loader0.log" 2>&1
rc=$?
set -e
if [ "$rc" -eq 0 ] || ! grep -q "no search engine answers at http://elasticsearch:9200" "$work/loader0.log"; then
  echo "FAIL: loader without an engine: exit $rc:" >&2; cat "$work/loader0.log" >&2; exit 1
fi
echo "without an engine it fails clearly (exit $rc): $(head -1 "$work/loader0.log")"
echo "containers OK"
