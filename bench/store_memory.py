#!/usr/bin/env python3
"""Anonymous resident memory of the real sidecar serving an embedded item store.

Starts target/release/rescore-sidecar with --items SNAPSHOT --data-dir DIR (building or reusing
the store), sends REQUESTS requests of 1,000 random ids (item0 .. item{N-1}, as written by the
store_bench example) to the demo model, whose features read the item store, then prints RssAnon
and RssFile from /proc/PID/status.

    python3 bench/store_memory.py SNAPSHOT DATA_DIR N [REQUESTS]
"""
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

snapshot, data_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
requests = int(sys.argv[4]) if len(sys.argv) > 4 else 500
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.path.join(root, "target/release/rescore-sidecar")
proc = subprocess.Popen(
    [binary, "--models", os.path.join(root, "models"), "--items", snapshot,
     "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
    stderr=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "info"})
addr = None
started = time.time()
for line in proc.stderr:
    m = re.search(r"listen=(\S+)", line)
    if m:
        addr = m.group(1)
    if " ready" in line or line.rstrip().endswith("ready"):
        break
ready_s = time.time() - started


def status():
    with open(f"/proc/{proc.pid}/status") as f:
        return {k: v.strip() for k, v in (l.split(":", 1) for l in f)}


rng = random.Random(1)
lat = []
for _ in range(requests):
    body = json.dumps({"model": "marketplace",
                       "hits": [{"id": f"item{rng.randrange(n)}", "score": 1.0} for _ in range(1000)],
                       "timeout_ms": 5000}).encode()
    t = time.time()
    with urllib.request.urlopen(urllib.request.Request(f"http://{addr}/v1/rescore", body)) as r:
        resp = json.load(r)
    lat.append(time.time() - t)
    assert resp["fallback"] is None, resp
s = status()
lat.sort()
print(json.dumps({"items": n, "ready_s": round(ready_s, 1), "requests": requests,
                  "RssAnon": s["RssAnon"], "RssFile": s["RssFile"], "VmHWM": s["VmHWM"],
                  "http_p50_ms": round(lat[len(lat) // 2] * 1e3, 2),
                  "http_p99_ms": round(lat[int(len(lat) * 0.99)] * 1e3, 2)}))
proc.terminate()
proc.wait()
