"""One tuning trial: the rule's space sampled, trained on the training split, scored on the
validation split after every epoch (reported to the pruner), recorded as a nested MLflow run."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import optuna

from llsbench import tracking
from llsbench.config import RunConfig
from llsbench.method_registry import METHODS
from llsbench.suites.schema import CONTEXT_FIELDS
from llsbench.trainer import Callback, Trainer
from llsbench.tracking import MlflowLogger
from llsbench.tuning.spaces import TUNABLE_SETTINGS, Distribution, space_to_yaml
from llsbench.tuning.validation import ValidationTrainer

# What a trial scores: the validation accuracy after its last epoch. A diverged trial scores 0
# (below chance), so the sampler learns to avoid where it diverged instead of ignoring it.
OBJECTIVE = "val_acc"
DIVERGED_SCORE = 0.0


@dataclass(frozen=True)
class TuningJob:
    """Everything a worker needs to run trials of one rule (plain data: it travels to Ray)."""

    study: str  # the llsbench study; the rule's Optuna study is `optuna_name`
    base: RunConfig  # the fixed recipe every trial starts from (method set to the rule)
    space: dict[str, Distribution]
    trials: int
    storage: str
    val_fraction: float
    val_seed: int = 0
    sampler_seed: int = 0
    experiment: str = tracking.DEFAULT_EXPERIMENT
    tracking_uri: str | None = None  # None: no MLflow
    parent_run_id: str | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.base.method

    @property
    def optuna_name(self) -> str:
        return f"{self.study}:{self.method}"

    def protocol(self) -> dict[str, str]:
        """What must not change when a study is resumed (the trial budget may grow)."""
        where = set(CONTEXT_FIELDS)  # device, data_dir, ...: where it runs, not what it is
        params = {k: v for k, v in self.base.to_params().items() if k not in where}
        return {**params, "val_fraction": str(self.val_fraction), "val_seed": str(self.val_seed),
                "space": str(space_to_yaml(self.space))}


def trial_config(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """`base` with sampled `params`: shared settings as fields, the rest as rule options."""
    settings = {k: v for k, v in params.items() if k in TUNABLE_SETTINGS}
    options = {k: v for k, v in params.items() if k not in TUNABLE_SETTINGS}
    return replace(base, **settings, method_options={**base.method_options, **options})


def sample(trial: optuna.Trial, space: dict[str, Distribution]) -> dict[str, Any]:
    return {key: dist.suggest(trial, key) for key, dist in space.items()}


class ReportToPruner(Callback):
    """Reports each epoch's validation accuracy; raises `TrialPruned` when the pruner says so."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        epoch = int(metrics["epoch"])
        self.trial.report(metrics[OBJECTIVE], epoch)
        # After the last epoch the trial is done: pruning it then would only throw its score away.
        if epoch < trainer.config.epochs and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: val_acc {metrics[OBJECTIVE]:.2f}%")


class Objective:
    def __init__(self, job: TuningJob, echo=print):
        self.job, self.echo = job, echo

    def __call__(self, trial: optuna.Trial) -> float:
        job = self.job
        params = sample(trial, job.space)
        config = trial_config(job.base, params)
        METHODS.get(config.method)  # unknown names fail before any data is read
        logger = self._logger(trial) if job.tracking_uri is not None else None
        callbacks = ([logger] if logger else []) + [ReportToPruner(trial)]
        trainer = ValidationTrainer(config, val_fraction=job.val_fraction, val_seed=job.val_seed, callbacks=callbacks)
        try:
            result = trainer.fit()
        except optuna.TrialPruned as pruned:
            self._close(logger, "pruned", "KILLED")
            self.echo(f"{job.method} trial {trial.number}: {pruned} ({_text(params)})")
            raise
        except BaseException:
            self._close(logger, "failed", "FAILED")
            raise
        trial.set_user_attr("n_val", trainer.data.validation.num_samples)
        if logger:
            trial.set_user_attr("mlflow_run_id", logger.run_id)
        if result.status != "finished":
            trial.set_user_attr("diverged", result.reason)
            self.echo(f"{job.method} trial {trial.number}: diverged ({result.reason}); scored {DIVERGED_SCORE}")
            return DIVERGED_SCORE
        score = result.history[-1][OBJECTIVE]
        self.echo(f"{job.method} trial {trial.number}: val acc {score:.2f}% ({_text(params)})")
        return score

    def _logger(self, trial: optuna.Trial) -> MlflowLogger:
        job = self.job
        tags = {**job.extra_tags, "role": "trial", "study": job.study, "optuna_study": job.optuna_name,
                "trial": str(trial.number), "tuned_keys": ",".join(job.space)}
        return MlflowLogger(job.experiment, job.tracking_uri, run_name=f"{job.method} trial {trial.number}",
                            tags=tags, parent_run_id=job.parent_run_id)

    @staticmethod
    def _close(logger: MlflowLogger | None, status: str, mlflow_status: str) -> None:
        if logger is not None and logger.run_id is not None:
            logger.client.set_tag(logger.run_id, "status", status)
            logger.client.set_terminated(logger.run_id, mlflow_status)


def _text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
