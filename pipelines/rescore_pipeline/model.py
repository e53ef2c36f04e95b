"""train, evaluate, package and gate (docs/pipelines.md)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .features import FEATURES, MANIFEST

KS = (1, 5, 10)


def load_params(path: Path) -> tuple[dict, dict]:
    cfg = tomllib.loads(Path(path).read_text())
    return cfg.get("train", {}), dict(cfg.get("lightgbm", {}))


def matrix(table: pa.Table) -> np.ndarray:
    return np.column_stack([
        table[f].cast(pa.float64()).to_numpy(zero_copy_only=False) for f in FEATURES
    ])


def groups(keys: list) -> np.ndarray:
    """Sizes of runs of equal consecutive keys."""
    sizes, prev = [], object()
    for k in keys:
        if k != prev:
            sizes.append(0)
            prev = k
        sizes[-1] += 1
    return np.array(sizes, dtype=np.int64)


def grouped(table: pa.Table, group_col: str, order_col: str) -> pa.Table:
    return table.sort_by([(group_col, "ascending"), (order_col, "ascending")])


def train_table(table: pa.Table, params_path: Path, out: Path, label: str = "label",
                group_col: str = "request_id", order_col: str = "position"):
    """Trains LambdaRank on `table` (one row per judged item), writes model.txt."""
    import lightgbm as lgb

    tcfg, params = load_params(params_path)
    table = grouped(table, group_col, order_col)
    kwargs = {}
    if tcfg.get("position_bias"):
        # LightGBM positions are 0-based ids of a position; positions here start at 1.
        kwargs["position"] = table["position"].to_numpy() - 1
    ds = lgb.Dataset(matrix(table), label=table[label].to_numpy().astype(float),
                     group=groups(table[group_col].to_pylist()), feature_name=FEATURES,
                     free_raw_data=False, **kwargs)
    booster = lgb.train(params, ds, num_boost_round=int(tcfg.get("num_boost_round", 100)))
    out.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out))
    return booster


def train_libsvm(data: Path, params_path: Path, out: Path):
    """Trains on a libsvm file with its `.query` file of group sizes (LETOR layout)."""
    import lightgbm as lgb

    tcfg, params = load_params(params_path)
    ds = lgb.Dataset(str(data), params={"max_bin": params.get("max_bin", 255)})
    booster = lgb.train(params, ds, num_boost_round=int(tcfg.get("num_boost_round", 100)))
    out.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out))
    return booster


# ---------------------------------------------------------------------------------------------
# Metrics


def dcg(labels: np.ndarray, k: int) -> float:
    top = labels[:k]
    return float(np.sum((2.0 ** top - 1.0) / np.log2(np.arange(2, len(top) + 2))))


def query_metrics(labels: np.ndarray, scores: np.ndarray) -> dict | None:
    """NDCG@1/5/10 and reciprocal rank of one group; ties keep the given (original) order.
    None when no item is relevant (no ranking can be told apart)."""
    ideal = np.sort(labels)[::-1]
    if ideal[0] <= 0:
        return None
    ranked = labels[np.argsort(-scores, kind="stable")]
    out = {f"ndcg@{k}": dcg(ranked, k) / dcg(ideal, k) for k in KS}
    out["mrr"] = 1.0 / (1 + int(np.argmax(ranked > 0)))
    return out


def mean_metrics(labels: np.ndarray, sizes: np.ndarray, scores: np.ndarray, segments=None) -> dict:
    per, seg_of, start = [], [], 0
    for n, size in enumerate(sizes):
        m = query_metrics(labels[start:start + size], scores[start:start + size])
        if m is not None:
            per.append(m)
            seg_of.append(segments[n] if segments is not None else None)
        start += size

    def mean(rows):
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}

    out = {"groups": len(per), "excluded": int(len(sizes) - len(per)), **mean(per)}
    if segments is not None:
        out["segments"] = {s: {"groups": sum(1 for x in seg_of if x == s),
                               **mean([r for r, x in zip(per, seg_of) if x == s])}
                           for s in sorted(set(seg_of))}
    return out


def predict(model_path: Path | None, table: pa.Table) -> np.ndarray:
    import lightgbm as lgb

    return lgb.Booster(model_file=str(model_path)).predict(matrix(table), num_threads=1)


def segment(text: str) -> str:
    n = len(text.split())
    return "1 token" if n == 1 else "2 tokens" if n == 2 else "3+ tokens"


def evaluate(training_set: Path, candidate: Path, live: Path | None) -> dict:
    """Candidate, live and first-pass (BM25) order on the held-out groups of the click
    judgments (training_set rows with split = holdout), overall and by query length."""
    t = pq.read_table(training_set)
    t = grouped(t.filter(pc.equal(t["split"], "holdout")), "request_id", "position")
    sizes = groups(t["request_id"].to_pylist())
    labels = t["label"].to_numpy().astype(float)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    segs = [segment(s) for s in np.array(t["query_text"].to_pylist(), dtype=object)[starts]]
    out = {
        "data": "training_set split=holdout (click judgments)",
        "first_pass": mean_metrics(labels, sizes, t["bm25"].to_numpy(), segs),
        "candidate": mean_metrics(labels, sizes, predict(candidate, t), segs),
    }
    if live is not None:
        out["live"] = mean_metrics(labels, sizes, predict(live, t), segs)
    return out


def oracle_table(candidate_features: Path, world: Path) -> pa.Table:
    """Held-out queries' full candidate lists (as of the latest day) with the world's hidden
    grades: the loop's ground truth. Only the loop reads oracle files."""
    import pyarrow.csv as pacsv

    c = pq.read_table(candidate_features)
    c = c.filter(pc.equal(c["split"], "holdout"))
    g = pacsv.read_csv(world / "oracle_grades.csv")
    return grouped(c.join(g, ["query_id", "item_id"]), "query_id", "bm25_rank")


def oracle_ndcg(table: pa.Table, model: Path | None) -> dict:
    sizes = groups(table["query_id"].to_pylist())
    labels = table["grade"].to_numpy().astype(float)
    scores = -table["bm25_rank"].to_numpy().astype(float) if model is None else predict(model, table)
    return mean_metrics(labels, sizes, scores)


# ---------------------------------------------------------------------------------------------
# Gate and package


def gate(evaluation: dict, gate_path: Path) -> tuple[bool, str]:
    cfg = tomllib.loads(Path(gate_path).read_text())
    metric, margin = cfg["metric"], float(cfg["margin"])
    base_name = "live" if "live" in evaluation else "first_pass"
    cand, base = evaluation["candidate"][metric], evaluation[base_name][metric]
    ok = cand >= base - margin
    verdict = "PROMOTE" if ok else "REFUSE"
    reason = (f"{verdict}: candidate {metric} {cand:.4f} vs {base_name} {base:.4f} "
              f"(difference {cand - base:+.4f}, allowed margin -{margin})")
    return ok, reason


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def next_version(models_dir: Path, name: str) -> int:
    d = models_dir / name
    versions = [int(p.name) for p in d.iterdir() if p.name.isdigit()] if d.exists() else []
    return max(versions, default=0) + 1


def package(model: Path, name: str, models_dir: Path, evaluation: dict, data_files: list[Path],
            training_set: Path, sidecar: Path | None) -> Path:
    """models/<name>/<next version>/: model.txt, manifest.toml, metrics.json and, with the
    sidecar binary, reference.json (`rescore-sidecar reference` over the training rows)."""
    version = next_version(models_dir, name)
    out = models_dir / name / str(version)
    out.mkdir(parents=True)
    (out / "model.txt").write_bytes(Path(model).read_bytes())
    (out / "manifest.toml").write_text(MANIFEST)
    metrics = {
        "model": name, "version": version, "evaluation": evaluation,
        "data": {str(p): {"sha256_16": sha(p), "rows": pq.read_metadata(p).num_rows}
                 for p in data_files},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if sidecar is not None:
        t = pq.read_table(training_set)
        t = t.filter(pc.equal(t["split"], "train"))
        csv_path = out.parent / f".reference-{version}.csv"
        with open(csv_path, "w") as f:
            f.write(",".join(["label"] + FEATURES) + "\n")
            cols = [t["label"].to_pylist()] + [t[c].to_pylist() for c in FEATURES]
            for row in zip(*cols):
                f.write(",".join("" if v is None else repr(v) for v in row) + "\n")
        subprocess.run([str(sidecar), "reference", "--model", str(out), "--data", str(csv_path),
                        "--format", "csv", "--out", str(out / "reference.json")], check=True,
                       stdout=subprocess.DEVNULL)
        csv_path.unlink()
    return out
