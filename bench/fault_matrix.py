"""Issue 17's fault matrix through a real Elasticsearch node (scripts/fault-matrix.sh runs it).

One Elasticsearch node with the plugin zip, the real rescore-sidecar release binary (demo model and
items), a real redis-server for the Redis rows, the demo catalogue indexed, and a few client
threads searching with the `sidecar` rescore clause. Each row: a healthy window, the fault window,
then recovery. Per row it records failed searches (HTTP errors, shard failures, timed-out
searches), client-side search latency p50/p99 in the fault window, how long after the fault ended
the plugin's `/_sidecar/stats` showed rescoring again (first rescored call, then a whole second
with every call rescored), and which counters moved (plugin stats and sidecar /metrics) that did
not move in the healthy window. It exits 1 when a row has a failed search, rescoring does not
resume within --recovery-bound seconds, or the fault did not show in the counter it must move.

Faults the sidecar cannot make itself (slow, 5xx, garbage, short body, wrong score count) come
from bench/fault_proxy.py between the plugin and the sidecar; the plugin's `sidecar.url` is a
static node setting, so the proxy rows restart the sidecar on another port and the proxy takes the
port the node calls.
"""

import argparse
import csv
import glob
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fault_proxy import HttpFaultProxy, TcpDelayProxy  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INDEX = "fault-matrix"
TIMEOUT_MS = 50  # the searches' rescore budget (DSL timeout_ms)
WINDOW = 100


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_json(url, body=None, method=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def http_text(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Procs:
    """Every process this run started, stopped by its pid on exit."""

    def __init__(self):
        self.procs = []

    def start(self, args, logfile, **kw):
        p = subprocess.Popen(args, stdout=open(logfile, "ab"), stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, wait=30):
        if p.poll() is not None:
            return
        try:
            os.kill(p.pid, signal.SIGCONT)
            p.send_signal(sig)
            p.wait(wait)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            p.kill()
            p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p, wait=60)


# ---------------------------------------------------------------------------------------------
# The components


class Sidecar:
    def __init__(self, procs, work, port):
        self.procs, self.work, self.port = procs, work, port
        self.proc, self.config = None, None
        self.models = os.path.join(work, "models")
        shutil.copytree(os.path.join(REPO, "models"), self.models)

    def write_config(self, port, backend="embedded", redis_url=None, feature_log_dir=None):
        lines = [f'listen = "127.0.0.1:{port}"', f'models = "{self.models}"',
                 f'data_dir = "{self.work}/sidecar-data"']
        if backend != "redis":
            lines.append(f'items = "{REPO}/demo/items.jsonl"')
        lines += ["[serving.reload]", "debounce_ms = 200"]
        lines += ["[item_store]", f'backend = "{backend}"']
        if backend != "embedded":
            # a short cache TTL so that the store keeps being asked while the fault lasts
            lines += ["[item_store.cache]", "ttl_secs = 1", "unknown_ttl_secs = 1",
                      "[item_store.redis]", f'url = "{redis_url}"']
        if feature_log_dir:
            lines += ["[monitoring.feature_log]", "enabled = true", f'dir = "{feature_log_dir}"',
                      "sample_rate = 1.0", "max_file_bytes = 1048576", "max_total_bytes = 8388608"]
        self.config = os.path.join(self.work, "sidecar.toml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.listen_port = port

    def start(self):
        self.proc = self.procs.start(
            [f"{REPO}/target/release/rescore-sidecar", "--config", self.config],
            os.path.join(self.work, "sidecar.log"), env={**os.environ, "RUST_LIB_BACKTRACE": "0"})
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the sidecar exited ({self.proc.returncode}); see {self.work}/sidecar.log")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.listen_port}/readyz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the sidecar was not ready within 60 s")

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.procs.stop(self.proc, sig)

    def metrics(self):
        try:
            return parse_metrics(http_text(f"http://127.0.0.1:{self.listen_port}/metrics"))
        except OSError:
            return None


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        if name.split("{")[0].endswith("_total"):
            out[name] = float(value)
    return out


class Redis:
    def __init__(self, procs, work):
        self.procs, self.dir = procs, os.path.join(work, "redis")
        os.makedirs(self.dir)
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = self.procs.start(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--dbfilename", "dump.rdb"],
            os.path.join(self.dir, "redis.log"))
        for _ in range(100):
            if self.cmd("PING") == "PONG":
                return
            time.sleep(0.05)
        raise SystemExit("redis-server did not answer PING")

    def cmd(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)
        return r.stdout.strip()

    def url(self, port=None):
        return f"redis://127.0.0.1:{port or self.port}/0"


class Node:
    def __init__(self, procs, work, args, sidecar_port):
        self.procs, self.work = procs, work
        zips = glob.glob(args.plugin_zip)
        if len(zips) != 1:
            raise SystemExit(f"expected one plugin zip matching {args.plugin_zip}, found {zips}")
        zip_path = zips[0]
        version = zip_path.rsplit("-es", 1)[1][: -len(".zip")]
        dist = args.es_dist or os.path.expanduser(
            f"~/.m2/repository/org/elasticsearch/distribution/integ-test-zip/elasticsearch/{version}/elasticsearch-{version}.zip")
        if not os.path.isfile(dist):
            raise SystemExit(f"{dist} missing (scripts/test-bridge.sh downloads it through Maven)")
        self.dir = os.path.join(work, "elasticsearch")
        os.makedirs(self.dir)
        subprocess.run(["unzip", "-q", dist, "-d", self.dir], check=True)
        home = [d for d in glob.glob(os.path.join(self.dir, "*")) if os.path.isdir(d)][0]
        shutil.copy(zip_path, os.path.join(self.dir, "plugin.zip"))
        env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
        env["ES_JAVA_HOME"] = args.java_home
        r = subprocess.run([f"{home}/bin/elasticsearch-plugin", "install", "--batch",
                            f"file://{self.dir}/plugin.zip"], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"elasticsearch-plugin install failed:\n{r.stdout}\n{r.stderr}")
        as_node = []
        if os.getuid() == 0:  # Elasticsearch refuses root: run it as an unprivileged system user
            user = args.node_user
            if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                                "/usr/sbin/nologin", user], check=True)
            subprocess.run(["chown", "-R", f"{user}:{user}", self.dir], check=True)
            as_node = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        self.port = free_port()
        env["ES_JAVA_OPTS"] = f"-Xms{args.heap} -Xmx{args.heap}"
        self.proc = procs.start(
            as_node + [f"{home}/bin/elasticsearch", "-Ecluster.name=fault-matrix",
                       "-Enode.name=fault-matrix", "-Ediscovery.type=single-node",
                       "-Enetwork.host=127.0.0.1", f"-Ehttp.port={self.port}",
                       f"-Etransport.port={free_port()}", f"-Epath.data={self.dir}/data",
                       f"-Epath.logs={self.dir}/logs",
                       "-Ecluster.routing.allocation.disk.threshold_enabled=false",
                       f"-Esidecar.url=http://127.0.0.1:{sidecar_port}",
                       "-Expack.security.enabled=false"],
            os.path.join(self.dir, "node.log"), env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        start = time.time()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"elasticsearch exited; see {self.dir}/node.log")
            try:
                http_json(f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s")
                break
            except OSError:
                if time.time() - start > 180:
                    raise SystemExit("elasticsearch not up within 180 s")
                time.sleep(1)
        log(f"elasticsearch {version} up at {self.url} after {time.time() - start:.0f} s")

    def stats(self):
        return http_json(f"{self.url}/_sidecar/stats", timeout=5)


# ---------------------------------------------------------------------------------------------
# Load and observation


class Load:
    """Client threads searching with the rescore clause; every search's time and outcome kept."""

    def __init__(self, node_url, queries, clients):
        self.host, self.port = node_url.split("//")[1].split(":")
        self.queries = queries
        self.results = []  # (start time, seconds, error or None)
        self.lock = threading.Lock()
        self.stopped = False
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]
        for t in self.threads:
            t.start()

    def _body(self, q):
        return {
            "size": 10, "_source": False, "track_total_hits": False,
            "query": {"match": {"title": q["text"]}},
            "rescore": {"window_size": WINDOW, "sidecar": {
                "model": "marketplace", "id_field": "item_id",
                "query": {"text": q["text"], "user_id": q["user"], "features": q["features"]},
                "timeout_ms": TIMEOUT_MS}},
        }

    def _run(self, i):
        rng = random.Random(i)
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        while not self.stopped:
            body = json.dumps(self._body(rng.choice(self.queries)))
            t0 = time.time()
            error = None
            try:
                conn.request("POST", f"/{INDEX}/_search", body, {"content-type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    error = f"HTTP {r.status}: {data[:300]!r}"
                else:
                    doc = json.loads(data)
                    if doc["_shards"]["failed"] != 0:
                        error = f"shard failures: {json.dumps(doc['_shards'])[:300]}"
                    elif doc.get("timed_out"):
                        error = "timed_out"
            except (OSError, http.client.HTTPException, ValueError) as e:
                error = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
            with self.lock:
                self.results.append((t0, time.time() - t0, error))

    def between(self, a, b):
        with self.lock:
            return [r for r in self.results if a <= r[0] < b]

    def stop(self):
        self.stopped = True
        for t in self.threads:
            t.join(35)


class StatsPoller:
    """The plugin's /_sidecar/stats every 100 ms: rescored calls and fallbacks over time."""

    def __init__(self, node):
        self.node, self.samples, self.stopped = node, [], False
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.stopped:
            try:
                s = self.node.stats()
                with self.lock:
                    self.samples.append((time.time(), s["rescored"], sum(s["fallbacks"].values()), s))
            except (OSError, ValueError):
                pass
            time.sleep(0.1)

    def latest(self):
        with self.lock:
            return self.samples[-1]

    def after(self, t):
        with self.lock:
            return [x for x in self.samples if x[0] >= t]

    def wait_full(self, since, bound, span=1.0):
        """(seconds after `since` until the first rescored call, seconds until a `span`-second
        stretch in which calls were rescored and at most 1% fell back); None if not within
        `bound`."""
        first = None
        while time.time() < since + bound + span:
            smp = self.after(since)
            for i, (t, resc, fb, _) in enumerate(smp):
                if first is None and i > 0 and resc > smp[0][1]:
                    first = smp[i - 1][0] - since
                for t2, resc2, fb2, _ in smp[i + 1:]:
                    if t2 - t >= span:
                        # every call rescored; 1% fallbacks allowed for the stray timeout
                        # a loaded machine gives a healthy sidecar too
                        if resc2 > resc and (fb2 - fb) <= 0.01 * (resc2 - resc):
                            return first, max(0.0, t - since)
                        break
            time.sleep(0.2)
        return first, None


def fallback_share(samples, until):
    """Share of the plugin's calls (rescored + fallen back) that fell back before `until`."""
    inside = [x for x in samples if x[0] <= until]
    if len(inside) < 2:
        return None
    resc = inside[-1][1] - inside[0][1]
    fb = inside[-1][2] - inside[0][2]
    return round(fb / (resc + fb), 3) if resc + fb else None


def flatten_stats(s):
    out = {}
    for k in ("breaker_opened", "stale_retries", "connections_opened", "missing_id"):
        out[k] = s.get(k, 0)
    for group in ("fallbacks", "sidecar_fallbacks", "window_placements"):
        for k, v in s.get(group, {}).items():
            out[f"{group}.{k}"] = v
    return out


# Counters that every healthy call moves: left out of "counters moved".
EVERY_CALL = ("window_placements.rescored", 'outcome="scored"', "rescore_item_cache_hits_total",
              "rescore_item_cache_misses_total", "rescore_item_cache_evictions_total",
              'result="ok"', "rescore_feature_log_records_total", "rescore_feature_log_bytes_total")


def deltas(before, after):
    """Counters that grew from `before` to `after`, per-feature series summed into one."""
    if before is None or after is None:
        return {}
    out = {}
    for k, v in after.items():
        d = v - before.get(k, 0)
        if d <= 0 or any(e in k for e in EVERY_CALL):
            continue
        if k.startswith("rescore_feature_missing_total"):
            k = "rescore_feature_missing_total (all features)"
        out[k] = out.get(k, 0) + d
    return out


# ---------------------------------------------------------------------------------------------
# The matrix


class Matrix:
    def __init__(self, args, work, procs):
        self.args, self.work, self.procs = args, work, procs
        self.rows, self.failures = [], []
        self.node_side_port = free_port()  # the port the node's sidecar.url names
        self.sidecar = Sidecar(procs, work, self.node_side_port)
        self.redis = self.redis_proxy = self.http_proxy = None
        self.group = None

    # groups: each restarts the sidecar with the configuration its rows need
    def use_group(self, group):
        if group == self.group:
            return
        self.sidecar.stop()
        if self.http_proxy:
            self.http_proxy.close()
            self.http_proxy = None
        port = self.node_side_port
        if group == "proxy":
            port = free_port()
        if group == "redis":
            if self.redis is None:
                self.redis = Redis(self.procs, self.work)
                self.redis.start()
                items = os.path.join(self.work, "items-v1.jsonl")
                with open(os.path.join(REPO, "demo/items.jsonl")) as src, open(items, "w") as dst:
                    for line in src:
                        doc = json.loads(line)
                        doc["version"] = 1
                        dst.write(json.dumps(doc) + "\n")
                subprocess.run([f"{REPO}/target/release/rescore-sidecar", "items", "put", items,
                                "--target", "redis", "--redis-url", self.redis.url()], check=True,
                               capture_output=True)
                self.redis.cmd("SAVE")
                self.redis_proxy = TcpDelayProxy(self.redis.port)
            self.sidecar.write_config(port, "redis", self.redis.url(self.redis_proxy.port))
        elif group == "feature_log":
            self.sidecar.write_config(port, feature_log_dir=self.flog_dir)
        else:
            self.sidecar.write_config(port)
        self.sidecar.start()
        if group == "proxy":
            self.http_proxy = HttpFaultProxy(self.node_side_port, port, slow_ms=TIMEOUT_MS * 4)
        self.group = group
        log(f"sidecar group {group}: listening on {port}, node calls {self.node_side_port}")

    def mount_feature_log_fs(self):
        """A 16 MiB tmpfs for the feature log (needs mount rights); None when it cannot be made."""
        self.flog_dir = os.path.join(self.work, "flog")
        os.makedirs(self.flog_dir)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", self.flog_dir],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return f"cannot mount a tmpfs ({r.stderr.strip() or r.returncode})"
        self.mounted = self.flog_dir
        return None

    def settle(self, bound=60):
        first, full = self.stats.wait_full(time.time(), bound)
        if full is None:
            raise SystemExit("rescoring is not steady before the row; the plugin's stats: "
                             + json.dumps(self.stats.latest()[3]))

    def row(self, name, group, fault, recover, expect=None, check=None, fault_window=True):
        a = self.args
        self.use_group(group)
        self.settle()
        log(f"row: {name}")
        pid_before = self.sidecar.proc.pid
        t_h = time.time()
        st_h, m_h = flatten_stats(self.node.stats()), self.sidecar.metrics()
        time.sleep(a.healthy)
        t_f = time.time()
        st_f, m_f = flatten_stats(self.node.stats()), self.sidecar.metrics()
        ctx = fault()
        if fault_window:
            time.sleep(a.fault)
        t_r = time.time()
        recover(ctx)
        # without a fault window (a restart) recovery counts from the start of the fault
        t_fix = time.time() if fault_window else t_f
        first, full = self.stats.wait_full(t_fix, a.recovery_bound)
        time.sleep(0.5)
        t_end = time.time()
        st_e, m_e = flatten_stats(self.node.stats()), self.sidecar.metrics()
        restarted = self.sidecar.proc.pid != pid_before
        healthy = self.load.between(t_h, t_f)
        # without a fault window (a restart), the latencies are those until every call was rescored
        in_fault = self.load.between(t_f, t_r if fault_window else t_fix + (full or 0))
        whole = self.load.between(t_h, t_end)
        failed = [r for r in whole if r[2]]
        lat = [r[1] * 1000 for r in in_fault]
        row = {
            "row": name, "searches": len(whole), "failed": len(failed),
            "healthy_p99_ms": round(pct([r[1] * 1000 for r in healthy], 0.99), 1),
            "fault_p50_ms": round(pct(lat, 0.5), 1), "fault_p99_ms": round(pct(lat, 0.99), 1),
            "fault_searches": len(in_fault),
            "first_rescored_s": None if first is None else round(first, 1),
            "all_rescored_s": None if full is None else round(full, 1),
            "plugin_moved": deltas(st_f, st_e), "plugin_healthy": deltas(st_h, st_f),
            "sidecar_moved": "restarted" if restarted else deltas(m_f, m_e),
            "sidecar_healthy": deltas(m_h, m_f),
            "fault_fallback_share": fallback_share(self.stats.after(t_f), t_r),
            "first_error": failed[0][2] if failed else None,
        }
        problems = []
        if failed:
            problems.append(f"{len(failed)} failed searches (first: {failed[0][2]})")
        if full is None:
            problems.append(f"rescoring did not resume within {a.recovery_bound} s")
        if expect and not any(row["plugin_moved"].get(k) for k in expect):
            problems.append(f"none of {expect} moved in the plugin's stats: the fault did not show")
        if check:
            problems += check(row, st_f, st_e, m_f, m_e, ctx)
        row["pass"] = not problems
        self.rows.append(row)
        for p in problems:
            self.failures.append(f"{name}: {p}")
        log(json.dumps(row))

    # --- the faults -----------------------------------------------------------------------
    def run(self, rows):
        a = self.args
        self.node = Node(self.procs, self.work, a, self.node_side_port)
        subprocess.run([f"{REPO}/target/release/rescore-demo", "index", "--engine", self.node.url,
                        "--flavor", "elasticsearch", "--index", INDEX, "--replace"], check=True)
        queries = load_queries(self.work)
        self.stats = StatsPoller(self.node)
        self.use_group("embedded")
        self.load = Load(self.node.url, queries, a.clients)
        time.sleep(a.healthy)  # warm-up: the node's and the sidecar's first searches
        try:
            for name in rows:
                ROWS[name](self)
        finally:
            self.load.stop()
            self.stats.stopped = True

    def sig(self, s):
        return lambda: os.kill(self.sidecar.proc.pid, s)

    def restart_sidecar(self, _ctx=None):
        self.sidecar.stop(signal.SIGKILL)
        self.sidecar.start()

    def proxy_row(self, name, mode, expect):
        def fault():
            self.http_proxy.set_mode(mode)
            return dict(self.http_proxy.answered)

        def recover(before):
            self.http_proxy.set_mode("pass")
            before["hit"] = self.http_proxy.answered[mode] - before[mode]

        def check(row, *_rest):
            hit = _rest[-1]["hit"]
            row["proxy_answers"] = hit
            return [] if hit > 0 else [f"the proxy answered no call in mode {mode}"]
        self.row(name, "proxy", fault, recover, expect, check)


def row_killed(m):
    m.row("sidecar killed (SIGKILL), restarted after the window", "embedded",
          lambda: m.sidecar.stop(signal.SIGKILL), lambda _: m.sidecar.start(),
          expect=["fallbacks.sidecar_unavailable", "fallbacks.breaker_open"])


def row_hung(m):
    m.row("sidecar hung (SIGSTOP), SIGCONT after the window", "embedded",
          m.sig(signal.SIGSTOP), lambda _: os.kill(m.sidecar.proc.pid, signal.SIGCONT),
          expect=["fallbacks.timeout"])


def row_restarted(m):
    # SIGTERM (graceful) and a new process at once, in the middle of the load: the fault window
    # is the restart itself; recovery is counted from the new process being ready.
    def fault():
        m.sidecar.stop(signal.SIGTERM)
        m.sidecar.start()
    m.row("sidecar restarted mid-load (SIGTERM + start)", "embedded", fault, lambda _: None,
          fault_window=False)


def row_broken_model(m):
    broken = os.path.join(m.sidecar.models, "marketplace", "2")

    def fault():
        os.makedirs(broken + ".tmp")
        shutil.copy(os.path.join(m.sidecar.models, "marketplace/1/manifest.toml"), broken + ".tmp")
        with open(os.path.join(broken + ".tmp", "model.txt"), "w") as f:
            f.write("tree\nversion=v4\nnum_class=1\nTree=0\nnum_leaves=garbage\n")
        os.rename(broken + ".tmp", broken)  # the version appears whole, as a deploy would

    def recover(_):
        shutil.rmtree(broken)

    def check(row, st_f, st_e, m_f, m_e, _ctx):
        p = []
        if not any(k.startswith('rescore_model_reloads_total{result="failure"') for k in row["sidecar_moved"]):
            p.append("the broken version was not seen (no failed reload counted)")
        lost = {k: v for k, v in row["sidecar_moved"].items()
                if "model_unavailable" in k or "scoring_error" in k}
        if lost:
            p.append(f"the last good version did not keep serving: {lost}")
        return p
    m.row("broken model version dropped in (hot reload)", "embedded", fault, recover, check=check)


def row_proxy(mode, expect, label):
    return lambda m: m.proxy_row(label, mode, expect)


def redis_row(label, fault, recover):
    def run(m):
        def check(row, *_):
            moved = row["sidecar_moved"]
            keys = [k for k in moved if "item_store" in k or "feature_store" in k]
            return [] if keys else ["no item store error or fallback counted: the fault did not show"]
        m.row(label, "redis", lambda: fault(m), lambda ctx: recover(m, ctx), check=check)
    return run


def redis_stop(m):
    m.redis.cmd("SAVE")
    m.procs.stop(m.redis.proc, signal.SIGKILL)


def redis_slow(m, on):
    m.redis_proxy.delay_ms = 60 if on else 0


def row_disk_full(m):
    if m.flog_problem:
        m.rows.append({"row": "feature-log disk full", "skipped": m.flog_problem, "pass": True})
        log(f"row skipped: feature-log disk full: {m.flog_problem}")
        return
    filler = os.path.join(m.flog_dir, "filler")

    def fault():
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)

    def recover(_):
        os.remove(filler)

    def check(row, st_f, st_e, m_f, m_e, _ctx):
        p = []
        if not any("write_error" in k for k in row["sidecar_moved"]):
            p.append("no write_error drop counted: the disk did not fill")
        t0 = time.time()
        base = (m.sidecar.metrics() or {}).get("rescore_feature_log_records_total", 0)
        while time.time() - t0 < 10:
            time.sleep(0.5)
            if (m.sidecar.metrics() or {}).get("rescore_feature_log_records_total", 0) > base:
                row["log_resumed"] = True
                return p
        return p + ["the feature log did not resume writing after space was freed"]
    m.row("feature-log disk full (tmpfs filled)", "feature_log", fault, recover,
          check=check)


ROWS = {
    "killed": row_killed,
    "hung": row_hung,
    "restarted": row_restarted,
    "broken_model": row_broken_model,
    "slow": row_proxy("slow", ["fallbacks.timeout"], "slow: answers after the timeout (proxy)"),
    "http_5xx": row_proxy("http_5xx", ["fallbacks.http_error"], "5xx (proxy)"),
    "garbage": row_proxy("garbage", ["fallbacks.malformed_response"], "garbage body (proxy)"),
    "short_body": row_proxy("short_body", ["fallbacks.timeout", "fallbacks.malformed_response"],
                            "Content-Length longer than the body (proxy)"),
    "wrong_length": row_proxy("wrong_length", ["fallbacks.wrong_length"],
                              "one score missing (proxy)"),
    "redis_stopped": redis_row("Redis stopped (SIGKILL), restarted with its data", redis_stop,
                               lambda m, _: m.redis.start()),
    "redis_paused": redis_row("Redis paused (SIGSTOP)", lambda m: os.kill(m.redis.proc.pid, signal.SIGSTOP),
                              lambda m, _: os.kill(m.redis.proc.pid, signal.SIGCONT)),
    "redis_slow": redis_row("Redis slow (+60 ms per reply, TCP proxy)", lambda m: redis_slow(m, True),
                            lambda m, _: redis_slow(m, False)),
    "disk_full": row_disk_full,
}
FULL = list(ROWS)
QUICK = ["killed", "hung", "garbage", "broken_model", "redis_paused"]


def load_queries(work):
    out = os.path.join(work, "world")
    subprocess.run([f"{REPO}/target/release/rescore-demo", "export-world", "--out", out],
                   check=True, capture_output=True)
    queries = []
    with open(os.path.join(out, "queries.csv")) as f:
        for r in csv.DictReader(f):
            if r["held_out"] != "true":
                continue
            feats = {"intent_category": int(r["classifier_category"])}
            if r["user_budget"]:
                feats["user_budget"] = float(r["user_budget"])
            if r["user_brand"]:
                feats["user_brand"] = int(r["user_brand"])
            queries.append({"text": r["query_text"], "user": r["user_id"], "features": feats})
    if not queries:
        raise SystemExit("no held-out queries in the exported world")
    return queries


def fmt_moved(d, healthy):
    if d == "restarted":
        return "(new process)"
    parts = []
    for k, v in sorted(d.items()):
        h = healthy.get(k, 0)
        parts.append(f"`{k}` +{v:g}" + (f" (healthy window: +{h:g})" if h else ""))
    return ", ".join(parts) or "–"


def share(x):
    return "–" if x is None else f"{100 * x:.0f}%"


def recovery(r):
    return f"{r['first_rescored_s']} / {r['all_rescored_s']}"


def table(rows):
    out = ["| fault | searches (in fault window) | failed | healthy p99 ms | fault p50 / p99 ms | "
           "calls fallen back in the fault window | first rescored / all rescored after recovery (s) | "
           "plugin counters moved (fault + recovery) | sidecar counters moved |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['row']} | skipped: {r['skipped']} | | | | | | | |")
            continue
        out.append(
            f"| {r['row']} | {r['searches']} ({r['fault_searches']}) | {r['failed']} | "
            f"{r['healthy_p99_ms']} | {r['fault_p50_ms']} / {r['fault_p99_ms']} | "
            f"{share(r['fault_fallback_share'])} | {recovery(r)} | "
            f"{fmt_moved(r['plugin_moved'], r['plugin_healthy'])} | "
            f"{fmt_moved(r['sidecar_moved'], r['sidecar_healthy'])} |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"only {QUICK}, short windows")
    p.add_argument("--rows", help=f"comma-separated subset of {FULL}")
    p.add_argument("--healthy", type=float, default=5.0, help="seconds of healthy load per row")
    p.add_argument("--fault", type=float, default=10.0, help="seconds of the fault per row")
    p.add_argument("--recovery-bound", type=float, default=40.0,
                   help="seconds within which every call must be rescored again")
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--plugin-zip", default=os.path.join(
        REPO, "es-plugin-bridge/elasticsearch/es9/target/rescore-sidecar-elasticsearch-*-es9.5.4.zip"))
    p.add_argument("--es-dist")
    p.add_argument("--java-home", default=os.environ.get("ES_JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64"))
    p.add_argument("--heap", default="512m")
    p.add_argument("--node-user", default="rescore-it")
    p.add_argument("--json", help="write the rows as JSON here")
    a = p.parse_args()
    rows = a.rows.split(",") if a.rows else (QUICK if a.quick else FULL)
    if a.quick and not a.rows:
        a.healthy, a.fault = min(a.healthy, 2.0), min(a.fault, 4.0)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {FULL}")
    print(f"machine: {os.cpu_count()} cores, {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    work = tempfile.mkdtemp(prefix="rescore-fault-matrix.")
    os.chmod(work, 0o755)
    procs = Procs()
    m = Matrix(a, work, procs)
    m.mounted = None
    m.flog_problem = m.mount_feature_log_fs() if "disk_full" in rows else None

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        m.run(rows)
    finally:
        if m.http_proxy:
            m.http_proxy.close()
        procs.stop_all()
        if m.mounted:
            subprocess.run(["umount", m.mounted])
        if not os.environ.get("FAULT_MATRIX_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(m.rows))
    print(f"\nafter: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(m.rows, f, indent=1)
    if m.failures:
        print("\nFAILED:\n  " + "\n  ".join(m.failures))
        sys.exit(1)
    print("\nfault matrix OK: every row had 0 failed searches and rescoring resumed")


if __name__ == "__main__":
    main()
