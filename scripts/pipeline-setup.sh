#!/usr/bin/env bash
# Idempotent: the pipelines' Python environment in .tools/pipeline-venv (PyPI wheels only:
# duckdb, pyarrow, numpy, lightgbm 4.7.0, pyspark 4.x) with rescore-pipeline installed editable.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.tools/pipeline-venv
# A venv made at another path (a moved or removed checkout) keeps that path in its scripts'
# first line, so its entry point cannot run: start it over.
if [ -e "$VENV/bin/rescore-pipeline" ] && ! "$VENV/bin/rescore-pipeline" --help >/dev/null 2>&1; then
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import duckdb, pyarrow, numpy, lightgbm, pyspark, rescore_pipeline' 2>/dev/null \
    || [ pipelines/pyproject.toml -nt "$VENV/.installed" ]; then
    "$VENV/bin/python" -m pip install -q -e pipelines
    touch "$VENV/.installed"
fi
