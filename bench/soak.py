#!/usr/bin/env python3
"""Soak: the release sidecar under mixed traffic for a long time, with model reloads, an item
stream and a Redis restart, sampling its resources (issue 17, docs/reliability.md#soak).

What runs (all on loopback, ports chosen free at run time, everything in a temp dir):
- a real `redis-server` (append-only file, so a restart keeps its data) holding the fresh layer
  of the item store: 3,000 demo items with changed prices, then a stream of 300 price updates
  every `--etl-every` seconds through `rescore-sidecar items put --target redis`;
- the release `rescore-sidecar` on a copy of `models/` (version 1 pinned live), the demo
  snapshot, `item_store.backend = "layered"` (Redis in front of the snapshot), the admin API;
- `--clients` client threads, each on its own keep-alive connection, sending `/v1/rescore`
  requests with a window drawn log-uniformly between 10 and 1,000 hits (demo ids plus 1%
  unknown ids), a random query (text, user, intent category, budget, brand), `timeout_ms` 50,
  and an exponential think time (mean `--think-ms`) between calls;
- every `--reload-every` minutes a new model version is installed the way docs/operations.md
  does it: written to `.upload-N/` and renamed to `N/` (alternately a copy of the demo's
  version 1, 250 trees, and a 120-tree version built by `rescore-demo build` at start), promoted
  with `POST /admin/v1/models/marketplace/live`, and the version before the previous one deleted;
  the reload that unloads it is triggered in turn by `POST /admin/v1/reload`, `SIGHUP` and the
  file watch. Each reload is checked: the new version live, exactly two versions loaded;
- at `--redis-restart-at` minutes Redis is stopped (SIGTERM), left down `--redis-down-seconds`,
  and started again on the same port.

Every `--sample-seconds` it records the sidecar's VmRSS and RssAnon, open file descriptors and
threads (/proc/PID) and the number of series in /metrics. At the end it prints a JSON summary and
a Markdown table: totals (requests, failed requests = connection errors, non-200 answers, bodies
that are not JSON or whose `scores` do not match the hits; fallbacks by reason are reported,
not failures), and per resource the first/min/max/last values and the least-squares slope over
the second half of the run (the first half is warm-up), with the growth that slope implies over
that half against its bound. Exit 1 if any request failed, a reload or the Redis restart did not
take effect, or a resource grew beyond its bound; 2 on a setup error; 130 when interrupted
(SIGINT/SIGTERM: what it started is stopped and its temp dir removed).

Usage (from the repo root, after `cargo build --release --bin rescore-sidecar --bin rescore-demo`):
  python3 bench/soak.py [--minutes 30] [--reload-every 5] [--redis-restart-at 12] ...
scripts/soak.sh builds and runs it; `scripts/soak.sh --smoke` is the short run of scripts/test.sh.
"""
import argparse
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDECAR = os.path.join(ROOT, "target", "release", "rescore-sidecar")
DEMO = os.path.join(ROOT, "target", "release", "rescore-demo")
ITEMS = os.path.join(ROOT, "demo", "items.jsonl")
MODEL = "marketplace"
WORDS = ["apple", "charger", "mouse", "lego", "bike", "lamp", "dress", "shoes", "phone", "case",
         "sofa", "guitar", "camera", "watch", "toy", "laptop", "desk", "jacket", "book", "pram"]

# Growth bounds over the second half of the run (the fitted slope times that half's length).
# RSS/RssAnon: the item cache is bounded by `item_store.cache.max_bytes` (64 MiB), a model version
# by its size plus the 16 MiB bins table, and both are warm by the second half; what is left is
# allocator noise. A leak of 64 bytes per request at this traffic (~150 requests/s) would add
# 8 MiB in 15 minutes, so 8 MiB is the bound for a run of 30 minutes; it scales with the
# half's length and is at least 8 MiB (a short smoke sees reload steps, not leaks).
RSS_BOUND_MIB_PER_15MIN = 8.0
FD_BOUND = 2.0       # descriptors: connections are fixed (clients, Redis pool), so +2 is a leak
THREAD_BOUND = 2.0   # threads: tokio's blocking pool comes and goes; growth beyond it is a leak
# Metric series: none may appear in the second half, except those of the model versions loaded at
# the end: rescore_model_info and the three rescore_guard_flagged_total rules of a version with a
# [guard] (the demo's); an unloaded version's series leave /metrics (docs/metrics.md).
PER_VERSION_SERIES = 4


class Setup(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon"):
                out[k] = int(v.split()[0]) / 1024.0
            elif k == "Threads":
                out[k] = int(v)
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def get(url, timeout=5, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def slope_per_s(points):
    """Least-squares slope of (t, v) points, per second."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 0.0 if den == 0 else sum((t - mt) * (v - mv) for t, v in points) / den


def stop_process(proc):
    """SIGTERM, then SIGKILL after 30 s; nothing if it is not running."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Redis:
    def __init__(self, work):
        self.dir = os.path.join(work, "redis")
        os.makedirs(self.dir)
        self.port = None
        self.proc = None

    def start(self, port=None):
        for _ in range(1 if port else 5):
            p = port or free_port()
            log = open(os.path.join(self.dir, "redis.log"), "a")
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--dir", self.dir,
                 "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                 "--protected-mode", "no"], stdout=log, stderr=subprocess.STDOUT)
            for _ in range(100):
                if self.proc.poll() is not None:
                    break
                if subprocess.run(["redis-cli", "-p", str(p), "ping"], capture_output=True,
                                  text=True).stdout.strip() == "PONG":
                    self.port = p
                    return
                time.sleep(0.1)
            self.stop()
        raise Setup(f"redis-server did not start (port {port or 'any'}); see {self.dir}/redis.log")

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


class Sidecar:
    def __init__(self, work, redis_url, token):
        self.work = work
        self.models = os.path.join(work, "models")
        self.log_path = os.path.join(work, "sidecar.log")
        self.config = os.path.join(work, "sidecar.toml")
        with open(self.config, "w") as f:
            f.write(f'[item_store]\nbackend = "layered"\n[item_store.redis]\nurl = "{redis_url}"\n')
        self.token = token
        self.proc = None

    def start(self):
        env = dict(os.environ, RESCORE_ADMIN_TOKEN=self.token)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [SIDECAR, "--config", self.config, "--models", self.models, "--items", ITEMS,
             "--data-dir", os.path.join(self.work, "data"), "--listen", "127.0.0.1:0",
             "--admin-listen", "127.0.0.1:0"], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 180
        self.addr = self.admin = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Setup(f"the sidecar exited ({self.proc.returncode}); see {self.log_path}")
            with open(self.log_path, errors="replace") as f:
                text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
            m = re.search(r"rescore-sidecar listening.*?listen=([0-9.:]+)", text)
            a = re.search(r"admin API listening.*?admin_listen=([0-9.:]+)", text)
            self.addr = m and m.group(1)
            self.admin = a and a.group(1)
            if self.addr and self.admin:
                try:
                    if get(f"http://{self.addr}/readyz")[0] == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.2)
        raise Setup(f"the sidecar did not become ready; see {self.log_path}")

    def admin_call(self, method, path, body=None):
        conn = http.client.HTTPConnection(self.admin, timeout=60)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Authorization": f"Bearer {self.token}",
                                  "content-type": "application/json"})
            r = conn.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            conn.close()

    def models_state(self):
        _, body = get(f"http://{self.addr}/v1/models")
        for m in json.loads(body)["models"]:
            if m["name"] == MODEL:
                return str(m.get("live_version")), sorted(
                    (str(v["version"]), v["role"]) for v in m["versions"])
        return None, []

    def stop(self):
        stop_process(self.proc)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.scored = 0
        self.failures = {}
        self.failure_examples = []
        self.fallbacks = {}
        self.versions = {}
        self.latencies = []
        self.hits = 0

    def fail(self, kind, detail):
        with self.lock:
            self.requests += 1
            self.failures[kind] = self.failures.get(kind, 0) + 1
            if len(self.failure_examples) < 20:
                self.failure_examples.append(f"{time.strftime('%H:%M:%S')} {kind}: {detail}"[:300])


def client(c, addr, stop, stats, think_ms, timeout_ms):
    rng = random.Random(1000 + c)
    conn = None
    while not stop.is_set():
        window = int(round(math.exp(rng.uniform(math.log(10), math.log(1000)))))
        ids = [f"x{rng.randrange(10**6)}" if rng.random() < 0.01 else f"i{rng.randrange(10000)}"
               for _ in range(window)]
        body = json.dumps({
            "model": MODEL,
            "query": {"text": " ".join(rng.sample(WORDS, rng.randint(1, 3))),
                      "user_id": f"u{rng.randrange(10000)}",
                      "features": {"intent_category": rng.randrange(20),
                                   "user_budget": rng.choice([20, 60, 150, 400, 1000]),
                                   "user_brand": rng.randrange(60)}},
            "hits": [{"id": i, "score": 20.0 - k * 0.01} for k, i in enumerate(ids)],
            "timeout_ms": timeout_ms})
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(addr, timeout=10)
            conn.request("POST", "/v1/rescore", body=body,
                         headers={"content-type": "application/json"})
            r = conn.getresponse()
            raw = r.read()
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            stats.fail("connection_error", repr(e))
            if conn is not None:
                conn.close()
            conn = None
            stop.wait(0.05)
            continue
        ms = (time.monotonic() - t0) * 1e3
        if status != 200:
            stats.fail(f"status_{status}", raw[:200])
        else:
            try:
                a = json.loads(raw)
            except ValueError:
                stats.fail("not_json", raw[:200])
                a = None
            if a is not None:
                scores = a.get("scores")
                if not isinstance(scores, list) or len(scores) != window or not all(
                        isinstance(s, (int, float)) and math.isfinite(s) for s in scores):
                    stats.fail("bad_scores", raw[:200])
                else:
                    with stats.lock:
                        stats.requests += 1
                        stats.hits += window
                        reason = a.get("fallback")
                        if reason is None:
                            stats.scored += 1
                            v = str(a.get("version"))
                            stats.versions[v] = stats.versions.get(v, 0) + 1
                        else:
                            stats.fallbacks[reason] = stats.fallbacks.get(reason, 0) + 1
                        if len(stats.latencies) < 2_000_000:
                            stats.latencies.append(ms)
        stop.wait(rng.expovariate(1.0 / think_ms) / 1e3)
    if conn is not None:
        conn.close()


def metric_series(addr):
    _, body = get(f"http://{addr}/metrics", timeout=10)
    series = set()
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, v = line.rpartition(" ")
            series.add(key)
            values[key] = v
    return series, values


def prepare_models(work, log):
    """The deployment's models (version 1 pinned live) and the two contents versions alternate
    between: the demo's version 1 (250 trees) and a 120-tree version built here."""
    models = os.path.join(work, "models")
    shutil.copytree(os.path.join(ROOT, "models"), models)
    with open(os.path.join(models, "routing.toml"), "w") as f:
        f.write(f"[models.{MODEL}]\nlive = 1\n")
    staging = os.path.join(work, "staging")
    t0 = time.time()
    subprocess.run([DEMO, "build", "--models-dir", staging, "--items-out",
                    os.path.join(staging, "items.jsonl"), "--version", "2", "--trees", "120"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log(f"built the 120-tree model in {time.time() - t0:.0f} s")
    return [os.path.join(ROOT, "models", MODEL, "1"), os.path.join(staging, MODEL, "2")]


def etl_put(redis_url, lines):
    p = subprocess.run([SIDECAR, "items", "put", "-", "--target", "redis", "--redis-url", redis_url],
                       input="".join(json.dumps(x) + "\n" for x in lines), capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"items put exited {p.returncode}: {p.stderr.strip()[-300:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--reload-every", type=float, default=5, help="minutes between model installs")
    ap.add_argument("--redis-restart-at", type=float, default=None,
                    help="minute of the Redis restart (default: 40%% of --minutes)")
    ap.add_argument("--redis-down-seconds", type=float, default=10)
    ap.add_argument("--etl-every", type=float, default=60, help="seconds between item updates")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--think-ms", type=float, default=50, help="mean think time per client")
    ap.add_argument("--timeout-ms", type=int, default=50)
    ap.add_argument("--sample-seconds", type=float, default=5)
    ap.add_argument("--series-slack", type=int, default=0,
                    help="new series allowed in the second half besides the installed versions' "
                         "(a short smoke's warm-up does not see every outcome: a first fallback "
                         "adds its series)")
    ap.add_argument("--rss-bound-mib", type=float, default=None,
                    help="allowed RSS growth over the second half (default 8 MiB per 15 minutes, "
                         "at least 8 MiB)")
    ap.add_argument("--fd-bound", type=float, default=FD_BOUND,
                    help="allowed growth of open descriptors over the second half")
    ap.add_argument("--thread-bound", type=float, default=THREAD_BOUND,
                    help="allowed growth of threads over the second half")
    ap.add_argument("--out", default=None, help="directory for samples.jsonl and summary.json")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, Redis files)")
    args = ap.parse_args()
    if args.redis_restart_at is None:
        args.redis_restart_at = 0.4 * args.minutes
    run_s = args.minutes * 60
    out = args.out or os.path.join(ROOT, "target", "soak", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="soak-")
    t_start = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - t_start:7.1f}s] {msg}", flush=True)

    redis = Redis(work)
    sidecar = None
    stop = threading.Event()
    threads = []
    problems = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        contents = prepare_models(work, log)
        redis.start()
        log(f"redis-server on port {redis.port} (pid {redis.proc.pid})")
        # The fresh layer: 3,000 demo items with changed prices, version 1.
        with open(ITEMS) as f:
            catalogue = [json.loads(line) for line in f]
        etl_version = 1
        fresh = []
        for item in catalogue[:3000]:
            feats = dict(item["features"], price=round(item["features"]["price"] * 0.9, 2))
            fresh.append({"id": item["id"], "version": etl_version, "features": feats})
        log(f"items put (initial fresh layer): {etl_put(redis.url, fresh)}")
        token = "soak-" + os.urandom(16).hex()
        sidecar = Sidecar(work, redis.url, token)
        sidecar.start()
        pid = sidecar.proc.pid
        log(f"sidecar {sidecar.addr} (pid {pid}), admin {sidecar.admin}")
        live, versions = sidecar.models_state()
        if live != "1":
            raise Setup(f"version 1 is not live at start: {live} {versions}")

        stats = Stats()
        for c in range(args.clients):
            t = threading.Thread(target=client, args=(c, sidecar.addr, stop, stats, args.think_ms,
                                                      args.timeout_ms), daemon=True)
            t.start()
            threads.append(t)
        log(f"{args.clients} clients started; run {args.minutes} min")

        samples = []
        series_at = {}
        reloads = []
        redis_restart = None
        etl_rounds = {"ok": 0, "failed": 0}
        next_sample = 0.0
        next_reload = args.reload_every * 60
        next_etl = args.etl_every
        restart_at = args.redis_restart_at * 60
        version = 1
        triggers = ["admin", "sighup", "watch"]
        t0 = time.monotonic()
        samples_file = open(os.path.join(out, "samples.jsonl"), "w")
        while True:
            now = time.monotonic() - t0
            if now >= run_s:
                break
            if sidecar.proc.poll() is not None:
                problems.append(f"the sidecar exited ({sidecar.proc.returncode}) at {now:.0f} s")
                break
            if now >= next_sample:
                s = proc_status(pid)
                series, _ = metric_series(sidecar.addr)
                with stats.lock:
                    s.update(t=round(now, 1), series=len(series), requests=stats.requests,
                             failed=sum(stats.failures.values()))
                samples.append(s)
                samples_file.write(json.dumps(s) + "\n")
                samples_file.flush()
                if now >= run_s / 2 and "half" not in series_at:
                    series_at["half"] = series
                series_at["last"] = series
                while next_sample <= now:  # one sample after a blocking step, not a burst
                    next_sample += args.sample_seconds
            if now >= next_reload:
                version += 1
                trigger = triggers[(version - 2) % 3]
                src = contents[1 - version % 2]  # even versions 120 trees, odd ones 250
                models_dir = os.path.join(sidecar.models, MODEL)
                tr = time.monotonic()
                shutil.copytree(src, os.path.join(models_dir, f".upload-{version}"))
                os.rename(os.path.join(models_dir, f".upload-{version}"), os.path.join(models_dir, str(version)))
                status, body = sidecar.admin_call("POST", f"/admin/v1/models/{MODEL}/live", {"version": version})
                ok = status == 200
                if version >= 3:
                    shutil.rmtree(os.path.join(models_dir, str(version - 2)))
                    if trigger == "admin":
                        st2, _ = sidecar.admin_call("POST", "/admin/v1/reload")
                        ok = ok and st2 == 200
                    elif trigger == "sighup":
                        os.kill(pid, signal.SIGHUP)
                want = sorted([(str(version), "live"), (str(version - 1), "standby")])
                state = None
                for _ in range(300):
                    state = sidecar.models_state()
                    if state == (str(version), want):
                        break
                    time.sleep(0.1)
                took = time.monotonic() - tr
                applied = ok and state == (str(version), want)
                reloads.append({"t": round(now, 1), "version": version, "trees": 250 if version % 2 else 120,
                                "unload_trigger": trigger if version >= 3 else None, "promote_status": status,
                                "applied": applied, "seconds": round(took, 2)})
                log(f"version {version} installed and promoted ({reloads[-1]['trees']} trees, unload of "
                    f"{version - 2 if version >= 3 else '-'} by {trigger if version >= 3 else '-'}): "
                    f"{'ok' if applied else 'NOT APPLIED'} in {took:.1f} s; state {state}")
                if not applied:
                    problems.append(f"reload to version {version} not applied: {status} {body[:200]} {state}")
                next_reload += args.reload_every * 60
            if redis_restart is None and now >= restart_at:
                port = redis.port
                log(f"redis restart: SIGTERM pid {redis.proc.pid}, down {args.redis_down_seconds:.0f} s")
                with stats.lock:
                    before = (stats.requests, sum(stats.failures.values()))
                redis.stop()
                time.sleep(args.redis_down_seconds)
                try:
                    redis.start(port)
                    up = True
                except Setup as e:
                    up = False
                    problems.append(str(e))
                keys = subprocess.run(["redis-cli", "-p", str(port), "dbsize"], capture_output=True,
                                      text=True).stdout.strip() if up else "?"
                redis_restart = {"t": round(now, 1), "down_s": args.redis_down_seconds, "back": up,
                                 "keys_after": keys, "requests_before": before[0]}
                log(f"redis back on port {port} (pid {redis.proc.pid if up else '-'}), {keys} keys")
            if now >= next_etl:
                if redis.proc is not None:
                    etl_version += 1
                    upd = []
                    for item in random.Random(etl_version).sample(catalogue, 300):
                        feats = dict(item["features"], price=round(item["features"]["price"] * random.Random(
                            etl_version * 7 + len(upd)).uniform(0.7, 1.1), 2))
                        upd.append({"id": item["id"], "version": etl_version, "features": feats})
                    try:
                        etl_put(redis.url, upd)
                        etl_rounds["ok"] += 1
                    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                        etl_rounds["failed"] += 1
                        log(f"items put failed: {e}")
                next_etl += args.etl_every
            upcoming = [next_sample, next_reload, next_etl, run_s] + ([restart_at] if redis_restart is None else [])
            time.sleep(min(1.0, max(0.0, min(upcoming) - (time.monotonic() - t0))))
        stop.set()
        for t in threads:
            t.join(30)
        samples_file.close()
        _, final_metrics = metric_series(sidecar.addr)
        _, loaded_at_end = sidecar.models_state()
        loadavg_after = os.getloadavg()
        print(f"# load average after: {' '.join(f'{x:.2f}' for x in loadavg_after)}", flush=True)

        # --- summary
        half = [s for s in samples if s["t"] >= run_s / 2]
        half_len_s = (half[-1]["t"] - half[0]["t"]) if len(half) > 1 else 0.0
        rss_bound = args.rss_bound_mib or max(8.0, RSS_BOUND_MIB_PER_15MIN * half_len_s / 900.0)
        resources = {}
        for key, unit, bound in [("VmRSS", "MiB", rss_bound), ("RssAnon", "MiB", rss_bound),
                                 ("fds", "", args.fd_bound), ("Threads", "", args.thread_bound), ("series", "", None)]:
            vals = [s[key] for s in samples]
            sl = slope_per_s([(s["t"], s[key]) for s in half])
            growth = sl * half_len_s
            r = {"first": vals[0], "min": min(vals), "max": max(vals), "last": vals[-1],
                 "half_first": half[0][key] if half else None,
                 "slope_per_hour": sl * 3600, "growth_over_second_half": growth, "bound": bound}
            if key == "series":
                new = sorted(series_at.get("last", set()) - series_at.get("half", set()))
                gone = sorted(series_at.get("half", set()) - series_at.get("last", set()))
                # A model version's series (rescore_model_info, its rescore_guard_flagged_total
                # rules) come with it and leave /metrics when it is unloaded: new ones are allowed
                # for the versions loaded at the end, PER_VERSION_SERIES each; a series of a
                # version no longer loaded is a leak, and nothing else may appear.
                loaded = {v for v, role in loaded_at_end if role != "available"}

                def version_of(name):
                    m = re.search(r'version="([0-9]+)"', name)
                    return m and m.group(1)

                per_version = {}
                other = []
                for name in new:
                    v = version_of(name)
                    if v in loaded:
                        per_version[v] = per_version.get(v, 0) + 1
                    else:
                        other.append(name)
                stale = sorted(n for n in series_at.get("last", set()) if version_of(n) and version_of(n) not in loaded)
                r["new_in_second_half"] = new
                r["new_per_loaded_version"] = per_version
                r["new_other"] = other
                r["gone_in_second_half"] = len(gone)
                r["loaded_versions_at_end"] = sorted(loaded, key=int)
                r["unloaded_version_series_at_end"] = stale
                r["bound"] = (f"{args.series_slack} new, plus {PER_VERSION_SERIES} per loaded version; "
                              "none of an unloaded version")
                r["ok"] = (len(other) <= args.series_slack and not stale
                           and all(n <= PER_VERSION_SERIES for n in per_version.values()))
            else:
                r["ok"] = growth <= bound
            r["unit"] = unit
            resources[key] = r
            if not r["ok"]:
                problems.append(f"{key} grew over the second half: {r}")
        lat = sorted(stats.latencies)
        q = (lambda p: lat[min(len(lat) - 1, int(p * (len(lat) - 1)))] if lat else float("nan"))
        degraded = {k: v for k, v in final_metrics.items() if k.startswith("rescore_item_store_layer_degraded_total")
                    or k.startswith("rescore_item_store_requests_total") or k.startswith("rescore_reloads_total")
                    or k.startswith("rescore_fallbacks_total")}
        failed = sum(stats.failures.values())
        if failed:
            problems.append(f"{failed} requests failed: {stats.failures}")
        if redis_restart is None or not redis_restart["back"]:
            problems.append("the Redis restart did not happen or Redis did not come back")
        summary = {
            "minutes": args.minutes, "clients": args.clients, "think_ms": args.think_ms,
            "timeout_ms": args.timeout_ms, "seconds_sampled": samples[-1]["t"] if samples else 0,
            "requests": stats.requests, "hits": stats.hits, "requests_per_s": stats.requests / max(1.0, run_s),
            "scored": stats.scored, "failed": failed, "failures": stats.failures,
            "failure_examples": stats.failure_examples, "fallbacks": stats.fallbacks,
            "scored_by_version": stats.versions, "client_p50_ms": q(0.5), "client_p99_ms": q(0.99),
            "reloads": reloads, "redis_restart": redis_restart, "etl_rounds": etl_rounds,
            "resources": resources, "metrics_at_end": degraded,
            "loadavg_after": loadavg_after, "samples": len(samples), "problems": problems,
        }
        with open(os.path.join(out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(json.dumps({k: v for k, v in summary.items() if k not in ("resources",)}), flush=True)
        print(f"\nrequests {stats.requests} ({summary['requests_per_s']:.0f}/s), scored {stats.scored}, "
              f"failed {failed} {stats.failures or ''}, fallbacks {stats.fallbacks or 0}; "
              f"client p50/p99 {q(0.5):.1f}/{q(0.99):.1f} ms; reloads {len(reloads)} "
              f"({sum(r['applied'] for r in reloads)} applied); redis restart at {redis_restart and redis_restart['t']} s")
        print("\n| resource | first | min | max | last | slope over the second half (per hour) | growth over the second half | bound | ok |")
        print("|---|---|---|---|---|---|---|---|---|")
        for key, r in resources.items():
            u = f" {r['unit']}" if r["unit"] else ""
            b = r["bound"] if isinstance(r["bound"], str) else f"{r['bound']:.1f}{u}"
            print(f"| {key} | {r['first']:.1f} | {r['min']:.1f} | {r['max']:.1f} | {r['last']:.1f} | "
                  f"{r['slope_per_hour']:+.2f}{u} | {r['growth_over_second_half']:+.2f}{u} | {b} | {'yes' if r['ok'] else 'NO'} |")
        if resources["series"]["new_in_second_half"]:
            print(f"new series in the second half: {resources['series']['new_per_loaded_version']} per version "
                  f"loaded at the end ({resources['series']['loaded_versions_at_end']}), "
                  f"{len(resources['series']['new_other'])} others; "
                  f"{resources['series']['gone_in_second_half']} gone; "
                  f"{len(resources['series']['unloaded_version_series_at_end'])} of unloaded versions at the end",
                  *resources["series"]["new_in_second_half"][:40], sep="\n  ")
        print(f"\nsamples and summary: {out}")
        if problems:
            print("SOAK FAILED:", *problems, sep="\n  ", file=sys.stderr)
            return 1
        print("soak passed")
        return 0
    except Setup as e:
        print(f"soak setup failed: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"soak interrupted ({e or 'SIGINT'}); stopping what it started", file=sys.stderr)
        return 130
    finally:
        stop.set()
        if sidecar is not None:
            sidecar.stop()
            if problems or args.keep:
                try:
                    shutil.copy(sidecar.log_path, os.path.join(out, "sidecar.log"))
                except OSError:
                    pass
        redis.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
