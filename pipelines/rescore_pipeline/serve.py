"""serve-check: the packaged model served by a running sidecar, with the pipelines'
item_store_snapshot as its item store, must give the scores the pipelines' own features give
(candidate_features of the same day) for the first held-out queries."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import model


def check(url: str, model_dir: Path, candidate_features: Path, queries: Path, n: int,
          tolerance: float = 1e-9) -> int:
    cf = pq.read_table(candidate_features)
    cf = cf.filter(pc.equal(cf["split"], "holdout"))
    qmap = {q["query_id"]: q for q in pq.read_table(queries).to_pylist()}
    qids = sorted(set(cf["query_id"].to_pylist()), key=lambda q: int(q[1:]))[:n]
    worst, rows, versions = 0.0, 0, set()
    for qid in qids:
        t = cf.filter(pc.equal(cf["query_id"], qid)).sort_by("bm25_rank")
        local = model.predict(model_dir / "model.txt", t)
        q, first = qmap[qid], t.slice(0, 1).to_pylist()[0]
        feats = {"intent_category": first["intent_category"], "intent_conf": first["intent_conf"],
                 "user_budget": q["user_budget"], "user_brand": q["user_brand"]}
        body = {"model": model_dir.parent.name,
                "query": {"text": q["query_text"], "user_id": q["user_id"],
                          "features": {k: v for k, v in feats.items() if v is not None}},
                "hits": [{"id": i, "score": s} for i, s in
                         zip(t["item_id"].to_pylist(), t["bm25"].to_pylist())],
                "timeout_ms": 2000}
        req = urllib.request.Request(f"{url}/v1/rescore", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
        resp = json.load(urllib.request.urlopen(req, timeout=10))
        if resp.get("fallback") is not None:
            print(f"serve-check FAILED: {qid} answered with fallback {resp['fallback']}", file=sys.stderr)
            return 1
        versions.add(resp["version"])
        worst = max(worst, float(np.max(np.abs(np.array(resp["scores"]) - local))))
        rows += len(local)
    ok = worst <= tolerance and versions == {model_dir.name}
    print(f"serve-check: {len(qids)} held-out queries, {rows} hits, served version(s) "
          f"{sorted(versions)}, max |sidecar - pipeline features| {worst:.3e}: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1
