"""Exactly-once cells: before a cell trains, its invocation claims it in the tracking store.

A claim is a small MLflow run in the experiment `<experiment>-claims`, tagged with the cell,
its owner (the invocation), a state and a heartbeat. Taking one is create-then-resolve, which
needs nothing from the store but that a write is visible to every read after it (SQLite, an
MLflow server on any SQL database):

1. create my claim, state `contending`;
2. read every live claim of the cell; drop (delete) those whose owner stopped heart-beating
   or whose process on this machine is gone, and those of my own owner (a retried task of my
   invocation takes its cell over at once);
3. another `held` claim: the cell trains elsewhere, withdraw mine; another `contending`
   claim: withdraw mine, back off a random moment and try again; none: mine is `held`.

Of two contenders the later reader always sees the earlier writer, so at most one of them
reaches `held`. While the cell trains a background thread refreshes the heartbeat; a claim
that is deleted under it (taken over as stale) is noticed there and the cell stops before
it logs another epoch. The claim is deleted when the cell ends, however it ends.

Fencing: a heartbeat thread starved for longer than the timeout (a swapping machine, a paused
VM) cannot notice a takeover in time, so before a cell keeps an epoch (its checkpoint, then
its metrics) it reads its claim from the store and stops (`elsewhere`) if the claim is gone.
What is left is the moment between that read and the write, not a whole starved heartbeat.
A driver that cancelled its own cells (Ctrl-C) releases their claims (`release`): another
machine's invocation can take them over at once instead of after the timeout.

Heartbeats, their timeout (`LLSBENCH_CLAIM_TIMEOUT_S`, default 120 s) and interval: `heartbeat`.
"""
from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException

from llsbench.suites.heartbeat import HEARTBEAT_ENV, TIMEOUT_ENV  # noqa: F401  (the claim timeout's settings)
from llsbench.suites.heartbeat import Beating, beat_ms, now_ms, process_gone, silent_s, timeout_s
from llsbench.tracking import experiment_in, find_runs
from llsbench.trainer import Callback

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from llsbench.suites.cells import Cell
    from llsbench.tracking import MlflowLogger

ATTEMPTS = 12  # contended rounds before giving the cell up to the other contender
OWNER, STATE, HEARTBEAT, CELL_RUN = "claim.owner", "claim.state", "claim.heartbeat", "claim.cell_run_id"
_PROCESS_OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claims_experiment(experiment: str) -> str:
    return f"{experiment}-claims"


def process_owner() -> str:
    """The owner of claims taken outside any invocation (a bare `run_cell`)."""
    return _PROCESS_OWNER


@dataclass
class HeldElsewhere(Exception):
    """The cell is claimed by another live owner."""

    owner: str
    cell_run_id: str | None = None


class ClaimLost(Exception):
    """This claim was taken over (as stale) while the cell trained."""


@dataclass
class Claim:
    client: "MlflowClient"
    run_id: str
    owner: str
    cell_run_id: str | None = None  # the cell's MLflow run, named on the claim by each heartbeat
    lost: threading.Event = field(default_factory=threading.Event)
    _beating: Beating | None = None

    def beat(self) -> None:
        tags = [RunTag(HEARTBEAT, str(now_ms()))] + ([RunTag(CELL_RUN, self.cell_run_id)] if self.cell_run_id else [])
        try:
            self.client.log_batch(self.run_id, tags=tags)
        except MlflowException:  # deleted: another owner took the cell over
            self.lost.set()

    def still_held(self) -> bool:
        """Whether the store still has this claim as mine, held (one read; sets `lost` if not)."""
        try:
            run = self.client.get_run(self.run_id)
        except MlflowException:  # deleted for good
            run = None
        held = (run is not None and run.info.lifecycle_stage == "active"
                and run.data.tags.get(OWNER) == self.owner and run.data.tags.get(STATE) == "held")
        if not held:
            self.lost.set()
        return held

    def __enter__(self) -> "Claim":
        self._beating = Beating(self.beat, f"heartbeat {self.run_id}").start()
        return self

    def __exit__(self, *exc) -> None:
        self._beating.stop()
        _withdraw(self.client, self.run_id)


def take(client: "MlflowClient", experiment: str, cell: "Cell", owner: str) -> Claim:
    """Claim `cell` for `owner` or raise `HeldElsewhere` (see the module text for the rule)."""
    experiment_id = experiment_in(client, claims_experiment(experiment))
    rivals: list = []
    for attempt in range(ATTEMPTS):
        mine = client.create_run(experiment_id, run_name=cell.label, tags={
            "suite": cell.suite, "cell_key": cell.key, "role": "claim", OWNER: owner, STATE: "contending",
            HEARTBEAT: str(now_ms()), "claim.host": socket.gethostname(), "claim.pid": str(os.getpid())}).info.run_id
        claims = [c for c in find_runs(client, experiment_id, {"suite": cell.suite, "cell_key": cell.key})
                  if c.info.run_id != mine]
        abandoned = [c for c in claims if c.data.tags.get(OWNER) == owner or is_abandoned(c)]
        for claim in abandoned:
            _withdraw(client, claim.info.run_id)
        gone = {c.info.run_id for c in abandoned}
        rivals = [c for c in claims if c.info.run_id not in gone]
        held = [c for c in rivals if c.data.tags.get(STATE) == "held"]
        if held:
            _withdraw(client, mine)
            raise HeldElsewhere(held[0].data.tags.get(OWNER, "?"), held[0].data.tags.get(CELL_RUN))
        if not rivals:
            try:
                client.set_tag(mine, STATE, "held")
            except MlflowException:  # deleted meanwhile by a task of my own owner taking the cell over
                raise HeldElsewhere(owner) from None
            return Claim(client, mine, owner)
        _withdraw(client, mine)
        time.sleep(random.uniform(0.05, 0.5) * (attempt + 1))
    raise HeldElsewhere(rivals[0].data.tags.get(OWNER, "?"), rivals[0].data.tags.get(CELL_RUN))


def release(client: "MlflowClient", experiment: str, cell: "Cell", owner: str) -> int:
    """Withdraw the cell's claims that `owner` holds, never another owner's: a driver's cleanup
    after cancelling its own cell tasks. Returns how many it withdrew."""
    found = client.get_experiment_by_name(claims_experiment(experiment))
    if found is None:
        return 0
    mine = find_runs(client, found.experiment_id, {"suite": cell.suite, "cell_key": cell.key, OWNER: owner})
    for claim in mine:
        _withdraw(client, claim.info.run_id)
    return len(mine)


def is_abandoned(claim) -> bool:
    """Its heartbeat is older than the timeout, or its process on this machine is gone."""
    tags = claim.data.tags
    return silent_s(beat_ms(tags, HEARTBEAT)) > timeout_s() or process_gone(tags.get("claim.host"), tags.get("claim.pid"))


def _withdraw(client: "MlflowClient", run_id: str) -> None:
    try:
        client.delete_run(run_id)
    except MlflowException:
        pass  # already gone: withdrawn by a contender that found it stale


class ClaimGuard(Callback):
    """Runs before the `MlflowLogger`: stops the cell before it checkpoints or logs an epoch once
    the claim was taken over (fencing, see the module text), and gives the claim the cell's run
    id for its heartbeats."""

    def __init__(self, claim: Claim, logger: "MlflowLogger"):
        self.claim, self.logger = claim, logger

    def on_epoch_trained(self, trainer, metrics) -> None:
        self._fence(trainer)

    def on_epoch_end(self, trainer, metrics) -> None:
        self._fence(trainer)
        self.claim.cell_run_id = self.logger.run_id

    def _fence(self, trainer) -> None:
        if self.claim.lost.is_set() or not self.claim.still_held():
            raise ClaimLost(f"taken over by another invocation; epoch {trainer.epoch} not kept here")

