"""The trainer of a tuning trial: trains on the training set minus a validation split, scores
on that split (`val_*` metrics), and cannot read the test set (it is sealed)."""
from __future__ import annotations

from typing import Iterable

from llsbench.config import RunConfig
from llsbench.data import DataSplits
from llsbench.data.validation import carve_validation
from llsbench.trainer import Callback, Trainer


class ValidationTrainer(Trainer):
    """A `Trainer` whose per-epoch evaluation runs on the validation split.

    `limit_test_batches` of the config caps the validation batches. BatchNorm statistics are
    re-estimated on the (remaining) training batches, as in every run.
    """

    def __init__(self, config: RunConfig, *, val_fraction: float, val_seed: int = 0,
                 callbacks: Iterable[Callback] = (), progress: bool = False):
        self.val_fraction, self.val_seed = val_fraction, val_seed  # build_data needs them
        super().__init__(config, callbacks=callbacks, progress=progress)

    def build_data(self) -> DataSplits:
        return carve_validation(super().build_data(), self.val_fraction, self.val_seed)

    def evaluate(self) -> dict[str, float]:
        # The trainer's evaluation, pointed at the validation stream for its duration; its
        # `test_*` metrics are renamed `val_*` so no trial metric can pass for a test result.
        sealed, self.data.test = self.data.test, self.data.validation
        try:
            metrics = super().evaluate()
        finally:
            self.data.test = sealed
        return {("val_" + k[5:] if k.startswith("test_") else k): v for k, v in metrics.items()}

    def summary(self) -> dict[str, float]:
        if not self.history:
            return {}
        last = self.history[-1]
        return {"final_val_acc": last["val_acc"], "best_val_acc": max(h["val_acc"] for h in self.history),
                "final_train_acc": last["train_acc"], "epochs_done": float(len(self.history)),
                "total_time": sum(h["epoch_time"] + h["eval_time"] for h in self.history)}
