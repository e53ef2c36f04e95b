"""LETOR parity: NDCG@5 on rank.test of a model trained by this project's trainers on
rank.train versus Python LightGBM 4.7.0 trained directly (`lightgbm.train`) with the same
parameters, evaluated by LightGBM's own ndcg@5 metric."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import model


def ndcg_at(labels: np.ndarray, sizes: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean NDCG@k with LightGBM's conventions (gain 2^label - 1, a group without any relevant
    item counts as 1), so the figure is comparable with LightGBM's metric."""
    out, start = [], 0
    for size in sizes:
        lab, sc = labels[start:start + size], scores[start:start + size]
        ideal = model.dcg(np.sort(lab)[::-1], k)
        out.append(1.0 if ideal <= 0 else model.dcg(lab[np.argsort(-sc, kind="stable")], k) / ideal)
        start += size
    return float(np.mean(out))


def parity(data: Path, params_path: Path, tolerance: float, rust_train: Path | None = None) -> int:
    import lightgbm as lgb

    train, test = data / "rank.train", data / "rank.test"
    sizes = np.loadtxt(str(test) + ".query", dtype=np.int64)
    labels = np.array([float(line.split(maxsplit=1)[0]) for line in test.read_text().splitlines()])
    tcfg, params = model.load_params(params_path)
    rounds = int(tcfg.get("num_boost_round", 100))

    # Reference: Python LightGBM, straight from its documented API, with its own metric.
    record: dict = {}
    ref_train = lgb.Dataset(str(train))
    lgb.train({**params, "metric": "ndcg", "eval_at": [5]}, ref_train, num_boost_round=rounds,
              valid_sets=[lgb.Dataset(str(test), reference=ref_train)], valid_names=["test"],
              callbacks=[lgb.record_evaluation(record)])
    reference = record["test"]["ndcg@5"][-1]

    tmp = Path(tempfile.mkdtemp())
    trainers = [("rescore-pipeline train", tmp / "pipeline.txt")]
    model.train_libsvm(train, params_path, trainers[0][1])
    if rust_train is not None:
        trainers.append(("rescore-train (lightgbm3)", tmp / "rust.txt"))
        subprocess.run([str(rust_train), "--data", str(train), "--params", str(params_path),
                        "--out", str(trainers[1][1])], check=True, stdout=subprocess.DEVNULL)
    print(f"LETOR {data}: {len(sizes)} test queries, {rounds} rounds, params {params_path}")
    print(f"  {'Python LightGBM ' + lgb.__version__ + ' (its ndcg@5 metric)':<46} NDCG@5 {reference:.4f}")
    failed = False
    for name, path in trainers:
        scores = lgb.Booster(model_file=str(path)).predict(str(test), num_threads=1)
        ours = ndcg_at(labels, sizes, scores, 5)
        ok = abs(ours - reference) <= tolerance
        failed |= not ok
        print(f"  {name:<46} NDCG@5 {ours:.4f}  difference {ours - reference:+.4f} "
              f"({'ok' if ok else 'FAILED'}, tolerance {tolerance})")
    if failed:
        print("LETOR parity FAILED", file=sys.stderr)
        return 1
    return 0
