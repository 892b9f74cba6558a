"""What a killed cell task left behind, cleaned up by the driver as the cell itself would have
had it lived: MLflow runs left RUNNING (closed KILLED on Ctrl-C, FAILED when Ray gave up on the
task) and the cell's claim (released, so that an invocation on another machine takes the cell
over at once rather than after the claim timeout)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow.entities import RunTag

from llsbench import tracking
from llsbench.suites import claims
from llsbench.suites.resume import CellDir
from llsbench.tracking import ensure_experiment, find_runs

if TYPE_CHECKING:
    from llsbench.suites.cells import Cell
    from llsbench.suites.runner import RunContext


def close_left_runs(ctx: "RunContext", cell: "Cell", status: str, reason: str | None = None) -> str | None:
    """Close the cell's RUNNING runs of this invocation (its child runs, or the interrupted run it
    continued, named in the run dir) with `status`; returns the newest one's id, if any."""
    client = tracking.client(ctx.tracking_uri)
    experiment_id = ensure_experiment(ctx.experiment, ctx.tracking_uri)
    continued = CellDir(ctx.run_dir, cell).run_id()
    runs = [run for run in find_runs(client, experiment_id, {"suite": cell.suite, "cell_key": cell.key},
                                     status="RUNNING")
            if run.data.tags.get("mlflow.parentRunId") == ctx.parent_run_id or run.info.run_id == continued]
    for run in runs:
        if reason:
            client.log_batch(run.info.run_id, tags=[RunTag("status", "failed"),
                                                    RunTag("failure_reason", reason[:5000])])
        client.set_terminated(run.info.run_id, status)
    return runs[0].info.run_id if runs else None


def release_left_claim(ctx: "RunContext", cell: "Cell") -> int:
    """Withdraw the cell's claims held by this invocation (a cancelled task cannot); claims of
    other invocations stay. Returns how many were withdrawn."""
    return claims.release(tracking.client(ctx.tracking_uri), ctx.experiment, cell, ctx.claim_owner)
