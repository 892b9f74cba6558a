"""A rule's Optuna study in RDB storage: created once, resumed by every later run of the same
command (the trial count grows to the requested total, never starts over), and refused when
the command asks for a different protocol under the same name."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

from llsbench.errors import ConfigError
from llsbench.store import sqlite_path
from llsbench.tuning.objective import Objective, TuningJob

# Trials that count towards the budget; FAIL (an exception, e.g. missing data) is run again.
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
PRUNER_STARTUP_TRIALS = 2  # the median pruner prunes only once this many trials have finished


def default_storage(output_dir: str | Path, study: str) -> str:
    return f"sqlite:///{Path(output_dir) / f'{study}.db'}"


def absolute_sqlite(url: str) -> str:
    """A relative SQLite URL made absolute, so workers started in another directory find it."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(Path(url[len(prefix):]).resolve())
    return url


def storage(url: str) -> optuna.storages.RDBStorage:
    """RDB storage; SQLite waits for a lock instead of failing when several workers write, and its
    file's folder is created if missing (as the MLflow store's is)."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # sqlalchemy's errors: bad URL, unreachable server
        raise ConfigError(f"--storage {url!r} cannot be opened: {type(exc).__name__}: {str(exc).splitlines()[0]}") \
            from None


def sampler(job: TuningJob, worker: int = 0) -> optuna.samplers.TPESampler:
    """TPE, seeded; each parallel worker gets its own seed (else they would propose the same
    first trials). The first half of the budget (at most 10 trials) is sampled at random."""
    return optuna.samplers.TPESampler(seed=job.sampler_seed + worker, n_startup_trials=startup_trials(job.trials))


def startup_trials(trials: int) -> int:
    return max(1, min(10, trials // 2))


def open_study(job: TuningJob, worker: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage(job.storage), study_name=job.optuna_name, direction="maximize",
                                sampler=sampler(job, worker), load_if_exists=True,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS))
    return study


def prepare_study(job: TuningJob) -> optuna.Study:
    """Create the rule's study, or check that the existing one was run with the same protocol."""
    study = open_study(job)
    recorded, wanted = study.user_attrs.get("protocol"), job.protocol()
    if recorded is None:
        study.set_user_attr("protocol", wanted)
    if recorded is not None and recorded != wanted:
        key = next(k for k in sorted(set(recorded) | set(wanted)) if recorded.get(k) != wanted.get(k))
        raise ConfigError(f"study {job.optuna_name!r} in {job.storage} was run with {key}={recorded.get(key)!r}, "
                          f"this command asks {key}={wanted.get(key)!r}; use another --study-name or the same settings")
    if counted_trials(study) > job.trials:
        raise ConfigError(f"study {job.optuna_name!r} in {job.storage} already holds {counted_trials(study)} trials, "
                          f"more than --trials {job.trials}: give at least {counted_trials(study)} or another "
                          f"--study-name (every rule must get the same budget)")
    return study


def counted_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def remaining_trials(study: optuna.Study, total: int) -> int:
    return max(0, total - counted_trials(study))


def worker_shares(remaining: int, workers: int) -> list[int]:
    """`remaining` trials split over `workers` (no worker idle while another has two more)."""
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    return [share for share in shares if share > 0]


def run_trials(job: TuningJob, n_trials: int, worker: int = 0, echo: Callable[[str], None] = print) -> None:
    """`n_trials` more trials of the job's study in this process (the unit a Ray task runs)."""
    if n_trials <= 0:
        return
    study = open_study(job, worker)
    stop = optuna.study.MaxTrialsCallback(job.trials, states=COUNTED)  # never past the budget
    study.optimize(Objective(job, echo), n_trials=n_trials, callbacks=[stop])


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    try:
        return study.best_trial
    except ValueError:
        raise ConfigError(f"study {study.study_name!r} has no completed trial to choose from") from None
