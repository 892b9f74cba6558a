"""Suites: the paper's experiments as data files, expanded into cells and run resumably.

`load_suite(name_or_path)` → `Suite`; `expand(suite, Overrides(...))` → cells;
`run_suite(suite, cells, RunContext(...), command=...)` runs them under one MLflow parent run.
"""
from llsbench.suites.cells import Cell, cell_key
from llsbench.suites.expand import Overrides, expand
from llsbench.suites.locate import SuiteNotFoundError, load_suite, shipped_suites, suite_path
from llsbench.suites.runner import (STATUSES, CellOutcome, RunContext, SuiteInterrupted, prepare_tracking, run_cell,
                                    run_suite)
from llsbench.suites.schema import Suite, SuiteError

__all__ = [
    "STATUSES", "Cell", "CellOutcome", "Overrides", "RunContext", "Suite", "SuiteError", "SuiteInterrupted",
    "SuiteNotFoundError", "cell_key", "expand", "load_suite", "prepare_tracking", "run_cell", "run_suite",
    "shipped_suites", "suite_path",
]
