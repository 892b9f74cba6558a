"""From a `Suite` and the command line's overrides to the list of cells to run.

Each cell's configuration is built in layers: RunConfig defaults < the suite's `settings` <
its block's `settings` < every matching `override` (in file order) < the command line's
budget overrides (`--epochs`, `--limit-train-batches`). Method and model options are resolved
with their declared defaults, so the cell key changes exactly when the experiment does.
Cells come block by block, then dataset, model, seed, method: every method of a seed is done
before the next seed starts, so a half-finished suite already compares all methods.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from llsbench.config import RunConfig
from llsbench.errors import ConfigError
from llsbench.method_registry import METHODS
from llsbench.models import model_options
from llsbench.options import resolve
from llsbench.suites.cells import Cell
from llsbench.suites.schema import CONTEXT_FIELDS, Block, MethodEntry, ModelEntry, Suite, SuiteError

BUDGET_FIELDS = ("epochs", "limit_train_batches")


@dataclass(frozen=True)
class Overrides:
    """What a user changes without editing the file. `seeds`: an int N takes the first N seeds
    of each block, a tuple names the seeds. Name filters match labels or registered names."""

    seeds: int | tuple[int, ...] | None = None
    epochs: int | None = None
    limit_train_batches: int | None = None
    methods: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    include: tuple[str, ...] = ()  # optional blocks to run as well

    def budget(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in BUDGET_FIELDS if getattr(self, k) is not None}


def expand(suite: Suite, overrides: Overrides = Overrides()) -> list[Cell]:
    blocks = _selected_blocks(suite, overrides.include)
    _check_filters(suite, blocks, overrides)
    cells: list[Cell] = []
    for block in blocks:
        for dataset in block.datasets:
            for model in block.models:
                if not _wanted(overrides.models, {model.label, model.model}):
                    continue
                for seed in _seeds(suite, block, overrides.seeds):
                    for method in block.methods:
                        if not _wanted(overrides.methods, {method.label, method.method}):
                            continue
                        cell = _cell(suite, block, dataset, model, method, seed, overrides)
                        if _wanted(overrides.datasets, {dataset, cell.dataset}):  # as named, or its variant
                            cells.append(cell)
    _check_unique(suite, cells)
    return cells


def _cell(suite: Suite, block: Block, dataset: str, model: ModelEntry, method: MethodEntry, seed: int,
          overrides: Overrides) -> Cell:
    settings = {**suite.settings, **block.settings}
    model_opts, method_opts, run_dataset = dict(model.options), dict(method.options), dataset
    for override in suite.overrides:
        if override.matches(block, dataset, model, method):
            settings.update(override.settings)
            model_opts.update(override.model_options)
            method_opts.update(override.method_options)
            run_dataset = override.dataset or run_dataset
    resolved_model = {**model_options(model.model), **model_opts}
    resolved_method = resolve(f"method {method.method!r}", METHODS.get(method.method).options, method_opts)
    config = asdict(RunConfig(method=method.method, method_options=resolved_method, model=model.model,
                              model_options=resolved_model, dataset=run_dataset, seed=seed, **settings))
    for name in CONTEXT_FIELDS:
        config.pop(name)
    changed = {k: v for k, v in overrides.budget().items() if config[k] != v}
    kind = _budget_kind(suite.budget, {k: config[k] for k in changed}, changed)
    config.update(changed)
    return Cell(suite=suite.name, block=block.name, method_label=method.label, model_label=model.label, seed=seed,
                config=config, budget=kind, budget_overrides=changed)


def _budget_kind(declared: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    """`shortened` when every change does less work than the file, `modified` otherwise."""
    if not after:
        return declared
    less = all(before[k] is None or after[k] < before[k] for k in after)  # None: no batch limit
    return "shortened" if less else "modified"


def _selected_blocks(suite: Suite, include: tuple[str, ...]) -> list[Block]:
    optional = [b.name for b in suite.blocks if b.optional]
    for name in include:
        if name not in optional:
            raise ConfigError(f"suite {suite.name!r} has no optional block {name!r}; "
                              f"optional blocks: {', '.join(optional) or '(none)'}")
    return [b for b in suite.blocks if not b.optional or b.name in include]


def _seeds(suite: Suite, block: Block, override: int | tuple[int, ...] | None) -> tuple[int, ...]:
    declared = block.seeds or suite.seeds
    if override is None:
        return declared
    if isinstance(override, int):
        if not 1 <= override <= len(declared):
            raise ConfigError(f"--seeds {override}: suite {suite.name!r} declares {len(declared)} seeds "
                              f"({', '.join(map(str, declared))}) for block {block.name!r}; ask for 1 to "
                              f"{len(declared)}, or list seeds explicitly (e.g. 0,7)")
        return declared[:override]
    return tuple(override)


def _check_filters(suite: Suite, blocks: list[Block], overrides: Overrides) -> None:
    available = {"method": {n for b in blocks for m in b.methods for n in (m.label, m.method)},
                 "dataset": {d for b in blocks for d in b.datasets} | {o.dataset for o in suite.overrides if o.dataset},
                 "model": {n for b in blocks for m in b.models for n in (m.label, m.model)}}
    for kind, wanted in (("method", overrides.methods), ("dataset", overrides.datasets), ("model", overrides.models)):
        for name in wanted or ():
            if name not in available[kind]:
                raise ConfigError(f"suite {suite.name!r} has no {kind} {name!r}; its {kind}s: "
                                  f"{', '.join(sorted(available[kind]))}")


def _wanted(filter_: tuple[str, ...] | None, names: set[str]) -> bool:
    return filter_ is None or bool(names & set(filter_))


def _check_unique(suite: Suite, cells: list[Cell]) -> None:
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.key in seen:
            raise SuiteError(f"{suite.path}: cells {seen[cell.key].label} ({seen[cell.key].block}) and {cell.label} "
                             f"({cell.block}) are the same experiment; remove one or change its settings")
        seen[cell.key] = cell
