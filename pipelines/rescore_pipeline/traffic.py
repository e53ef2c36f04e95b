"""Simulated search traffic over the demo world (`rescore-demo export-world`), written as raw
event logs in Parquet: impressions, clicks, carts (add-to-cart), purchases, daily item snapshots,
plus the search service's candidate lists and query context. The user model is position-based
(docs/pipelines.md): a user examines position k with probability (1/k)^ETA, clicks an examined
item with a probability set by its hidden grade, adds some clicked items to the cart and buys some
of those."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .features import FEATURES

PAGE = 20  # positions shown per request
ETA = 0.8  # examination probability at position k: (1/k)^ETA
P_CLICK = np.array([0.03, 0.15, 0.35, 0.60, 0.85])  # by hidden grade 0..4, if examined
P_CART = np.array([0.02, 0.08, 0.20, 0.35, 0.50])  # if clicked
P_BUY = np.array([0.10, 0.20, 0.40, 0.55, 0.70])  # if added to the cart
DAY0 = (dt.date(2026, 11, 1) - dt.date(1970, 1, 1)).days  # first simulated day (days since epoch)

LOGS = ("impressions", "clicks", "carts", "purchases")


def _read_csv(path: Path, types: dict | None = None) -> pa.Table:
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types or {}))


def write_static(world: Path, raw: Path) -> None:
    """The search service's side of the world: candidate lists (BM25 order) and query context."""
    raw.mkdir(parents=True, exist_ok=True)
    pq.write_table(_read_csv(world / "candidates.csv"), raw / "candidates.parquet")
    q = _read_csv(world / "queries.csv", {"user_budget": pa.float64(), "user_brand": pa.int64()})
    q = q.drop_columns(["kind", "held_out"])
    pq.write_table(q, raw / "queries.parquet")


def _append(raw: Path, name: str, table: pa.Table) -> None:
    path = raw / f"{name}.parquet"
    if path.exists():
        table = pa.concat_tables([pq.read_table(path), table.cast(pq.read_schema(path))])
    pq.write_table(table, path)


def served_order(world_q: pa.Table, cands: pa.Table, model, features_path: Path | None):
    """Per query (in world order) the candidate item ids in the served order."""
    qids = world_q["query_id"].to_pylist()
    qpos = {q: n for n, q in enumerate(qids)}
    n_cand = len(cands) // len(qids)
    if model is None:
        ordered = cands.sort_by([("query_id", "ascending"), ("bm25_rank", "ascending")])
        key = ordered
    else:
        feats = pq.read_table(features_path)
        x = np.column_stack([feats[f].to_numpy(zero_copy_only=False).astype(float) for f in FEATURES])
        score = model.predict(x, num_threads=1)
        feats = feats.append_column("score", pa.array(score))
        key = feats.sort_by([("query_id", "ascending"), ("score", "descending"), ("bm25_rank", "ascending")])
    items = np.array(key["item_id"].to_pylist(), dtype=object).reshape(-1, n_cand)
    order_q = key["query_id"].to_pylist()[::n_cand]
    out = np.empty((len(qids), n_cand), dtype=object)
    for row, q in zip(items, order_q):
        out[qpos[q]] = row
    return out


def simulate(world: Path, raw: Path, round_no: int, first_day: int, days: int, sessions: int,
             seed: int, model=None, model_name: str = "bm25", model_version: str = "0",
             features_path: Path | None = None) -> dict:
    """Appends one round of traffic (days first_day .. first_day + days - 1, relative to DAY0)
    to the raw logs, and item snapshots for those days plus the next one."""
    rng = np.random.default_rng([seed, round_no])
    if not (raw / "candidates.parquet").exists():
        write_static(world, raw)
    world_q = _read_csv(world / "queries.csv", {"user_budget": pa.float64(), "user_brand": pa.int64()})
    cands = pq.read_table(raw / "candidates.parquet")
    grades = _read_csv(world / "oracle_grades.csv")
    grade_of = dict(zip(zip(grades["query_id"].to_pylist(), grades["item_id"].to_pylist()),
                        grades["grade"].to_pylist()))
    bm25_of = dict(zip(zip(cands["query_id"].to_pylist(), cands["item_id"].to_pylist()),
                       cands["bm25"].to_pylist()))
    order = served_order(world_q, cands, model, features_path)

    nq = len(world_q)
    req_q = np.repeat(np.arange(nq), sessions)
    n_req = len(req_q)
    req_day = DAY0 + first_day + rng.integers(0, days, n_req)
    req_time = req_day * 86400 + rng.integers(0, 86400 - 3600, n_req)
    perm = np.argsort(req_time, kind="stable")
    req_q, req_day, req_time = req_q[perm], req_day[perm], req_time[perm]

    qcol = {c: world_q[c].to_pylist() for c in
            ("query_id", "query_text", "user_id", "classifier_category", "user_budget", "user_brand")}
    pos = np.arange(1, PAGE + 1)
    p_exam = (1.0 / pos) ** ETA
    rows = {k: [] for k in ("request_id", "query_id", "query_text", "user_id", "classifier_category",
                            "user_budget", "user_brand", "position", "item_id", "bm25",
                            "served_model", "served_version", "event_time")}
    events = {k: {"request_id": [], "item_id": [], "event_time": []} for k in LOGS[1:]}
    for n in range(n_req):
        qi, t = req_q[n], int(req_time[n])
        rid = f"r{round_no}-{n:06d}"
        qid = qcol["query_id"][qi]
        shown = order[qi][:PAGE]
        g = np.array([grade_of[(qid, it)] for it in shown])
        u = rng.random((4, PAGE))
        clicked = (u[0] < p_exam) & (u[1] < P_CLICK[g])
        carted = clicked & (u[2] < P_CART[g])
        bought = carted & (u[3] < P_BUY[g])
        for k, it in enumerate(shown):
            rows["request_id"].append(rid)
            rows["query_id"].append(qid)
            for c in ("query_text", "user_id", "classifier_category", "user_budget", "user_brand"):
                rows[c].append(qcol[c][qi])
            rows["position"].append(k + 1)
            rows["item_id"].append(it)
            rows["bm25"].append(bm25_of[(qid, it)])
            rows["served_model"].append(model_name)
            rows["served_version"].append(model_version)
            rows["event_time"].append(t)
            for name, hit, delay in (("clicks", clicked, 5), ("carts", carted, 60), ("purchases", bought, 600)):
                if hit[k]:
                    events[name]["request_id"].append(rid)
                    events[name]["item_id"].append(it)
                    events[name]["event_time"].append(t + delay + 10 * k)
    imp = pa.table({
        **{k: rows[k] for k in ("request_id", "query_id", "query_text", "user_id")},
        "classifier_category": pa.array(rows["classifier_category"], pa.int64()),
        "user_budget": pa.array(rows["user_budget"], pa.float64()),
        "user_brand": pa.array(rows["user_brand"], pa.int64()),
        "position": pa.array(rows["position"], pa.int64()),
        "item_id": rows["item_id"],
        "bm25": pa.array(rows["bm25"], pa.float64()),
        "served_model": rows["served_model"],
        "served_version": rows["served_version"],
        "event_time": pa.array(rows["event_time"], pa.int64()),
    })
    _append(raw, "impressions", imp)
    for name in LOGS[1:]:
        e = events[name]
        _append(raw, name, pa.table({"request_id": pa.array(e["request_id"], pa.string()),
                                     "item_id": pa.array(e["item_id"], pa.string()),
                                     "event_time": pa.array(e["event_time"], pa.int64())}))
    write_snapshots(world, raw, first_day, days)
    return {"requests": n_req, "impressions": len(imp),
            **{name: len(events[name]["request_id"]) for name in LOGS[1:]}}


def write_snapshots(world: Path, raw: Path, first_day: int, days: int) -> None:
    """Daily item snapshots for days first_day .. first_day + days (the day after the round is
    "today" for the next pipeline run): age grows by one a day; popularity (views) grows by one
    per four impressions on earlier days."""
    items = _read_csv(world / "items.csv")
    imp = pq.read_table(raw / "impressions.parquet", columns=["item_id", "event_time"])
    imp_day = pc.floor(pc.divide(pc.cast(imp["event_time"], pa.float64()), 86400.0)).to_numpy().astype(np.int64)
    imp_items = np.array(imp["item_id"].to_pylist(), dtype=object)
    ids = items["item_id"].to_pylist()
    index = {it: n for n, it in enumerate(ids)}
    imp_idx = np.array([index[i] for i in imp_items])
    path = raw / "item_snapshots.parquet"
    have = set(pq.read_table(path, columns=["day"])["day"].to_pylist()) if path.exists() else set()
    parts = []
    for d in range(first_day, first_day + days + 1):
        day = DAY0 + d
        if day in have:
            continue
        views = np.bincount(imp_idx[imp_day < day], minlength=len(ids))
        parts.append(pa.table({
            "item_id": ids,
            "day": pa.array(np.full(len(ids), day), pa.int64()),
            "category": pa.array(items["category"].to_numpy(), pa.int64()),
            "brand": pa.array(items["brand"].to_numpy(), pa.int64()),
            "price": pa.array(items["price"].to_numpy().astype(float), pa.float64()),
            "condition": pa.array(items["condition"].to_numpy(), pa.int64()),
            "seller_rating": pa.array(items["seller_rating"].to_numpy().astype(float), pa.float64()),
            "age_days": pa.array(items["age_days"].to_numpy() + d, pa.int64()),
            "popularity": pa.array(items["popularity"].to_numpy() + views // 4, pa.int64()),
        }))
    if parts:
        _append(raw, "item_snapshots", pa.concat_tables(parts))
