"""Issue 17's fault matrix through a real Elasticsearch or OpenSearch node (scripts/fault-matrix.sh runs it).

One Elasticsearch 9.5.4 node (or, with `--engine opensearch`, an OpenSearch 3.8.0 node) with the plugin zip, the real rescore-sidecar release binary (demo model and
items), a real redis-server for the Redis rows, the demo catalogue indexed, and a few client
threads searching with the `sidecar` rescore clause. Each row: a healthy window, the fault window,
then recovery. Per row it records failed searches (HTTP errors, shard failures, timed-out
searches), client-side search latency p50/p99 in the fault window, how long after the fault ended
the plugin's `/_sidecar/stats` showed rescoring again (first rescored call, then a whole second
with every call rescored), and which counters grew (plugin stats and sidecar /metrics, with the
healthy window's growth beside them). It exits 1 when a search failed (in a row or between rows,
while the sidecar is restarted with another group's configuration), rescoring does not resume
within --recovery-bound seconds, or the fault did not show in the counter it must move.

Faults the sidecar cannot make itself (slow, 5xx, garbage, short body, wrong score count) come
from bench/fault_proxy.py between the plugin and the sidecar; the plugin's `sidecar.url` is a
static node setting, so the proxy rows restart the sidecar on another port and the proxy takes the
port the node calls.
"""

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fault_nodes import Node, Procs, Redis, Sidecar  # noqa: E402
from fault_observe import Load, StatsPoller, deltas, fallback_share, flatten_stats  # noqa: E402
from fault_proxy import HttpFaultProxy, TcpDelayProxy  # noqa: E402
from fault_util import INDEX, REPO, TIMEOUT_MS, free_port, log, pct  # noqa: E402

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
        if group in ("redis", "layered"):
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
            self.sidecar.write_config(port, group, self.redis.url(self.redis_proxy.port))
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
                        "--flavor", a.engine, "--index", INDEX, "--replace"], check=True)
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
        failed = [r for r in self.load.results if r[2]]
        in_rows = sum(r.get("failed", 0) for r in self.rows)
        if len(failed) > in_rows:
            self.failures.append(f"{len(failed) - in_rows} failed searches between rows "
                                 f"(first: {failed[0][2]})")
        log(f"{len(self.load.results)} searches in the whole run, {len(failed)} failed")

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


def redis_row(label, fault, recover, group="redis"):
    def run(m):
        def check(row, *_):
            moved = row["sidecar_moved"]
            if group == "layered":
                # the snapshot answers what Redis does not: degraded reads, never the baseline
                p = [] if any("layer_degraded" in k for k in moved) else [
                    "no degraded layered read counted: the fault did not show"]
                lost = {k: v for k, v in moved.items() if 'reason="feature_store"' in k}
                return p + ([f"the snapshot did not answer for Redis: {lost}"] if lost else [])
            keys = [k for k in moved if "item_store" in k or "feature_store" in k]
            return [] if keys else ["no item store error or fallback counted: the fault did not show"]
        m.row(label, group, lambda: fault(m), lambda ctx: recover(m, ctx), check=check)
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
    "layered_redis_stopped": redis_row(
        "layered store: Redis stopped (SIGKILL), restarted", redis_stop,
        lambda m, _: m.redis.start(), group="layered"),
    "layered_redis_paused": redis_row(
        "layered store: Redis paused (SIGSTOP)", lambda m: os.kill(m.redis.proc.pid, signal.SIGSTOP),
        lambda m, _: os.kill(m.redis.proc.pid, signal.SIGCONT), group="layered"),
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
        parts.append(f"`{k}` +{v:,.0f}" + (f" (healthy window: +{h:,.0f})" if h else ""))
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
    p.add_argument("--engine", choices=["elasticsearch", "opensearch"], default="elasticsearch")
    p.add_argument("--plugin-zip", help="default: the es9 (Elasticsearch 9.5.4) or os3 (OpenSearch 3.8.0) zip")
    p.add_argument("--es-dist", help="the engine's integ-test-zip; default: from ~/.m2")
    p.add_argument("--java-home", default=os.environ.get("ES_JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64"))
    p.add_argument("--heap", default="512m")
    p.add_argument("--node-user", default="rescore-it")
    p.add_argument("--json", help="write the rows as JSON here")
    p.add_argument("--node-setting", action="append", default=[], metavar="KEY=VALUE",
                   help="an extra node setting (-E), e.g. sidecar.breaker.consecutive_failures=0; repeatable")
    a = p.parse_args()
    a.plugin_zip = a.plugin_zip or os.path.join(REPO, {
        "elasticsearch": "es-plugin-bridge/elasticsearch/es9/target/rescore-sidecar-elasticsearch-*-es9.5.4.zip",
        "opensearch": "es-plugin-bridge/opensearch/os3/target/rescore-sidecar-opensearch-*-os3.8.0.zip"}[a.engine])
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
