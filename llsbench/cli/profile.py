"""`llsbench profile` (MACs, memory and extra parameters of rules, without training) and
`llsbench bench` (step times of rules, interleaved in one process)."""
from __future__ import annotations

import itertools
import json
import click
import torch

from llsbench.accelerate import PRECISIONS, Acceleration
from llsbench.cli.common import UserError, comma_list, parse_key_values
from llsbench.config import resolve_device
from llsbench.data import DATASETS, DatasetSpec, load_data
from llsbench.host_memory import host_memory_policy
from llsbench.method import Method
from llsbench.method_registry import METHODS, create_method
from llsbench.models import MODELS, create_model
from llsbench.optim import OPTIMIZERS, optimizer_factory
from llsbench.profiling import StepTimes, profile_method, random_batch, round_robin
from llsbench.profiling.timing import endless, quantile
from llsbench.profiling.table import FORMATS, mib, ratio, render, si

_PROFILE_READABLE = {"forward_macs": si, "step_macs": si, "signal_macs": si, "signal_macs_bp_ratio": ratio,
                     "held_for_backward_bytes": mib, "params_bytes": mib, "grads_bytes": mib,
                     "optimizer_state_bytes": mib, "held_memory_bytes": mib, "cuda_peak_bytes": mib}
_PROFILE_HEADERS = {"forward_macs": "forward MACs", "step_macs": "step MACs", "signal_macs": "signal MACs",
                    "signal_macs_bp_ratio": "BP/rule signal", "held_for_backward_bytes": "held for backward",
                    "params_bytes": "params+buffers", "grads_bytes": "grads", "optimizer_state_bytes": "optimiser state",
                    "held_memory_bytes": "held memory", "cuda_peak_bytes": "CUDA peak",
                    "extra_parameters": "extra params", "profile_batch_size": "batch"}


def rule_options(f):
    """Options shared by `profile` and `bench`."""
    for decorator in reversed([
        click.option("--model", default="vgg8", show_default=True, help="Model (see `llsbench list models`)."),
        click.option("--dataset", default="cifar10", show_default=True,
                     help="Dataset whose input shape and classes are used (see `llsbench list datasets`)."),
        click.option("--methods", default="bp,lls", show_default=True, help="Comma-separated rules."),
        click.option("-o", "--option", "options", multiple=True, metavar="METHOD.KEY=VALUE",
                     help="A rule's option, e.g. -o lls.basis=square (repeatable)."),
        click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adamw-sf", show_default=True),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of weights and random inputs."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True),
    ]):
        f = decorator(f)
    return f


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="CPU intra-op threads (default: torch's). On a loaded shared CPU, 1 avoids OpenMP barrier stalls.")


def split_options(pairs: tuple[str, ...], methods: list[str]) -> dict[str, dict[str, str]]:
    """`("lls.basis=square",)` → {"lls": {"basis": "square"}, ...}; the rule must be listed."""
    per_rule: dict[str, dict[str, str]] = {m: {} for m in methods}
    for key, value in parse_key_values(pairs, "--option").items():
        rule, dot, name = key.partition(".")
        if not dot or not name or rule not in per_rule:
            raise UserError(f"--option {key}={value}: write METHOD.KEY=VALUE with METHOD one of "
                            f"{', '.join(methods)}")
        per_rule[rule][name] = value
    return per_rule


def build_rules(model: str, spec: DatasetSpec, methods: list[str], options: dict[str, dict[str, str]],
                optimizer: str, device: torch.device, seed: int,
                acceleration: Acceleration = Acceleration()) -> dict[str, Method]:
    """Each rule on its own copy of the model, all initialised from the same seed."""
    rules = {}
    for name in methods:
        torch.manual_seed(seed)
        net = acceleration.prepare(create_model(model, in_channels=spec.in_channels, num_classes=spec.num_classes,
                                                image_size=spec.image_size).to(device))
        rules[name] = create_method(name, net, num_classes=spec.num_classes,
                                    input_shape=(spec.in_channels, spec.image_size, spec.image_size),
                                    optimizer=optimizer_factory(optimizer), **options[name])
    return rules


def checked_rules(model: str, dataset: str, methods: str) -> tuple[DatasetSpec, list[str]]:
    MODELS.get(model)
    spec = DATASETS.get(dataset)
    names = comma_list(methods) or []
    if not names:
        raise UserError("--methods: give at least one rule, e.g. --methods bp,lls")
    if len(set(names)) != len(names):
        raise UserError(f"--methods {methods}: each rule may appear once")
    for name in names:
        METHODS.get(name)
    return spec, names


@click.command("profile")
@rule_options
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Batch of the profiled step (memory figures are per this batch; MACs are per sample).")
@click.option("--per-block", is_flag=True, help="Show each rule's learning-signal MACs per block instead.")
def profile(model, dataset, methods, options, optimizer, device, seed, fmt, batch_size, per_block) -> None:
    """MACs (forward, training step, learning signal), memory and extra parameters of each rule
    on MODEL, from one step on a random batch shaped like DATASET (no data needed, no training).

    MACs are per sample. Memory is in bytes at --batch-size: held_for_backward (peak of the
    tensors autograd keeps for backward, parameters excluded), params (+buffers), grads,
    optimiser state, their sum held_memory, and on CUDA the allocator peak of a step.
    signal_macs_bp_ratio is BP's learning-signal MACs over the rule's.
    """
    spec, names = checked_rules(model, dataset, methods)
    dev = resolve_device(device)
    rules = build_rules(model, spec, names, split_options(options, names), optimizer, dev, seed)
    profiles = [profile_method(rule, batch_size, seed=seed) for rule in rules.values()]
    if fmt == "json":
        click.echo(json.dumps([p.details() for p in profiles], indent=2))
        return
    if per_block:
        rows = [{"method": p.method, "block": c.block, "signal_macs": c.macs, "formula": c.formula}
                for p in profiles for c in p.signal.per_block]
        click.echo(render(rows, fmt, {"signal_macs": si}))
        return
    click.echo(render([p.row() for p in profiles], fmt, _PROFILE_READABLE, _PROFILE_HEADERS))
    if fmt == "md":
        unsupported = profiles[0].forward.unsupported_ops
        click.echo(f"\n{model} on {spec.name}-shaped input {spec.in_channels}×{spec.image_size}×{spec.image_size}, "
                   f"{spec.num_classes} classes, {dev}. MACs per sample; bytes at batch {batch_size}.")
        if unsupported:
            click.echo("fvcore counted no MACs for: " + ", ".join(f"{op} ×{n}" for op, n in unsupported.items()))


@click.command("bench")
@rule_options
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed rounds (each rule takes one step per round).")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True, help="Untimed first rounds.")
@click.option("--inputs", type=click.Choice(["random", "dataset"]), default="random", show_default=True,
              help="random: one random batch shaped like DATASET; dataset: DATASET's training batches "
                   "(must be on disk; batch loading is timed too).")
@click.option("--data-dir", envvar="LLSBENCH_DATA_DIR", type=click.Path(file_okay=False),
              help="Dataset root for --inputs dataset (env LLSBENCH_DATA_DIR).")
@threads_option
@click.option("--compile", "compiled", is_flag=True, help="torch.compile the models' blocks and heads.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="bf16: autocast each step.")
@click.option("--channels-last", is_flag=True, help="NHWC layout for models and inputs.")
def bench(model, dataset, methods, options, optimizer, device, seed, fmt, batch_size, steps, warmup, inputs,
          data_dir, threads, compiled, precision, channels_last) -> None:
    """Time training steps of each rule on MODEL in one process, interleaved (every round gives
    each rule one step on the same batch, starting with a different rule each round), and print
    median step times and their ratio to the first rule: the figure to quote on a shared machine."""
    spec, names = checked_rules(model, dataset, methods)
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    acceleration = Acceleration(compile=compiled, precision=precision, channels_last=channels_last)
    rules = build_rules(model, spec, names, split_options(options, names), optimizer, dev, seed, acceleration)
    first = next(iter(rules.values()))
    if inputs == "dataset":
        splits = load_data(spec.name, data_dir=data_dir, batch_size=batch_size, device=dev, seed=seed)
        batches = endless(splits.train)
    else:
        batches = itertools.repeat(random_batch(first, batch_size, seed))
    for rule in rules.values():
        rule.model.train()
        rule.train()
    times = round_robin(rules, batches, steps=steps, warmup=warmup, load_timed=inputs == "dataset",
                        acceleration=acceleration)
    rows = [_bench_row(t, times[0]) for t in times]
    readable = {k: three_places for k in rows[0] if "ratio" in k or k.endswith("_step_s")}
    click.echo(render(rows, fmt, {**readable, "images_per_s": one_place, "data_share": _percent}))
    if fmt == "md":
        click.echo(f"\n{model}, {inputs} inputs shaped like {spec.name}, batch {batch_size}, {where_it_ran(dev)}, "
                   f"{acceleration.label}, host memory {host_memory_policy()}: seconds per "
                   f"step over {steps} interleaved rounds after {warmup} warm-up rounds; ratio_to_{names[0]} = "
                   f"ratio of medians, round_ratio_p25/p75 = quartiles of the same-round ratios.")


def where_it_ran(device: torch.device) -> str:
    """The GPU's name, or 'cpu, N threads' (the intra-op threads the timings ran with)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    n = torch.get_num_threads()
    return f"cpu, {n} thread{'s' * (n > 1)}"


def _bench_row(t: StepTimes, first: StepTimes) -> dict:
    ratios = t.ratios_to(first)
    return {"method": t.name, "median_step_s": t.median_s, "p25_step_s": t.quantile_s(0.25),
            "p75_step_s": t.quantile_s(0.75), "min_step_s": min(t.step_s), "max_step_s": max(t.step_s),
            "images_per_s": t.images_per_s, f"ratio_to_{first.name}": t.median_s / first.median_s,
            "round_ratio_p25": quantile(ratios, 0.25), "round_ratio_p75": quantile(ratios, 0.75),
            "data_share": t.data_share}


def three_places(value: float) -> str:
    return f"{value:.3f}"


def one_place(value: float) -> str:
    return f"{value:.1f}"


def _percent(value: float) -> str:
    return f"{value:.1%}"
