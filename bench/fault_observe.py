"""Load and observation for bench/fault_matrix.py: client threads searching with the rescore
clause, the plugin's /_sidecar/stats polled over time, counter deltas."""

import http.client
import json
import random
import threading
import time

from fault_util import INDEX, TIMEOUT_MS, WINDOW


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
              'result="ok"', "rescore_feature_log_records_total", "rescore_feature_log_bytes_total",
              "rescore_feature_missing_total")  # the demo's queries leave some features out


def deltas(before, after):
    """Counters that grew from `before` to `after`."""
    if before is None or after is None:
        return {}
    out = {}
    for k, v in after.items():
        d = v - before.get(k, 0)
        if d <= 0 or any(e in k for e in EVERY_CALL):
            continue
        out[k] = out.get(k, 0) + d
    return out
