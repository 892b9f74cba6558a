"""`tune`: every rule gets the same number of trials and epochs — run in this process, or as
Ray tasks sharing the Optuna storage — then its best configuration and the fixed recipe are
tested once, and everything is gathered into the tuned fragment's `methods:` entries."""
from __future__ import annotations

from typing import Any, Callable

from mlflow.entities import Metric, RunTag

from llsbench import tracking
from llsbench.tuning.final import test_once
from llsbench.tuning.objective import TuningJob
from llsbench.tuning.output import rule_entry
from llsbench.tuning.spaces import space_to_yaml
from llsbench.tuning.study import best_trial, open_study, prepare_study, remaining_trials, run_trials

Echo = Callable[[str], None]


def tune(jobs: list[TuningJob], *, workers: int | None = None, ray_address: str | None = None,
         test: bool = True, echo: Echo = print) -> dict[str, dict[str, Any]]:
    """Tune every job's rule to its trial budget (resuming what its study already holds)."""
    remaining = {job.method: remaining_trials(prepare_study(job), job.trials) for job in jobs}
    for job in jobs:
        done = job.trials - remaining[job.method]
        echo(f"{job.method}: {done}/{job.trials} trials already in study {job.optuna_name!r}"
             + (f", running {remaining[job.method]} more" if remaining[job.method] else ""))
    pending = [(job, remaining[job.method]) for job in jobs if remaining[job.method]]
    if pending and (workers or ray_address):
        from llsbench.tuning.parallel import run_on_ray  # Ray is imported only on this path

        run_on_ray(pending, workers=workers, address=ray_address, echo=echo)
    else:
        for job, n in pending:
            run_trials(job, n, echo=echo)
    return {job.method: _rule_result(job, test, echo) for job in jobs}


def _rule_result(job: TuningJob, test: bool, echo: Echo) -> dict[str, Any]:
    study = open_study(job)
    best = best_trial(study)
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    tuned = fixed = None
    if test:
        echo(f"{job.method}: best trial {best.number} (val acc {best.value:.2f}%): retraining on the full training "
             f"set and testing once; then the fixed recipe the same way")
        tuned = test_once(job, study, "tuned", best.params)
        fixed = test_once(job, study, "fixed", {})
    budget = {"trials": job.trials, "epochs": job.base.epochs}
    entry = rule_entry(best.params, job.base.method_options, budget=budget, best_val=best.value, best_number=best.number,
                       counts=counts, tuned=tuned or {}, fixed=fixed, space=space_to_yaml(job.space))
    return {**entry, "n_val": best.user_attrs.get("n_val")}


# ---- the study's MLflow parent run ----------------------------------------------------------

def open_parent(study: str, experiment: str, tracking_uri: str | None, tags: dict[str, str]) -> str:
    """The study's parent run: the one an earlier run of the study created, or a new one."""
    c = tracking.client(tracking_uri)
    experiment_id = tracking.ensure_experiment(experiment, tracking_uri)
    found = tracking.find_runs(c, experiment_id, {"role": "study", "study": study})
    if found:
        run_id = found[0].info.run_id
        c.update_run(run_id, status="RUNNING")
        c.log_batch(run_id, tags=[RunTag(k, v[:5000]) for k, v in tags.items()])
        return run_id
    return c.create_run(experiment_id, run_name=f"study {study}",
                        tags={**tags, "role": "study", "study": study}).info.run_id


def close_parent(run_id: str, tracking_uri: str | None, results: dict[str, dict[str, Any]], note: str,
                 status: str = "FINISHED") -> None:
    c = tracking.client(tracking_uri)
    metrics = []
    for rule, entry in results.items():
        for name in ("val_acc", "test_acc", "fixed_test_acc"):
            if entry.get(name) is not None:
                metrics.append(Metric(f"{name}.{rule}", float(entry[name]), 0, 0))
    c.log_batch(run_id, metrics=metrics, tags=[RunTag("mlflow.note.content", note[:5000])])
    c.set_terminated(run_id, status)
