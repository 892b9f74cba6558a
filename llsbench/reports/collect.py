"""Reading a suite's runs back from MLflow into pandas."""
from __future__ import annotations

import mlflow
import pandas as pd

from llsbench import tracking
from llsbench.errors import LLSBenchError
from llsbench.tracking import DEFAULT_EXPERIMENT


def finished_cells(suite: str, *, tracking_uri: str | None = None,
                   experiment: str = DEFAULT_EXPERIMENT) -> pd.DataFrame:
    """One row per FINISHED cell run of `suite` (`mlflow.search_runs` columns: `metrics.*`,
    `params.*`, `tags.*`), oldest first. If a cell somehow finished twice, its newest run counts."""
    c = tracking.client(tracking_uri)
    found = c.get_experiment_by_name(experiment)
    where = f"experiment {experiment!r} at {mlflow.get_tracking_uri()}"
    if found is None:
        raise LLSBenchError(f"no {where}; run `llsbench run suite {suite}` first (or pass --tracking-uri)")
    runs = mlflow.search_runs(experiment_ids=[found.experiment_id], output_format="pandas",
                              filter_string=f"tags.suite = '{suite}' and tags.role = 'cell' "
                                            f"and attributes.status = 'FINISHED'")
    if runs.empty:
        raise LLSBenchError(f"no finished runs of suite {suite!r} in {where}; run `llsbench run suite {suite}` first")
    runs = runs.sort_values("start_time").drop_duplicates("tags.cell_key", keep="last")
    return runs.reset_index(drop=True)


def metric_curves(run_ids: list[str], metric: str = "test_acc", *, tracking_uri: str | None = None) -> pd.DataFrame:
    """Long table (run_id, step, value) of one metric's history for each run."""
    c = tracking.client(tracking_uri)
    rows = [(run_id, m.step, m.value) for run_id in run_ids for m in c.get_metric_history(run_id, metric)]
    return pd.DataFrame(rows, columns=["run_id", "step", "value"])


def suite_invocations(runs: pd.DataFrame, *, tracking_uri: str | None = None) -> list[dict[str, str]]:
    """The parent runs (suite invocations) the cells ran under: their tags, oldest first."""
    c = tracking.client(tracking_uri)
    ids = list(dict.fromkeys(runs.get("tags.mlflow.parentRunId", pd.Series(dtype=str)).dropna()))
    parents = []
    for run_id in ids:
        try:
            parents.append(c.get_run(run_id))
        except mlflow.exceptions.MlflowException:
            continue  # a deleted parent leaves its children readable
    return [p.data.tags for p in sorted(parents, key=lambda p: p.info.start_time)]
