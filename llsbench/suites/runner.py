"""Running cells: `run_cell` is one cell from its pure description (so an engine can run it
anywhere: in this process, or as a Ray task on another machine); `run_suite` runs a list of them
under one MLflow parent run, by an engine (`llsbench.executor`; default: in order, here).

A cell already FINISHED in MLflow with the same key is skipped; a cell with a checkpoint
continues from it and in the same MLflow run; a cell that fails (diverges, misses its data,
raises) is recorded as a FAILED run and the suite goes on; Ctrl-C marks the current cell's run
KILLED, keeps its checkpoint and stops the suite (`SuiteInterrupted`). A cell is claimed before
it trains (`claims`): one claimed by another live invocation is left to it (`elsewhere`).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Callable, Sequence

import mlflow
from mlflow.entities import Param, RunTag

from llsbench import tracking
from llsbench.artifacts import ModelArtifactCallback
from llsbench.config import resolve_device
from llsbench.errors import LLSBenchError
from llsbench.executor import Engine, SequentialEngine, SuiteProgress
from llsbench.profiling.callback import ProfileCallback
from llsbench.suites import claims, invocations, remote_checkpoint
from llsbench.suites.cells import Cell
from llsbench.suites.faults import crash_hooks
from llsbench.suites.resume import DEFAULT_RUN_DIR, CellDir, CellLedger, continuable_run
from llsbench.suites.schema import Suite
from llsbench.tracking import DEFAULT_EXPERIMENT, MlflowLogger, ensure_experiment, find_runs
from llsbench.trainer import Callback, Trainer

# elsewhere: claimed by another live invocation, which trains it
STATUSES = ("finished", "skipped", "failed", "interrupted", "elsewhere")


@dataclass(frozen=True)
class RunContext:
    """Where and how cells run; none of it changes what a cell is (or its key)."""

    tracking_uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    run_dir: Path = Path(DEFAULT_RUN_DIR)
    device: str = "auto"
    data_dir: str | None = None
    download: bool = False
    num_workers: int = 0
    progress: bool = False
    profile: bool = True  # log the rule's MACs / memory profile to each cell's run before training
    save_model: bool = True  # keep each finished cell's trained weights as an MLflow artifact
    parent_run_id: str | None = None
    owner: str | None = None  # the invocation's identity in cell claims (default: the parent run id)

    @property
    def claim_owner(self) -> str:
        return self.owner or self.parent_run_id or claims.process_owner()


@dataclass
class CellOutcome:
    cell: Cell
    status: str  # one of STATUSES
    run_id: str | None = None
    reason: str = ""
    final_test_acc: float | None = None
    resumed_from: int | None = None  # epoch the cell continued from, when it resumed
    seconds: float = 0.0
    log: str | None = None  # the file holding the cell's console output, when an engine kept one


@dataclass
class SuiteInterrupted(Exception):
    """Ctrl-C: the outcomes so far (the last one `interrupted`) and the parent run."""

    outcomes: list[CellOutcome] = field(default_factory=list)
    parent_run_id: str | None = None
    owner: str | None = None  # the invocation's identity in cell claims (default: the parent run id)


def run_cell(cell: Cell, ctx: RunContext, callbacks: Sequence[Callback] = ()) -> CellOutcome:
    """Run one cell to the end unless it is already finished in the tracking store or claimed
    by another live invocation (`elsewhere`)."""
    client = tracking.client(ctx.tracking_uri)
    experiment_id = ensure_experiment(ctx.experiment, ctx.tracking_uri)
    cell_dir = CellDir(ctx.run_dir, cell)
    done = _already_finished(client, experiment_id, cell, cell_dir)
    if done:
        return done
    try:
        claim = claims.take(client, ctx.experiment, cell, ctx.claim_owner)
    except claims.HeldElsewhere as held:
        return CellOutcome(cell, "elsewhere", held.cell_run_id, f"running in another invocation (owner {held.owner})")
    with claim:
        # it may have finished between the check above and the claim
        return _already_finished(client, experiment_id, cell, cell_dir) or _train(
            cell, ctx, client, experiment_id, cell_dir, claim, callbacks)


def _already_finished(client, experiment_id: str, cell: Cell, cell_dir: CellDir) -> CellOutcome | None:
    finished = find_runs(client, experiment_id, {"suite": cell.suite, "cell_key": cell.key}, status="FINISHED")
    if not finished:
        return None
    cell_dir.clear()  # a crash after the run finished may have left it behind
    return CellOutcome(cell, "skipped", finished[0].info.run_id,
                       final_test_acc=finished[0].data.metrics.get("final_test_acc"))


def _train(cell: Cell, ctx: RunContext, client, experiment_id: str, cell_dir: CellDir, claim: claims.Claim,
           callbacks: Sequence[Callback]) -> CellOutcome:
    """Train the claimed cell, continuing its interrupted run from a checkpoint if there is one."""
    cell_dir.prepare()
    remote = remote_checkpoint.keeps_checkpoints(mlflow.get_tracking_uri())
    logger = MlflowLogger(ctx.experiment, ctx.tracking_uri, run_name=cell.label, tags=cell.tags(),
                          parent_run_id=ctx.parent_run_id,
                          run_id=_run_to_continue(client, experiment_id, cell, cell_dir, remote))
    ledger = CellLedger(logger, cell_dir)
    upload = [remote_checkpoint.CheckpointUpload(logger)] if remote else []
    start = time.perf_counter()
    try:
        config = cell.run_config(device=ctx.device, data_dir=ctx.data_dir, download=ctx.download,
                                 num_workers=ctx.num_workers)
        profile = [ProfileCallback()] if ctx.profile else []
        keep = [ModelArtifactCallback()] if ctx.save_model else []  # before the logger marks the run FINISHED
        trainer = Trainer(config, callbacks=[*crash_hooks(cell.key), claims.ClaimGuard(claim, logger), *upload, *keep,
                                             logger, ledger, *profile, *callbacks],
                          progress=ctx.progress, checkpoint=cell_dir.checkpoint)
        result = trainer.fit()
    except KeyboardInterrupt:
        if logger.run_id is not None:
            client.set_terminated(logger.run_id, "KILLED")
        raise
    except claims.ClaimLost as lost:  # the new owner continues the run: leave run and checkpoint to it
        return CellOutcome(cell, "elsewhere", logger.run_id, str(lost), seconds=time.perf_counter() - start)
    except Exception as exc:  # a failed cell must not stop the suite
        reason = str(exc) if isinstance(exc, LLSBenchError) else f"{type(exc).__name__}: {exc}"
        run_id = _record_failure(client, experiment_id, logger, cell, ctx, reason, traceback.format_exc())
        _forget_checkpoints(client, cell_dir, run_id, remote)
        return CellOutcome(cell, "failed", run_id, reason, resumed_from=ledger.resumed_from,
                           seconds=time.perf_counter() - start)
    _forget_checkpoints(client, cell_dir, logger.run_id, remote)
    status = "finished" if result.status == "finished" else "failed"
    return CellOutcome(cell, status, logger.run_id, result.reason, result.summary.get("final_test_acc"),
                       ledger.resumed_from, time.perf_counter() - start)


def _run_to_continue(client, experiment_id: str, cell: Cell, cell_dir: CellDir, remote: bool) -> str | None:
    """The cell's interrupted run to continue: the one named in the run dir, else (on an MLflow
    server) the newest interrupted run whose checkpoint artifact could be fetched. Interrupted
    runs that cannot be continued (their checkpoint is on another machine) are marked KILLED:
    under the claim nobody else is training them."""
    local = continuable_run(client, cell_dir.run_id())
    if local is not None:
        if remote and not cell_dir.checkpoint.exists():
            remote_checkpoint.fetch(client, local, cell_dir.checkpoint)
        return local
    interrupted = [r for r in find_runs(client, experiment_id, {"suite": cell.suite, "cell_key": cell.key})
                   if r.info.status in ("RUNNING", "KILLED")]
    continued = next((r.info.run_id for r in interrupted if remote and remote_checkpoint.fetch(
        client, r.info.run_id, cell_dir.checkpoint)), None)
    for orphan in interrupted:
        if orphan.info.status == "RUNNING" and orphan.info.run_id != continued:
            client.set_terminated(orphan.info.run_id, "KILLED")
    return continued


def _forget_checkpoints(client, cell_dir: CellDir, run_id: str | None, remote: bool) -> None:
    cell_dir.clear()
    if remote and run_id:
        remote_checkpoint.discard(client, run_id)


def _record_failure(client, experiment_id: str, logger: MlflowLogger, cell: Cell, ctx: RunContext, reason: str,
                    trace: str) -> str:
    """Mark the cell's run FAILED with its reason; create the run if the cell never started."""
    run_id = logger.run_id
    if run_id is None:
        tags = {**cell.tags(), "method": cell.method, "model": cell.model, "dataset": cell.dataset}
        if ctx.parent_run_id:
            tags["mlflow.parentRunId"] = ctx.parent_run_id
        run_id = client.create_run(experiment_id, run_name=cell.label, tags=tags).info.run_id
        params = cell.run_config(device=ctx.device, data_dir=ctx.data_dir).to_params()
        client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
    client.log_batch(run_id, tags=[RunTag("status", "failed"), RunTag("failure_reason", reason[:5000]),
                                   RunTag("failure_traceback", trace[-5000:])])
    client.set_terminated(run_id, "FAILED")
    return run_id


def prepare_tracking(ctx: RunContext) -> str:
    """Create the store (safely, if new) and the experiments cells log to; do this once before
    any cell or worker starts. Returns the experiment's id."""
    experiment_id = ensure_experiment(ctx.experiment, ctx.tracking_uri)
    ensure_experiment(claims.claims_experiment(ctx.experiment), ctx.tracking_uri)
    return experiment_id


def run_suite(suite: Suite, cells: Sequence[Cell], ctx: RunContext, *, command: str,
              echo: Callable[[str], None] = print,
              callbacks: Callable[[Cell], Sequence[Callback]] = lambda cell: (),
              engine: Engine | None = None, live: IO[str] | None = None) -> tuple[str, list[CellOutcome]]:
    """Every cell under one new parent run, by `engine` (default: in order, in this process, with
    the extra trainer `callbacks`); returns the parent run's id and the outcomes in cell order.
    `live`: a terminal to keep the suite's status line on. Raises `SuiteInterrupted` on Ctrl-C,
    after marking the parent run KILLED."""
    engine = engine or SequentialEngine(callbacks)
    client = tracking.client(ctx.tracking_uri)
    experiment_id = prepare_tracking(ctx)
    parent_id = client.create_run(experiment_id, run_name=f"suite {suite.name}",
                                  tags=_parent_tags(suite, cells, ctx, command, engine)).info.run_id
    for dead in invocations.close_dead(client, ctx.experiment, suite.name, by=parent_id):
        n = len(dead.cell_run_ids)
        echo(f"closed the parent run {dead.parent_id} of a dead invocation (KILLED, with {n} cell "
             f"run{'s' * (n != 1)} it left RUNNING): {dead.reason.split(';')[0]}")
    ctx = replace(ctx, parent_run_id=parent_id)
    progress = SuiteProgress(cells, echo, counts=engine.concurrent, live=live)
    heartbeat = invocations.alive(client, parent_id)
    try:
        engine.run(cells, ctx, progress)
    except KeyboardInterrupt:
        progress.close()
        _close_parent(client, parent_id, progress.outcomes, "KILLED")
        raise SuiteInterrupted(progress.in_cell_order(), parent_id) from None
    finally:
        heartbeat.stop()
    progress.close()
    _close_parent(client, parent_id, progress.outcomes, "FINISHED")
    return parent_id, progress.in_cell_order()


def _parent_tags(suite: Suite, cells: Sequence[Cell], ctx: RunContext, command: str,
                 engine: Engine) -> dict[str, str]:
    budgets = sorted({c.budget_text for c in cells})
    seeds = sorted({c.seed for c in cells})
    note = suite.description + "".join(f"\n\n**{k}**: {v}" for k, v in suite.notes.items())
    return {**tracking.environment_tags(resolve_device(ctx.device)), "suite": suite.name, "role": "suite",
            "suite_file": str(suite.path), "command": command, "budget": "; ".join(budgets) or "none",
            "seeds": ",".join(map(str, seeds)), "cells": str(len(cells)), "run_dir": str(ctx.run_dir),
            "engine": engine.description, **invocations.liveness_tags(),
            "mlflow.note.content": note[:5000]}


def _close_parent(client, parent_id: str, outcomes: list[CellOutcome], status: str) -> None:
    statuses = [*STATUSES, *sorted({o.status for o in outcomes} - set(STATUSES))]
    counts = {f"cells_{s}": str(sum(o.status == s for o in outcomes)) for s in statuses}
    client.log_batch(parent_id, tags=[RunTag(k, v) for k, v in counts.items()])
    client.set_terminated(parent_id, status)
