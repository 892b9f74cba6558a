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


@contextmanager
def serving(args: list[str], cwd, port: int):
    """Start `llsbench <args>` (a server on `port`), wait until it answers, stop it afterwards."""
    server = subprocess.Popen([LLSBENCH, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                status, _ = get(f"{base}/health")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "MLflow server did not answer in time"
                time.sleep(0.5)
        assert status == 200
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:  # uvicorn waits for open keep-alive connections (this process's clients): do not wait long
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)
        server.stdout.close()


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
