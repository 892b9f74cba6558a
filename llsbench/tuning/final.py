"""After tuning: the chosen configuration, and the fixed recipe beside it, each retrained from
scratch on the FULL training set (validation split folded back in) under the same budget, and
evaluated on the test set — the only time the test set is read. Results are kept in the
rule's study, so a resumed study whose best trial did not change does not retrain."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import optuna

from llsbench.trainer import Trainer
from llsbench.tracking import MlflowLogger
from llsbench.tuning.objective import TuningJob, trial_config

ROLES = {"tuned": "final-tuned", "fixed": "final-fixed"}


def test_once(job: TuningJob, study: optuna.Study, which: str, params: dict[str, Any]) -> dict[str, Any]:
    """`{"test_acc", "run_id", "params"}` of configuration `which` (tuned or fixed), trained once."""
    key = f"final_{which}"
    cached = study.user_attrs.get(key)
    if cached and cached["params"] == _jsonable(params):
        return cached
    config = replace(trial_config(job.base, params), limit_test_batches=None)  # the cap was on validation batches
    callbacks = []
    if job.tracking_uri is not None:
        tags = {**job.extra_tags, "role": ROLES[which], "study": job.study, "optuna_study": job.optuna_name}
        callbacks.append(MlflowLogger(job.experiment, job.tracking_uri, run_name=f"{job.method} {which} (test)",
                                      tags=tags, parent_run_id=job.parent_run_id))
    result = Trainer(config, callbacks=callbacks, progress=False).fit()
    outcome = {"params": _jsonable(params), "status": result.status,
               "test_acc": result.summary.get("final_test_acc") if result.status == "finished" else None,
               "run_id": callbacks[0].run_id if callbacks else None}
    study.set_user_attr(key, outcome)
    return outcome


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(params.items())}
