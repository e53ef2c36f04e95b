"""Tests over the loop's simulated logs (scripts/pipeline-loop.sh sets PIPELINE_WORK; without it
these tests fail rather than skip)."""

import os
import tempfile
import unittest
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rescore_pipeline import sqlrun, spark
from rescore_pipeline.traffic import DAY0


def work() -> Path:
    w = os.environ.get("PIPELINE_WORK")
    if not w or not (Path(w) / "raw" / "impressions.parquet").exists():
        raise AssertionError("set PIPELINE_WORK to a scripts/pipeline-loop.sh work directory")
    return Path(w)


def sorted_rows(t: pa.Table):
    return sorted(tuple(spark.norm(v) for v in r) for r in zip(*[t[c].to_pylist() for c in t.column_names]))


class NoLeakageTest(unittest.TestCase):
    def assertSameRows(self, a: pa.Table, b: pa.Table, what: str):
        ra, rb = sorted_rows(a), sorted_rows(b)
        if ra != rb:
            diff = sum(1 for x, y in zip(ra, rb) if x != y) + abs(len(ra) - len(rb))
            first = next((x, y) for x, y in zip(ra + [None], rb + [None]) if x != y)
            self.fail(f"{what}: {len(ra)} vs {len(rb)} rows, {diff} differ, first: {first}")

    def test_features_do_not_change_when_the_future_is_removed(self):
        """Runs the pipelines on all logs and on the logs cut at noon of day CUT (later requests
        and their events, and snapshots of later days, removed): every training row that survives
        the cut, and item/query features of days up to CUT, must be identical. A feature that
        used anything from the impression's own day or later (same-day clicks included) would
        differ."""
        raw = work() / "raw"
        cut = DAY0 + 9
        cutoff = cut * 86400 + 43200
        tmp = Path(tempfile.mkdtemp())
        full_out, cut_raw, cut_out = tmp / "full", tmp / "cut_raw", tmp / "cut"
        cut_raw.mkdir()
        imp = pq.read_table(raw / "impressions.parquet")
        imp = imp.filter(pc.less(imp["event_time"], cutoff))
        kept = pa.array(sorted(set(imp["request_id"].to_pylist())))
        for f in raw.glob("*.parquet"):
            t = imp if f.stem == "impressions" else pq.read_table(f)
            if "request_id" in t.column_names:
                t = t.filter(pc.is_in(t["request_id"], kept))
            elif "day" in t.column_names:
                t = t.filter(pc.less_equal(t["day"], cut))
            pq.write_table(t, cut_raw / f.name)
        quiet = lambda *_: None  # noqa: E731
        sqlrun.run_duckdb(raw, full_out, log=quiet)
        sqlrun.run_duckdb(cut_raw, cut_out, log=quiet)

        a = pq.read_table(full_out / "training_set.parquet")
        b = pq.read_table(cut_out / "training_set.parquet")
        self.assertGreater(b.filter(pc.equal(b["day"], cut)).num_rows, 1000)
        self.assertEqual(a.filter(pc.less(a["day"], cut)).num_rows,
                         b.filter(pc.less(b["day"], cut)).num_rows)
        a = a.filter(pc.is_in(a["request_id"], kept))
        self.assertSameRows(a, b, "training rows")
        for table in ("item_features", "query_features"):
            a = pq.read_table(full_out / f"{table}.parquet")
            b = pq.read_table(cut_out / f"{table}.parquet")
            a = a.filter(pc.less_equal(a["day"], cut))
            self.assertGreater(a.num_rows, 100, table)
            self.assertSameRows(a, b, f"{table}, days <= cut")


if __name__ == "__main__":
    unittest.main()
