"""`llsbench list`: the registries, printed."""
from __future__ import annotations

import click

from llsbench.data import DATASETS
from llsbench.method_registry import METHODS
from llsbench.models import MODELS, model_options

KINDS = ("methods", "models", "datasets")


@click.command("list")
@click.argument("kind", required=False, type=click.Choice(KINDS))
@click.option("--pattern", default="*", show_default=True, help="Shell wildcard on names, e.g. 'lls*'.")
def list_cmd(kind: str | None, pattern: str) -> None:
    """List registered methods, models and datasets (all three when KIND is omitted)."""
    for k in [kind] if kind else KINDS:
        click.secho(k, bold=True)
        for line in _LISTERS[k](pattern):
            click.echo("  " + line)


def _methods(pattern: str) -> list[str]:
    lines = []
    for name in METHODS.names(pattern):
        cls = METHODS.get(name)
        opts = ", ".join(f"{k}={v.default}" for k, v in cls.options.items())
        lines.append(f"{name:<14} {cls.summary}" + (f"  [options: {opts}]" if opts else ""))
    lines += [f"{name:<14} BROKEN PLUGIN: {err}" for name, err in sorted(METHODS.broken.items())]
    return lines


def _models(pattern: str) -> list[str]:
    return [f"{name:<14} options: " + ", ".join(f"{k}={v}" for k, v in model_options(name).items())
            for name in MODELS.names(pattern)]


def _datasets(pattern: str) -> list[str]:
    out = []
    for name in DATASETS.names(pattern):
        s = DATASETS.get(name)
        out.append(f"{name:<18} {s.num_classes:>3} classes, {s.in_channels}×{s.image_size}×{s.image_size}  "
                   f"{s.description}")
    return out


_LISTERS = {"methods": _methods, "models": _models, "datasets": _datasets}
