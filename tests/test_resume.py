"""Suites are resumable and idempotent: a killed suite continues where it stopped (finished
cells skipped, the interrupted cell from its checkpoint, in the same MLflow run), Ctrl-C stops
cleanly, and a failing cell does not stop the others."""
import subprocess

import pytest
import torch
import yaml
from mlflow import MlflowClient
from processes import LLSBENCH, cell_runs, cli_env

from llsbench.suites import Overrides, RunContext, SuiteInterrupted, expand, load_suite, run_suite
from llsbench.suites.faults import CRASH_ENV
from llsbench.trainer import Callback

ARGS = ["--seeds", "1", "--epochs", "3", "--limit-train-batches", "2", "--methods", "bp,lls-square", "--device", "cpu"]
OVERRIDES = Overrides(seeds=1, epochs=3, limit_train_batches=2, methods=("bp", "lls-square"))


@pytest.fixture(scope="module")
def store(tmp_path_factory, one_thread):
    """One SQLite tracking store for the module (creating one takes seconds)."""
    folder = tmp_path_factory.mktemp("resume")
    return folder, f"sqlite:///{folder / 'mlflow.db'}"


def run_cli(folder, uri, run_dir, env_extra=None):
    return subprocess.run([LLSBENCH, "run", "suite", "smoke", *ARGS, "--tracking-uri", uri, "--run-dir", str(run_dir)],
                          cwd=folder, env=cli_env(env_extra), capture_output=True, text=True, timeout=300)


def test_a_killed_suite_resumes_without_rerunning_finished_cells(store):
    folder, uri = store
    run_dir = folder / "runs-killed"
    first, second = expand(load_suite("smoke"), OVERRIDES)
    killed = run_cli(folder, uri, run_dir, {CRASH_ENV: f"{second.key}:2"})
    assert killed.returncode == -9, killed.stdout + killed.stderr  # SIGKILLed after epoch 2 of the second cell
    checkpoint = run_dir / second.key / "checkpoint.pt"
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 2
    before = {r.data.tags["cell_key"]: r for r in cell_runs(uri)}
    assert set(before) == {first.key, second.key}
    assert before[first.key].info.status == "FINISHED" and before[second.key].info.status == "RUNNING"
    client = MlflowClient(uri)
    epoch1 = [(m.step, m.value) for m in client.get_metric_history(before[second.key].info.run_id, "test_acc")]
    assert [step for step, _ in epoch1] == [1]  # epoch 2 was checkpointed, never logged
    assert (run_dir / second.key / "mlflow_run_id").read_text() == before[second.key].info.run_id

    resumed = run_cli(folder, uri, run_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"[1/2] {first.label}: skipped" in resumed.stdout
    assert f"[2/2] {second.label}: finished" in resumed.stdout and "resumed from epoch 2" in resumed.stdout
    assert "cells: 1 finished, 1 skipped, 0 failed" in resumed.stdout
    assert "| lls-square" in resumed.stdout and "llsbench report smoke --tracking-uri" in resumed.stdout

    runs = cell_runs(uri)
    assert sorted(r.data.tags["cell_key"] for r in runs) == sorted(c.key for c in (first, second))
    assert all(r.info.status == "FINISHED" for r in runs)  # exactly one finished child per cell, nothing else
    after = {r.data.tags["cell_key"]: r for r in runs}
    assert after[first.key].info.run_id == before[first.key].info.run_id
    continued = after[second.key]
    assert continued.info.run_id == before[second.key].info.run_id  # the same MLflow run, continued
    assert continued.data.tags["resumed_from_epoch"] == "2"
    history = [(m.step, m.value) for m in client.get_metric_history(continued.info.run_id, "test_acc")]
    assert [step for step, _ in history] == [1, 2, 3] and history[0] == epoch1[0]  # epoch 2 logged from the checkpoint
    assert continued.data.metrics["epochs_done"] == 3
    assert all(r.data.metrics["signal_macs"] > 0 for r in runs)  # profiled once, when each cell started
    invocations = cell_runs(uri, role="suite")  # newest first
    assert len(invocations) == 2 and {r.data.tags["mlflow.parentRunId"] for r in runs} <= {
        r.info.run_id for r in invocations}
    assert invocations[0].info.status == "FINISHED"
    assert (invocations[0].data.tags["cells_skipped"], invocations[0].data.tags["cells_finished"]) == ("1", "1")
    assert not any(run_dir.iterdir())  # finished cells leave no checkpoints behind


class InterruptAfterEpoch(Callback):
    def on_epoch_end(self, trainer, metrics):
        if trainer.epoch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_finished_cells_and_the_checkpoint_then_resumes(store, tmp_path):
    folder, uri = store
    suite = load_suite("smoke")
    cells = expand(suite, Overrides(seeds=(5,), epochs=2, limit_train_batches=2, methods=("bp", "lls-square")))
    ctx = RunContext(tracking_uri=uri, run_dir=tmp_path, device="cpu")
    ctrl_c = lambda cell: [InterruptAfterEpoch()] if cell.key == cells[1].key else []  # noqa: E731
    with pytest.raises(SuiteInterrupted) as info:
        run_suite(suite, cells, ctx, command="test", echo=lambda line: None, callbacks=ctrl_c)
    assert [o.status for o in info.value.outcomes] == ["finished", "interrupted"]
    client = MlflowClient(uri)
    assert client.get_run(info.value.parent_run_id).info.status == "KILLED"
    assert (tmp_path / cells[1].key / "checkpoint.pt").exists()
    interrupted = [r for r in cell_runs(uri) if r.data.tags["cell_key"] == cells[1].key]
    assert [r.info.status for r in interrupted] == ["KILLED"]

    _, outcomes = run_suite(suite, cells, ctx, command="test", echo=lambda line: None)
    assert [(o.status, o.resumed_from) for o in outcomes] == [("skipped", None), ("finished", 1)]
    assert outcomes[1].run_id == interrupted[0].info.run_id


def test_a_failing_cell_is_recorded_and_the_suite_goes_on(store, tmp_path):
    folder, uri = store
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mixed", "description": "one cell without its data, one that diverges, one that works",
        "seeds": 1, "settings": {"epochs": 1, "limit_train_batches": 2},
        "matrix": {"datasets": ["mnist-plain", "digits"], "models": ["smallconv"], "methods": ["bp"]},
        "extra": [{"name": "diverges", "datasets": ["digits"], "models": ["smallconv"], "methods": ["bp"],
                   "settings": {"lr": 1e12, "optimizer": "sgd", "limit_train_batches": 3}}]}))
    suite = load_suite(str(path))
    ctx = RunContext(tracking_uri=uri, run_dir=tmp_path / "runs", device="cpu", data_dir=str(tmp_path / "empty"))
    _, outcomes = run_suite(suite, expand(suite), ctx, command="test", echo=lambda line: None)
    assert [o.status for o in outcomes] == ["failed", "finished", "failed"]
    assert "mnist" in outcomes[0].reason.lower() and "non-finite loss" in outcomes[2].reason
    client = MlflowClient(uri)
    for outcome in (outcomes[0], outcomes[2]):
        run = client.get_run(outcome.run_id)
        assert run.info.status == "FAILED" and run.data.tags["failure_reason"] == outcome.reason
        assert run.data.tags["cell_key"] == outcome.cell.key and run.data.tags["suite"] == "mixed"
    _, again = run_suite(suite, expand(suite), ctx, command="test", echo=lambda line: None)
    assert [o.status for o in again] == ["failed", "skipped", "failed"]  # failed cells are retried, not skipped
