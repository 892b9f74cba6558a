"""Cell claims in the tracking store: one live owner per cell, re-entrant for the same owner,
taken over when the owner stops heart-beating or its process is gone, never held twice by
contenders racing for it; `run_cell` leaves a cell claimed elsewhere alone."""
import subprocess
import sys
import threading
import time

import pytest
from mlflow import MlflowClient

from llsbench.suites import Overrides, RunContext, expand, load_suite, run_cell, run_suite
from llsbench.suites import claims
from llsbench.suites.claims import HEARTBEAT_ENV, TIMEOUT_ENV, HeldElsewhere
from llsbench.tracking import ensure_experiment
from llsbench.trainer import Callback

EXPERIMENT = "llsbench"


@pytest.fixture(scope="module")
def store(tmp_path_factory, one_thread):
    uri = f"sqlite:///{tmp_path_factory.mktemp('claims') / 'mlflow.db'}"
    return uri, MlflowClient(uri)


@pytest.fixture(scope="module")
def cells():
    return expand(load_suite("smoke"), Overrides(seeds=(0, 1, 2), epochs=2, limit_train_batches=1))


def live_claims(client, cell) -> list:
    experiment = client.get_experiment_by_name(claims.claims_experiment(EXPERIMENT))
    return client.search_runs([experiment.experiment_id], f"tags.cell_key = '{cell.key}'")


def test_a_cell_held_by_one_owner_is_elsewhere_for_another_until_released(store, cells):
    uri, client = store
    cell = cells[0]
    first = claims.take(client, EXPERIMENT, cell, "owner-a")
    with pytest.raises(HeldElsewhere) as held:
        claims.take(client, EXPERIMENT, cell, "owner-b")
    assert held.value.owner == "owner-a"
    assert [c.info.run_id for c in live_claims(client, cell)] == [first.run_id]  # the loser withdrew its claim
    with first:
        pass  # the cell ended: the claim is released
    second = claims.take(client, EXPERIMENT, cell, "owner-b")
    assert [c.info.run_id for c in live_claims(client, cell)] == [second.run_id]
    assert live_claims(client, cell)[0].data.tags[claims.STATE] == "held"


def test_a_claim_of_the_same_owner_is_reentrant(store, cells):
    uri, client = store
    cell = cells[1]
    first = claims.take(client, EXPERIMENT, cell, "invocation-1")
    retried = claims.take(client, EXPERIMENT, cell, "invocation-1")  # a retried task: no waiting
    assert [c.info.run_id for c in live_claims(client, cell)] == [retried.run_id]
    first.beat()
    assert first.lost.is_set() and not retried.lost.is_set()


def test_a_claim_whose_heartbeat_stopped_is_taken_over_after_the_timeout(store, cells, monkeypatch):
    uri, client = store
    cell = cells[2]
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    silent = claims.take(client, EXPERIMENT, cell, "owner-a")  # never entered: no heartbeat thread
    with pytest.raises(HeldElsewhere):
        claims.take(client, EXPERIMENT, cell, "owner-b")
    time.sleep(1.2)
    taker = claims.take(client, EXPERIMENT, cell, "owner-b")
    assert [c.info.run_id for c in live_claims(client, cell)] == [taker.run_id]
    silent.beat()  # the old owner, waking up, learns it lost the cell
    assert silent.lost.is_set()


def test_the_heartbeat_thread_keeps_a_claim_alive_past_the_timeout(store, cells, monkeypatch):
    uri, client = store
    cell = cells[3]
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    monkeypatch.setenv(HEARTBEAT_ENV, "0.1")
    with claims.take(client, EXPERIMENT, cell, "owner-a") as alive:
        time.sleep(1.5)
        with pytest.raises(HeldElsewhere):
            claims.take(client, EXPERIMENT, cell, "owner-b")
        assert not alive.lost.is_set()
    assert live_claims(client, cell) == []


def test_a_claim_of_a_dead_process_on_this_machine_is_taken_over_at_once(store, cells):
    uri, client = store
    cell = cells[4]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = claims.take(client, EXPERIMENT, cell, "killed-invocation")
    client.set_tag(orphan.run_id, "claim.pid", dead.stdout.strip())
    taker = claims.take(client, EXPERIMENT, cell, "next-invocation")
    assert [c.info.run_id for c in live_claims(client, cell)] == [taker.run_id]


def test_contenders_racing_for_a_cell_never_both_hold_it(store, cells):
    uri, client = store
    for cell in cells[5:9]:
        start, winners, errors = threading.Barrier(3), [], []

        def contend(owner, cell=cell, start=start, winners=winners, errors=errors):
            start.wait()
            try:
                winners.append(claims.take(MlflowClient(uri), EXPERIMENT, cell, owner))
            except HeldElsewhere:
                pass
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(f"owner-{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(winners) == 1, (errors, winners)
        assert [c.info.run_id for c in live_claims(client, cell)] == [winners[0].run_id]


def test_run_cell_leaves_a_cell_claimed_by_another_invocation_alone(store, cells, tmp_path):
    uri, client = store
    cell = cells[9]
    holder = claims.take(client, EXPERIMENT, cell, "the-other-invocation")
    ctx = RunContext(tracking_uri=uri, run_dir=tmp_path, device="cpu", owner="this-invocation")
    outcome = run_cell(cell, ctx)
    assert outcome.status == "elsewhere" and "owner the-other-invocation" in outcome.reason
    assert not (tmp_path / cell.key).exists()
    suite = load_suite("smoke")
    parent, outcomes = run_suite(suite, [cell], ctx, command="test", echo=lambda line: None)
    assert [o.status for o in outcomes] == ["elsewhere"]
    assert client.get_run(parent).data.tags["cells_elsewhere"] == "1"
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert client.search_runs([experiment.experiment_id], f"tags.cell_key = '{cell.key}' and tags.role = 'cell'") == []
    with holder:
        pass


class TakeOverAfterFirstEpoch(Callback):
    """Another invocation takes the cell over (its claim deleted) while epoch 2 trains."""

    def __init__(self, client, cell):
        self.client, self.cell = client, cell

    def on_epoch_end(self, trainer, metrics):
        if trainer.epoch == 1:
            for claim in live_claims(self.client, self.cell):
                self.client.delete_run(claim.info.run_id)
            time.sleep(0.5)  # several heartbeats


def test_a_cell_whose_claim_was_taken_over_stops_before_logging_another_epoch(store, cells, tmp_path, monkeypatch):
    uri, client = store
    cell = cells[10]
    monkeypatch.setenv(HEARTBEAT_ENV, "0.05")
    ctx = RunContext(tracking_uri=uri, run_dir=tmp_path, device="cpu", owner="slow-invocation", profile=False)
    outcome = run_cell(cell, ctx, [TakeOverAfterFirstEpoch(client, cell)])
    assert outcome.status == "elsewhere" and "taken over" in outcome.reason
    run = client.get_run(outcome.run_id)
    assert run.info.status == "RUNNING"  # left to the new owner, with its checkpoint
    assert [m.step for m in client.get_metric_history(outcome.run_id, "test_acc")] == [1]
    assert (tmp_path / cell.key / "checkpoint.pt").exists()


def test_an_orphan_run_whose_checkpoint_is_out_of_reach_is_marked_killed_and_the_cell_starts_over(store, cells,
                                                                                                  tmp_path):
    uri, client = store
    cell = cells[11]
    experiment = ensure_experiment(EXPERIMENT, uri)
    orphan = client.create_run(experiment, tags={**cell.tags(), "mlflow.runName": cell.label}).info.run_id
    ctx = RunContext(tracking_uri=uri, run_dir=tmp_path, device="cpu", profile=False)  # the other machine's dir
    outcome = run_cell(cell, ctx)
    assert outcome.status == "finished" and outcome.run_id != orphan and outcome.resumed_from is None
    assert client.get_run(orphan).info.status == "KILLED"


class TakeOverWhileStarved(Callback):
    """Another invocation takes the cell over after epoch 1 while this one's heartbeat thread
    has not beaten once (as if starved): nothing but the store can tell this cell it lost."""

    def __init__(self, client, cell, monkeypatch):
        self.client, self.cell, self.monkeypatch, self.taker = client, cell, monkeypatch, None

    def on_epoch_end(self, trainer, metrics):
        if trainer.epoch == 1:
            with self.monkeypatch.context() as patch:
                patch.setenv(TIMEOUT_ENV, "0")  # the slow invocation's claim counts as silent
                self.taker = claims.take(self.client, EXPERIMENT, self.cell, "taking-invocation")


def test_fencing_a_cell_whose_starved_heartbeat_missed_a_takeover_keeps_no_further_epoch(store, cells, tmp_path,
                                                                                        monkeypatch):
    import torch

    uri, client = store
    cell = cells[12]
    monkeypatch.setenv(HEARTBEAT_ENV, "3600")  # no heartbeat during the test: `lost` is never set by one
    ctx = RunContext(tracking_uri=uri, run_dir=tmp_path, device="cpu", owner="starved-invocation", profile=False,
                     save_model=False)
    takeover = TakeOverWhileStarved(client, cell, monkeypatch)
    outcome = run_cell(cell, ctx, [takeover])
    assert outcome.status == "elsewhere" and "taken over" in outcome.reason
    assert [m.step for m in client.get_metric_history(outcome.run_id, "test_acc")] == [1]  # epoch 2 not logged
    assert torch.load(tmp_path / cell.key / "checkpoint.pt", weights_only=False)["epoch"] == 1  # nor checkpointed
    [held] = live_claims(client, cell)  # the new owner's claim is untouched by the one that lost
    assert held.info.run_id == takeover.taker.run_id and held.data.tags[claims.OWNER] == "taking-invocation"
    assert takeover.taker.still_held()
    with takeover.taker:
        pass


def test_release_withdraws_only_the_claims_of_the_given_owner(store, cells):
    uri, client = store
    mine, theirs = cells[13], cells[14]
    claims.take(client, EXPERIMENT, mine, "cancelled-invocation")
    other = claims.take(client, EXPERIMENT, theirs, "live-invocation")
    assert claims.release(client, EXPERIMENT, theirs, "cancelled-invocation") == 0  # not its claim: left alone
    assert claims.release(client, EXPERIMENT, mine, "cancelled-invocation") == 1
    assert live_claims(client, mine) == []
    assert [c.info.run_id for c in live_claims(client, theirs)] == [other.run_id] and other.still_held()
    taker = claims.take(client, EXPERIMENT, mine, "resuming-invocation")  # at once, no timeout to wait out
    assert [c.info.run_id for c in live_claims(client, mine)] == [taker.run_id]
