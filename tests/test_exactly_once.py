"""Two invocations of one suite on one store — a new SQLite file or one `llsbench server` —
train every cell exactly once and never log an epoch twice; an invocation killed mid-cell
leaves a claim that is taken over, and the cell continues from its checkpoint: from the run
dir, or from the run's checkpoint artifact on the server when the run dir is empty."""
import json
import re
import subprocess
from collections import Counter

import pytest
from mlflow import MlflowClient
from processes import LLSBENCH, cell_runs, cli_env, free_port, get, serving

from llsbench.suites import Overrides, expand, load_suite
from llsbench.suites.claims import TIMEOUT_ENV, claims_experiment
from llsbench.suites.faults import CRASH_ENV

pytestmark = pytest.mark.slow  # each test starts two or three llsbench processes (tens of seconds here)

EPOCHS = 2
METHODS = "bp,lls-square,dfa"
ARGS = ["--seeds", "1", "--epochs", str(EPOCHS), "--limit-train-batches", "2", "--methods", METHODS, "--device", "cpu",
        "--no-profile"]
CELLS = expand(load_suite("smoke"), Overrides(seeds=1, epochs=EPOCHS, limit_train_batches=2,
                                              methods=tuple(METHODS.split(","))))


def suite_process(folder, uri, run_dir, env_extra=None, args=ARGS):
    command = [LLSBENCH, "run", "suite", "smoke", *args, "--tracking-uri", uri, "--run-dir", str(run_dir)]
    return subprocess.Popen(command, cwd=folder, env=cli_env(env_extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(process) -> tuple[str, int]:
    output = process.communicate(timeout=400)[0]
    return output, process.returncode


def assert_each_cell_finished_once(uri, cells, epochs):
    runs = cell_runs(uri)
    assert Counter(r.data.tags["cell_key"] for r in runs) == Counter(c.key for c in cells)
    assert all(r.info.status == "FINISHED" for r in runs)
    client = MlflowClient(uri)
    for run in runs:
        for metric in ("test_acc", "train_loss"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
            assert sorted(steps) == list(range(1, epochs + 1)), (run.data.tags["cell"], metric, steps)
    claims = client.get_experiment_by_name(claims_experiment("llsbench"))
    assert client.search_runs([claims.experiment_id], "") == []  # every claim released


def two_invocations_together(folder, uri):
    processes = [suite_process(folder, uri, folder / f"runs-{i}") for i in (1, 2)]
    outputs = [finish(p) for p in processes]
    for output, code in outputs:
        assert code == 0 and "Traceback" not in output, output
    statuses = [dict(re.findall(r"\] (\S+): (\w+)", output)) for output, _ in outputs]
    for cell in CELLS:  # trained by exactly one; the other skipped it or left it to the first
        pair = sorted(s[cell.label] for s in statuses)
        assert pair in (["elsewhere", "finished"], ["finished", "skipped"]), (cell.label, pair, outputs)
    assert_each_cell_finished_once(uri, CELLS, EPOCHS)


def test_two_invocations_on_a_new_sqlite_store_train_every_cell_once(tmp_path):
    two_invocations_together(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    args = ["server", "--port", str(port), "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination", str(folder / "artifacts")]
    with serving(args, folder, port) as running:
        yield running.base, folder


def test_the_server_answers_the_rest_api(server):
    base, _ = server
    status, body = get(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})
    assert status == 200 and "Default" in {e["name"] for e in json.loads(body)["experiments"]}


def test_two_invocations_on_one_server_train_every_cell_once(server, tmp_path):
    base, _ = server
    two_invocations_together(tmp_path, base)


def test_a_cell_killed_on_one_machine_continues_on_another_from_its_checkpoint_artifact(server, tmp_path):
    base, _ = server
    args = ["--seeds", "1", "--epochs", "3", "--limit-train-batches", "2", "--methods", "bp", "--device", "cpu",
            "--no-profile", "--experiment", "moved"]
    [cell] = expand(load_suite("smoke"), Overrides(seeds=1, epochs=3, limit_train_batches=2, methods=("bp",)))
    killed = suite_process(tmp_path, base, tmp_path / "machine-a", {CRASH_ENV: f"{cell.key}:2"}, args)
    output, code = finish(killed)
    assert code == -9, output  # SIGKILLed after epoch 2 was checkpointed, before it was uploaded or logged
    client = MlflowClient(base)
    run = client.search_runs([client.get_experiment_by_name("moved").experiment_id],
                             f"tags.cell_key = '{cell.key}'")[0]
    assert [f.path for f in client.list_artifacts(run.info.run_id, "checkpoint")] == ["checkpoint/checkpoint.pt"]

    resumed = suite_process(tmp_path, base, tmp_path / "machine-b", args=args)  # an empty run dir
    output, code = finish(resumed)
    assert code == 0 and "Traceback" not in output, output
    assert f"{cell.label}: finished" in output and "resumed from epoch 1" in output, output
    runs = client.search_runs([client.get_experiment_by_name("moved").experiment_id],
                              f"tags.cell_key = '{cell.key}' and tags.role = 'cell'")
    assert [r.info.run_id for r in runs] == [run.info.run_id] and runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")] == [1, 2, 3]
    assert client.list_artifacts(run.info.run_id, "checkpoint") == []  # dropped once the cell finished


def test_the_claim_of_a_killed_invocation_on_another_machine_is_taken_over_after_the_timeout(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second = expand(load_suite("smoke"), Overrides(seeds=1, epochs=3, limit_train_batches=2,
                                                          methods=("bp", "lls-square")))
    args = ["--seeds", "1", "--epochs", "3", "--limit-train-batches", "2", "--methods", "bp,lls-square",
            "--device", "cpu", "--no-profile"]
    output, code = finish(suite_process(tmp_path, uri, tmp_path / "runs", {CRASH_ENV: f"{second.key}:2"}, args))
    assert code == -9, output
    client = MlflowClient(uri)
    claims = client.get_experiment_by_name(claims_experiment("llsbench")).experiment_id
    [orphan] = client.search_runs([claims], f"tags.cell_key = '{second.key}'")
    client.set_tag(orphan.info.run_id, "claim.host", "another-machine")  # its process cannot be checked from here

    output, code = finish(suite_process(tmp_path, uri, tmp_path / "runs", {TIMEOUT_ENV: "1"}, args))
    assert code == 0 and f"{first.label}: skipped" in output, output
    assert f"{second.label}: finished" in output and "resumed from epoch 2" in output, output
    assert_each_cell_finished_once(uri, [first, second], 3)
