"""MLflow tracking of runs: the full resolved configuration as params, per-epoch metrics,
tags for provenance (git commit, package versions, device), and the final summary.

Tracking follows MLflow's own default (a SQLite `mlflow.db` in the working directory) unless
`MLFLOW_TRACKING_URI` or an explicit `tracking_uri` says otherwise.
"""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from llsbench.host_memory import host_memory_policy
from llsbench.store import prepare_store
from llsbench.tracking_ui import dataset_inputs, experiment_tags, missing_experiment_tags, source_tags
from llsbench.trainer import Callback

if TYPE_CHECKING:
    from llsbench.trainer import RunResult, Trainer

DEFAULT_EXPERIMENT = "llsbench"
_PACKAGES = ("llsbench", "torch", "torchvision", "schedulefree", "mlflow", "fvcore", "numpy")


def client(tracking_uri: str | None = None) -> MlflowClient:
    """A client of the store (a new SQLite store is created safely first, see `llsbench.store`)."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    prepare_store(tracking_uri)
    return MlflowClient()


def ensure_experiment(name: str = DEFAULT_EXPERIMENT, tracking_uri: str | None = None) -> str:
    """The experiment's id, creating it first (do this before any worker starts), tagged so that
    the MLflow UI opens it as model training with llsbench's runs-table view. Another process
    creating it at the same moment is fine: then its id is returned."""
    return experiment_in(client(tracking_uri), name)


def experiment_in(c: MlflowClient, name: str) -> str:
    """`ensure_experiment` in the store of the client `c`."""
    found = c.get_experiment_by_name(name)
    if found is None:
        try:
            return c.create_experiment(name, artifact_location=artifact_location(c, name), tags=experiment_tags())
        except MlflowException:
            found = c.get_experiment_by_name(name)
            if found is None:
                raise
    for key, value in missing_experiment_tags(found.tags).items():
        c.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def artifact_location(c: MlflowClient, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts (kept models, figures): beside a SQLite store
    (`<store dir>/mlruns/<experiment>`), not under whatever directory the run was started from;
    None (MLflow's own choice, e.g. a server's artifact root) for any other store."""
    uri = c.tracking_uri
    if not uri.startswith("sqlite:///"):
        return None
    folder = Path(uri[len("sqlite:///"):]).resolve().parent / "mlruns"
    return str(folder / "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in experiment))


def find_runs(c: MlflowClient, experiment_id: str, tags: dict[str, str], status: str | None = None) -> list:
    """Runs of the experiment whose tags have these values (and this status), newest first."""
    clauses = [f"tags.`{k}` = {_quoted(v)}" for k, v in tags.items()]
    if status:
        clauses.append(f"attributes.status = {_quoted(status)}")
    runs, token = [], None
    while True:
        page = c.search_runs([experiment_id], " and ".join(clauses), order_by=["attributes.start_time DESC"],
                             max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _quoted(value: str) -> str:
    return f"'{value}'" if "'" not in value else f'"{value}"'


def _git(*args: str) -> str | None:
    """Output of a git command in llsbench's own checkout; None when not installed from one."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str:
    return _git("rev-parse", "HEAD") or "unknown"


def git_dirty() -> str:
    """'true' when the checkout has uncommitted changes: the commit alone does not describe the code."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return "unknown" if status is None else str(bool(status)).lower()


def environment_tags(device: torch.device) -> dict[str, str]:
    commit = git_commit()
    tags = {**source_tags(commit), "git_commit": commit, "git_dirty": git_dirty(), "python": sys.version.split()[0], "platform": platform.platform(),
            "device": str(device), "device_name": device_name(device), "host_memory": host_memory_policy()}
    for pkg in _PACKAGES:
        try:
            tags[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            pass
    return tags


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class MlflowLogger(Callback):
    """Trainer callback that records one run in MLflow (optionally nested under a parent)."""

    def __init__(self, experiment: str = DEFAULT_EXPERIMENT, tracking_uri: str | None = None,
                 run_name: str | None = None, tags: dict[str, str] | None = None,
                 parent_run_id: str | None = None, run_id: str | None = None):
        self.client = client(tracking_uri)
        self.experiment_id = ensure_experiment(experiment)
        self.run_name, self.extra_tags, self.parent_run_id = run_name, dict(tags or {}), parent_run_id
        self.run_id = run_id  # set to continue an existing (interrupted) run

    def on_start(self, trainer: "Trainer") -> None:
        tags = {**environment_tags(trainer.device), **self.extra_tags,
                "method": trainer.config.method, "model": trainer.config.model, "dataset": trainer.config.dataset}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        if self.run_id is None:
            run = self.client.create_run(self.experiment_id, run_name=self.run_name or self._default_name(trainer),
                                         tags=tags)
            self.run_id = run.info.run_id
            params = {**trainer.config.to_params(), **{f"data.{k}": str(v) for k, v in trainer.data.describe().items()},
                      **{f"method.{k}": str(v) for k, v in trainer.method.config.items()}}
            for chunk in _chunks([Param(k, v[:6000]) for k, v in params.items()], 100):
                self.client.log_batch(self.run_id, params=chunk)
            self.client.log_inputs(self.run_id, datasets=dataset_inputs(trainer.data))
        else:
            self.client.update_run(self.run_id, status="RUNNING")

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        step = int(metrics["epoch"])
        self.log_metrics(metrics, step)

    def on_end(self, trainer: "Trainer", result: "RunResult") -> None:
        self.log_metrics(result.summary, step=len(result.history))
        tags = [RunTag("status", result.status)]
        if result.reason:
            tags.append(RunTag("failure_reason", result.reason[:5000]))
        self.client.log_batch(self.run_id, tags=tags)
        self.client.set_terminated(self.run_id, "FINISHED" if result.status == "finished" else "FAILED")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for chunk in _chunks(items, 500):
            self.client.log_batch(self.run_id, metrics=chunk)

    @staticmethod
    def _default_name(trainer: "Trainer") -> str:
        c = trainer.config
        return f"{c.method}-{c.model}-{c.dataset}-s{c.seed}"
