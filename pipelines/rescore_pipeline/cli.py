"""`rescore-pipeline` command line (docs/pipelines.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import sqlrun


def _model_or_none(value: str | None) -> Path | None:
    return None if value in (None, "", "none") else Path(value)


def cmd_run(a) -> int:
    try:
        print(f"pipelines on DuckDB: {a.raw} -> {a.out}")
        sqlrun.run_duckdb(Path(a.raw), Path(a.out), Path(a.sql))
    except sqlrun.PipelineError as e:
        print(f"pipeline failed: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_traffic(a) -> int:
    from . import traffic

    model = None
    if a.model:
        import lightgbm as lgb

        model = lgb.Booster(model_file=str(Path(a.model) / "model.txt"))
    stats = traffic.simulate(Path(a.world), Path(a.raw), a.round, a.first_day, a.days, a.sessions,
                             a.seed, model, a.model_name if a.model else "bm25",
                             a.model_version if a.model else "0",
                             Path(a.features) if a.features else None)
    print(f"traffic round {a.round} served by "
          f"{(a.model_name + '/' + a.model_version) if a.model else 'bm25 (first pass)'}: {stats}")
    return 0


def cmd_train(a) -> int:
    from . import model

    if a.format == "libsvm":
        model.train_libsvm(Path(a.data), Path(a.params), Path(a.out))
    else:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        t = pq.read_table(a.data)
        t = t.filter(pc.equal(t["split"], "train"))
        model.train_table(t, Path(a.params), Path(a.out))
    print(f"trained {a.out} with {a.params}")
    return 0


def cmd_evaluate(a) -> int:
    from . import model

    ev = model.evaluate(Path(a.training_set), Path(a.candidate), _model_or_none(a.live))
    Path(a.out).write_text(json.dumps(ev, indent=2) + "\n")
    for name in ("first_pass", "live", "candidate"):
        if name in ev:
            m = ev[name]
            print(f"  {name:<10} groups {m['groups']:>5}  NDCG@1 {m['ndcg@1']:.4f}  NDCG@5 "
                  f"{m['ndcg@5']:.4f}  NDCG@10 {m['ndcg@10']:.4f}  MRR {m['mrr']:.4f}")
    return 0


def cmd_gate(a) -> int:
    from . import model

    ok, reason = model.gate(json.loads(Path(a.evaluation).read_text()), Path(a.config))
    print(f"gate: {reason}")
    return 0 if ok else 3


def cmd_package(a) -> int:
    from . import model

    out = model.package(Path(a.model), a.name, Path(a.models_dir),
                        json.loads(Path(a.evaluation).read_text()),
                        [Path(p) for p in a.data], Path(a.training_set),
                        _model_or_none(a.sidecar))
    print(f"packaged {out}")
    return 0


def cmd_oracle_report(a) -> int:
    """The loop's table: NDCG@10 against the world's hidden grades on the held-out queries'
    full candidate lists, for BM25, the given models and a model trained on the hidden grades."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from . import model

    world, cf = Path(a.world), Path(a.candidate_features)
    full = pq.read_table(cf)
    train = full.filter(pc.equal(full["split"], "train"))
    train = train.join(pacsv.read_csv(world / "oracle_grades.csv"), ["query_id", "item_id"])
    true_model = Path(a.work) / "true_labels.txt"
    model.train_table(train, Path(a.true_params), true_model, label="grade",
                      group_col="query_id", order_col="bm25_rank")
    held = model.oracle_table(cf, world)
    rows = [("bm25 (first pass)", model.oracle_ndcg(held, None))]
    for spec in a.model:
        name, path = spec.split("=", 1)
        rows.append((name, model.oracle_ndcg(held, Path(path))))
    rows.append(("true labels", model.oracle_ndcg(held, true_model)))
    base, top = rows[0][1]["ndcg@10"], rows[-1][1]["ndcg@10"]
    print(f"NDCG@10 vs the world's hidden grades, {rows[0][1]['groups']} held-out queries "
          f"({rows[0][1]['excluded']} without a relevant candidate excluded), full candidate lists:")
    print(f"  {'ranker':<22} {'NDCG@10':>8} {'gain':>8} {'recovery':>9}")
    failed = []
    for name, m in rows:
        gain = m["ndcg@10"] - base
        rec = gain / (top - base) if top > base else float("nan")
        print(f"  {name:<22} {m['ndcg@10']:>8.4f} {gain:>+8.4f} {rec:>8.1%}")
        if name in a.require and not rec >= a.min_recovery:
            failed.append(f"{name} recovers {rec:.1%} < {a.min_recovery:.0%}")
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


def cmd_spark_compare(a) -> int:
    from . import spark

    return spark.compare(Path(a.raw), Path(a.duckdb_out), Path(a.sql))


def cmd_serve_check(a) -> int:
    from . import serve

    return serve.check(a.url, Path(a.model), Path(a.candidate_features), Path(a.queries), a.queries_n)


def cmd_letor(a) -> int:
    from . import letor

    return letor.parity(Path(a.data), Path(a.params), a.tolerance, _model_or_none(a.rust_train))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="rescore-pipeline", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("run", help="run the SQL pipelines on DuckDB, write Parquet, check rules")
    s.add_argument("--raw", required=True, help="directory of input tables (<name>.parquet)")
    s.add_argument("--out", required=True, help="directory for the output tables")
    s.add_argument("--sql", default=str(sqlrun.SQL_DIR))
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("traffic", help="simulate one round of demo traffic into raw Parquet logs")
    s.add_argument("--world", required=True, help="rescore-demo export-world directory")
    s.add_argument("--raw", required=True)
    s.add_argument("--round", type=int, required=True)
    s.add_argument("--first-day", type=int, required=True)
    s.add_argument("--days", type=int, default=7)
    s.add_argument("--sessions", type=int, default=4, help="requests per query in the round")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--model", help="model directory to serve (default: BM25 order)")
    s.add_argument("--model-name", default="marketplace")
    s.add_argument("--model-version", default="1")
    s.add_argument("--features", help="candidate_features.parquet the served model scores")
    s.set_defaults(fn=cmd_traffic)

    s = sub.add_parser("train", help="LambdaRank with LightGBM 4.7.0, parameters from a TOML file")
    s.add_argument("--data", required=True, help="training_set.parquet (split = train) or libsvm")
    s.add_argument("--format", choices=["parquet", "libsvm"], default="parquet")
    s.add_argument("--params", required=True)
    s.add_argument("--out", required=True, help="model.txt to write")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("evaluate", help="NDCG@1/5/10, MRR of candidate, live, first pass")
    s.add_argument("--training-set", required=True)
    s.add_argument("--candidate", required=True, help="model.txt")
    s.add_argument("--live", help="model.txt of the live model (default: none)")
    s.add_argument("--out", required=True, help="evaluation JSON")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("gate", help="promotion gate: exit 0 promote, 3 refuse")
    s.add_argument("--evaluation", required=True)
    s.add_argument("--config", required=True)
    s.set_defaults(fn=cmd_gate)

    s = sub.add_parser("package", help="models/<name>/<next version>/")
    s.add_argument("--model", required=True)
    s.add_argument("--name", default="marketplace")
    s.add_argument("--models-dir", required=True)
    s.add_argument("--evaluation", required=True)
    s.add_argument("--training-set", required=True)
    s.add_argument("--data", nargs="+", default=[], help="input files whose versions to record")
    s.add_argument("--sidecar", help="rescore-sidecar binary, for reference.json")
    s.set_defaults(fn=cmd_package)

    s = sub.add_parser("oracle-report", help="the loop's table against the hidden grades")
    s.add_argument("--world", required=True)
    s.add_argument("--candidate-features", required=True)
    s.add_argument("--true-params", required=True)
    s.add_argument("--work", required=True)
    s.add_argument("--model", action="append", default=[], help="NAME=model.txt")
    s.add_argument("--require", action="append", default=[],
                   help="NAME that must recover --min-recovery of the true-label gain")
    s.add_argument("--min-recovery", type=float, default=0.7)
    s.set_defaults(fn=cmd_oracle_report)

    s = sub.add_parser("spark-compare", help="run the SQL on Spark local and compare with DuckDB")
    s.add_argument("--raw", required=True)
    s.add_argument("--duckdb-out", required=True)
    s.add_argument("--sql", default=str(sqlrun.SQL_DIR))
    s.set_defaults(fn=cmd_spark_compare)

    s = sub.add_parser("serve-check", help="sidecar scores == scores from the pipelines' features")
    s.add_argument("--url", required=True)
    s.add_argument("--model", required=True, help="packaged model directory models/<name>/<v>")
    s.add_argument("--candidate-features", required=True)
    s.add_argument("--queries", required=True, help="queries.parquet (raw input)")
    s.add_argument("--queries-n", type=int, default=50)
    s.set_defaults(fn=cmd_serve_check)

    s = sub.add_parser("letor-parity", help="train on LETOR data, compare NDCG@5 with LightGBM's")
    s.add_argument("--data", required=True, help="directory with rank.train, rank.test (+ .query)")
    s.add_argument("--params", required=True)
    s.add_argument("--tolerance", type=float, default=0.01)
    s.add_argument("--rust-train", help="rescore-train binary: also train with lightgbm3")
    s.set_defaults(fn=cmd_letor)

    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
