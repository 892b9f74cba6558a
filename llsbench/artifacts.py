"""What a run keeps as MLflow artifacts: every finished run its final weights and the rule's aux
state (LLS bases and M matrices, feedback matrices, local heads) — `load_run` rebuilds model and
rule from the run's params and loads them back — and the figures drawn of it (`figures/`).

What is kept is the evaluated network: the model's state (with the rule's evaluation weights
and the re-estimated BatchNorm statistics the final test accuracy was measured with) and the
aux module's state. Optimiser state is not kept (it only matters to continue training, which
the suite checkpoints under `--run-dir` do).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import torch

from llsbench import tracking
from llsbench.config import RunConfig, resolve_device
from llsbench.data import DATASETS, load_data
from llsbench.errors import LLSBenchError
from llsbench.method import Method
from llsbench.method_registry import create_method
from llsbench.models import BlockNet, create_model
from llsbench.trainer import Callback, test_metrics

if TYPE_CHECKING:
    from mlflow.entities import Run

    from llsbench.data.splits import DataSplits
    from llsbench.trainer import RunResult, Trainer

ARTIFACT_DIR = "model"
WEIGHTS_FILE = "weights.pt"
FORMAT = 1
FIGURE_ARTIFACTS = "figures"  # where `llsbench figure` keeps a run's PNGs, `<name>.png`
FIGURE_NAMES = ("sync", "tsne-m", "gradcam", "probes", "angles")


def trained_state(model: BlockNet, method: Method) -> dict[str, Any]:
    """What is kept of a trained run, on the CPU so that it loads on any machine."""
    def cpu(state):
        return {k: v.detach().cpu() for k, v in state.items()}
    return {"format": FORMAT, "model": cpu(model.state_dict()), "aux": cpu(method.aux.state_dict())}


class ModelArtifactCallback(Callback):
    """At the end of a finished run, log `trained_state` as `model/weights.pt` to every
    `MlflowLogger` run among the trainer's callbacks. Put it before the logger in the callback
    list: the weights are then stored before the run is marked FINISHED."""

    def on_end(self, trainer: "Trainer", result: "RunResult") -> None:
        if result.status != "finished":
            return  # a diverged run's weights are not a trained model
        loggers = [cb for cb in trainer.callbacks if isinstance(cb, tracking.MlflowLogger) and cb.run_id]
        if not loggers:
            return
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / WEIGHTS_FILE
            torch.save(trained_state(trainer.model, trainer.method), path)
            for logger in loggers:
                logger.client.log_artifact(logger.run_id, str(path), artifact_path=ARTIFACT_DIR)


@dataclass
class LoadedRun:
    """A finished run rebuilt: its config, the trained model (in eval mode) and its rule."""

    run: "Run"
    config: RunConfig
    model: BlockNet
    method: Method

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def load_data(self, data_dir: str | None = None) -> "DataSplits":
        """The run's data on the model's device (`data_dir` overrides the one the run used)."""
        c = self.config
        return load_data(c.dataset, data_dir=data_dir or c.data_dir, batch_size=c.batch_size,
                         test_batch_size=c.test_batch_size, device=self.method.device, seed=c.seed,
                         num_workers=c.num_workers, train_subset=c.train_subset)

    def test_accuracy(self, data: "DataSplits") -> float:
        """Top-1 test accuracy (%) on the batches the run was evaluated on (`limit_test_batches`)."""
        batches = data.test
        if self.config.limit_test_batches is not None:
            batches = (b for b, _ in zip(batches, range(self.config.limit_test_batches)))
        return test_metrics(self.model, batches)["test_acc"]


def load_run(run_id: str, tracking_uri: str | None = None, device: str = "auto") -> LoadedRun:
    """Rebuild model and rule of MLflow run `run_id` from its params and load its kept weights.

    Needs no dataset on disk: shapes come from the dataset's spec. The model is returned in
    eval mode with the rule's evaluation weights; the rule's optimisers are fresh (never call
    `method.train()`/`eval()` on them: schedule-free optimisers would move the weights)."""
    client = tracking.client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise LLSBenchError(f"no MLflow run {run_id!r} at {mlflow.get_tracking_uri()}") from None
    config = RunConfig.from_params(run.data.params)
    state = _download_state(client, run)
    torch.manual_seed(config.seed)
    spec = DATASETS.get(config.dataset)
    model = create_model(config.model, in_channels=spec.in_channels, num_classes=spec.num_classes,
                         image_size=spec.image_size, **config.model_options).to(resolve_device(device))
    method = create_method(config.method, model, num_classes=spec.num_classes,
                           input_shape=(spec.in_channels, spec.image_size, spec.image_size), **config.method_options)
    model.load_state_dict(state["model"])
    method.aux.load_state_dict(state["aux"])
    model.eval()
    return LoadedRun(run, config, model, method)


def _download_state(client, run: "Run") -> dict[str, Any]:
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, ARTIFACT_DIR)]
    if f"{ARTIFACT_DIR}/{WEIGHTS_FILE}" not in artifacts:
        raise LLSBenchError(f"run {run.info.run_id} ({run.info.run_name}) has no kept weights "
                            f"({ARTIFACT_DIR}/{WEIGHTS_FILE}): it did not finish, or was trained with --no-save-model "
                            f"or before llsbench kept models; train it again")
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run.info.run_id, f"{ARTIFACT_DIR}/{WEIGHTS_FILE}", folder)
        return torch.load(path, map_location="cpu", weights_only=True)
