"""`llsbench floor`: each rule's step against its own convolution, matrix-product and batch-norm
kernels replayed alone — how much of a step the rest takes, and how far these kernels let a step go."""
from __future__ import annotations

import runpy
from pathlib import Path

import click
import torch

from llsbench.cli.common import UserError
from llsbench.cli.profile import (build_rules, checked_rules, rule_options, split_options, three_places, threads_option,
                                   where_it_ran)
from llsbench.config import resolve_device
from llsbench.host_memory import host_memory_policy
from llsbench.profiling.kernel_floor import FloorTimes, floor_rounds
from llsbench.profiling.profile import random_batch
from llsbench.profiling.table import render
from llsbench.tracking import git_commit, git_dirty

REFERENCE_MODES = {"bp": "BP", "lls": "LLS"}


@click.command("floor")
@rule_options
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=8, show_default=True, help="Timed rounds.")
@click.option("--warmup", type=click.IntRange(min=1), default=2, show_default=True, help="Untimed first rounds.")
@threads_option
@click.option("--reference-script", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The LLS authors' step from this benchmark script (../shared/bench/ref_vs_llsbench.py) "
                   "for bp and lls, timed beside llsbench's, with its kernels.")
def floor_cmd(model, dataset, methods, options, optimizer, device, seed, fmt, batch_size, rounds, warmup, threads,
              reference_script) -> None:
    """Time each rule's training step against replays of the kernels that step calls (same
    shapes, strides and flags, on fresh random tensors), interleaved round by round in one
    process: matmul_s replays its convolutions and matrix products, matmul_bn_s those and its
    batch norms (no other kernel gives batch norm's bits, so an exact step cannot beat it).
    rest_s is the step less matmul_bn_s: activations, pooling, losses, optimiser, Python. With
    --reference-script, reference_over_step is the LLS authors' step over the rule's, and
    reference_over_matmul(_bn) the most a step with these kernels could reach against it."""
    spec, names = checked_rules(model, dataset, methods)
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    rules = build_rules(model, spec, names, split_options(options, names), optimizer, dev, seed)
    x, y = random_batch(next(iter(rules.values())), batch_size, seed)
    for rule in rules.values():
        rule.model.train()
        rule.train()
    steps = {name: (lambda rule=rule: rule.step(x, y)) for name, rule in rules.items()}
    if reference_script is not None:
        steps.update(_reference_steps(reference_script, model, names, spec.num_classes, x, y))
    times = {t.name: t for t in floor_rounds(steps, rounds=rounds, warmup=warmup, device=dev)}
    rows = [_row(t, times.get(f"reference-{t.name}"), reference_script is not None) for t in times.values()]
    readable = {k: three_places for k in rows[0] if k not in ("step", "matmul_calls")}
    click.echo(render(rows, fmt, readable))
    if fmt == "md":
        click.echo(f"\n{model}, random batch of {batch_size} shaped like {spec.name}, {where_it_ran(dev)}, host memory "
                   f"{host_memory_policy()}: medians over {rounds} interleaved rounds after {warmup} warm-up rounds; "
                   f"llsbench {git_commit()[:12]}{' with uncommitted changes' * (git_dirty() == 'true')}, "
                   f"torch {torch.__version__}.")


def _row(t: FloorTimes, reference: FloorTimes | None, with_reference: bool) -> dict:
    row = t.row()
    if with_reference:  # blank in the reference's own rows
        row["reference_over_step"] = reference and reference.step_median_s / t.step_median_s
        row["reference_over_matmul"] = reference and reference.step_median_s / t.matmul_median_s
        row["reference_over_matmul_bn"] = reference and reference.step_median_s / t.matmul_bn_median_s
    return row


def _reference_steps(script: Path, model: str, names: list[str], num_classes: int, x, y) -> dict:
    """The script's `reference_step(model, mode, classes)` for bp and lls (the script, and the
    reference code it imports, are loaded only here, when asked for)."""
    if x.device.type != "cpu":
        raise UserError(f"--reference-script: the reference code is CPU-patched; use --device cpu, not {x.device}")
    if x.shape[1] != 3:
        raise UserError(f"--reference-script: the script builds the reference for 3-channel inputs; "
                        f"--dataset gives {x.shape[1]} (use cifar10, cifar100 or another RGB dataset)")
    wanted = [n for n in names if n in REFERENCE_MODES]
    if not wanted:
        raise UserError(f"--reference-script: the reference has bp and lls only; --methods gave {', '.join(names)}")
    script_globals = runpy.run_path(str(script))
    known = script_globals.get("REF_CLASS", {})
    if model not in known:
        raise UserError(f"--reference-script: the reference has no model {model!r}; it has {', '.join(sorted(known))}")
    make = script_globals["reference_step"]
    return {f"reference-{n}": (lambda step=make(model, REFERENCE_MODES[n], num_classes): step(x, y)) for n in wanted}
