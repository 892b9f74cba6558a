"""Cells as Ray tasks: up to N at once on this machine (a local Ray instance, started here and
stopped at the end), or on a running Ray cluster (`--ray-address`).

Each cell is one generator task around `run_cell` (`cell_task`): it yields `started` when a
worker takes it up, then the cell's outcome. A worker or node lost mid-cell makes Ray run the
task again (`max_retries`): the cell continues from its checkpoint in the same MLflow run (a
cell's claim is re-entrant for its own invocation). Ctrl-C cancels every task (force: the
worker processes are killed), closes the running cells' MLflow runs as KILLED, keeps their
checkpoints and releases the claims the killed tasks held (this invocation's only).

The local instance binds 127.0.0.1 only, starts no dashboard and reports no usage stats.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow

from llsbench.errors import LLSBenchError
from llsbench.executor.cell_task import STARTED, cell_task, log_path
from llsbench.executor.engine import Engine
from llsbench.executor.left_runs import close_left_runs, release_left_claim
from llsbench.suites.runner import CellOutcome, RunContext

WAIT_S = 1.0  # how often the status line is redrawn while nothing happens
CANCEL_WAIT_S = 30.0  # how long a cancelled task may take to end
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20  # cells pass only small objects; keep Ray's shared memory small
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's processes bind 127.0.0.1 (read when Ray is imported)
_AUTH_ENV = "RAY_AUTH_MODE"


@dataclass(frozen=True)
class RayOptions:
    workers: int | None = None  # cells at once; a local instance is sized for them
    address: str | None = None  # an existing cluster: auto or HOST:PORT (its GCS)
    gpus_per_cell: float = 0.0
    cpus_per_cell: int = 1
    max_retries: int = 3  # a task whose worker or node is lost runs again, this often

    def __post_init__(self):
        if self.workers is not None and self.workers < 1:
            raise LLSBenchError(f"--workers {self.workers}: need at least 1")
        if self.cpus_per_cell < 1:
            raise LLSBenchError(f"--cpus-per-cell {self.cpus_per_cell}: need at least 1")
        gpus = self.gpus_per_cell
        if self.address is not None and self.address.startswith("ray://"):
            raise LLSBenchError(f"--ray-address {self.address}: Ray Client (ray://) cannot stream a cell's start and "
                                "outcome; run llsbench on a node of the cluster with --ray-address auto (or HEAD:6379)")
        if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
            raise LLSBenchError(f"--gpus-per-cell {gpus:g}: use 0 (CPU), a fraction up to 1 (0.25 puts four "
                                "cells on a GPU) or a whole number of GPUs")

    def check_device(self, device: str) -> None:
        """A CUDA device needs a GPU share: Ray shows a task that asked for none no GPU at all."""
        if device.startswith("cuda") and not self.gpus_per_cell:
            raise LLSBenchError(f"--device {device} with --gpus-per-cell {self.gpus_per_cell:g}: a cell that asks Ray "
                                "for no GPU sees none; give --gpus-per-cell F (a fraction up to 1, or a whole number "
                                "of GPUs) with --device cuda, or use --device auto or cpu")


class RayEngine(Engine):
    concurrent = True

    def __init__(self, options: RayOptions):
        if options.workers is None and options.address is None:
            raise LLSBenchError("the Ray engine needs --workers N (this machine) or --ray-address (a cluster)")
        self.options = options
        self.ray = None

    @property
    def description(self) -> str:
        o = self.options
        where = f"cluster {o.address}" if o.address else "local instance"
        at_once = f"up to {o.workers} cells at once" if o.workers else "as many cells at once as the cluster fits"
        return (f"ray ({where}, {at_once}, {o.cpus_per_cell} CPU + {o.gpus_per_cell:g} GPU per cell, "
                f"max_retries {o.max_retries})")

    def __enter__(self) -> "RayEngine":
        self.ray = _connect(self.options)
        try:
            _check_resources(self.ray.cluster_resources(), self.options)
        except BaseException:
            self.ray.shutdown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.ray is not None:
            self.ray.shutdown()  # stops a local instance; leaves a cluster running

    def run(self, cells, ctx, progress) -> None:
        ray, o = self.ray, self.options
        ctx = self._portable(ctx)
        task = ray.remote(num_cpus=o.cpus_per_cell, num_gpus=o.gpus_per_cell, max_retries=o.max_retries)(cell_task)
        queue = list(reversed(cells))
        in_flight: dict = {}  # ObjectRefGenerator -> Cell
        limit = o.workers or len(cells)
        try:
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    cell = queue.pop()
                    in_flight[task.options(name=f"cell {cell.label}").remote(cell, ctx, o.cpus_per_cell)] = cell
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_S)
                for gen in ready:
                    self._advance(gen, in_flight, ctx, progress)
                progress.refresh()
        except KeyboardInterrupt:
            self._stop(in_flight, ctx, progress)
            raise

    def _portable(self, ctx: RunContext) -> RunContext:
        """The context as a worker with another working directory, on another machine, sees it."""
        device = "cpu" if ctx.device == "auto" and not self.options.gpus_per_cell else ctx.device
        return replace(ctx, run_dir=ctx.run_dir.resolve(), device=device,
                       tracking_uri=absolute_uri(ctx.tracking_uri or mlflow.get_tracking_uri()),
                       data_dir=str(Path(ctx.data_dir).resolve()) if ctx.data_dir else None)

    def _advance(self, gen, in_flight: dict, ctx: RunContext, progress) -> None:
        """Take the next item of a ready task: its start, its outcome, or its failure."""
        cell = in_flight[gen]
        try:
            item = self.ray.get(next(gen))
        except StopIteration:
            del in_flight[gen]
            return
        except Exception as exc:  # the task raised, or its worker was lost more often than max_retries
            del in_flight[gen]
            reason = _failure_reason(exc)
            run_id = close_left_runs(ctx, cell, "FAILED", reason)
            release_left_claim(ctx, cell)  # a worker lost for good leaves it behind
            progress.completed(CellOutcome(cell, "failed", run_id, reason, log=str(log_path(ctx.run_dir, cell))))
            return
        if item == STARTED:
            progress.started(cell)
        else:
            del in_flight[gen]
            progress.completed(item)

    def _stop(self, in_flight: dict, ctx: RunContext, progress) -> None:
        """Ctrl-C: cancel every task, then close the runs of the cells that were running and
        release the claims the cancelled tasks held."""
        for gen in in_flight:
            self.ray.cancel(gen, force=True)
        for gen, cell in in_flight.items():
            outcome = self._last_outcome(gen)
            if outcome is not None:  # it ended before the cancel reached it
                progress.completed(outcome)
                continue
            if cell.key in progress.running:
                run_id = close_left_runs(ctx, cell, "KILLED")
                progress.completed(CellOutcome(cell, "interrupted", run_id, "Ctrl-C",
                                               log=str(log_path(ctx.run_dir, cell))))
            release_left_claim(ctx, cell)  # after its run is closed; also a task whose start had not reached us

    def _last_outcome(self, gen) -> CellOutcome | None:
        try:
            for ref in gen:
                item = self.ray.get(ref, timeout=CANCEL_WAIT_S)
                if isinstance(item, CellOutcome):
                    return item
        except Exception:  # cancelled (the usual case), or lost
            return None
        return None


def _connect(options: RayOptions):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if options.address is None:
        os.environ.pop("RAY_ADDRESS", None)  # --workers alone means this machine, whatever RAY_ADDRESS says
    if options.address is None or _is_loopback(options.address):
        os.environ[_LOOPBACK_ENV] = "0"  # else Ray swaps 127.0.0.1 for this machine's outward address
    if options.address is not None and _AUTH_ENV not in os.environ and _has_auth_token():
        # a head started where a token exists requires it; Ray itself sends it only for `auto`
        os.environ[_AUTH_ENV] = "token"
    import ray

    quiet = dict(log_to_driver=False, logging_level=logging.ERROR, namespace="llsbench")
    if options.address is None:
        ray.init(address="local", num_cpus=options.workers * options.cpus_per_cell, include_dashboard=False,
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
        return ray
    _check_reachable(options.address)
    try:
        ray.init(address=options.address, **quiet)
    except Exception as exc:
        raise LLSBenchError(f"--ray-address {options.address}: {str(exc).splitlines()[0]}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in a second with one line instead of Ray's minutes of retries on a dead address."""
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            target = canonicalize_bootstrap_address("auto")
        except ConnectionError:
            target = None
        if target is None:
            raise LLSBenchError("--ray-address auto: no running Ray cluster found on this machine "
                                "(start one with `ray start --head`, or give its address)")
    else:
        target = address
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise LLSBenchError(f"--ray-address {address!r}: use auto or HOST:PORT (the head's GCS, port 6379 by default)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise LLSBenchError(f"--ray-address {address}: nothing answers at {host}:{port} ({exc.strerror or exc}); "
                            "start the cluster's head with `ray start --head`, or use --workers N "
                            "for a local instance") from None


def _has_auth_token() -> bool:
    """Where Ray looks for its cluster token (a cluster without token auth ignores one sent)."""
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").exists())


def _is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0]
    return host == "localhost" or host.startswith("127.")


def _check_resources(total: dict, options: RayOptions) -> None:
    """Tasks asking for more than the cluster has would wait for ever: say so now."""
    gpus, cpus = total.get("GPU", 0), total.get("CPU", 0)
    if options.gpus_per_cell > gpus:
        raise LLSBenchError(f"--gpus-per-cell {options.gpus_per_cell:g}: the Ray cluster has {gpus:g} GPUs")
    if options.cpus_per_cell > cpus:
        raise LLSBenchError(f"--cpus-per-cell {options.cpus_per_cell}: the Ray cluster has {cpus:g} CPUs")


def _failure_reason(exc: Exception) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, Exception):
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def absolute_uri(uri: str) -> str:
    """A tracking URI that means the same store from any working directory."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    if "://" not in uri and not uri.startswith("file:"):
        return str(Path(uri).resolve())
    return uri
