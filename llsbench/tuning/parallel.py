"""Trials on Ray core: each task opens the SAME Optuna storage and runs its share of a rule's
trials (Optuna's documented pattern for distributed optimisation: workers share the RDB
storage, not memory). Imported only when `--workers` or `--ray-address` is given."""
from __future__ import annotations

from typing import Callable

import ray

from llsbench.tuning.objective import TuningJob
from llsbench.tuning.study import run_trials, worker_shares


@ray.remote(num_cpus=1)
def _trials_task(job: TuningJob, n_trials: int, worker: int) -> int:
    import torch

    torch.set_num_threads(1)  # one CPU per task: more threads only fight over it
    run_trials(job, n_trials, worker=worker, echo=lambda line: print(line, flush=True))
    return n_trials


def run_on_ray(pending: list[tuple[TuningJob, int]], *, workers: int | None, address: str | None,
               echo: Callable[[str], None] = print) -> None:
    """All pending trials of every rule as Ray tasks; `workers` CPUs of a local cluster, or the
    cluster at `address`. A local cluster started here is shut down before returning."""
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=True)
    try:
        width = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        tasks = [_trials_task.remote(job, share, worker)
                 for job, remaining in pending for worker, share in enumerate(worker_shares(remaining, width))]
        echo(f"{len(tasks)} Ray tasks over {width} workers")
        ray.get(tasks)
    finally:
        if started:
            ray.shutdown()
