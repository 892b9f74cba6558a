"""Checkpoints any node can reach: with an MLflow server as the tracking store, a cell's last
epoch checkpoint is also kept as an artifact of its run (`checkpoint/checkpoint.pt`, replaced
every epoch), so a cell interrupted on one machine continues on another with an empty run dir.

The upload runs before the `MlflowLogger` logs the epoch: the artifact is never behind the
run's metrics, so continuing from it never logs an epoch twice (`CellLedger` logs an epoch
the artifact holds but MLflow missed). On other stores `--run-dir` on shared storage does this.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from mlflow.exceptions import MlflowException

from llsbench.trainer import Callback

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from llsbench.tracking import MlflowLogger

ARTIFACT_DIR = "checkpoint"


def keeps_checkpoints(tracking_uri: str | None) -> bool:
    """True for an MLflow server (http/https): its runs' artifacts are reachable from any node."""
    return bool(tracking_uri) and tracking_uri.startswith(("http://", "https://"))


class CheckpointUpload(Callback):
    def __init__(self, logger: "MlflowLogger"):
        self.logger = logger

    def on_epoch_end(self, trainer, metrics) -> None:
        if trainer.checkpoint is not None and self.logger.run_id:
            self.logger.client.log_artifact(self.logger.run_id, str(trainer.checkpoint), ARTIFACT_DIR)


def fetch(client: "MlflowClient", run_id: str, checkpoint: Path) -> bool:
    """Download the run's checkpoint artifact to `checkpoint`; False when it has none that loads."""
    name = f"{ARTIFACT_DIR}/{checkpoint.name}"
    try:
        if not any(f.path == name for f in client.list_artifacts(run_id, ARTIFACT_DIR)):
            return False
        with tempfile.TemporaryDirectory(dir=checkpoint.parent) as folder:
            local = Path(client.download_artifacts(run_id, name, folder))
            if not _loads(local):
                return False  # a torn upload must not be resumed
            local.replace(checkpoint)
        return True
    except (MlflowException, OSError):
        return False


def _loads(path: Path) -> bool:
    try:
        torch.load(path, map_location="cpu", weights_only=False)
        return True
    except Exception:  # noqa: BLE001 - any unpickling error means: not a usable checkpoint
        return False


def discard(client: "MlflowClient", run_id: str) -> None:
    """Drop the checkpoint artifact of a run that ended (best effort: a stale artifact is harmless)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        get_artifact_repository(client.get_run(run_id).info.artifact_uri).delete_artifacts(ARTIFACT_DIR)
    except (MlflowException, OSError, NotImplementedError):
        pass
