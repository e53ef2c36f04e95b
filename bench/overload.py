#!/usr/bin/env python3
"""The sidecar under more load than it can score, admission control on and off in one run.

Starts the release binary on the demo model and items (once with `serving.admission_control =
true`, once with `false`), and drives it with the `rescore_load` example: closed-loop clients of
1,000-hit requests with `timeout_ms` 50, each waiting 5 ms between its requests. Reports per
concurrency answers/s, scored answers/s, fallbacks by reason, p50/p99 of all answers, of scored
ones and of fallbacks, the sidecar's own time (`took_us`, from the parsed request to the answer)
and the sidecar's RSS before, at the end of and 10 s after the load.

Usage (from the repo root, after `cargo build --release --bin rescore-sidecar --example rescore_load`):
  python3 bench/overload.py [--clients 4,8,16,64,256] [--seconds 15]

Not a test: it asserts nothing; it prints a Markdown table for docs/reliability.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "rescore-sidecar")
LOAD = os.path.join(ROOT, "target", "release", "examples", "rescore_load")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start(admission, work, port):
    config = os.path.join(work, f"admission-{admission}.toml")
    with open(config, "w") as f:
        f.write(f"[serving]\nadmission_control = {'true' if admission else 'false'}\n")
    data = os.path.join(work, f"data-{admission}")
    p = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{port}", "--models", os.path.join(ROOT, "models"),
                          "--items", os.path.join(ROOT, "demo", "items.jsonl"), "--data-dir", data,
                          "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return p
        except OSError:
            time.sleep(0.2)
    sys.exit("the sidecar did not become ready")


def load(port, clients, seconds, timeout_ms):
    out = subprocess.run([LOAD, f"127.0.0.1:{port}", str(clients), "1000", str(seconds), str(timeout_ms), "5"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ms(v):
    return "–" if v is None or v != v else f"{v:.1f}"


def table(rows):
    print("| admission | clients | answers/s | scored/s | fallbacks | all p50 / p99 ms | scored p50 / p99 ms | fallback p50 / p99 ms | sidecar `took` p99 all / fallback ms | RSS before / end of load / 10 s after (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fb = ", ".join(f"{k} {v}" for k, v in r["fallbacks"].items()) or "0"
        print(f"| {'on' if r['admission_control'] else 'off'} | {r['clients']} | {r['answers_per_s']:.0f} | {r['scored_per_s']:.0f} | {fb} "
              f"| {ms(r['all_p50_ms'])} / {ms(r['all_p99_ms'])} | {ms(r['scored_p50_ms'])} / {ms(r['scored_p99_ms'])} "
              f"| {ms(r['fallback_p50_ms'])} / {ms(r['fallback_p99_ms'])} "
              f"| {ms(r.get('server_p99_ms'))} / {ms(r.get('server_fallback_p99_ms'))} "
              f"| {r['rss_mb_before']:.0f} / {r['rss_mb_during']:.0f} / {r['rss_mb_after']:.0f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", default="4,8,16,64,256")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--timeout-ms", type=int, default=50)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="overload-")
    print(f"# load average before: {os.getloadavg()}", flush=True)
    rows = []
    for admission in (False, True):
        port = 19300 + int(admission)
        p = start(admission, work, port)
        try:
            load(port, 4, 3, args.timeout_ms)  # warm: items cached, the per-hit cost known
            rss0 = rss_mb(p.pid)
            for c in [int(x) for x in args.clients.split(",")]:
                r = load(port, c, args.seconds, args.timeout_ms)
                r["admission_control"] = admission
                r["rss_mb_during"] = rss_mb(p.pid)
                rows.append(r)
                print(json.dumps(r), flush=True)
            time.sleep(10)
            rss_after = rss_mb(p.pid)
            for r in rows:
                if r["admission_control"] == admission:
                    r["rss_mb_before"] = rss0
                    r["rss_mb_after"] = rss_after
        finally:
            p.terminate()
            p.wait()
    print(f"# load average after: {os.getloadavg()}")
    table(rows)


if __name__ == "__main__":
    main()
