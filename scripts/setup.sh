#!/usr/bin/env bash
# Installs what building and testing need, idempotently, on Debian 12 (as root or with sudo):
#   - libclang-dev (bindgen, used by lightgbm3-sys)
#   - CMake >= 3.28 in .tools/venv (Debian has 3.25; .cargo/config.toml points cargo at it)
#   - redis-server (the Redis item store's tests and benchmark start their own servers)
#   - prometheus (Debian's package, for `promtool check rules` / `promtool test rules`)
#   - jq (the rollout walkthrough reads the API's JSON)
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
dpkg -s build-essential >/dev/null 2>&1 || need_apt+=(build-essential)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! .tools/venv/bin/cmake --version 2>/dev/null | awk 'NR==1 { split($3, v, "."); exit !(v[1] > 3 || (v[1] == 3 && v[2] >= 28)) }'; then
  echo "setup: installing CMake >= 3.28 into .tools/venv"
  python3 -m venv .tools/venv
  .tools/venv/bin/pip install -q --disable-pip-version-check 'cmake>=3.28,<4'
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust stable with rustup first" >&2
  exit 1
fi
echo "setup: ok ($(.tools/venv/bin/cmake --version | head -1), libclang $(ls /usr/lib/llvm-*/lib/libclang.so 2>/dev/null | head -1))"
