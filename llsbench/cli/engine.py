"""`--workers`, `--ray-address`, `--gpus-per-cell`, `--cpus-per-cell`: which engine runs a
suite's cells. Without the first two, the cells run in order in this process and Ray is never
imported."""
from __future__ import annotations

import click

from llsbench.cli.common import UserError
from llsbench.executor import Engine, SequentialEngine


def engine_options(command):
    for option in reversed([
        click.option("--workers", type=int, metavar="N",
                     help="Run up to N cells at once on this machine (a local Ray instance, 127.0.0.1 only)."),
        click.option("--ray-address", metavar="ADDRESS",
                     help="Send the cells to a running Ray cluster: auto, or HEAD:PORT (its GCS, 6379 by default)."),
        click.option("--gpus-per-cell", type=float, metavar="F",
                     help="GPUs each cell asks Ray for (0.25 puts four cells on one GPU; default 0: CPU)."),
        click.option("--cpus-per-cell", type=int, metavar="N",
                     help="CPUs each cell asks Ray for; the cell uses as many torch threads (default 1)."),
    ]):
        command = option(command)
    return command


def make_engine(workers: int | None, ray_address: str | None, gpus_per_cell: float | None,
                cpus_per_cell: int | None, device: str = "auto") -> Engine:
    """The engine the flags ask for; a mistake in them (or a device Ray's cells cannot see) is an
    error before anything starts."""
    if workers is None and ray_address is None:
        given = [flag for flag, value in (("--gpus-per-cell", gpus_per_cell), ("--cpus-per-cell", cpus_per_cell))
                 if value is not None]
        if given:
            raise UserError(f"{' and '.join(given)}: for cells run by Ray only; add --workers N (this machine) "
                            "or --ray-address ADDRESS (a cluster)")
        return SequentialEngine()
    from llsbench.executor.ray_engine import RayEngine, RayOptions  # imports Ray: only when asked for

    options = RayOptions(workers=workers, address=ray_address, gpus_per_cell=gpus_per_cell or 0.0,
                         cpus_per_cell=1 if cpus_per_cell is None else cpus_per_cell)
    options.check_device(device)
    return RayEngine(options)
