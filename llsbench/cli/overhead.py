"""`llsbench overhead`: the training loop's images/s against `bench`'s bare step, per rule, in one
process (issue 9's harness-overhead target)."""
from __future__ import annotations

import click
import torch

from llsbench.cli.profile import (checked_rules, one_place, rule_options, split_options, three_places, threads_option,
                                   where_it_ran)
from llsbench.cli.run import data_options
from llsbench.config import RunConfig
from llsbench.host_memory import host_memory_policy
from llsbench.profiling.harness import harness_overhead
from llsbench.profiling.table import render
from llsbench.trainer import Trainer

TARGET = 0.95


@click.command("overhead")
@rule_options
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@data_options
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True,
              help="Steps per epoch of the trainer, and bare steps per round.")
@click.option("--rounds", type=click.IntRange(min=1), default=4, show_default=True, help="Timed rounds.")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Untimed first rounds.")
@threads_option
@click.option("--progress", is_flag=True, help="Keep the trainer's progress bar on, as `run method` does by default.")
def overhead_cmd(model, dataset, methods, options, optimizer, device, seed, fmt, batch_size, data_dir, download, steps,
                 rounds, warmup, threads, progress) -> None:
    """Images/s of each rule through the training loop (`Trainer.train_epoch`, what `run method`
    logs as images_per_s, batch loading included) and through `bench`'s bare timed step (loading
    not timed), interleaved round by round on DATASET's training batches, and their ratio."""
    _, names = checked_rules(model, dataset, methods)
    if threads:
        torch.set_num_threads(threads)
    per_rule = split_options(options, names)
    trainers = {name: Trainer(RunConfig(method=name, method_options=per_rule[name], model=model, dataset=dataset,
                                        data_dir=data_dir, download=download, batch_size=batch_size, optimizer=optimizer, device=device,
                                        seed=seed, limit_train_batches=steps), progress=progress)
                for name in names}
    times = harness_overhead(trainers, rounds=rounds, warmup=warmup)
    rows = [t.row() for t in times]
    readable = {k: (one_place if k.endswith("images_per_s") else three_places) for k in rows[0] if k != "method"}
    click.echo(render(rows, fmt, readable))
    if fmt == "md":
        first = next(iter(trainers.values()))
        click.echo(f"\n{model} on {dataset}, batch {batch_size}, {where_it_ran(first.device)}, host memory {host_memory_policy()}: "
                   f"{rounds} rounds after {warmup} warm-up, each one trainer epoch of {steps} steps and {steps} bare steps; ratio = trainer images/s "
                   f"(median epoch) / bench images/s (batch / median bare step), target ≥ {TARGET}; round_ratio_* = "
                   f"per round, the epoch's images/s over the same round's mean bare-step images/s.")
