"""Unit tests of the runner, rules, metrics and gate on small hand-made inputs."""

import json
import tempfile
import textwrap
import unittest
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rescore_pipeline import model, sqlrun


def write(d: Path, name: str, text: str) -> None:
    (d / name).write_text(textwrap.dedent(text).lstrip())


class RunnerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.sql, self.raw, self.out = self.tmp / "sql", self.tmp / "raw", self.tmp / "out"
        for d in (self.sql, self.raw):
            d.mkdir()
        write(self.sql, "b.sql", """
            -- table: b
            -- inputs: a
            -- rule rows: 1 .. 10
            -- rule not_null: x
            -- rule range: y 0 .. 1
            SELECT x, y FROM a
            """)
        write(self.sql, "c.sql", """
            -- table: c
            -- inputs: b
            -- rule unique: x
            -- rule null_rate: y 0.5
            SELECT x, MAX(y) AS y FROM b GROUP BY x
            """)

    def raw_a(self, xs, ys):
        pq.write_table(pa.table({"x": pa.array(xs, pa.int64()), "y": pa.array(ys, pa.float64())}),
                       self.raw / "a.parquet")

    def test_dependency_order_and_outputs(self):
        self.raw_a([1, 2, 2], [0.5, 0.25, None])
        pipes = sqlrun.run_duckdb(self.raw, self.out, self.sql, log=lambda *_: None)
        self.assertEqual([p.table for p in pipes], ["b", "c"])
        self.assertEqual(sqlrun.raw_inputs(pipes), ["a"])
        self.assertEqual(pq.read_table(self.out / "c.parquet").num_rows, 2)

    def test_null_where_forbidden_names_table_and_rule(self):
        self.raw_a([1, None], [0.5, 0.5])
        with self.assertRaisesRegex(sqlrun.PipelineError,
                                    r"table b, rule `not_null: x`: 1 null values in `x`"):
            sqlrun.run_duckdb(self.raw, self.out, self.sql, log=lambda *_: None)

    def test_range_rows_and_null_rate(self):
        self.raw_a([1], [2.0])
        with self.assertRaisesRegex(sqlrun.PipelineError, r"table b, rule `range: y 0 .. 1`"):
            sqlrun.run_duckdb(self.raw, self.out, self.sql, log=lambda *_: None)
        self.raw_a(list(range(11)), [0.0] * 11)
        with self.assertRaisesRegex(sqlrun.PipelineError, r"table b, rule `rows: 1 .. 10`: 11 rows"):
            sqlrun.run_duckdb(self.raw, self.out, self.sql, log=lambda *_: None)
        self.raw_a([1, 2, 3], [None, None, 0.0])
        with self.assertRaisesRegex(sqlrun.PipelineError, r"table c, rule `null_rate: y 0.5`"):
            sqlrun.run_duckdb(self.raw, self.out, self.sql, log=lambda *_: None)

    def test_unique(self):
        write(self.sql, "c.sql", """
            -- table: c
            -- inputs: b
            -- rule unique: x
            SELECT x FROM b
            """)
        self.raw_a([1, 1], [0.0, 0.0])
        with self.assertRaisesRegex(sqlrun.PipelineError, r"table c, rule `unique: x`: 1 duplicated"):
            sqlrun.run_duckdb(self.raw, self.out, self.sql, log=lambda *_: None)

    def test_cycle_is_refused(self):
        write(self.sql, "b.sql", "-- table: b\n-- inputs: c\nSELECT * FROM c\n")
        with self.assertRaisesRegex(sqlrun.PipelineError, "dependency cycle"):
            sqlrun.load(self.sql)

    def test_header_must_name_the_file(self):
        write(self.sql, "b.sql", "-- table: other\n-- inputs: a\nSELECT 1\n")
        with self.assertRaisesRegex(sqlrun.PipelineError, "must be named like its file"):
            sqlrun.load(self.sql)


class MetricsGateTest(unittest.TestCase):
    def test_ndcg_and_mrr(self):
        labels = np.array([0.0, 2.0, 1.0])
        m = model.query_metrics(labels, np.array([3.0, 2.0, 1.0]))
        ideal = 3 + 1 / np.log2(3)
        self.assertAlmostEqual(m["ndcg@10"], (3 / np.log2(3) + 1 / 2) / ideal)
        self.assertAlmostEqual(m["mrr"], 0.5)
        self.assertIsNone(model.query_metrics(np.zeros(3), np.arange(3.0)))
        # ties keep the given order
        self.assertAlmostEqual(model.query_metrics(labels, np.zeros(3))["ndcg@1"], 0.0)

    def test_gate(self):
        cfg = Path(tempfile.mkdtemp()) / "gate.toml"
        cfg.write_text('metric = "ndcg@10"\nmargin = 0.01\n')
        ev = {"candidate": {"ndcg@10": 0.695}, "live": {"ndcg@10": 0.70},
              "first_pass": {"ndcg@10": 0.5}}
        ok, reason = model.gate(ev, cfg)
        self.assertTrue(ok, reason)
        ev["candidate"]["ndcg@10"] = 0.689
        ok, reason = model.gate(ev, cfg)
        self.assertFalse(ok)
        self.assertIn("REFUSE: candidate ndcg@10 0.6890 vs live 0.7000", reason)
        del ev["live"]
        ok, reason = model.gate(ev, cfg)
        self.assertTrue(ok)
        self.assertIn("vs first_pass", reason)
        json.dumps(ev)


if __name__ == "__main__":
    unittest.main()
