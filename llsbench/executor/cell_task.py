"""What a worker does for one cell: train it with its share of the CPU, its console output in
the cell's log file. Runs inside a Ray worker process; imports nothing from Ray."""
from __future__ import annotations

import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from llsbench.host_memory import apply_host_memory_policy
from llsbench.suites.cells import Cell
from llsbench.suites.runner import CellOutcome, RunContext, run_cell

STARTED = "started"  # the first thing a cell task yields: the driver then counts the cell as running


def log_path(run_dir: Path, cell: Cell) -> Path:
    return run_dir / "logs" / f"{cell.key}.log"


def cell_task(cell: Cell, ctx: RunContext, threads: int) -> Iterator[str | CellOutcome]:
    """A generator task: yields `STARTED`, then the cell's outcome (a retried task yields the same
    two items again; Ray hands each to the driver once)."""
    yield STARTED
    torch.set_num_threads(threads)
    apply_host_memory_policy()  # $LLSBENCH_HOST_MEMORY of the worker's node (a local instance: the driver's)
    log = log_path(ctx.run_dir, cell)
    with console_to(log):
        print(f"--- {cell.label} (cell {cell.key}) on {socket.gethostname()}, pid {os.getpid()}, "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
        outcome = run_cell(cell, ctx)
    outcome.log = str(log)
    yield outcome


@contextmanager
def console_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Python's and the C runtime's) to `path`, appended."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
