"""The same SQL files on Spark SQL (pyspark, local mode) and a row-by-row comparison with the
DuckDB outputs. The SQL runs unchanged: the files keep to the subset both engines read the same
way (docs/pipelines.md, "Writing SQL for both engines")."""

from __future__ import annotations

import decimal
import math
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from . import sqlrun

JAVA17 = "/usr/lib/jvm/java-17-openjdk-amd64"


def session():
    if "JAVA_HOME" not in os.environ and Path(JAVA17).exists():
        os.environ["JAVA_HOME"] = JAVA17
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master("local[2]").appName("rescore-pipeline")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", "1g")
            .getOrCreate())


def norm(v):
    """Engine-neutral value: numbers as floats rounded to 10 significant digits."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float, decimal.Decimal)):
        f = float(v)
        if f == 0 or not math.isfinite(f):
            return f
        return round(f, 9 - int(math.floor(math.log10(abs(f)))))
    return v


def rows(path: Path) -> tuple[list[str], Counter]:
    t = pq.read_table(path)
    cols = [t[c].to_pylist() for c in t.column_names]
    return t.column_names, Counter(tuple(norm(v) for v in r) for r in zip(*cols))


def run_spark(raw: Path, out: Path, sql_dir: Path = sqlrun.SQL_DIR, log=print):
    """Runs every pipeline on Spark, writing out/<table>/ (Parquet) and checking the rules."""
    spark = session()
    spark.sparkContext.setLogLevel("ERROR")
    pipes = sqlrun.load(sql_dir)
    for name in sqlrun.raw_inputs(pipes):
        spark.read.parquet(str(raw / f"{name}.parquet")).createOrReplaceTempView(name)
    for pipe in pipes:
        target = out / pipe.table
        spark.sql(sqlrun.body(pipe)).write.mode("overwrite").parquet(str(target))
        spark.read.parquet(str(target)).createOrReplaceTempView(pipe.table)
        failures = sqlrun.check_rules(pipe, lambda q: [tuple(r) for r in spark.sql(q).collect()])
        if failures:
            raise sqlrun.PipelineError("; ".join(failures))
        log(f"  spark {pipe.table:<24} written, {len(pipe.rules)} rules ok")
    spark.stop()
    return pipes


def compare(raw: Path, duckdb_out: Path, sql_dir: Path = sqlrun.SQL_DIR) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="rescore-spark-"))
    try:
        pipes = run_spark(raw, tmp, sql_dir)
        bad = 0
        for pipe in pipes:
            dcols, drows = rows(duckdb_out / f"{pipe.table}.parquet")
            scols, srows = rows(tmp / pipe.table)
            n = sum(drows.values())
            if dcols != scols:
                print(f"  {pipe.table:<24} DIFFERENT columns: duckdb {dcols} spark {scols}")
                bad += 1
            elif drows != srows:
                only_d, only_s = drows - srows, srows - drows
                print(f"  {pipe.table:<24} DIFFERENT rows: {sum(only_d.values())} only in DuckDB, "
                      f"{sum(only_s.values())} only in Spark; e.g. {next(iter(only_d or only_s))}")
                bad += 1
            else:
                print(f"  {pipe.table:<24} {n:>10} rows, same on DuckDB and Spark")
        if bad:
            print(f"FAILED: {bad} tables differ between DuckDB and Spark", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
