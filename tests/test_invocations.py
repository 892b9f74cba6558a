"""Parent runs of dead suite invocations: the next invocation of the suite closes them KILLED,
with the cell runs they left RUNNING that nobody took over, saying why in a tag; the parent of
a live invocation (heart-beating, or holding a live claim) is never touched."""
import os
import signal
import subprocess
import time

import pytest
from mlflow import MlflowClient
from processes import LLSBENCH, cell_runs, cli_env, interruptible

from llsbench.suites import Overrides, RunContext, claims, expand, invocations, load_suite, prepare_tracking
from llsbench.suites.heartbeat import HEARTBEAT_ENV, TIMEOUT_ENV, now_ms

EXPERIMENT = "llsbench"
SMOKE = load_suite("smoke")


def parent_run(client, experiment_id, heartbeat_ms, host="another-machine", pid="4242"):
    return client.create_run(experiment_id, run_name="suite smoke", tags={
        "suite": "smoke", "role": "suite", invocations.HEARTBEAT: str(heartbeat_ms), invocations.HOST: host,
        invocations.PID: pid}).info.run_id


def cell_run(client, experiment_id, parent_id, cell):
    return client.create_run(experiment_id, run_name=cell.label,
                             tags={**cell.tags(), "mlflow.parentRunId": parent_id}).info.run_id


def test_a_silent_parent_and_its_orphan_cell_runs_are_closed_live_ones_are_not(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = prepare_tracking(RunContext(tracking_uri=uri))
    orphan_cell, taken_cell, live_cell, claimed_cell = expand(SMOKE, Overrides(seeds=1))[:4]
    silent = now_ms() - 300_000  # longer ago than the 120 s timeout
    dead = parent_run(client, experiment_id, silent)
    orphan, taken = cell_run(client, experiment_id, dead, orphan_cell), cell_run(client, experiment_id, dead, taken_cell)
    taker = claims.take(client, EXPERIMENT, taken_cell, "a-live-invocation")  # continues `taken`
    live = parent_run(client, experiment_id, now_ms())
    live_child = cell_run(client, experiment_id, live, live_cell)
    claiming = parent_run(client, experiment_id, silent)  # its own beat is old, but its claim beats
    claimed = claims.take(client, EXPERIMENT, claimed_cell, claiming)

    closed = invocations.close_dead(client, EXPERIMENT, "smoke", by="the-next-invocation")

    assert [(c.parent_id, c.cell_run_ids) for c in closed] == [(dead, (orphan,))]
    status = {run_id: client.get_run(run_id).info.status for run_id in (dead, orphan, taken, live, live_child, claiming)}
    assert status == {dead: "KILLED", orphan: "KILLED", taken: "RUNNING", live: "RUNNING", live_child: "RUNNING",
                      claiming: "RUNNING"}
    reason = client.get_run(dead).data.tags[invocations.REASON]
    assert "has not beaten for 300 s (timeout 120 s)" in reason and "closed by invocation the-next-invocation" in reason
    assert client.get_run(orphan).data.tags[invocations.REASON] == reason
    for claim in (taker, claimed):
        with claim:
            pass


def suite_cli(folder, uri, run_dir, methods, epochs, env_extra=None):
    return subprocess.Popen([LLSBENCH, "run", "suite", "smoke", "--seeds", "1", "--epochs", str(epochs),
                             "--methods", methods, "--device", "cpu", "--no-profile", "--no-save-model",
                             "--tracking-uri", uri, "--run-dir", str(run_dir)],
                            cwd=folder, env=cli_env(env_extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=interruptible)


def parents(uri) -> dict:
    return {r.data.tags[invocations.PID]: r for r in cell_runs(uri, role="suite")}


@pytest.mark.slow
def test_the_parent_of_a_sigkilled_invocation_is_closed_by_the_next_one_a_live_invocation_is_left_alone(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    live = suite_cli(tmp_path, uri, tmp_path / "live", "dfa", 500, {HEARTBEAT_ENV: "0.25"})
    killed = suite_cli(tmp_path, uri, tmp_path / "runs", "bp", 10)
    try:
        deadline = time.monotonic() + 300
        while not (list((tmp_path / "runs").glob("*/checkpoint.pt")) and str(live.pid) in parents(uri)):
            assert killed.poll() is None and live.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        os.kill(killed.pid, signal.SIGKILL)
        assert killed.wait(timeout=60) == -signal.SIGKILL
        dead_parent = parents(uri)[str(killed.pid)].info.run_id
        assert MlflowClient(uri).get_run(dead_parent).info.status == "RUNNING"  # what it leaves behind

        resumed = suite_cli(tmp_path, uri, tmp_path / "runs", "bp", 10, {TIMEOUT_ENV: "20"})
        output = resumed.communicate(timeout=400)[0]
        assert resumed.returncode == 0 and "Traceback" not in output, output
        found = parents(uri)
        assert f"closed the parent run {dead_parent} of a dead invocation (KILLED, with 1 cell run it left RUNNING)" in output, output
        assert f"its process (pid {killed.pid} on" in output
        assert found[str(live.pid)].info.status == "RUNNING", output  # the live one: untouched
        assert found[str(live.pid)].info.run_id not in output
        dead = found[str(killed.pid)]
        assert dead.info.status == "KILLED"
        assert f"closed by invocation {found[str(resumed.pid)].info.run_id}" in dead.data.tags[invocations.REASON]
        [bp] = [r for r in cell_runs(uri) if r.data.tags["method_label"] == "bp"]
        assert bp.info.status == "FINISHED" and "resumed_from_epoch" in bp.data.tags  # closed, then continued
        assert bp.data.tags[invocations.REASON].startswith("its process")
    finally:
        for process in (killed, live):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGINT)
                try:
                    process.communicate(timeout=120)
                except subprocess.TimeoutExpired:  # let the first failure show, and leave no process behind
                    process.kill()
                    process.communicate()
    assert live.returncode == 130  # stopped by the test, as Ctrl-C would
