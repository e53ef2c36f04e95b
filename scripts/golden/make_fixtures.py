#!/usr/bin/env python3
"""Generate golden score-parity fixtures for the rescore sidecar.

For every model kind K this writes

    OUT/models/K/1/model.txt   LightGBM's own text format (Booster.save_model)
    OUT/cases/K.json           {"model", "objective", "features", "rows", "expected"}

where ``expected[i] == booster.predict(X)[i]`` (default arguments) for the
float64 matrix X built from ``rows`` with null <=> NaN.  It also writes a
3-class multiclass model that the sidecar must refuse to load, and a README.

Deterministic (fixed seeds, deterministic=True, num_threads=1, force_row_wise)
and idempotent (the output directories are wiped and rewritten).

Usage:  python3 scripts/golden/make_fixtures.py [--data DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import lightgbm as lgb
import numpy as np

SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parent.parent
DEFAULT_DATA = (REPO_ROOT / ".." / "shared" / "data" / "letor").resolve()
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "golden"
DEFAULT_UNSERVABLE = REPO_ROOT / "tests" / "fixtures" / "unservable"

N_FEATURES = 40       # columns kept (most non-zero values in rank.train)
N_TEST_ROWS = 40      # leading rows of rank.test put in every case file
SEED = 42
MODEL_VERSION = "1"

# Parameters shared by every model.  deterministic/num_threads/force_row_wise
# make the output byte-identical across runs on the same LightGBM version.
BASE_PARAMS = {
    "verbose": -1,
    "seed": SEED,
    "deterministic": True,
    "num_threads": 1,
    "force_row_wise": True,
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 5,
    "min_sum_hessian_in_leaf": 1e-3,
}


# --------------------------------------------------------------------------
# data loading


def read_libsvm(path: Path, max_index: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Dense float64 matrix indexed by the libsvm column index (absent = 0.0)."""
    lines = path.read_text().splitlines()
    X = np.zeros((len(lines), max_index + 1), dtype=np.float64)
    y = np.zeros(len(lines), dtype=np.float64)
    for r, line in enumerate(lines):
        parts = line.split()
        y[r] = float(parts[0])
        for tok in parts[1:]:
            idx, val = tok.split(":")
            i = int(idx)
            if i > max_index:
                raise SystemExit(f"{path}: column index {i} > {max_index}")
            X[r, i] = float(val)
    return X, y


def read_groups(path: Path, n_rows: int) -> np.ndarray:
    groups = np.array([int(t) for t in path.read_text().split()], dtype=np.int64)
    if groups.sum() != n_rows:
        raise SystemExit(f"{path}: group sizes sum to {groups.sum()}, expected {n_rows}")
    return groups


class Data:
    def __init__(self, data_dir: Path):
        Xtr_full, self.y_train = read_libsvm(data_dir / "rank.train")
        Xte_full, _ = read_libsvm(data_dir / "rank.test")
        self.g_train = read_groups(data_dir / "rank.train.query", len(self.y_train))
        nnz = (Xtr_full != 0).sum(axis=0)
        # most non-zero values first, ties broken by lower column index
        order = sorted(range(Xtr_full.shape[1]), key=lambda c: (-int(nnz[c]), c))
        self.columns = sorted(order[:N_FEATURES])
        self.names = [f"f{c:03d}" for c in self.columns]
        self.nnz = {c: int(nnz[c]) for c in self.columns}
        self.X_train = Xtr_full[:, self.columns].copy()
        self.X_test = Xte_full[:N_TEST_ROWS, self.columns].copy()


# --------------------------------------------------------------------------
# model inspection


def model_text_facts(text: str) -> dict:
    """Facts read straight from the saved model text."""
    facts: dict = {
        "objective": None,
        "trees": 0,
        "decision_types": Counter(),
        "num_cat": 0,
        "max_bitset_words": 0,
        "is_linear": False,
        "average_output": False,
        "feature_names": None,
    }
    for line in text.splitlines():
        if line.startswith("objective="):
            facts["objective"] = facts["objective"] or line[len("objective="):]
        elif line.startswith("feature_names="):
            facts["feature_names"] = line[len("feature_names="):].split(" ")
        elif line == "average_output":
            facts["average_output"] = True
        elif line.startswith("Tree="):
            facts["trees"] += 1
        elif line.startswith("decision_type="):
            facts["decision_types"].update(int(t) for t in line.split("=", 1)[1].split())
        elif line.startswith("num_cat="):
            facts["num_cat"] += int(line.split("=", 1)[1])
        elif line.startswith("cat_boundaries="):
            b = [int(t) for t in line.split("=", 1)[1].split()]
            if len(b) > 1:
                facts["max_bitset_words"] = max(
                    facts["max_bitset_words"], max(b2 - b1 for b1, b2 in zip(b, b[1:]))
                )
        elif line == "is_linear=1":
            facts["is_linear"] = True
    return facts


def describe_decision_types(counter: Counter) -> str:
    """decision_type bits: 0 categorical, 1 default_left, 2-3 missing type."""
    miss = {0: "None", 1: "Zero", 2: "NaN"}
    parts = []
    for dt in sorted(counter):
        kind = "cat" if dt & 1 else "num"
        dl = "L" if dt & 2 else "R"
        parts.append(f"{dt}({kind},{miss.get((dt >> 2) & 3, '?')},{dl})x{counter[dt]}")
    return " ".join(parts)


def walk_splits(booster: lgb.Booster):
    """Yield (tree_index, depth, node) for every split node of dump_model()."""
    dump = booster.dump_model()
    for t, info in enumerate(dump["tree_info"]):
        stack = [(info["tree_structure"], 0)]
        while stack:
            node, depth = stack.pop()
            if "split_index" in node:
                yield t, depth, node
                stack.append((node["right_child"], depth + 1))
                stack.append((node["left_child"], depth + 1))


def walk_leaves(tree_structure):
    stack = [tree_structure]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            stack.append(node["right_child"])
            stack.append(node["left_child"])
        else:
            yield node


def cat_ids(threshold) -> list[int]:
    return [int(t) for t in str(threshold).split("||")]


# --------------------------------------------------------------------------
# edge rows


def edge_rows(kind: str, booster: lgb.Booster, X_test: np.ndarray, text: str,
              cat_cols: dict[int, dict]) -> list[tuple[str, np.ndarray]]:
    n = X_test.shape[1]
    rows: list[tuple[str, np.ndarray]] = []
    base_i = 0

    def base() -> np.ndarray:
        nonlocal base_i
        r = X_test[base_i % len(X_test)].copy()
        base_i += 1
        return r

    rows.append(("all missing", np.full(n, np.nan)))
    rows.append(("all zero", np.zeros(n)))

    splits = list(walk_splits(booster))
    num_splits = [(t, d, s) for t, d, s in splits if s["decision_type"] == "<="]
    cat_splits = [(t, d, s) for t, d, s in splits if s["decision_type"] == "=="]
    # every threshold written in the text file must match the dump exactly
    text_thresholds = set()
    for line in text.splitlines():
        if line.startswith("threshold="):
            text_thresholds.update(float(v) for v in line.split("=", 1)[1].split())
    # (dump_model() writes +-inf thresholds as +-1e300, the text file as inf)
    for _, _, s in num_splits:
        thr = float(s["threshold"])
        if abs(thr) >= 1e300:
            thr = math.copysign(math.inf, thr)
        assert thr in text_thresholds, s["threshold"]
    # a +-inf threshold (NaN-vs-rest split) cannot be put in a row: skip it
    num_splits = [x for x in num_splits if abs(float(x[2]["threshold"])) < 1e300]

    # numeric thresholds: root splits of the first trees first, then deeper ones
    chosen, seen = [], set()
    for t, d, s in sorted(num_splits, key=lambda x: (x[1] > 0, x[0], x[1])):
        key = (s["split_feature"], s["threshold"])
        if key in seen:
            continue
        seen.add(key)
        chosen.append(s)
        if len(chosen) == 6:
            break
    for s in chosen:
        f, thr = s["split_feature"], float(s["threshold"])
        for label, v in (("==", thr), ("nextafter -inf", np.nextafter(thr, -np.inf)),
                         ("nextafter +inf", np.nextafter(thr, np.inf))):
            r = base()
            r[f] = v
            rows.append((f"feature {f} {label} threshold {thr!r}", r))
    if chosen:
        r = base()
        for s in chosen:
            r[s["split_feature"]] = float(s["threshold"])
        rows.append(("all chosen features at their thresholds", r))

    # categorical thresholds: ids inside the bitset and one just outside
    seen_cat = set()
    for t, d, s in sorted(cat_splits, key=lambda x: (x[1], x[0]))[:4]:
        f, ids = s["split_feature"], cat_ids(s["threshold"])
        picks = [ids[0], ids[-1]] + [i for i in range(max(ids) + 2) if i not in ids][:1]
        for v in picks:
            if (f, v) in seen_cat:
                continue
            seen_cat.add((f, v))
            r = base()
            r[f] = float(v)
            rows.append((f"cat feature {f} = {v} (split ids {s['threshold']})", r))

    # NaN in the features of the first trees' root splits
    roots = []
    for t, d, s in splits:
        if d == 0 and s["split_feature"] not in roots:
            roots.append(s["split_feature"])
        if len(roots) == 4:
            break
    for f in roots:
        r = base()
        r[f] = np.nan
        rows.append((f"NaN in root feature {f}", r))
    r = base()
    r[roots] = np.nan
    rows.append(("NaN in all first root features", r))

    if cat_cols:
        for f in sorted(cat_cols):
            # -0.5 truncates to category 0 (not negative) in LightGBM's int cast
            for v in (99.0, 1000.0, -1.0, -0.5, 3.7, np.nan):
                r = base()
                r[f] = v
                rows.append((f"cat feature {f} = {v}", r))

    if kind == "missing_nan":
        # the training-time NaN pattern applied to test rows
        rng = np.random.default_rng(SEED + 3)
        for i in range(10):
            r = X_test[i].copy()
            r[rng.random(n) < 0.25] = np.nan
            rows.append((f"rank.test row {i} with ~25% NaN", r))

    if kind == "zero_as_missing":
        for f in roots[:3]:
            for v in (0.0, -0.0, 1e-36, -1e-36, 1e-34):
                r = base()
                r[f] = v
                rows.append((f"zero-like {v!r} in root feature {f}", r))

    if kind == "linear_tree":
        # Tree 0 of a linear model is constant (no leaf features); use the
        # first tree whose leaves carry linear terms.
        dump = booster.dump_model()
        for t, info in enumerate(dump["tree_info"]):
            leaves = {lf["leaf_index"]: lf for lf in walk_leaves(info["tree_structure"])}
            if any(lf.get("leaf_features") for lf in leaves.values()):
                break
        else:
            raise AssertionError("linear_tree model without linear leaves")
        leaf_of = booster.predict(X_test[:8], pred_leaf=True)[:, t]
        for i in range(8):
            feats = leaves[int(leaf_of[i])].get("leaf_features", [])
            if not feats:
                continue
            r = X_test[i].copy()
            r[feats[-1]] = np.nan
            rows.append((f"test row {i}: NaN in linear feature {feats[-1]} of its tree-{t} leaf", r))
            r = X_test[i].copy()
            r[feats] = np.nan
            rows.append((f"test row {i}: NaN in all linear features of its tree-{t} leaf", r))
    return rows


# --------------------------------------------------------------------------
# kinds


def categorical_transform(data: Data):
    """Turn 3 of the kept columns into integer category ids.

    Binning: 0.0 -> bin 0; non-zero values -> 1 + quantile bin (edges from
    rank.train).  Bins are then mapped through a seeded permutation onto
    non-contiguous ids, so bitsets are non-trivial and span several 32-bit
    words.  The same mapping is applied to the test rows.
    """
    rng = np.random.default_rng(SEED + 1)
    distinct = [(len(np.unique(data.X_train[:, j])), -j) for j in range(N_FEATURES)]
    picked = sorted(-j for _, j in sorted(distinct, reverse=True)[:3])
    specs = [  # (number of bins, id space)
        (40, 48),   # ids in 0..47   -> bitsets of 2 words
        (26, 70),   # ids in 0..69   -> bitsets of up to 3 words
        (4, 4),     # ids in 0..3    -> one-hot splits (max_cat_to_onehot=4)
    ]
    Xtr, Xte = data.X_train.copy(), data.X_test.copy()
    info = {}
    for j, (bins, space) in zip(picked, specs):
        nz = Xtr[:, j][Xtr[:, j] != 0]
        edges = np.unique(np.quantile(nz, np.linspace(0, 1, bins)[1:-1]))
        ids = np.sort(rng.choice(space, size=len(edges) + 2, replace=False))
        ids = rng.permutation(ids)

        def to_ids(col, edges=edges, ids=ids):
            b = np.where(col == 0, 0, 1 + np.searchsorted(edges, col, side="right"))
            return ids[b].astype(np.float64)

        Xtr[:, j] = to_ids(Xtr[:, j])
        Xte[:, j] = to_ids(Xte[:, j])
        info[j] = {"name": data.names[j], "n_ids": len(edges) + 2,
                   "max_id": int(ids.max())}
    return Xtr, Xte, info


def kinds(data: Data):
    """Yield (kind, params, rounds, X_train, y, groups, X_test, cat_cols)."""
    y = data.y_train
    g = data.g_train
    Xtr, Xte = data.X_train, data.X_test
    y_bin = (y >= 2).astype(np.float64)
    y_frac = y / 4.0

    yield "lambdarank", {"objective": "lambdarank", "num_leaves": 31}, 25, Xtr, y, g, Xte, {}
    yield "rank_xendcg", {"objective": "rank_xendcg"}, 25, Xtr, y, g, Xte, {}
    yield "binary", {"objective": "binary"}, 25, Xtr, y_bin, None, Xte, {}
    yield "regression", {"objective": "regression"}, 25, Xtr, y, None, Xte, {}
    yield "poisson", {"objective": "poisson"}, 25, Xtr, y, None, Xte, {}
    yield "tweedie", {"objective": "tweedie"}, 25, Xtr, y, None, Xte, {}
    yield "cross_entropy", {"objective": "cross_entropy"}, 25, Xtr, y_frac, None, Xte, {}
    yield ("cross_entropy_lambda", {"objective": "cross_entropy_lambda"}, 25,
           Xtr, y_frac, None, Xte, {})

    Xc_tr, Xc_te, cat_info = categorical_transform(data)
    yield ("categorical",
           {"objective": "lambdarank", "num_leaves": 31, "max_cat_to_onehot": 4,
            "cat_smooth": 1.0, "cat_l2": 1.0, "min_data_per_group": 5,
            "max_cat_threshold": 32, "categorical_feature": sorted(cat_info)},
           25, Xc_tr, y, g, Xc_te, cat_info)

    rng = np.random.default_rng(SEED + 2)
    Xm = Xtr.copy()
    Xm[rng.random(Xm.shape) < 0.25] = np.nan
    yield "missing_nan", {"objective": "lambdarank"}, 25, Xm, y, g, Xte, {}

    yield ("zero_as_missing", {"objective": "regression", "zero_as_missing": True},
           25, Xtr, y, None, Xte, {})
    yield ("linear_tree", {"objective": "regression", "linear_tree": True,
                           "linear_lambda": 0.01}, 20, Xtr, y, None, Xte, {})
    yield ("random_forest",
           {"objective": "binary", "boosting": "rf", "bagging_fraction": 0.7,
            "bagging_freq": 1, "feature_fraction": 0.8}, 25, Xtr, y_bin, None, Xte, {})
    yield "huber", {"objective": "huber", "alpha": 0.9}, 25, Xtr, y, None, Xte, {}
    yield ("regression_sqrt", {"objective": "regression", "reg_sqrt": True},
           25, Xtr, y, None, Xte, {})


def expectations(kind: str, facts: dict, cat_info: dict) -> list[str]:
    """Problems: the saved file lacks the behaviour the kind is meant to exercise."""
    p = []
    obj = facts["objective"] or ""
    dts = facts["decision_types"]
    miss_types = {(dt >> 2) & 3 for dt in dts}
    want_obj = {
        "lambdarank": "lambdarank", "rank_xendcg": "rank_xendcg", "binary": "binary",
        "regression": "regression", "poisson": "poisson", "tweedie": "tweedie",
        "cross_entropy": "cross_entropy", "cross_entropy_lambda": "cross_entropy_lambda",
        "categorical": "lambdarank", "missing_nan": "lambdarank",
        "zero_as_missing": "regression", "linear_tree": "regression",
        "random_forest": "binary", "huber": "huber", "regression_sqrt": "regression",
    }[kind]
    if obj.split(" ")[0] != want_obj:
        p.append(f"objective line is {obj!r}, expected {want_obj}")
    if kind == "categorical":
        if facts["num_cat"] == 0:
            p.append("no categorical splits (num_cat == 0)")
        if facts["max_bitset_words"] < 2:
            p.append("no categorical bitset spans more than one 32-bit word")
    elif facts["num_cat"]:
        p.append("unexpected categorical splits")
    if kind == "missing_nan" and 2 not in miss_types:
        p.append("no split with missing type NaN")
    if kind == "zero_as_missing" and 1 not in miss_types:
        p.append("no split with missing type Zero")
    if kind == "linear_tree" and not facts["is_linear"]:
        p.append("is_linear=1 missing")
    if kind != "linear_tree" and facts["is_linear"]:
        p.append("unexpected is_linear=1")
    if (kind == "random_forest") != facts["average_output"]:
        p.append("average_output presence wrong")
    if kind == "regression_sqrt" and "sqrt" not in obj.split(" ")[1:]:
        p.append(f"objective line {obj!r} lacks 'sqrt'")
    if kind == "binary" and obj != "binary sigmoid:1":
        p.append(f"unexpected binary objective line {obj!r}")
    return p


# --------------------------------------------------------------------------
# output


def dump_float(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "null"
    if math.isinf(v):
        raise AssertionError("inf in fixture")
    return json.dumps(v, allow_nan=False)  # repr(): shortest round-trip form


def write_case(path: Path, kind: str, objective: str, features: list[str],
               X: np.ndarray, expected: np.ndarray) -> None:
    lines = ["{",
             f'  "model": {json.dumps(kind)},',
             f'  "objective": {json.dumps(objective)},',
             f'  "features": {json.dumps(features)},',
             '  "rows": [']
    for i, row in enumerate(X):
        sep = "," if i + 1 < len(X) else ""
        lines.append("    [" + ", ".join(dump_float(v) for v in row) + "]" + sep)
    lines.append("  ],")
    lines.append('  "expected": [')
    for i, v in enumerate(expected):
        assert math.isfinite(float(v)), (kind, i, v)
        sep = "," if i + 1 < len(expected) else ""
        lines.append("    " + dump_float(v) + sep)
    lines.append("  ]")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")

    # verify exact round trip
    back = json.loads(path.read_text())
    Xb = np.array([[np.nan if v is None else v for v in r] for r in back["rows"]],
                  dtype=np.float64)
    assert Xb.shape == X.shape
    assert np.array_equal(Xb, X, equal_nan=True)
    assert np.array_equal(np.signbit(Xb), np.signbit(X))  # keeps -0.0
    assert np.array_equal(np.array(back["expected"], dtype=np.float64), expected)


def prepare_dir(path: Path, allowed: set[str]) -> None:
    """Wipe an output directory, refusing if it holds anything we did not write."""
    if path.exists():
        stray = [p.name for p in path.iterdir() if p.name not in allowed]
        if stray:
            raise SystemExit(f"refusing to wipe {path}: unexpected entries {stray}")
        shutil.rmtree(path)
    path.mkdir(parents=True)


def train(params: dict, rounds: int, X, y, groups, names) -> lgb.Booster:
    params = {**BASE_PARAMS, **params}
    cat = params.pop("categorical_feature", "auto")
    ds = lgb.Dataset(X, label=y, group=groups, feature_name=names,
                     categorical_feature=cat, params=params, free_raw_data=False)
    return lgb.train(params, ds, num_boost_round=rounds)


def make_multiclass(data: Data, out: Path) -> tuple[int, dict]:
    y3 = np.minimum(data.y_train, 2.0)
    b = train({"objective": "multiclass", "num_class": 3, "num_leaves": 7}, 4,
              data.X_train, y3, None, data.names)
    path = out / "models" / "multiclass" / MODEL_VERSION / "model.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    b.save_model(str(path))
    facts = model_text_facts(path.read_text())
    assert facts["objective"].startswith("multiclass"), facts["objective"]
    return path.stat().st_size, facts


README = """\
# Golden parity fixtures

Generated by `scripts/golden/make_fixtures.py` with LightGBM {version} (Python
package) from the LETOR sample in `../shared/data/letor` (rank.train for
training, the first {ntest} rows of rank.test for cases). Do not edit by hand;
regenerate with

    python3 scripts/golden/make_fixtures.py [--data DIR] [--out DIR]

The script is deterministic (fixed seeds, `deterministic=True`,
`num_threads=1`, `force_row_wise=True`) and wipes/rewrites this directory.

Features: the {nfeat} libsvm columns with the most non-zero values in
rank.train, sorted by column index, named `f<idx>` (3-digit original index);
the names are in each model's `feature_names=` line.

Layout, per kind K:

- `models/K/1/model.txt`: `Booster.save_model` output, LightGBM text format.
- `cases/K.json`: `{{"model": K, "objective": <the model file's objective= value>,
  "features": [feature names in model order], "rows": [[number|null, ...], ...],
  "expected": [number, ...]}}`. `expected[i]` is `booster.predict(X)[i]` with
  default arguments (transformed output, all iterations) on the float64 matrix
  X of `rows` with null = NaN. Floats are written in shortest round-trip form;
  parse them as f64 and compare within 1e-9 (they are bit-exact LightGBM).

Rows: {ntest} rank.test rows, then edge rows: all missing, all zero, features
set exactly to split thresholds from the model and to nextafter(thr, +-inf),
categorical split ids, NaN in the first trees' root-split features; plus
kind-specific rows listed below.

| kind | covers |
|---|---|
| lambdarank | objective lambdarank (query groups), identity output |
| rank_xendcg | objective rank_xendcg, identity output |
| binary | label>=2; `binary sigmoid:1`, sigmoid output |
| regression | l2 regression, identity output |
| poisson | exp output |
| tweedie | exp output |
| cross_entropy | label/4 target, sigmoid output |
| cross_entropy_lambda | label/4 target, log1p(exp(x)) output |
| categorical | lambdarank; 3 columns turned into integer category ids (one with 4 ids -> one-hot splits, two with ids up to ~70 -> bitsets over several 32-bit words, `num_cat`>0); extra rows: unseen ids 99/1000, -1, -0.5 (truncates to 0), 3.7, NaN |
| missing_nan | lambdarank trained with 25% NaN; splits with missing type NaN (both default directions) and `inf` thresholds (NaN-vs-rest splits); extra rows: 10 test rows with ~25% NaN |
| zero_as_missing | regression, `zero_as_missing=true`; splits with missing type Zero; extra rows: 0.0, -0.0, +-1e-36, 1e-34 |
| linear_tree | regression, `linear_tree=true` (`is_linear=1`; tree 0 is constant with empty `leaf_features=` lines); extra rows: NaN in linear-leaf features |
| random_forest | `boosting=rf` (bagging 0.7, feature_fraction 0.8), binary; `average_output` |
| huber | huber loss, identity output |
| regression_sqrt | regression with `reg_sqrt=true` (`objective=regression sqrt`): output is sign(x)*x^2 |

Parser notes: thresholds are printed with 17 significant digits and may be
`inf` (missing_nan); `1.0000000180025095e-35` thresholds (zero vs positive)
are common; files end with a `pandas_categorical:null` line.

`../unservable/models/multiclass/1/model.txt` is a 3-class multiclass model the
sidecar must refuse to load (a rescorer needs one score per hit).

Model summary at generation time:

{table}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--unservable-out", type=Path, default=DEFAULT_UNSERVABLE,
                    help="root of the load-refusal fixtures (default tests/fixtures/unservable)")
    args = ap.parse_args()
    out: Path = args.out.resolve()

    data = Data(args.data.resolve())
    prepare_dir(out, {"models", "cases", "README.md"})
    (out / "models").mkdir()
    (out / "cases").mkdir()

    table = [("kind", "trees", "rows", "model bytes", "case bytes", "objective", "special")]
    problems: dict[str, list[str]] = {}
    total = 0
    for kind, params, rounds, Xtr, y, groups, Xte, cat_info in kinds(data):
        booster = train(params, rounds, Xtr, y, groups, data.names)
        mpath = out / "models" / kind / MODEL_VERSION / "model.txt"
        mpath.parent.mkdir(parents=True)
        booster.save_model(str(mpath))
        text = mpath.read_text()
        facts = model_text_facts(text)
        assert facts["feature_names"] == data.names, (kind, facts["feature_names"])
        assert booster.feature_name() == data.names

        rows = [(f"rank.test row {i}", Xte[i].copy()) for i in range(len(Xte))]
        rows += edge_rows(kind, booster, Xte, text, cat_info)
        X = np.vstack([r for _, r in rows]).astype(np.float64)
        expected = np.asarray(booster.predict(X), dtype=np.float64)
        assert expected.shape == (len(X),)
        # the file the sidecar loads must give the very same numbers
        reloaded = lgb.Booster(model_file=str(mpath))
        assert np.array_equal(reloaded.predict(X), expected), kind

        cpath = out / "cases" / f"{kind}.json"
        write_case(cpath, kind, facts["objective"], booster.feature_name(), X, expected)

        special = []
        dts = describe_decision_types(facts["decision_types"])
        special.append(f"decision_type {dts}")
        if facts["num_cat"]:
            special.append(f"num_cat={facts['num_cat']} max_bitset_words={facts['max_bitset_words']}")
        if cat_info:
            special.append("cat cols " + ", ".join(
                f"{v['name']}({v['n_ids']} ids, max {v['max_id']})" for v in cat_info.values()))
        if facts["is_linear"]:
            special.append("is_linear=1")
        if facts["average_output"]:
            special.append("average_output")
        problems[kind] = expectations(kind, facts, cat_info)
        msize, csize = mpath.stat().st_size, cpath.stat().st_size
        total += msize + csize
        table.append((kind, str(facts["trees"]), str(len(X)), str(msize), str(csize),
                      facts["objective"], "; ".join(special)))

    # load-refusal fixture
    un = args.unservable_out.resolve()
    prepare_dir(un / "models" / "multiclass", {MODEL_VERSION})
    msize, mfacts = make_multiclass(data, un)
    total += msize
    table.append(("(unservable) multiclass", str(mfacts["trees"]), "-", str(msize), "-",
                  mfacts["objective"], "3 classes"))

    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]

    def fmt(r):
        return "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]

    md = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    md += ["| " + " | ".join(r) + " |" for r in table[1:]]
    (out / "README.md").write_text(README.format(
        version=lgb.__version__, ntest=N_TEST_ROWS, nfeat=N_FEATURES, table="\n".join(md)))
    total += (out / "README.md").stat().st_size

    print(f"lightgbm {lgb.__version__}; features: {' '.join(data.names)}")
    for r in table:
        print(fmt(r))
    print(f"total fixture bytes: {total}")
    bad = {k: v for k, v in problems.items() if v}
    for k, v in bad.items():
        print(f"WARNING {k}: {'; '.join(v)}", file=sys.stderr)
    if total > 3 * 1024 * 1024:
        print(f"WARNING total size {total} exceeds 3 MiB", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
