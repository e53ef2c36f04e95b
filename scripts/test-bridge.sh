#!/usr/bin/env bash
# The search-engine bridge: `mvn -B verify` in es-plugin-bridge/ (unit tests, the four plugin zips,
# and the integration tests that install each zip into a real node of its engine line and rescore
# against the real rescore-sidecar release binary: full ITs on Elasticsearch 9.5.4 and OpenSearch
# 3.8.0, smoke ITs on Elasticsearch 8.19.13 and OpenSearch 2.19.6). Also validates docker-compose.yml.
# Idempotent installs: Maven (Debian), a JDK 17 and the Temurin 25 JDK must exist (the build picks
# them itself, see es-plugin-bridge/pom.xml), docker-compose from PyPI into .tools/compose-venv.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/javac ] || need_apt+=(openjdk-17-jdk-headless)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test-bridge: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
java25="${BRIDGE_JAVA25_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
if [ ! -x "$java25/bin/javac" ]; then
  echo "test-bridge: Elasticsearch 9 needs a JDK 21+ at $java25 (set BRIDGE_JAVA25_HOME)" >&2
  exit 1
fi

# the integration tests start the real sidecar binary
if [ ! -x target/release/rescore-sidecar ]; then
  scripts/setup.sh
  cargo build --release --bin rescore-sidecar
fi

# docker-compose.yml: no Docker engine here, so the PyPI docker-compose validates the file
if ! .tools/compose-venv/bin/docker-compose version >/dev/null 2>&1; then
  echo "test-bridge: installing docker-compose (PyPI) into .tools/compose-venv"
  python3 -m venv .tools/compose-venv
  pip=(.tools/compose-venv/bin/pip install -q --disable-pip-version-check)
  # docker-compose 1.29.2 needs PyYAML 5.4.1, whose sdist only builds with Cython < 3
  "${pip[@]}" 'cython<3' wheel 'setuptools<70'
  "${pip[@]}" --no-build-isolation 'PyYAML==5.4.1'
  "${pip[@]}" 'docker-compose==1.29.2'
fi
echo "== docker-compose config (docker-compose.yml)"
.tools/compose-venv/bin/docker-compose -f docker-compose.yml config > .tools/compose-resolved.yml
# our own rules on the resolved file: ports only on 127.0.0.1, every image pinned to a version tag
.tools/compose-venv/bin/python - .tools/compose-resolved.yml <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
bad = []
for name, svc in doc["services"].items():
    image = svc.get("image", "")
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    if not tag or tag == "latest":
        bad.append(f"{name}: image {image!r} is not pinned to a version")
    for port in svc.get("ports", []):
        ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
        if ip != "127.0.0.1":
            bad.append(f"{name}: port {port} is not bound to 127.0.0.1")
if bad:
    sys.exit("docker-compose.yml: " + "; ".join(bad))
print(f"docker-compose.yml: valid, {len(doc['services'])} services, ports on 127.0.0.1, images pinned")
PY

echo "== mvn verify (es-plugin-bridge)"
cd es-plugin-bridge
mvn -B -ntp -Djava25.home="$java25" clean verify
