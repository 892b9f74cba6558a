"""`llsbench ui` serves the MLflow UI and REST API on 127.0.0.1 over the suite's tracking store."""
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
from pathlib import Path

import pytest

from llsbench.suites import Overrides, RunContext, expand, load_suite, run_suite

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


@pytest.fixture
def suite_store(tmp_path, one_thread):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    suite = load_suite("smoke")
    cells = expand(suite, Overrides(seeds=1, epochs=1, limit_train_batches=1, methods=("bp",)))
    parent, outcomes = run_suite(suite, cells, RunContext(tracking_uri=uri, run_dir=tmp_path / "runs", device="cpu"),
                                 command="test", echo=lambda line: None)
    return uri, parent, outcomes[0].run_id


def test_ui_serves_the_suite_runs_over_http_on_localhost(suite_store, tmp_path):
    uri, parent_id, cell_id = suite_store
    port = free_port()
    server = subprocess.Popen([LLSBENCH, "ui", "--port", str(port), "--tracking-uri", uri], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                status, _ = get(f"{base}/health")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "MLflow UI did not answer in time"
                time.sleep(0.5)
        assert status == 200
        status, page = get(f"{base}/")
        assert status == 200 and b"<html" in page.lower()
        _, body = get(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=llsbench")
        experiment_id = json.loads(body)["experiment"]["experiment_id"]
        _, body = get(f"{base}/api/2.0/mlflow/runs/search",
                      {"experiment_ids": [experiment_id], "filter": "tags.suite = 'smoke'"})
        runs = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"]["tags"]} for r in json.loads(body)["runs"]}
        assert set(runs) == {parent_id, cell_id}
        assert runs[cell_id]["mlflow.parentRunId"] == parent_id and runs[parent_id]["role"] == "suite"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)
        server.stdout.close()
