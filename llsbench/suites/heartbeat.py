"""Heartbeats in the tracking store: a run (a cell's claim, a suite invocation's parent run)
carries the time its owner last said it was alive, refreshed by a background thread, and the
host and process it runs in. Another process reads them to tell an abandoned run from a live
one: silent for longer than the timeout, or its process on this machine gone.

`LLSBENCH_CLAIM_TIMEOUT_S` (default 120) is how long a heartbeat may be silent before its run
counts as abandoned; heartbeats come every `LLSBENCH_HEARTBEAT_S` (default 15, at most a
quarter of the timeout). Machines sharing a store need clocks that agree well within it.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Callable, Mapping

TIMEOUT_ENV = "LLSBENCH_CLAIM_TIMEOUT_S"
HEARTBEAT_ENV = "LLSBENCH_HEARTBEAT_S"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_HEARTBEAT_S = 15.0


def timeout_s() -> float:
    return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))


def heartbeat_s() -> float:
    return min(float(os.environ.get(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S)), timeout_s() / 4)


def now_ms() -> int:
    return int(time.time() * 1000)


def beat_ms(tags: Mapping[str, str], tag: str) -> int:
    """The heartbeat recorded under `tag` (0 when there is none)."""
    beat = tags.get(tag, "0")
    return int(beat) if beat.isdigit() else 0


def silent_s(last_ms: int) -> float:
    return (now_ms() - last_ms) / 1000


def process_gone(host: str | None, pid: str | None) -> bool:
    """The process is known dead: it ran on this machine and no longer exists."""
    return host == socket.gethostname() and bool(pid) and pid.isdigit() and not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class Beating:
    """Calls `beat` every `heartbeat_s()` in a daemon thread, from `start()` until `stop()`."""

    def __init__(self, beat: Callable[[], None], name: str):
        self.beat, self.name = beat, name
        self._stop = threading.Event()

    def start(self) -> "Beating":
        threading.Thread(target=self._beat_until_stopped, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _beat_until_stopped(self) -> None:
        interval = heartbeat_s()
        while not self._stop.wait(interval):
            self.beat()
