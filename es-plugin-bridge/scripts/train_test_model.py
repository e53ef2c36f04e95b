#!/usr/bin/env python3
"""Trains the bridge's integration-test model reproducibly (LightGBM 4.x, fixed seed, one thread).

Features: `price` and `rating` come from the hit (the plugin reads them from doc values) and `bm25`
is the engine's first-pass score (`hit_score`). The label rewards high ratings and low prices and
barely cares about BM25, so the model's order differs clearly from the engine's baseline order.

Usage (from the repo root):
  .tools/bench-venv/bin/python es-plugin-bridge/scripts/train_test_model.py
writes es-plugin-bridge/testdata/models/bridge-test/1/{model.txt,manifest.toml}.
"""
import os
import sys

import lightgbm as lgb
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "models", "bridge-test", "1")


def main() -> int:
    rng = np.random.default_rng(20261127)
    n = 4000
    price = rng.uniform(1.0, 500.0, n)
    rating = rng.uniform(0.0, 5.0, n)
    bm25 = rng.uniform(0.0, 10.0, n)
    label = 2.0 * rating - 0.01 * price + 0.05 * bm25 + rng.normal(0.0, 0.05, n)
    x = np.column_stack([price, rating, bm25])
    data = lgb.Dataset(x, label=label, feature_name=["price", "rating", "bm25"], free_raw_data=False)
    params = {
        "objective": "regression",
        "num_leaves": 15,
        "learning_rate": 0.2,
        "min_data_in_leaf": 20,
        "seed": 7,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbose": -1,
    }
    booster = lgb.train(params, data, num_boost_round=40)
    os.makedirs(OUT, exist_ok=True)
    booster.save_model(os.path.join(OUT, "model.txt"))
    with open(os.path.join(OUT, "manifest.toml"), "w", encoding="utf-8") as f:
        f.write(
            'description = "es-plugin-bridge integration-test model: rating up, price down, BM25 nearly ignored"\n\n'
            '[features.price]\nsource = "hit"\nkey = "price"\n\n'
            '[features.rating]\nsource = "hit"\nkey = "rating"\n\n'
            '[features.bm25]\nsource = "hit_score"\n'
        )
    print(f"wrote {OUT}/model.txt ({booster.num_trees()} trees)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
