#!/usr/bin/env python3
"""The bridge's call path through a real engine, old build against new build in one run.

For each engine (Elasticsearch 9.5.3 on Temurin 25, OpenSearch 2.19.6 on Java 17) and each plugin
build (the zip built from an older git ref, and the zip built from this checkout for the same engine
version; both nodes run side by side and every cell alternates between them), this starts a real node from Maven Central's integ-test-zip, installs the zip with the
engine's own installer, starts the rescore-sidecar release binary (the bridge-test model: two doc-value
features and the BM25 score), indexes a 2-shard catalogue where every document matches the query, and
times the same searches:

  - without rescore, and with the `sidecar` rescore at window 10, 100 and 1,000,
  - at concurrency 1 and 8 (each client thread on its own keep-alive connection),
  - client latency and the engine's `took` (p50/p95/p99), searches/s,
  - per sidecar call: the plugin's call time (its counters; the new build also reports its per-call
    overhead quantiles) against the sidecar's own request duration (its Prometheus histogram).

Usage (from the repo root, after `cargo build --release --bin rescore-sidecar`):
  python3 bench/engine_callpath.py [--old-ref b499ee1] [--searches 200] [--out /tmp/callpath.json]

Not a test: it asserts nothing; it prints a Markdown table for docs/benchmarks.md.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BRIDGE = os.path.join(ROOT, "es-plugin-bridge")
M2 = os.path.expanduser("~/.m2/repository")
JAVA17 = "/usr/lib/jvm/java-17-openjdk-amd64"
JAVA25 = "/usr/lib/jvm/temurin-25-jdk-amd64"
NODE_USER = "rescore-it"

ENGINES = {
    "elasticsearch": dict(version="9.5.3", java=JAVA25, group="org/elasticsearch/distribution/integ-test-zip/elasticsearch",
                          launcher="elasticsearch", cli="elasticsearch-plugin", home_env="ES_JAVA_HOME",
                          opts_env="ES_JAVA_OPTS", settings={"xpack.security.enabled": "false"},
                          new_module="elasticsearch/es9", version_prop="elasticsearch.version",
                          old_zip_dir="elasticsearch/target"),
    "opensearch": dict(version="2.19.6", java=JAVA17, group="org/opensearch/distribution/integ-test-zip/opensearch",
                       launcher="opensearch", cli="opensearch-plugin", home_env="OPENSEARCH_JAVA_HOME",
                       opts_env="OPENSEARCH_JAVA_OPTS", settings={}, new_module="opensearch/os2",
                       version_prop="opensearch.version", old_zip_dir="opensearch/target"),
}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_zips(old_ref, work):
    """{engine: {"old": zip, "new": zip}} for the same engine versions."""
    mvn = ["mvn", "-B", "-ntp", "-q", "-DskipTests", f"-Djava25.home={JAVA25}"]
    out = {e: {} for e in ENGINES}
    old_tree = os.path.join(work, "old-tree")
    sh(["git", "-C", ROOT, "worktree", "add", "--detach", "-f", old_tree, old_ref], stdout=subprocess.DEVNULL)
    try:
        sh(mvn + ["package"], cwd=os.path.join(old_tree, "es-plugin-bridge"))
        for e, spec in ENGINES.items():
            d = os.path.join(old_tree, "es-plugin-bridge", spec["old_zip_dir"])
            zips = [f for f in os.listdir(d) if f.endswith(".zip") and spec["version"] in f]
            if not zips:
                sys.exit(f"the old build has no zip for {e} {spec['version']} in {d}")
            shutil.copy(os.path.join(d, zips[0]), os.path.join(work, f"{e}-old.zip"))
            out[e]["old"] = os.path.join(work, f"{e}-old.zip")
    finally:
        sh(["git", "-C", ROOT, "worktree", "remove", "--force", old_tree])
    for e, spec in ENGINES.items():
        sh(mvn + ["package", "-pl", spec["new_module"], "-am", f"-D{spec['version_prop']}={spec['version']}"], cwd=BRIDGE)
        d = os.path.join(BRIDGE, spec["new_module"], "target")
        z = [f for f in os.listdir(d) if f.endswith(".zip") and spec["version"] in f][0]
        shutil.copy(os.path.join(d, z), os.path.join(work, f"{e}-new.zip"))
        if spec["version"] not in open(os.path.join(BRIDGE, spec["new_module"], "pom.xml")).read():
            os.remove(os.path.join(d, z))  # another version's zip beside the line's own would confuse its users
        out[e]["new"] = os.path.join(work, f"{e}-new.zip")
    return out


def distribution(engine, work):
    spec = ENGINES[engine]
    zip_path = os.path.join(M2, spec["group"], spec["version"], f"{engine}-{spec['version']}.zip")
    if not os.path.exists(zip_path):
        sh(["mvn", "-B", "-ntp", "-q", "dependency:get",
            f"-Dartifact={spec['group'].split('/' + engine)[0].replace('/', '.')}:{engine}:{spec['version']}:zip"])
    dest = os.path.join(work, f"dist-{engine}")
    if not os.path.exists(dest):
        sh(["unzip", "-q", zip_path, "-d", dest])
    return os.path.join(dest, f"{engine}-{spec['version']}")


def ensure_user():
    if subprocess.run(["id", "-u", NODE_USER], capture_output=True).returncode != 0:
        sh(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", NODE_USER])


class Node:
    def __init__(self, engine, dist, zip_path, work, sidecar_port):
        spec = ENGINES[engine]
        self.home = os.path.join(work, "home")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        sh(["cp", "-a", dist, self.home])
        env = dict(os.environ)
        env.pop("JAVA_HOME", None)
        env[spec["home_env"]] = spec["java"]
        env[spec["opts_env"]] = "-Xms1g -Xmx1g"
        sh([os.path.join(self.home, "bin", spec["cli"]), "install", "--batch", "file://" + zip_path], env=env,
           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = free_port()
        settings = {"cluster.name": "callpath", "discovery.type": "single-node", "network.host": "127.0.0.1",
                    "http.port": str(self.port), "transport.port": str(free_port()),
                    "path.data": os.path.join(work, "data"), "path.logs": os.path.join(work, "logs"),
                    "cluster.routing.allocation.disk.threshold_enabled": "false",
                    "sidecar.url": f"http://127.0.0.1:{sidecar_port}"}
        settings.update(spec["settings"])
        cmd = [os.path.join(self.home, "bin", spec["launcher"])] + [f"-E{k}={v}" for k, v in settings.items()]
        if os.geteuid() == 0:
            ensure_user()
            sh(["chown", "-R", f"{NODE_USER}:{NODE_USER}", work])
            cmd = ["setpriv", f"--reuid={NODE_USER}", f"--regid={NODE_USER}", "--init-groups", "--"] + cmd
        self.log = open(os.path.join(work, "stdout.log"), "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"{engine} exited: see {work}/stdout.log")
            try:
                status, _ = http_json("GET", self.port, "/_cluster/health?wait_for_status=yellow&timeout=1s")
                if status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit(f"{engine} did not start")
            time.sleep(0.5)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def http_json(method, port, path, body=None, conn=None):
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    headers = {"content-type": "application/x-ndjson" if "_bulk" in path else "application/json"}
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    raw = r.read()
    if own:
        c.close()
    return r.status, (json.loads(raw) if raw else None)


def start_sidecar(port, binary):
    models = os.path.join(BRIDGE, "testdata", "models")
    p = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--models", models],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return p
        except OSError:
            time.sleep(0.2)
    sys.exit("the sidecar did not become ready")


def sidecar_duration(port):
    """(sum seconds, count) of rescore_request_duration_seconds."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("rescore_request_duration_seconds_sum"):
            total += float(line.split()[-1])
        elif line.startswith("rescore_request_duration_seconds_count"):
            count += float(line.split()[-1])
    return total, count


def index(port, docs):
    status, _ = http_json("PUT", port, "/items", {
        "settings": {"number_of_shards": 2, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "text"}, "item_id": {"type": "keyword"},
                                    "price": {"type": "double"}, "rating": {"type": "float"}}}})
    assert status == 200, status
    rnd = random.Random(7)
    words = ["red", "blue", "wooden", "plastic", "vintage", "new", "boxed", "kids", "set", "large", "small", "rare"]
    for start in range(0, docs, 1000):
        lines = []
        for i in range(start, min(docs, start + 1000)):
            title = "cool toy " * (1 + i % 4) + " ".join(rnd.choice(words) for _ in range(i % 7))
            lines.append(json.dumps({"index": {"_id": f"item-{i}"}}))
            lines.append(json.dumps({"title": title, "item_id": f"item-{i}", "price": 1 + rnd.randrange(499),
                                     "rating": round(rnd.random() * 40) / 8.0}))
        status, r = http_json("POST", port, "/items/_bulk", "\n".join(lines) + "\n")
        assert status == 200 and not r["errors"], r
    http_json("POST", port, "/items/_refresh")
    http_json("POST", port, "/items/_forcemerge?max_num_segments=1")


def body(window):
    b = {"size": 10, "query": {"match": {"title": "cool toy"}}}
    if window:
        b["rescore"] = {"window_size": window, "sidecar": {
            "model": "bridge-test", "id_field": "item_id", "fields": ["price", "rating"],
            "query_text": "cool toy", "timeout_ms": 1000}}
    return json.dumps(b)


def run(port, window, concurrency, searches):
    payload = body(window)
    lat, took, failed = [], [], [0]
    lock = threading.Lock()
    per_thread = searches // concurrency

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine_l, mine_t = [], []
        for _ in range(per_thread):
            t0 = time.perf_counter()
            status, r = http_json("POST", port, "/items/_search", payload, conn=c)
            dt = (time.perf_counter() - t0) * 1000
            if status != 200 or r["_shards"]["failed"]:
                failed[0] += 1
                continue
            mine_l.append(dt)
            mine_t.append(r["took"])
        c.close()
        with lock:
            lat.extend(mine_l)
            took.extend(mine_t)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return lat, took, failed[0], len(lat) / wall


def bucket_quantile(buckets, p):
    """The p-quantile's bucket upper edge from {upper edge: count}, NaN when empty."""
    total = sum(buckets.values())
    if total <= 0:
        return float("nan")
    seen = 0
    for edge in sorted(buckets):
        seen += buckets[edge]
        if seen >= max(1, p * total):
            return float(edge)
    return float(max(buckets))


def q(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]


def measure(engine, nodes, args):
    """Old and new nodes run side by side; every cell is measured on both, alternating which goes first."""
    rows = []
    for conc in args.concurrency:
        for window in [0] + args.windows:
            acc = {label: dict(lat=[], took=[], failed=0, wall=0.0, calls=0, call_us=0, fallbacks=0, sc_sum=0.0, sc_n=0.0)
                   for label in nodes}
            for rnd in range(args.rounds):
                order = list(nodes) if rnd % 2 == 0 else list(reversed(list(nodes)))
                for label in order:
                    node, sidecar_port = nodes[label]
                    run(node.port, window, conc, max(conc * 5, 20))  # warm-up
                    s0 = http_json("GET", node.port, "/_sidecar/stats")[1]
                    d0 = sidecar_duration(sidecar_port)
                    t0 = time.perf_counter()
                    lat, took, failed, _ = run(node.port, window, conc, args.searches * (2 if conc > 1 else 1) // args.rounds)
                    wall = time.perf_counter() - t0
                    s1 = http_json("GET", node.port, "/_sidecar/stats")[1]
                    d1 = sidecar_duration(sidecar_port)
                    a = acc[label]
                    a["lat"] += lat
                    a["took"] += took
                    a["failed"] += failed
                    a["wall"] += wall
                    a["calls"] += s1["rescored"] - s0["rescored"]
                    a["call_us"] += s1["call_micros_total"] - s0["call_micros_total"]
                    a["fallbacks"] += sum(s1["fallbacks"].values()) - sum(s0["fallbacks"].values())
                    a["sc_sum"] += d1[0] - d0[0]
                    a["sc_n"] += d1[1] - d0[1]
                    if "call_overhead_micros" in s1:  # the new build's histogram: this cell's part of it
                        b0 = s0["call_overhead_micros"]["buckets"]
                        for edge, n in s1["call_overhead_micros"]["buckets"].items():
                            a.setdefault("overhead", {})
                            a["overhead"][int(edge)] = a["overhead"].get(int(edge), 0) + n - b0.get(edge, 0)
            for label, a in acc.items():
                row = dict(engine=engine, build=label, window=window, concurrency=conc, searches=len(a["lat"]),
                           failed=a["failed"], fallbacks=a["fallbacks"], client_p50=q(a["lat"], .5),
                           client_p95=q(a["lat"], .95), client_p99=q(a["lat"], .99), took_p50=q(a["took"], .5),
                           took_p95=q(a["took"], .95), took_p99=q(a["took"], .99), per_s=len(a["lat"]) / a["wall"],
                           plugin_call_ms=a["call_us"] / a["calls"] / 1000 if a["calls"] else float("nan"),
                           sidecar_ms=a["sc_sum"] / a["sc_n"] * 1000 if a["sc_n"] else float("nan"),
                           overhead_p50_ms=bucket_quantile(a.get("overhead", {}), 0.5) / 1000)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old-ref", default="b499ee1")
    ap.add_argument("--engines", default="elasticsearch,opensearch")
    ap.add_argument("--windows", default="10,100,1000")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--docs", type=int, default=2400)
    ap.add_argument("--rounds", type=int, default=2, help="each cell alternates old/new this many times")
    ap.add_argument("--out", default="/tmp/engine_callpath.json")
    ap.add_argument("--sidecar", default=os.path.join(ROOT, "target", "release", "rescore-sidecar"),
                    help="the sidecar binary both builds call")
    args = ap.parse_args()
    args.windows = [int(w) for w in args.windows.split(",")]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    work = tempfile.mkdtemp(prefix="callpath-")
    os.chmod(work, 0o755)
    print(f"# work dir {work}; load average before: {os.getloadavg()}", flush=True)
    zips = build_zips(args.old_ref, work)
    rows = []
    for engine in args.engines.split(","):
        dist = distribution(engine, work)
        nodes, procs = {}, []
        try:
            for label in ("old", "new"):
                sidecar_port = free_port()
                procs.append(start_sidecar(sidecar_port, args.sidecar))
                node = Node(engine, dist, zips[engine][label], os.path.join(work, f"{engine}-{label}"), sidecar_port)
                procs.append(node)
                index(node.port, args.docs)
                nodes[label] = (node, sidecar_port)
            rows += measure(engine, nodes, args)
        finally:
            for p in procs:
                if isinstance(p, Node):
                    p.close()
                else:
                    p.terminate()
                    p.wait()
    print(f"# load average after: {os.getloadavg()}")
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    print("| engine | build | window | conc | searches/s | took p50 / p99 ms | client p50 / p95 / p99 ms | plugin call ms (mean) | sidecar ms (mean) | plugin overhead p50 ms (call minus sidecar took_us, new build's histogram) | fallbacks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| {engine} | {build} | {w} | {concurrency} | {per_s:.0f} | {took_p50:.0f} / {took_p99:.0f} | {client_p50:.1f} / {client_p95:.1f} / "
              "{client_p99:.1f} | {pc} | {sc} | {ov} | {fallbacks} |".format(
                  w=r["window"] or "no rescore", pc="" if r["window"] == 0 else f"{r['plugin_call_ms']:.2f}",
                  sc="" if r["window"] == 0 else f"{r['sidecar_ms']:.2f}",
                  ov="" if r["window"] == 0 or r["overhead_p50_ms"] != r["overhead_p50_ms"] else f"{r['overhead_p50_ms']:.2f}", **r))


if __name__ == "__main__":
    main()
