"""`llsbench ui` for tests: started on a free 127.0.0.1 port, waited for, and stopped by its
process group (never by name: other sessions run MLflow servers too). Its output goes to a file,
not a pipe a busy server could fill and block on."""
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
class UI:
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_ui(tracking_uri: str, cwd: Path):
    port = free_port()
    log = cwd / f"ui-{port}.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([LLSBENCH, "ui", "--port", str(port), "--tracking-uri", tracking_uri], cwd=cwd,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    ui = UI(f"http://127.0.0.1:{port}", log)
    try:
        _wait_healthy(ui, server)
        yield ui
    finally:
        _stop(server)


def _wait_healthy(ui: UI, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_S
    while True:
        try:
            status, _ = get(f"{ui.base}/health")
            assert status == 200
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            assert server.poll() is None, ui.output()
            assert time.monotonic() < deadline, f"MLflow UI did not answer in {STARTUP_S} s:\n{ui.output()}"
            time.sleep(0.5)


def _stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=20)
