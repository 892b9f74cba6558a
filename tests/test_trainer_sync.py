"""The training loop never waits for the device per step: host reads are counted (CPU stands
in for a GPU — each read would be a synchronisation there), and a non-finite loss is still
reported with the epoch and step where it first happened."""
import pytest
import torch

from llsbench.config import RunConfig
from llsbench.method import StepResult
from llsbench.trainer import Trainer

HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def trainer(method="lls", **settings):
    config = RunConfig(**{"method": method, "model": "smallconv", "dataset": "digits", "batch_size": 16,
                          "epochs": 2, "bn_batches": 1, **settings})
    return Trainer(config, progress=False)


def count_host_reads(monkeypatch, run) -> int:
    calls = {"n": 0}
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            calls["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    run()
    monkeypatch.undo()
    return calls["n"]


@pytest.mark.parametrize("method", ["bp", "lls"])
def test_host_reads_per_epoch_are_a_constant_not_one_per_step(monkeypatch, one_thread, method):
    short, long = trainer(method, limit_train_batches=3), trainer(method, limit_train_batches=12)
    reads_short = count_host_reads(monkeypatch, lambda: short.train_epoch(0))
    reads_long = count_host_reads(monkeypatch, lambda: long.train_epoch(0))
    assert reads_short == reads_long <= 2, (reads_short, reads_long)


def test_sync_every_reads_at_that_interval(monkeypatch, one_thread):
    t = trainer("bp", limit_train_batches=12, sync_every=4)
    assert count_host_reads(monkeypatch, lambda: t.train_epoch(0)) == 12 // 4 + 1


def test_device_sums_equal_the_per_step_host_sums(one_thread):
    """The per-epoch metrics are the same numbers per-step `.item()` sums gave."""
    t = trainer("lls", limit_train_batches=6)
    seen, loss, correct, local = 0, 0.0, 0.0, {}
    step = t.method.step

    def recorded(x, y):
        nonlocal seen, loss, correct
        out = step(x, y)
        n = y.shape[0]
        seen, loss = seen + n, loss + out.loss.item() * n
        correct += (out.logits.argmax(1) == y).sum().item()
        for k, v in out.local_losses.items():
            local[k] = local.get(k, 0.0) + v.item() * n
        return out

    t.method.step = recorded
    metrics = t.train_epoch(0)
    assert metrics["train_loss"] == loss / seen and metrics["train_acc"] == 100.0 * correct / seen
    assert {k: metrics[f"local_loss_{k}"] for k in local} == {k: v / seen for k, v in local.items()}


def nan_at(t: Trainer, global_step: int):
    step = t.method.step

    def poisoned(x, y):
        out = step(x, y)
        if t.global_step == global_step:
            return StepResult(torch.tensor(float("nan")), out.logits, out.local_losses)
        return out

    t.method.step = poisoned


@pytest.mark.parametrize("sync_every", [None, 2])
def test_non_finite_loss_names_the_epoch_and_step_where_it_first_happened(one_thread, sync_every):
    t = trainer("bp", limit_train_batches=6, sync_every=sync_every)
    nan_at(t, 6 + 2)  # epoch 2, third step
    result = t.fit()
    assert result.status == "failed"
    assert "non-finite loss (nan) at epoch 2, step 3" in result.reason
    assert len(result.history) == 1
    # with an interval the run stops at the first read after the bad step, not at the epoch end
    assert t.global_step == (6 + 4 if sync_every else 12)
