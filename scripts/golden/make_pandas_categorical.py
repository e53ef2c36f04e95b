#!/usr/bin/env python3
"""Generate the pandas-categories parity fixture for the rescore sidecar (docs/parity.md).

A LightGBM model trained from a pandas DataFrame with two ``category`` columns whose
categories are in a non-sorted order (``color``: red, green, blue, amber; ``size``: XL, S, M, L)
next to two numeric columns, and LightGBM's own ``predict(DataFrame)`` on test rows that carry
the categories as strings (also strings the model never saw, and missing values), built with
categories in yet another order so that LightGBM has to remap them to the model's lists.

    OUT/models/pandas_cat/1/model.txt   Booster.save_model (ends with pandas_categorical:[...])
    OUT/cases.json                      {"features", "rows": [{x0, color, x1, size}], "expected"}

``expected[i]`` is ``Booster(model_file=model.txt).predict(test_frame)[i]``.
Deterministic (fixed seeds, deterministic=True, num_threads=1, force_row_wise).

Usage:  python3 scripts/golden/make_pandas_categorical.py [--out DIR]
Needs:  pip install 'lightgbm==4.7.0' pandas numpy
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

COLORS = ["red", "green", "blue", "amber"]  # the model's order: not sorted
SIZES = ["XL", "S", "M", "L"]
COLOR_EFFECT = {"red": 1.5, "green": -0.7, "blue": 0.2, "amber": -2.0}
SIZE_EFFECT = {"XL": 2.0, "S": -1.0, "M": 0.0, "L": 1.0}


def train_frame(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    color = rng.choice(COLORS, size=n)
    size = rng.choice(SIZES, size=n)
    x0 = rng.normal(size=n)
    x1 = rng.uniform(size=n)
    y = (x0 + np.array([COLOR_EFFECT[c] for c in color])
         + x1 * np.array([SIZE_EFFECT[s] for s in size]) + 0.1 * rng.normal(size=n))
    frame = pd.DataFrame({
        "x0": x0,
        "color": pd.Categorical(color, categories=COLORS),
        "x1": x1,
        "size": pd.Categorical(size, categories=SIZES),
    })
    return frame, y


def test_frame(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, list[dict]]:
    colors = COLORS + ["violet", None]  # violet: never seen; None: missing
    sizes = SIZES + ["XXL", None]
    color = [colors[i] for i in rng.integers(0, len(colors), size=n)]
    size = [sizes[i] for i in rng.integers(0, len(sizes), size=n)]
    x0 = rng.normal(size=n)
    x1 = rng.uniform(size=n)
    x0[rng.uniform(size=n) < 0.05] = np.nan
    # Categories in sorted order (another order than the model's): predict(DataFrame)
    # remaps them to the model's lists, unseen ones to missing.
    frame = pd.DataFrame({
        "x0": x0,
        "color": pd.Categorical(color, categories=sorted(c for c in colors if c)),
        "x1": x1,
        "size": pd.Categorical(size, categories=sorted(s for s in sizes if s)),
    })
    rows = [{"x0": None if math.isnan(a) else float(a), "color": c, "x1": float(b), "size": s}
            for a, c, b, s in zip(x0, color, x1, size)]
    return frame, rows


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=here.parent.parent / "tests/fixtures/pandas_categorical")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    model_dir = args.out / "models/pandas_cat/1"
    model_dir.mkdir(parents=True)

    rng = np.random.default_rng(15)
    frame, y = train_frame(rng, 4000)
    params = {
        "objective": "regression", "num_leaves": 15, "learning_rate": 0.1,
        "min_data_in_leaf": 5, "min_data_per_group": 5, "cat_smooth": 1.0,
        "max_cat_to_onehot": 2, "seed": 15, "deterministic": True, "num_threads": 1,
        "force_row_wise": True, "verbose": -1,
    }
    booster = lgb.train(params, lgb.Dataset(frame, label=y), num_boost_round=40)
    model_path = model_dir / "model.txt"
    booster.save_model(str(model_path))

    reloaded = lgb.Booster(model_file=str(model_path))
    test, rows = test_frame(rng, 300)
    expected = reloaded.predict(test)
    text = model_path.read_text()
    assert "pandas_categorical:[[\"red\", \"green\", \"blue\", \"amber\"]" in text, "categories"
    assert "num_cat=" in text and any(
        line.startswith("num_cat=") and line != "num_cat=0" for line in text.splitlines()
    ), "no categorical split"
    (args.out / "cases.json").write_text(json.dumps({
        "features": list(frame.columns),
        "model_categories": {"color": COLORS, "size": SIZES},
        "rows": rows,
        "expected": [float(v) for v in expected],
    }, indent=1) + "\n")
    print(f"wrote {model_path} and {args.out / 'cases.json'} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
