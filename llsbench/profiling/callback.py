"""Trainer callback: profile the run's rule once, before training, and log the figures to the
run's MLflow record(s) so that reports can read them next to the accuracies."""
from __future__ import annotations

from typing import TYPE_CHECKING

from llsbench.profiling.profile import RuleProfile, profile_method
from llsbench.tracking import MlflowLogger
from llsbench.trainer import Callback

if TYPE_CHECKING:
    from llsbench.trainer import RunResult, Trainer

PROFILE_BATCH_CAP = 32


class ProfileCallback(Callback):
    """Profiles at `on_start` on a random batch of min(run batch size, `max_batch_size`)
    (weights, BatchNorm statistics, optimiser state and RNGs are restored), then logs
    `RuleProfile.metrics()` at step 0 to every `MlflowLogger` among the trainer's callbacks,
    whichever order they come in. A resumed run (epoch > 0) was profiled when it started."""

    def __init__(self, max_batch_size: int = PROFILE_BATCH_CAP):
        self.max_batch_size = max_batch_size
        self.profile: RuleProfile | None = None
        self._logged: set[int] = set()

    def on_start(self, trainer: "Trainer") -> None:
        if trainer.epoch > 0:
            return
        batch = min(trainer.config.batch_size, self.max_batch_size)
        self.profile = profile_method(trainer.method, batch, seed=trainer.config.seed)
        self._log(trainer)

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        self._log(trainer)

    def on_end(self, trainer: "Trainer", result: "RunResult") -> None:
        self._log(trainer)

    def _log(self, trainer: "Trainer") -> None:
        """Log to each logger whose MLflow run exists and has not had the profile yet."""
        if self.profile is None:
            return
        for cb in trainer.callbacks:
            if isinstance(cb, MlflowLogger) and cb.run_id is not None and id(cb) not in self._logged:
                cb.log_metrics(self.profile.metrics(), step=0)
                self._logged.add(id(cb))
