"""The one training loop every learning rule runs through.

The trainer knows models, data and the `Method` contract, never a rule's name. Each epoch:
the rule's `step` on every batch, then — with the rule's optimisers in eval mode — BatchNorm
statistics re-estimated on training batches (a plain forward: no rule updates anything
there), then evaluation. A non-finite loss ends the run as failed with its reason.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from llsbench.config import RunConfig, resolve_device
from llsbench.data import DataSplits, load_data
from llsbench.epoch_totals import NO_STEP, EpochTotals, Totals
from llsbench.method import Method
from llsbench.method_registry import create_method
from llsbench.models import create_model
from llsbench.optim import optimizer_factory


@dataclass
class RunResult:
    status: str  # "finished" or "failed"
    reason: str
    history: list[dict[str, float]]
    summary: dict[str, float] = field(default_factory=dict)


class Callback:
    """Hooks into the loop (MLflow logging, probes such as update/gradient angles, profiles).
    Override what you need; `on_step_end` runs after every training step with that batch."""

    def on_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", step: int, x: torch.Tensor, y: torch.Tensor) -> None: ...
    def on_epoch_trained(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        """The epoch is trained and evaluated, nothing keeps it yet (checkpoint, then `on_epoch_end`)."""

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...
    def on_end(self, trainer: "Trainer", result: RunResult) -> None: ...


class NonFiniteLoss(RuntimeError):
    pass


def _waiting_for(batches: Iterable, waited: list[float]) -> Iterator:
    """`batches` one by one, adding to `waited[0]` the host time spent waiting for each."""
    batches = iter(batches)
    while True:
        tick = time.perf_counter()
        batch = next(batches, None)
        waited[0] += time.perf_counter() - tick
        if batch is None:
            return
        yield batch


def _epoch_metrics(epoch: int, read: Totals, elapsed: float, data_time: float, steps: int) -> dict[str, float]:
    """An epoch's training metrics; `data_time_share` is the host's wait for batches."""
    seen = max(read.seen, 1)
    metrics = {"epoch": float(epoch + 1), "train_loss": read.loss / seen, "train_acc": 100.0 * read.correct / seen,
               "epoch_time": elapsed, "step_time": (elapsed - data_time) / max(steps, 1),
               "data_time_share": data_time / max(elapsed, 1e-12), "images_per_s": seen / max(elapsed, 1e-12)}
    metrics.update({f"local_loss_{k}": v / seen for k, v in read.local.items()})
    return metrics


@torch.no_grad()
def test_metrics(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Test loss, top-1 and (for more than 5 classes) top-5 accuracy of `model` as it is (mode
    untouched). The sums stay on the device: one host read after the loop."""
    sums, seen, classes = None, 0, 0
    for x, y in batches:
        logits = model(x)
        classes = logits.shape[1]
        top = logits.topk(min(5, classes), dim=1).indices
        batch = torch.stack([F.cross_entropy(logits, y, reduction="sum").double(), (top[:, 0] == y).sum().double(),
                             (top == y[:, None]).any(dim=1).sum().double()])
        sums = batch if sums is None else sums + batch
        seen += y.shape[0]
    loss, top1, top5 = sums.tolist() if sums is not None else (0.0, 0.0, 0.0)
    seen = max(seen, 1)
    metrics = {"test_loss": loss / seen, "test_acc": 100.0 * top1 / seen}
    if classes > 5:
        metrics["test_top5"] = 100.0 * top5 / seen
    return metrics


class Trainer:
    """Builds data, model and rule from a `RunConfig`, then `fit()`s.

    With `checkpoint`, the state after every epoch is saved there (rule optimisers in eval
    mode, as schedule-free optimisers require) and a later Trainer with the same path
    resumes from it.
    """

    def __init__(self, config: RunConfig, callbacks: Iterable[Callback] = (), progress: bool = True,
                 checkpoint: str | Path | None = None):
        self.config = config.validate()
        self.callbacks = list(callbacks)
        self.progress = progress
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.data = self.build_data()
        spec = self.data.spec
        self.input_shape = (spec.in_channels, spec.image_size, spec.image_size)
        self.model = create_model(config.model, in_channels=spec.in_channels, num_classes=spec.num_classes,
                                  image_size=spec.image_size, **config.model_options).to(self.device)
        self.acceleration = config.acceleration()
        self.acceleration.prepare(self.model)
        self.method: Method = create_method(
            config.method, self.model, num_classes=spec.num_classes, input_shape=self.input_shape,
            optimizer=optimizer_factory(config.optimizer, lr=config.lr, weight_decay=config.weight_decay,
                                        momentum=config.momentum),
            **config.method_options)
        # Step-wise lr decay (e.g. PEPITA's x0.1 at epochs 60 and 90), on every optimiser of the rule.
        self.schedulers = [torch.optim.lr_scheduler.MultiStepLR(opt, config.lr_milestones, config.lr_gamma)
                           for opt in self.method.optimizers] if config.lr_milestones else []
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, float]] = []

    def build_data(self) -> DataSplits:
        """The run's data (a subclass may split it, e.g. a validation split for tuning)."""
        c = self.config
        return load_data(c.dataset, data_dir=c.data_dir, download=c.download, batch_size=c.batch_size,
                         test_batch_size=c.test_batch_size, device=self.device, seed=c.seed,
                         num_workers=c.num_workers, train_subset=c.train_subset)

    # ---- the loop ---------------------------------------------------------------------
    def fit(self) -> RunResult:
        self._resume()
        for cb in self.callbacks:
            cb.on_start(self)
        status, reason = "finished", ""
        try:
            while self.epoch < self.config.epochs:
                metrics = self.train_epoch(self.epoch)
                for scheduler in self.schedulers:
                    scheduler.step()
                metrics.update(self.evaluate())
                self.history.append(metrics)
                self.epoch += 1
                for cb in self.callbacks:
                    cb.on_epoch_trained(self, metrics)
                self._save_checkpoint()
                for cb in self.callbacks:
                    cb.on_epoch_end(self, metrics)
        except NonFiniteLoss as exc:
            status, reason = "failed", str(exc)
        result = RunResult(status, reason, self.history, self.summary())
        for cb in self.callbacks:
            cb.on_end(self, result)
        return result

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass of the rule's steps. Nothing in the loop waits for the device: sums live in
        `EpochTotals` and are read at the end (and every `sync_every` steps when that is set)."""
        self.model.train()
        self.method.train()
        self.data.train.set_epoch(epoch)
        batches, count = self._limited(self.data.train, self.config.limit_train_batches)
        totals = EpochTotals(self.device)
        bar = tqdm(total=count, desc=f"epoch {epoch + 1}/{self.config.epochs}", leave=False,
                   disable=not self.progress)
        every, waited, start = self.config.sync_every, [0.0], time.perf_counter()
        for step, (x, y) in enumerate(_waiting_for(batches, waited)):
            out = self.acceleration.step(self.method, x, y)
            totals.add(step, out, y)
            bar.update(1)
            for cb in self.callbacks:
                cb.on_step_end(self, self.global_step, x, y)
            self.global_step += 1
            if every and (step + 1) % every == 0:
                self._checked(totals, epoch, bar)
        read = self._checked(totals, epoch, bar)  # its device-to-host transfer waits for the last step
        elapsed = time.perf_counter() - start
        bar.close()
        return _epoch_metrics(epoch, read, elapsed, waited[0], count)

    @staticmethod
    def _checked(totals: EpochTotals, epoch: int, bar) -> Totals:
        """Read the device sums (one transfer); a non-finite loss so far ends the run, naming
        the epoch and step where it first happened."""
        read = totals.read()
        if read.nonfinite_step != NO_STEP:
            raise NonFiniteLoss(f"non-finite loss ({read.nonfinite_loss}) at epoch {epoch + 1}, "
                                f"step {read.nonfinite_step + 1}")
        bar.set_postfix(loss=f"{read.loss / max(read.seen, 1):.3f}")
        return read

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Test metrics with the rule's evaluation weights and re-estimated BN statistics."""
        start = time.perf_counter()
        self.method.eval()
        self.recalibrate_batchnorm()
        self.model.eval()
        batches, _ = self._limited(self.data.test, self.config.limit_test_batches)
        metrics = test_metrics(self.model, batches)
        metrics["eval_time"] = time.perf_counter() - start
        return metrics

    @torch.no_grad()
    def recalibrate_batchnorm(self) -> None:
        """Schedule-free eval weights differ from the ones BN statistics were gathered with:
        re-estimate them on `bn_batches` training batches (plain forward, so no rule updates)."""
        if self.config.bn_batches == 0:
            return
        self.model.train()
        for x, _ in itertools.islice(self.data.train, self.config.bn_batches):
            self.model(x)

    def summary(self) -> dict[str, float]:
        if not self.history:
            return {}
        last = self.history[-1]
        out = {"final_test_acc": last["test_acc"], "best_test_acc": max(h["test_acc"] for h in self.history),
               "final_train_acc": last["train_acc"], "epochs_done": float(len(self.history)),
               "total_time": sum(h["epoch_time"] + h["eval_time"] for h in self.history),
               "extra_parameters": float(self.method.extra_parameters()),
               "model_parameters": float(sum(p.numel() for p in self.model.parameters()))}
        if "test_top5" in last:
            out["final_test_top5"] = last["test_top5"]
        return out

    # ---- helpers ----------------------------------------------------------------------
    @staticmethod
    def _limited(batches, limit: int | None) -> tuple[Any, int]:
        total = len(batches) if limit is None else min(limit, len(batches))
        return itertools.islice(batches, total), total

    # ---- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: call with the rule's optimisers in eval mode."""
        return {"epoch": self.epoch, "global_step": self.global_step, "history": self.history, "model": self.model.state_dict(),
                "method": self.method.state_dict(), "schedulers": [s.state_dict() for s in self.schedulers],
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.global_step, self.history = state["epoch"], state["global_step"], state["history"]
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        for scheduler, scheduler_state in zip(self.schedulers, state.get("schedulers", []), strict=False):
            scheduler.load_state_dict(scheduler_state)
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def _save_checkpoint(self) -> None:
        if self.checkpoint is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(self.checkpoint)  # atomic: a kill mid-write never leaves a torn checkpoint

    def _resume(self) -> None:
        if self.checkpoint is not None and self.checkpoint.exists():
            self.method.eval()
            self.load_state_dict(torch.load(self.checkpoint, map_location=self.device, weights_only=False))
