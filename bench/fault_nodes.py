"""The processes of bench/fault_matrix.py: the sidecar (restarted with each group's config), a
redis-server, one Elasticsearch node with the plugin zip; each stopped by its pid on exit."""

import glob
import os
import shutil
import signal
import subprocess
import time
import urllib.request

from fault_util import REPO, free_port, http_json, http_text, log


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
    """One Elasticsearch or OpenSearch node (`args.engine`) from its integ-test-zip, with the plugin."""

    def __init__(self, procs, work, args, sidecar_port):
        self.procs, self.work = procs, work
        engine = args.engine
        zips = glob.glob(args.plugin_zip)
        if len(zips) != 1:
            raise SystemExit(f"expected one plugin zip matching {args.plugin_zip}, found {zips}")
        zip_path = zips[0]
        version = zip_path.rsplit("-es" if engine == "elasticsearch" else "-os", 1)[1][: -len(".zip")]
        group = "org/elasticsearch" if engine == "elasticsearch" else "org/opensearch"
        dist = args.es_dist or os.path.expanduser(
            f"~/.m2/repository/{group}/distribution/integ-test-zip/{engine}/{version}/{engine}-{version}.zip")
        if not os.path.isfile(dist):
            raise SystemExit(f"{dist} missing (scripts/test-bridge.sh downloads it through Maven)")
        self.dir = os.path.join(work, engine)
        os.makedirs(self.dir)
        subprocess.run(["unzip", "-q", dist, "-d", self.dir], check=True)
        home = [d for d in glob.glob(os.path.join(self.dir, "*")) if os.path.isdir(d)][0]
        shutil.copy(zip_path, os.path.join(self.dir, "plugin.zip"))
        env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
        java_var = "ES_JAVA_HOME" if engine == "elasticsearch" else "OPENSEARCH_JAVA_HOME"
        env[java_var] = args.java_home
        r = subprocess.run([f"{home}/bin/{engine}-plugin", "install", "--batch",
                            f"file://{self.dir}/plugin.zip"], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{engine}-plugin install failed:\n{r.stdout}\n{r.stderr}")
        as_node = []
        if os.getuid() == 0:  # neither engine runs as root: run it as an unprivileged system user
            user = args.node_user
            if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                                "/usr/sbin/nologin", user], check=True)
            subprocess.run(["chown", "-R", f"{user}:{user}", self.dir], check=True)
            as_node = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        self.port = free_port()
        env["ES_JAVA_OPTS" if engine == "elasticsearch" else "OPENSEARCH_JAVA_OPTS"] = f"-Xms{args.heap} -Xmx{args.heap}"
        engine_only = ["-Expack.security.enabled=false"] if engine == "elasticsearch" else []
        self.proc = procs.start(
            as_node + [f"{home}/bin/{engine}", "-Ecluster.name=fault-matrix",
                       "-Enode.name=fault-matrix", "-Ediscovery.type=single-node",
                       "-Enetwork.host=127.0.0.1", f"-Ehttp.port={self.port}",
                       f"-Etransport.port={free_port()}", f"-Epath.data={self.dir}/data",
                       f"-Epath.logs={self.dir}/logs",
                       "-Ecluster.routing.allocation.disk.threshold_enabled=false",
                       f"-Esidecar.url=http://127.0.0.1:{sidecar_port}"]
            + engine_only + [f"-E{s}" for s in args.node_setting],
            os.path.join(self.dir, "node.log"), env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        start = time.time()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{engine} exited; see {self.dir}/node.log")
            try:
                http_json(f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s")
                break
            except OSError:
                if time.time() - start > 180:
                    raise SystemExit(f"{engine} not up within 180 s")
                time.sleep(1)
        log(f"{engine} {version} up at {self.url} after {time.time() - start:.0f} s")

    def stats(self):
        return http_json(f"{self.url}/_sidecar/stats", timeout=5)
