"""What tests that start processes share: the `llsbench` script, free 127.0.0.1 ports, waiting
for a server to answer, and stopping what a test started (by its process group, never by name)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LLSBENCH = shutil.which("llsbench", path=str(Path(sys.executable).parent)) or shutil.which("llsbench")
STARTUP_S = 120  # a cold MLflow server on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, payload: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


@dataclass
class Server:
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serving(args: list[str], cwd, port: int):
    """Start `llsbench <args>` (a server on `port`), wait until it answers, stop it afterwards.
    Its output goes to a file, not a pipe a busy server could fill and block on."""
    log = Path(cwd) / f"server-{port}.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([LLSBENCH, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    running = Server(f"http://127.0.0.1:{port}", log)
    try:
        _wait_healthy(running, server)
        yield running
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:  # uvicorn waits for open keep-alive connections (this process's clients): do not wait long
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)


def running_ui(tracking_uri: str, cwd: Path):
    """`llsbench ui` on a free port over `tracking_uri`."""
    port = free_port()
    return serving(["ui", "--port", str(port), "--tracking-uri", tracking_uri], cwd, port)


def _wait_healthy(running: Server, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_S
    while True:
        try:
            status, _ = get(f"{running.base}/health")
            assert status == 200
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            assert server.poll() is None, running.output()
            assert time.monotonic() < deadline, f"server did not answer in {STARTUP_S} s:\n{running.output()}"
            time.sleep(0.5)


def interruptible() -> None:
    """`preexec_fn` for a subprocess a test will Ctrl-C: SIGINT back to its default, for pytest
    may run where SIGINT is ignored (started in the background by a non-interactive shell), and
    a child inherits that, so Python would install no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_env(extra: dict | None = None) -> dict:
    """The environment for an `llsbench` subprocess: one thread, no crash injection unless asked."""
    from llsbench.suites.faults import CRASH_ENV

    return {k: v for k, v in os.environ.items() if k != CRASH_ENV} | {"OMP_NUM_THREADS": "1"} | (extra or {})


def cell_runs(uri: str, suite: str = "smoke", role: str = "cell", experiment: str = "llsbench") -> list:
    """The suite's runs with this role in the store, newest first."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], f"tags.suite = '{suite}' and tags.role = '{role}'",
                              order_by=["attributes.start_time DESC"])
