#!/usr/bin/env python3
"""The real sidecar serving an embedded item store: latency of 1,000-hit requests and memory.

Starts target/release/rescore-sidecar with --items SNAPSHOT --data-dir DIR (building the store,
or reusing it when DIR's live generation was built from SNAPSHOT), then sends requests of 1,000
ids (item0 .. item{N-1}, as written by the store_bench example) to the demo model, whose
features read the item store, and reports the server's `took_us` (p50/p99) and the HTTP time for:

  uniform ids, store pages in the page cache (the file read once before), item cache empty
  the same 1,000 ids again and again (pages and bins hot)
  ids drawn Zipf(1.0) over the catalogue (rank = floor((N+1)^u) - 1, spread by a permutation)
  uniform ids, the store's pages evicted before every request (the sidecar's mapped pages of
    the store file reclaimed with process_madvise(MADV_PAGEOUT), then posix_fadvise DONTNEED on
    that file only), budget 5 s; then the same with a 20 ms budget (fallbacks counted)

and RssAnon / RssFile / VmHWM from /proc/PID/status right after start-up and at the end
(memory-mapped file pages are RssFile, not RssAnon). One JSON object per line.

    python3 bench/store_memory.py SNAPSHOT DATA_DIR N [REQUESTS]
"""
import ctypes
import json
import math
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

snapshot, data_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
requests = int(sys.argv[4]) if len(sys.argv) > 4 else 300
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.path.join(root, "target/release/rescore-sidecar")
env = {k: v for k, v in os.environ.items() if not k.startswith("RESCORE_")}
proc = subprocess.Popen(
    [binary, "--models", os.path.join(root, "models"), "--items", snapshot,
     "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
    stderr=subprocess.PIPE, text=True, env={**env, "RUST_LOG": "info"})
addr = None
how = "?"
started = time.time()
for line in proc.stderr:
    m = re.search(r"listen=(\S+)", line)
    if m:
        addr = m.group(1)
    if "item store built" in line:
        how = "built by the sidecar at start-up"
    if "item store reused" in line:
        how = "reused"
    if " ready" in line or line.rstrip().endswith("ready"):
        break
ready_s = time.time() - started


def status():
    with open(f"/proc/{proc.pid}/status") as f:
        return {k: v.strip() for k, v in (l.split(":", 1) for l in f)}


def store_file():
    with open(os.path.join(data_dir, "CURRENT")) as f:
        return os.path.join(data_dir, f.read().strip())


libc = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_OPEN, SYS_PROCESS_MADVISE, MADV_PAGEOUT = 434, 440, 21  # x86-64 Linux >= 5.10


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def page_out(path):
    """Reclaims the sidecar's mapped pages of `path` (process_madvise MADV_PAGEOUT): fadvise
    alone leaves pages that a process maps in the page cache."""
    ranges = []
    with open(f"/proc/{proc.pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].strip() == path:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                ranges.append(IoVec(lo, hi - lo))
    if not ranges:
        return
    pidfd = libc.syscall(SYS_PIDFD_OPEN, proc.pid, 0)
    if pidfd < 0:
        raise OSError(ctypes.get_errno(), "pidfd_open")
    try:
        iov = (IoVec * len(ranges))(*ranges)
        if libc.syscall(SYS_PROCESS_MADVISE, pidfd, iov, len(ranges), MADV_PAGEOUT, 0) < 0:
            raise OSError(ctypes.get_errno(), "process_madvise")
    finally:
        os.close(pidfd)


def evict():
    page_out(os.path.realpath(store_file()))
    fd = os.open(store_file(), os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def load_pages():
    with open(store_file(), "rb") as f:
        while f.read(1 << 24):
            pass


print(json.dumps({"items": n, "store": how, "ready_s": round(ready_s, 1),
                  "after_start": {k: status()[k] for k in ("RssAnon", "RssFile", "VmHWM")}}))
sys.stdout.flush()
rng = random.Random(1)
query = {"text": "stand mixer", "features": {"intent_category": 12, "user_budget": 40, "user_brand": 41}}


def uniform():
    return [f"item{rng.randrange(n)}" for _ in range(1000)]


def zipf():
    out = []
    for _ in range(1000):
        rank = min(max(int(math.floor((n + 1) ** rng.random())) - 1, 0), n - 1)
        out.append(f"item{(rank * 2654435761) % n}")
    return out


def rescore(ids, timeout_ms):
    body = json.dumps({"model": "marketplace", "query": query,
                       "hits": [{"id": i, "score": 1.0} for i in ids],
                       "timeout_ms": timeout_ms}).encode()
    t = time.time()
    with urllib.request.urlopen(urllib.request.Request(f"http://{addr}/v1/rescore", body)) as r:
        resp = json.load(r)
    return resp, time.time() - t


def case(name, make_ids, count, timeout_ms=5000, before=None):
    took, http, fallbacks = [], [], {}
    for _ in range(count):
        ids = make_ids()
        if before:
            before()
        resp, t = rescore(ids, timeout_ms)
        took.append(resp["took_us"] / 1e3)
        http.append(t * 1e3)
        if resp["fallback"] is not None:
            fallbacks[resp["fallback"]] = fallbacks.get(resp["fallback"], 0) + 1
    took.sort()
    http.sort()
    q = lambda xs, p: round(xs[min(int(len(xs) * p), len(xs) - 1)], 2)
    print(json.dumps({"case": name, "requests": count, "timeout_ms": timeout_ms,
                      "took_ms_p50": q(took, 0.5), "took_ms_p99": q(took, 0.99),
                      "http_ms_p50": q(http, 0.5), "http_ms_p99": q(http, 0.99),
                      "http_ms_max": round(http[-1], 2), "fallbacks": fallbacks}))
    sys.stdout.flush()


load_pages()
case("uniform, pages cached, item cache empty", uniform, requests)
same = uniform()
rescore(same, 5000)
case("the same 1,000 ids (hot)", lambda: same, requests)
case("zipf(1.0), pages cached", zipf, requests)
cold = min(requests, 100)
case("uniform, pages evicted", uniform, cold, before=evict)
case("uniform, pages evicted, 20 ms budget", uniform, cold, timeout_ms=20, before=evict)
s = status()
print(json.dumps({"end": {k: s[k] for k in ("RssAnon", "RssFile", "VmHWM")}}))
proc.terminate()
proc.wait()
