"""What survives a killed process: per cell, `<run-dir>/<cell-key>/` holds the trainer's last
epoch checkpoint and the id of the cell's MLflow run, so the next invocation continues both.

The trainer saves the checkpoint of epoch k *before* the callbacks log epoch k, so a process
killed in between leaves a checkpoint one epoch ahead of MLflow; `CellLedger` logs such
epochs from the checkpoint's history when the run continues (never twice: it asks MLflow
which epochs it already has).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException

from llsbench.trainer import Callback

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from llsbench.suites.cells import Cell
    from llsbench.tracking import MlflowLogger
    from llsbench.trainer import Trainer

DEFAULT_RUN_DIR = "llsbench-runs"


class CellDir:
    def __init__(self, run_dir: str | Path, cell: "Cell"):
        self.cell = cell
        self.path = Path(run_dir) / cell.key
        self.checkpoint = self.path / "checkpoint.pt"
        self.run_id_file = self.path / "mlflow_run_id"

    def prepare(self) -> None:
        """Create the folder and describe the cell in it (for people looking at the folder)."""
        self.path.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.path / "cell.json", json.dumps(self.cell.to_dict(), indent=2, sort_keys=True))

    def run_id(self) -> str | None:
        if not self.run_id_file.exists():
            return None
        return self.run_id_file.read_text().strip() or None

    def save_run_id(self, run_id: str) -> None:
        _write_atomic(self.run_id_file, run_id)

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def continuable_run(client: "MlflowClient", run_id: str | None) -> str | None:
    """`run_id` if it still exists in this tracking store and is not deleted or finished."""
    if run_id is None:
        return None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None  # another tracking store, or deleted for good
    if run.info.lifecycle_stage == "deleted" or run.info.status == "FINISHED":
        return None
    return run_id


class CellLedger(Callback):
    """Runs right after the `MlflowLogger`: records the run id next to the checkpoint and, when
    the trainer resumed from a checkpoint, tags the run and logs epochs MLflow missed."""

    def __init__(self, logger: "MlflowLogger", cell_dir: CellDir):
        self.logger, self.cell_dir = logger, cell_dir
        self.resumed_from: int | None = None

    def on_start(self, trainer: "Trainer") -> None:
        self.cell_dir.save_run_id(self.logger.run_id)
        if trainer.epoch == 0:
            return
        self.resumed_from = trainer.epoch
        client, run_id = self.logger.client, self.logger.run_id
        client.set_tag(run_id, "resumed_from_epoch", str(trainer.epoch))
        logged = {m.step for m in client.get_metric_history(run_id, "test_acc")}
        for metrics in trainer.history:
            if int(metrics["epoch"]) not in logged:
                self.logger.log_metrics(metrics, int(metrics["epoch"]))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
