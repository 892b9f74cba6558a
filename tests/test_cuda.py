"""CUDA paths (run with `nox -s cuda` on a GPU machine): every rule trains on the device,
and the CUDA allocator peak is measured."""
from contextlib import contextmanager

import pytest
import torch

from llsbench.config import RunConfig
from llsbench.method_registry import METHODS
from llsbench.trainer import Trainer

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("method", METHODS.names())
def test_every_rule_trains_on_cuda(method):
    model = "pepita-fc" if method == "pepita" else "smallconv"
    config = RunConfig(method=method, model=model, dataset="synthetic", epochs=1, batch_size=64, device="cuda")
    trainer = Trainer(config, progress=False)
    assert next(trainer.model.parameters()).is_cuda
    result = trainer.fit()
    assert result.status == "finished" and result.summary["final_test_acc"] > 0



@contextmanager
def sync_is_an_error():
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize("method", METHODS.names())
def test_training_steps_never_synchronise_with_the_host(method, monkeypatch):
    """Each rule's step and the trainer's per-step accumulation run under sync debug mode
    "error" (any host synchronisation raises); only the epoch-end read of the sums syncs."""
    from llsbench.epoch_totals import EpochTotals

    model = "pepita-fc" if method == "pepita" else "smallconv"
    config = RunConfig(method=method, model=model, dataset="synthetic", epochs=1, batch_size=64, device="cuda",
                       bn_batches=1)
    trainer = Trainer(config, progress=False)
    step, add, steps = trainer.method.step, EpochTotals.add, []

    def strict_step(x, y):
        with sync_is_an_error():
            steps.append(1)
            return step(x, y)

    def strict_add(self, *args):
        with sync_is_an_error():
            return add(self, *args)

    trainer.method.step = strict_step
    monkeypatch.setattr(EpochTotals, "add", strict_add)
    metrics = trainer.train_epoch(0)
    assert len(steps) == len(trainer.data.train) and metrics["train_loss"] > 0
