"""A written report into MLflow: the comparison table as an MLflow table (shown in the UI) and
the Markdown / CSV / LaTeX files and figures as artifacts of the suite's latest parent run, so
everyone on the tracking server sees the report without the files.

Each `llsbench report` gets its own artifact folder `reports/<UTC time>/` (MLflow appends
to a table logged twice under one name; a report is a snapshot, older ones stay) and the run's
tag `report_latest` names the newest folder.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities import RunTag

from llsbench import tracking
from llsbench.errors import LLSBenchError
from llsbench.reports.table import formatted
from llsbench.reports.write import Report
from llsbench.tracking import DEFAULT_EXPERIMENT, find_runs

LATEST_TAG = "report_latest"


@dataclass(frozen=True)
class LoggedReport:
    run_id: str
    folder: str  # artifact folder of this report in the run
    table: str  # artifact path of the MLflow table

    def describe(self) -> str:
        return f"logged the table ({self.table}) and files to MLflow run {self.run_id} (folder {self.folder}/)"


def latest_parent_run(suite_name: str, *, tracking_uri: str | None = None,
                      experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Id of the suite's newest parent run (its latest `llsbench run suite` invocation)."""
    c = tracking.client(tracking_uri)
    found = c.get_experiment_by_name(experiment)
    parents = find_runs(c, found.experiment_id, {"suite": suite_name, "role": "suite"}) if found else []
    if not parents:
        raise LLSBenchError(f"suite {suite_name!r} has no parent run in experiment {experiment!r}; "
                            f"run `llsbench run suite {suite_name}` first")
    return parents[0].info.run_id


def publish_report(suite_name: str, report: Report, *, tracking_uri: str | None = None,
                   experiment: str = DEFAULT_EXPERIMENT) -> LoggedReport:
    run_id = latest_parent_run(suite_name, tracking_uri=tracking_uri, experiment=experiment)
    c = tracking.client(tracking_uri)
    folder = f"reports/{_stamp()}"
    table = f"{folder}/{suite_name}_table.json"
    c.log_table(run_id, data=_display_table(report.table), artifact_file=table)
    for path in report.files:
        c.log_artifact(run_id, str(Path(path)), artifact_path=folder)
    c.log_batch(run_id, tags=[RunTag(LATEST_TAG, folder)])
    return LoggedReport(run_id, folder, table)


def _stamp() -> str:
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the Markdown shows it (mean ± std, Δ vs BP, costs with units; the numbers
    are in the CSV beside it). The UI's table view reads a dotted column name as a nested
    path and shows nothing, so dots go."""
    text = formatted(table).astype(str)
    return text.rename(columns=lambda name: name.replace(".", ""))
