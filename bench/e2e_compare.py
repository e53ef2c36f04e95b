#!/usr/bin/env python3
"""Side-by-side latency of scoring 1,000 hits with a 500-tree x 63-leaf LambdaRank model, one
core, same rows, same run:

  - LightGBM's C API predict (Python `lightgbm` Booster.predict, num_threads=1)
  - lleaves (LLVM-compiled model, n_jobs=1)
  - the rescore-sidecar end to end: HTTP POST /v1/rescore with 1,000 ids, features from the
    item store, JSON both ways, pinned to one core (native engine, then lightgbm3 forced),
    timed from a compiled client (the `rescore_latency` example: ureq + serde_json, one
    keep-alive connection) and from this Python process (http.client + json, which adds its
    own ~1 ms of float parsing per call)

Checks that all of them return the same scores (|diff| <= 1e-9) before timing anything.
Usage (after `cargo build --release -p rescore-sidecar --bins --examples`):
  .tools/bench-venv/bin/python bench/e2e_compare.py [--trees 500 --leaves 63 --repeat 200]
The venv needs: pip install "lightgbm==4.7.0" "lleaves==1.3.0" "llvmlite==0.44.0" numpy
(lleaves 1.3.0 uses llvmlite's legacy pass manager, removed in llvmlite 0.45)
"""
import argparse
import http.client
import json
import os
import pathlib
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import lightgbm as lgb
import lleaves
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_letor(path, n_features=300):
    rows, labels = [], []
    for line in open(path):
        parts = line.split()
        labels.append(float(parts[0]))
        row = np.zeros(n_features)
        for p in parts[1:]:
            i, v = p.split(":")
            if int(i) < n_features:
                row[int(i)] = float(v)
        rows.append(row)
    return np.array(rows), np.array(labels)


def groups(path):
    return [int(x) for x in open(path).read().split()]


def timed(fn, repeat):
    fn()  # warm
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return {
        "median_ms": statistics.median(samples) * 1e3,
        "p10_ms": samples[len(samples) // 10] * 1e3,
        "p90_ms": samples[(len(samples) * 9) // 10] * 1e3,
    }


class Sidecar:
    def __init__(self, binary, models, items, config, core):
        cmd = [str(binary), "--models", str(models), "--items", str(items),
               "--listen", "127.0.0.1:0", "--config", str(config)]
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", str(core)] + cmd
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stderr=self.log, stdout=subprocess.DEVNULL)
        deadline = time.time() + 120
        self.addr = None
        while time.time() < deadline and self.addr is None:
            self.log.seek(0)
            m = re.search(r"listen=([0-9.:]+)", self.log.read())
            if m:
                self.addr = m.group(1)
            time.sleep(0.05)
        host, port = self.addr.rsplit(":", 1)
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection(host, int(port), timeout=5)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def rescore(self, body):
        self.conn.request("POST", "/v1/rescore", body=body, headers={"content-type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        assert resp.status == 200, data[:300]
        return json.loads(data)

    def models(self):
        self.conn.request("GET", "/v1/models")
        return json.loads(self.conn.getresponse().read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", type=int, default=500)
    ap.add_argument("--leaves", type=int, default=63)
    ap.add_argument("--hits", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--letor", default=str(ROOT.parent / "shared/data/letor"))
    ap.add_argument("--binary", default=str(ROOT / "target/release/rescore-sidecar"))
    ap.add_argument("--client", default=str(ROOT / "target/release/examples/rescore_latency"))
    args = ap.parse_args()
    letor = pathlib.Path(args.letor)

    work = pathlib.Path(tempfile.mkdtemp(prefix="rescore-bench-"))
    X_train, y_train = load_letor(letor / "rank.train")
    train = lgb.Dataset(X_train, y_train, group=groups(letor / "rank.train.query"),
                        feature_name=[f"f{i:03d}" for i in range(300)])
    params = dict(objective="lambdarank", num_leaves=args.leaves, learning_rate=0.05,
                  min_data_in_leaf=5, min_sum_hessian_in_leaf=0.0, seed=7,
                  deterministic=True, num_threads=2, verbose=-1)
    booster = lgb.train(params, train, num_boost_round=args.trees)
    model_dir = work / "models" / "bench" / "1"
    model_dir.mkdir(parents=True)
    model_file = model_dir / "model.txt"
    booster.save_model(str(model_file))
    booster = lgb.Booster(model_file=str(model_file))

    X_test, _ = load_letor(letor / "rank.test")
    X = np.array([X_test[i % len(X_test)] for i in range(args.hits)])
    items = work / "items.jsonl"
    with open(items, "w") as f:
        for i, row in enumerate(X):
            f.write(json.dumps({"id": f"d{i}", "features": {f"f{j:03d}": float(v) for j, v in enumerate(row)}}) + "\n")
    body = json.dumps({"model": "bench", "hits": [{"id": f"d{i}", "score": 0.0} for i in range(args.hits)],
                       "timeout_ms": 10000})
    body_file = work / "body.json"
    body_file.write_text(body)
    # The bridge's usual shape: a few doc-value fields inline, the rest from the item store.
    inline_file = work / "body-inline.json"
    inline_file.write_text(json.dumps({
        "model": "bench", "timeout_ms": 10000,
        "hits": [{"id": f"d{i}", "score": 0.0,
                  "features": {"f000": float(X[i, 0]), "f001": float(X[i, 1])}}
                 for i in range(args.hits)]}))

    expected = booster.predict(X, num_threads=1)
    llm = lleaves.Model(model_file=str(model_file))
    llm.compile(cache=str(work / "lleaves.cache"))
    assert np.max(np.abs(llm.predict(X, n_jobs=1) - expected)) <= 1e-9, "lleaves differs"

    results = {}
    os.sched_setaffinity(0, {1})  # clients and in-process engines on core 1, sidecar on core 0
    results["LightGBM C API (lightgbm 4.7.0 predict, 1 thread)"] = timed(
        lambda: booster.predict(X, num_threads=1), args.repeat)
    results["lleaves 1.3.0 (n_jobs=1)"] = timed(lambda: llm.predict(X, n_jobs=1), args.repeat)

    for engine in ["native", "lightgbm3"]:
        config = work / f"{engine}.toml"
        config.write_text(f'[serving]\ndefault_engine = "{engine}"\nscoring_threads = 1\n')
        sc = Sidecar(args.binary, work / "models", items, config, core=0)
        try:
            served = sc.models()["models"][0]["versions"][0]["engine"]
            # Compiled client first (its own process, pinned to core 1; its first request
            # is the sidecar's first), then this one.
            cmd = [args.client, sc.addr, str(body_file), str(args.repeat)]
            if shutil.which("taskset"):
                cmd = ["taskset", "-c", "1"] + cmd
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            diff = float(np.max(np.abs(np.array(r.pop("scores")) - expected)))
            assert diff <= 1e-9, f"sidecar ({engine}, compiled client) differs by {diff}"
            first = {"median_ms": r.pop("first_ms"), "server_took_us_median": r.pop("first_took_us")}
            results[f"sidecar end to end, compiled client, engine {served}"] = r
            results[f"  the same, first request after start (item cache and bins cold), engine {served}"] = first
            cmd[-2] = str(inline_file)
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            diff = float(np.max(np.abs(np.array(r.pop("scores")) - expected)))
            assert diff <= 1e-9, f"sidecar ({engine}, inline features) differs by {diff}"
            r.pop("first_ms"), r.pop("first_took_us")
            results[f"  the same, 2 of the 300 features inline in each hit, engine {served}"] = r
            got = sc.rescore(body)
            assert got["fallback"] is None, got["fallback"]
            diff = float(np.max(np.abs(np.array(got["scores"]) - expected)))
            assert diff <= 1e-9, f"sidecar ({engine}) differs by {diff}"
            took = []

            def call():
                took.append(sc.rescore(body)["took_us"])
            r = timed(call, args.repeat)
            r["server_took_us_median"] = statistics.median(took)
            results[f"sidecar end to end, Python client, engine {served}"] = r
        finally:
            sc.stop()

    base = results["LightGBM C API (lightgbm 4.7.0 predict, 1 thread)"]["median_ms"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"model {args.trees} trees x {args.leaves} leaves (LETOR lambdarank); {args.hits} hits; "
          f"{args.repeat} runs each; all scores equal LightGBM's within 1e-9")
    print(f"| what | median ms | p10 ms | p90 ms | speed-up vs LightGBM C API |")
    print(f"|---|---|---|---|---|")
    for name, r in results.items():
        extra = f" (server took_us median {r['server_took_us_median']:.0f})" if "server_took_us_median" in r else ""
        spread = f"{r['p10_ms']:.2f} | {r['p90_ms']:.2f}" if "p10_ms" in r else "(one call) | "
        print(f"| {name}{extra} | {r['median_ms']:.2f} | {spread} | {base / r['median_ms']:.1f}x |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
