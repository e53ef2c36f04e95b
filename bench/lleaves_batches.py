#!/usr/bin/env python3
"""lleaves on the criterion bench's models and rows (crates/rescore-model/benches/evaluators.rs):
the same LambdaRank models (target/tmp/bench-lambdarank-<trees>x<leaves>.txt, written by the
criterion bench) and the same rows (../shared/data/letor/rank.test cycled), batches of 1, 10,
100 and 1,000 rows, one thread. Checks lleaves against LightGBM (1e-9) first, then prints the
median of N timed calls per batch. Run the criterion bench once before (it trains the models).
  .tools/bench-venv/bin/python bench/lleaves_batches.py [--repeat 200]
"""
import argparse
import pathlib
import statistics
import tempfile
import time

import lightgbm as lgb
import lleaves
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHAPES = [(100, 31), (500, 63), (1000, 127)]
BATCHES = [1, 10, 100, 1000]


def rows(n, num_features):
    parsed = []
    for line in open(ROOT.parent / "shared/data/letor/rank.test"):
        row = np.zeros(num_features)
        for pair in line.split()[1:]:
            i, v = pair.split(":")
            if int(i) < num_features:
                row[int(i)] = float(v)
        parsed.append(row)
    return np.array([parsed[i % len(parsed)] for i in range(n)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    print("| model | rows | LightGBM (Python, 1 thread) | lleaves (n_jobs=1) |")
    print("|---|---|---|---|")
    for trees, leaves in SHAPES:
        path = ROOT / f"target/tmp/bench-lambdarank-{trees}x{leaves}.txt"
        booster = lgb.Booster(model_file=str(path))
        with tempfile.TemporaryDirectory() as tmp:
            # lleaves reads the `pandas_categorical` line that Python's save_model appends
            # (the C API's save, used by the criterion bench, does not): same trees.
            resaved = pathlib.Path(tmp) / "model.txt"
            booster.save_model(str(resaved))
            model = lleaves.Model(model_file=str(resaved))
            model.compile(cache=str(pathlib.Path(tmp) / "model.o"))
            X = rows(1000, booster.num_feature())
            assert np.max(np.abs(model.predict(X, n_jobs=1) - booster.predict(X, num_threads=1))) <= 1e-9
            for batch in BATCHES:
                x = np.ascontiguousarray(X[:batch])
                out = {}
                for name, fn in [("lgb", lambda: booster.predict(x, num_threads=1)),
                                 ("lleaves", lambda: model.predict(x, n_jobs=1))]:
                    fn()
                    samples = []
                    for _ in range(args.repeat if batch < 1000 else max(20, args.repeat // 5)):
                        t = time.perf_counter()
                        fn()
                        samples.append(time.perf_counter() - t)
                    out[name] = statistics.median(samples)
                fmt = lambda s: f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"
                print(f"| {trees} x {leaves} | {batch} | {fmt(out['lgb'])} | {fmt(out['lleaves'])} |", flush=True)


if __name__ == "__main__":
    main()
