"""Suite invocations that died: a `llsbench run suite` SIGKILLed (or whose machine went away)
leaves its parent run RUNNING for ever, and the cell runs it was training RUNNING under it.

Each invocation's parent run carries a heartbeat, refreshed while it runs (`alive`), and its
host and pid. A later invocation of the suite closes the parents whose invocation is gone
(`close_dead`): silent for longer than the claim timeout — neither the parent's heartbeat nor
any claim the invocation holds beat within it — or its process on this machine gone. Such a
parent is marked KILLED with a tag saying why, and so are its RUNNING cell runs that nobody
took over (no live claim on the cell); their checkpoints stay, so the cells still resume. A
live invocation beats every `heartbeat_s()`: its parent is never touched.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException

from llsbench.suites import claims
from llsbench.suites.heartbeat import Beating, beat_ms, now_ms, process_gone, silent_s, timeout_s
from llsbench.tracking import experiment_in, find_runs

if TYPE_CHECKING:
    from mlflow import MlflowClient

HEARTBEAT, HOST, PID = "invocation.heartbeat", "invocation.host", "invocation.pid"
REASON = "killed_reason"


def liveness_tags() -> dict[str, str]:
    """The tags a new parent run starts with: this process, alive now."""
    return {HEARTBEAT: str(now_ms()), HOST: socket.gethostname(), PID: str(os.getpid())}


def alive(client: "MlflowClient", parent_id: str) -> Beating:
    """Keep the parent run's heartbeat fresh until `.stop()`."""
    def beat() -> None:
        try:
            client.set_tag(parent_id, HEARTBEAT, str(now_ms()))
        except MlflowException:
            pass  # the store is briefly unreachable: the next beat tries again
    return Beating(beat, f"invocation heartbeat {parent_id}").start()


@dataclass(frozen=True)
class Closed:
    parent_id: str
    reason: str
    cell_run_ids: tuple[str, ...]


def close_dead(client: "MlflowClient", experiment: str, suite: str, by: str) -> list[Closed]:
    """Mark KILLED the RUNNING parent runs of `suite` in `experiment` whose invocation is gone,
    with their cell runs nobody took over; `by` (the invocation doing it) is named in the tag."""
    experiment_id = experiment_in(client, experiment)
    claims_id = experiment_in(client, claims.claims_experiment(experiment))
    closed = []
    for parent in find_runs(client, experiment_id, {"suite": suite, "role": "suite"}, status="RUNNING"):
        owned = _claims_of(client, claims_id, parent.info.run_id)
        reason = _why_gone(parent, owned)
        if reason is None:
            continue
        reason += f"; closed by invocation {by}"
        cells = [run.info.run_id for run in _orphans(client, experiment_id, claims_id, suite, parent.info.run_id)]
        for run_id in [*cells, parent.info.run_id]:
            client.log_batch(run_id, tags=[RunTag(REASON, reason)])
            client.set_terminated(run_id, "KILLED")
        closed.append(Closed(parent.info.run_id, reason, tuple(cells)))
    return closed


def _claims_of(client: "MlflowClient", claims_id: str, owner: str) -> list:
    return find_runs(client, claims_id, {claims.OWNER: owner})


def _why_gone(parent, owned: list) -> str | None:
    """Why the parent's invocation counts as dead, or None while it may be alive."""
    tags = parent.data.tags
    if process_gone(tags.get(HOST), tags.get(PID)):
        return f"its process (pid {tags[PID]} on {tags[HOST]}) is gone"
    own = beat_ms(tags, HEARTBEAT) or parent.info.start_time or 0  # a parent from before heartbeats: its start
    last = max([own, *(beat_ms(c.data.tags, claims.HEARTBEAT) for c in owned)])
    if silent_s(last) > timeout_s():
        return (f"its invocation (pid {tags.get(PID, '?')} on {tags.get(HOST, '?')}) has not beaten for "
                f"{silent_s(last):.0f} s (timeout {timeout_s():g} s)")
    return None


def _orphans(client: "MlflowClient", experiment_id: str, claims_id: str, suite: str, parent_id: str) -> list:
    """The parent's RUNNING cell runs whose cell no live invocation holds a claim on."""
    runs = find_runs(client, experiment_id, {"suite": suite, "role": "cell", "mlflow.parentRunId": parent_id},
                     status="RUNNING")
    return [run for run in runs if not _taken_over(client, claims_id, suite, run.data.tags.get("cell_key", ""))]


def _taken_over(client: "MlflowClient", claims_id: str, suite: str, cell_key: str) -> bool:
    live = find_runs(client, claims_id, {"suite": suite, "cell_key": cell_key})
    return any(not claims.is_abandoned(c) for c in live)
