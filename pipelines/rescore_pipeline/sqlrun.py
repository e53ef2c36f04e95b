"""Pipeline definitions (one SQL file per table, a header of `-- key: value` lines), dependency
ordering, execution on DuckDB and the data-quality rules."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


class PipelineError(Exception):
    """A pipeline failed: a definition error, an SQL error or a broken rule."""


@dataclasses.dataclass
class Rule:
    kind: str  # rows, unique, not_null, null_rate, range
    spec: str

    def name(self) -> str:
        return f"{self.kind}: {self.spec}"


@dataclasses.dataclass
class Pipeline:
    table: str
    inputs: list[str]
    rules: list[Rule]
    sql: str
    path: Path


RULE_KINDS = ("rows", "unique", "not_null", "null_rate", "range")


def parse(path: Path) -> Pipeline:
    """Reads one SQL file: header lines `-- table:`, `-- inputs:`, `-- rule <kind>: <spec>`."""
    text = path.read_text()
    table, inputs, rules = None, None, []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = re.match(r"--\s*(table|inputs|rule\s+\w+)\s*:\s*(.*)$", line)
        if not m:
            continue
        key, value = m.group(1), m.group(2).strip()
        if key == "table":
            table = value
        elif key == "inputs":
            inputs = [v.strip() for v in value.split(",") if v.strip()]
        else:
            kind = key.split()[1]
            if kind not in RULE_KINDS:
                raise PipelineError(f"{path.name}: unknown rule kind `{kind}` (one of {', '.join(RULE_KINDS)})")
            rules.append(Rule(kind, value))
    if table is None or inputs is None:
        raise PipelineError(f"{path.name}: the header needs `-- table:` and `-- inputs:` lines")
    if table != path.stem:
        raise PipelineError(f"{path.name}: table `{table}` must be named like its file")
    return Pipeline(table, inputs, rules, text, path)


def load(sql_dir: Path = SQL_DIR) -> list[Pipeline]:
    """All pipelines of a folder in dependency order (ties by name)."""
    pipes = {p.table: p for p in (parse(f) for f in sorted(sql_dir.glob("*.sql")))}
    order, state = [], {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise PipelineError("dependency cycle: " + " -> ".join(chain + [name]))
        state[name] = "visiting"
        for dep in pipes[name].inputs:
            if dep in pipes:
                visit(dep, chain + [name])
        state[name] = "done"
        order.append(pipes[name])

    for name in sorted(pipes):
        visit(name, [])
    return order


def raw_inputs(pipes: list[Pipeline]) -> list[str]:
    """Inputs that no pipeline produces: read from the raw directory."""
    produced = {p.table for p in pipes}
    return sorted({i for p in pipes for i in p.inputs if i not in produced})


def _cols(spec: str) -> list[str]:
    return [c.strip() for c in spec.split(",") if c.strip()]


def _range(spec: str) -> tuple[str | None, float, float]:
    m = re.match(r"^(?:(\w+)\s+)?(-?[\d.eE+-]+)\s*\.\.\s*(-?[\d.eE+-]+)$", spec.strip())
    if not m:
        raise PipelineError(f"bad range `{spec}`: expected `[column] LOW .. HIGH`")
    return m.group(1), float(m.group(2)), float(m.group(3))


def check_rules(pipe: Pipeline, query) -> list[str]:
    """Evaluates the table's rules with `query(sql) -> list of tuples`; returns the failures."""
    t, failures = pipe.table, []
    (n,) = query(f"SELECT COUNT(*) FROM {t}")[0]
    for rule in pipe.rules:
        bad = None
        if rule.kind == "rows":
            _, lo, hi = _range(rule.spec)
            if not lo <= n <= hi:
                bad = f"{n} rows, expected {rule.spec}"
        elif rule.kind == "unique":
            cols = ", ".join(_cols(rule.spec))
            (dups,) = query(
                f"SELECT COUNT(*) FROM (SELECT {cols} FROM {t} GROUP BY {cols} HAVING COUNT(*) > 1) d"
            )[0]
            if dups:
                bad = f"{dups} duplicated keys ({cols})"
        elif rule.kind == "not_null":
            for col in _cols(rule.spec):
                (nulls,) = query(f"SELECT COUNT(*) FROM {t} WHERE {col} IS NULL")[0]
                if nulls:
                    bad = f"{nulls} null values in `{col}`"
                    break
        elif rule.kind == "null_rate":
            col, limit = rule.spec.split()
            (nulls,) = query(f"SELECT COUNT(*) FROM {t} WHERE {col} IS NULL")[0]
            rate = nulls / n if n else 0.0
            if rate > float(limit):
                bad = f"null rate of `{col}` {rate:.4f} > {limit}"
        elif rule.kind == "range":
            col, lo, hi = _range(rule.spec)
            (out,) = query(
                f"SELECT COUNT(*) FROM {t} WHERE {col} IS NOT NULL AND ({col} < {lo} OR {col} > {hi})"
            )[0]
            if out:
                bad = f"{out} values of `{col}` outside [{lo:g}, {hi:g}]"
        if bad:
            failures.append(f"table {t}, rule `{rule.name()}`: {bad}")
    return failures


def body(pipe: Pipeline) -> str:
    """The SELECT statement without the header comments and trailing semicolon."""
    return pipe.sql.strip().rstrip(";")


def run_duckdb(raw_dir: Path, out_dir: Path, sql_dir: Path = SQL_DIR, threads: int | None = None,
               log=print) -> list[Pipeline]:
    """Runs every pipeline on DuckDB over `raw_dir/<input>.parquet`, writes `out_dir/<table>.parquet`,
    checks the rules; raises PipelineError naming the table and rule on the first failing table."""
    import duckdb

    pipes = load(sql_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads or min(2, os.cpu_count() or 1)}")
    for name in raw_inputs(pipes):
        path = raw_dir / f"{name}.parquet"
        if not path.exists():
            raise PipelineError(f"input `{name}` missing: {path}")
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    for pipe in pipes:
        try:
            con.execute(f"CREATE TABLE {pipe.table} AS {body(pipe)}")
        except duckdb.Error as e:
            raise PipelineError(f"table {pipe.table}: SQL error: {e}") from e
        failures = check_rules(pipe, lambda q: con.execute(q).fetchall())
        if failures:
            raise PipelineError("; ".join(failures))
        (n,) = con.execute(f"SELECT COUNT(*) FROM {pipe.table}").fetchone()
        con.execute(f"COPY {pipe.table} TO '{out_dir / (pipe.table + '.parquet')}' (FORMAT parquet)")
        log(f"  {pipe.table:<24} {n:>10} rows  {len(pipe.rules)} rules ok")
    con.close()
    return pipes
