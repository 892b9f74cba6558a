"""Cells on Ray: `--workers N` (a local instance) and `--ray-address` (a running cluster) train
every cell exactly once with the numbers of a sequential run; a worker killed mid-cell is
retried and the cell resumes from its checkpoint; Ctrl-C cancels the tasks, marks the running
cells KILLED and keeps their checkpoints; bad values are one-line errors. The suite is shown in
one progress view. Every Ray process a test starts, it stops (by pid)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from mlflow import MlflowClient
from processes import LLSBENCH, cell_runs, cli_env, free_port, interruptible

from llsbench.cli import cli
from llsbench.executor import SuiteProgress
from llsbench.suites import CellOutcome, Overrides, RunContext, expand, load_suite, run_suite
from llsbench.suites.claims import claims_experiment
from llsbench.suites.faults import CRASH_ENV

SMOKE = load_suite("smoke")
PARITY = Overrides(seeds=1, epochs=1, limit_train_batches=3, methods=("bp", "lls-square", "dfa"))
MIXED = {  # one cell that trains on the bundled digits, one whose data is missing
    "name": "ray-mixed", "description": "a cell that works and one that fails", "seeds": [7],
    "settings": {"epochs": 2, "limit_train_batches": 2},
    "matrix": {"datasets": ["digits", "mnist-plain"], "models": ["smallconv"], "methods": ["bp"]}}
RAY = str(Path(sys.executable).parent / "ray")


def short_temp_dir(prefix: str) -> Path:
    """Ray's socket paths live under its temp dir and must stay short (108 bytes on Linux)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def uri_in(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


# ---- without Ray ----------------------------------------------------------------------------

def test_the_sequential_path_never_imports_ray():
    code = ("import sys, llsbench.cli, llsbench.cli.suite, llsbench.executor, llsbench.suites.runner; "
            "sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers 0: need at least 1"),
    (["--workers", "2", "--gpus-per-cell", "-1"], "--gpus-per-cell -1: use 0 (CPU), a fraction up to 1"),
    (["--workers", "2", "--gpus-per-cell", "1.5"], "--gpus-per-cell 1.5: use 0 (CPU), a fraction up to 1"),
    (["--workers", "2", "--cpus-per-cell", "0"], "--cpus-per-cell 0: need at least 1"),
    (["--cpus-per-cell", "2"], "--cpus-per-cell: for cells run by Ray only; add --workers N"),
    (["--ray-address", "head-without-port"], "--ray-address 'head-without-port': use auto or HOST:PORT"),
    (["--ray-address", "ray://127.0.0.1:{free}"], "--ray-address ray://127.0.0.1:{free}: Ray Client (ray://) cannot"),
    (["--ray-address", "127.0.0.1:{free}"], "--ray-address 127.0.0.1:{free}: nothing answers at 127.0.0.1:{free}"),
    (["--workers", "2", "--device", "cuda"], "--device cuda with --gpus-per-cell 0: a cell that asks Ray for no GPU"),
    (["--workers", "2", "--device", "cuda:1", "--gpus-per-cell", "0"],
     "--device cuda:1 with --gpus-per-cell 0: a cell that asks Ray for no GPU sees none; give --gpus-per-cell F"),
])
def test_bad_engine_values_are_one_line_errors_that_record_nothing(args, message, tmp_path):
    port = str(free_port())
    args = [a.replace("{free}", port) for a in args]
    result = CliRunner().invoke(cli, ["run", "suite", "smoke", "--seeds", "1", "--tracking-uri",
                                      uri_in(tmp_path), "--run-dir", str(tmp_path / "runs"), *args])
    assert result.exit_code == 2, result.output
    assert f"Error: {message.replace('{free}', port)}" in result.output
    assert "Traceback" not in result.output and result.output.count("Error:") == 1
    assert list(tmp_path.iterdir()) == []  # no store, no run dir: nothing was started


def test_the_progress_view_counts_the_suite_and_estimates_the_rest():
    cells = expand(SMOKE, PARITY)
    now = [0.0]
    lines = []
    progress = SuiteProgress(cells, lines.append, counts=True, clock=lambda: now[0])
    progress.started(cells[0])
    progress.started(cells[1])
    assert progress.status() == "0/3 done, 0 failed, 2 running, 1 queued; 0:00 elapsed, ETA ?"
    now[0] = 60.0
    progress.completed(CellOutcome(cells[1], "finished", final_test_acc=50.0, seconds=59.0))
    assert lines == [f"[1/3] {cells[1].label}: finished, test acc 50.00% (59.0 s) | "
                     "1/3 done (1 finished), 0 failed, 1 running, 1 queued; 1:00 elapsed, ETA 2:00"]
    progress.completed(CellOutcome(cells[0], "failed", reason="boom"))
    progress.completed(CellOutcome(cells[2], "skipped"))
    assert progress.status().startswith("2/3 done (1 finished, 1 skipped), 1 failed, 0 running, 0 queued")
    assert [o.cell.key for o in progress.in_cell_order()] == [c.key for c in cells]


def test_on_a_terminal_the_counts_are_one_status_line_redrawn_in_place():
    class Terminal:
        text = ""

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    cells = expand(SMOKE, PARITY)
    terminal, lines = Terminal(), []
    progress = SuiteProgress(cells, lines.append, counts=True, live=terminal, clock=lambda: 0.0)
    progress.started(cells[0])
    progress.completed(CellOutcome(cells[0], "finished"))
    progress.close()
    assert lines == [f"[1/3] {cells[0].label}: finished"]  # the counts stay on the status line
    assert terminal.text.count("\r\x1b[2K") >= 3 and terminal.text.endswith("\r\x1b[2K")
    assert "1/3 done (1 finished), 0 failed, 0 running, 2 queued" in terminal.text


# ---- a local Ray instance, in this process ----------------------------------------------------

@pytest.fixture(scope="class")
def mixed(tmp_path_factory):
    path = tmp_path_factory.mktemp("mixed") / "ray-mixed.yaml"
    path.write_text(yaml.safe_dump(MIXED))
    suite = load_suite(str(path))
    return suite, expand(suite)


@pytest.fixture(scope="class")
def local_ray(one_thread, mixed):
    """One local instance (2 workers, 1 CPU each) for the class. Its workers inherit a crash
    order for the digits cell of `mixed` only: it SIGKILLs its worker right after checkpointing
    epoch 1."""
    from llsbench.executor.ray_engine import RayEngine, RayOptions

    crashing = mixed[1][0]
    assert crashing.dataset == "digits"
    temp, saved = short_temp_dir("rt"), dict(os.environ)
    os.environ.update({"RAY_TMPDIR": str(temp), CRASH_ENV: f"{crashing.key}:1"})
    try:
        with RayEngine(RayOptions(workers=2, cpus_per_cell=1)) as engine:
            yield engine
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
class TestLocalInstance:
    def test_two_workers_train_each_cell_once_with_the_sequential_numbers(self, local_ray, tmp_path):
        cells = expand(SMOKE, PARITY)
        lines = []
        _, sequential = run_suite(SMOKE, cells, RunContext(tracking_uri=uri_in(tmp_path / "seq"),
                                                           run_dir=tmp_path / "seq" / "runs", device="cpu"),
                                  command="test", echo=lambda line: None)
        uri, run_dir = uri_in(tmp_path / "ray"), tmp_path / "ray" / "runs"
        parent, parallel = run_suite(SMOKE, cells, RunContext(tracking_uri=uri, run_dir=run_dir, device="cpu"),
                                     command="test", echo=lines.append, engine=local_ray)
        assert [o.status for o in parallel] == ["finished"] * 3
        assert {o.cell.key: o.final_test_acc for o in parallel} == {o.cell.key: o.final_test_acc for o in sequential}
        runs = cell_runs(uri)
        assert sorted(r.data.tags["cell_key"] for r in runs) == sorted(c.key for c in cells)
        assert all(r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parent for r in runs)
        tags = MlflowClient(uri).get_run(parent).data.tags
        assert (tags["cells_finished"], tags["cells_failed"]) == ("3", "0") and tags["engine"].startswith("ray (")
        assert len(lines) == 3 and "| 3/3 done (3 finished), 0 failed, 0 running, 0 queued;" in lines[-1]
        for cell in cells:
            assert f"--- {cell.label} (cell {cell.key})" in (run_dir / "logs" / f"{cell.key}.log").read_text()
            assert not (run_dir / cell.key).exists()  # finished cells leave no checkpoint

    def test_a_killed_worker_is_retried_and_its_cell_resumes_a_failed_cell_is_recorded(self, local_ray, mixed,
                                                                                         tmp_path):
        suite, (crashing, failing) = mixed
        uri, run_dir = uri_in(tmp_path), tmp_path / "runs"
        ctx = RunContext(tracking_uri=uri, run_dir=run_dir, device="cpu", data_dir=str(tmp_path / "no-data"))
        parent, (resumed, failed) = run_suite(suite, [crashing, failing], ctx, command="test",
                                              echo=lambda line: None, engine=local_ray)
        assert (resumed.status, resumed.resumed_from) == ("finished", 1)
        assert failed.status == "failed" and "mnist" in failed.reason.lower()
        assert failed.log == str(run_dir.resolve() / "logs" / f"{failing.key}.log")
        runs = {r.data.tags["cell_key"]: r for r in cell_runs(uri, suite="ray-mixed")}
        assert runs[failing.key].info.status == "FAILED" and runs[failing.key].data.tags["failure_reason"]
        run = runs[crashing.key]
        assert run.info.status == "FINISHED" and run.data.tags["resumed_from_epoch"] == "1"
        steps = [m.step for m in MlflowClient(uri).get_metric_history(run.info.run_id, "test_acc")]
        assert steps == [1, 2]  # epoch 1 logged once (from the checkpoint, after the retry), epoch 2 once
        log = (run_dir / "logs" / f"{crashing.key}.log").read_text()
        assert log.count(f"--- {crashing.label}") == 2  # two attempts, one log
        tags = MlflowClient(uri).get_run(parent).data.tags
        assert (tags["cells_finished"], tags["cells_failed"]) == ("1", "1")


# ---- a Ray cluster started by `ray start --head` ------------------------------------------------

def ray_processes(temp: Path) -> list[int]:
    """The processes of the Ray instance under `temp`: those naming it on their command line
    (GCS, raylet, agents) and all their descendants (the workers)."""
    parents, named = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if re.search(re.escape(str(temp)) + r"(/|\s|$)", cmdline):
            named.add(int(entry.name))
    found, grew = set(named), True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return sorted(found - {os.getpid()})


def stop(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.2)


@pytest.fixture(scope="class")
def cluster():
    """A one-node Ray cluster on 127.0.0.1 (2 CPUs, free ports), stopped by pid afterwards."""
    temp, port = short_temp_dir("rc"), free_port()
    env = {k: v for k, v in cli_env().items() if k != "RAY_ADDRESS"} | {"RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run(
        [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
         "--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp}",
         f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"],
        env=env, capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"127.0.0.1:{port}"
    finally:
        stop(ray_processes(temp))
        assert ray_processes(temp) == []
        shutil.rmtree(temp, ignore_errors=True)


def suite_cli(args: list[str], cwd: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([LLSBENCH, "run", "suite", "smoke", "--device", "cpu", "--tracking-uri", uri_in(cwd),
                             "--run-dir", "runs", *args], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, preexec_fn=interruptible, **popen)


@pytest.mark.slow
class TestCluster:
    def test_cells_go_to_the_cluster_given_by_address(self, cluster, tmp_path):
        cli = suite_cli(["--seeds", "1", "--epochs", "1", "--limit-train-batches", "2", "--methods", "bp,dfa",
                         "--ray-address", cluster, "--cpus-per-cell", "1"], tmp_path)
        out, _ = cli.communicate(timeout=400)
        assert cli.returncode == 0, out
        assert "2/2 done (2 finished), 0 failed, 0 running, 0 queued" in out and "Traceback" not in out
        runs = cell_runs(uri_in(tmp_path))
        assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
        assert all((tmp_path / "runs" / "logs" / f"{r.data.tags['cell_key']}.log").exists() for r in runs)

    def test_asking_the_cluster_for_gpus_it_lacks_is_a_one_line_error(self, cluster, tmp_path):
        cli = suite_cli(["--seeds", "1", "--ray-address", cluster, "--gpus-per-cell", "0.25"], tmp_path)
        out, _ = cli.communicate(timeout=120)
        assert cli.returncode == 2 and "Error: --gpus-per-cell 0.25: the Ray cluster has 0 GPUs" in out, out
        assert "Traceback" not in out and cell_runs(uri_in(tmp_path)) == []

    def test_ctrl_c_cancels_the_tasks_marks_running_cells_killed_and_keeps_their_checkpoints(self, cluster, tmp_path):
        # long enough that no cell finishes before the Ctrl-C, which comes after the first checkpoint
        cli = suite_cli(["--seeds", "1", "--epochs", "200", "--limit-train-batches", "30", "--methods", "bp,lls-square,dfa",
                         "--ray-address", cluster, "--workers", "2"], tmp_path)
        runs = tmp_path / "runs"
        deadline = time.monotonic() + 300
        while not list(runs.glob("*/checkpoint.pt")) and cli.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(cli.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the command's process group
        out, _ = cli.communicate(timeout=180)
        assert cli.returncode == 130, out
        assert "interrupted" in out and "Resume with:\n  llsbench run suite smoke" in out and "Traceback" not in out
        uri = uri_in(tmp_path)
        cells = {r.data.tags["cell_key"]: r for r in cell_runs(uri)}
        checkpointed = {path.parent.name for path in runs.glob("*/checkpoint.pt")}
        assert checkpointed and checkpointed <= set(cells)  # kept, for the cells that had one
        assert all(r.info.status in ("KILLED", "FINISHED") for r in cells.values())  # none left RUNNING
        assert all(cells[key].info.status == "KILLED" for key in checkpointed)
        (parent,) = cell_runs(uri, role="suite")
        assert parent.info.status == "KILLED"
        killed = sum(r.info.status == "KILLED" for r in cells.values())
        # a cell cancelled before it created its MLflow run is interrupted without a run
        assert int(parent.data.tags["cells_interrupted"]) >= killed
        assert parent.data.tags["cells_finished"] == str(len(cells) - killed)
        client = MlflowClient(uri)
        claims = client.get_experiment_by_name(claims_experiment("llsbench")).experiment_id
        # the driver released its cancelled cells' claims: no machine has to wait out their timeout
        assert client.search_runs([claims], "") == []
