"""What a suite file may say, and the checks that turn YAML into a validated `Suite`.

A suite is data (lm-evaluation-harness style): a YAML mapping with

    name, description          text; `name` tags every run of the suite in MLflow
    budget                     what its own budget is called (default `paper`)
    seeds                      a count N (seeds 0..N-1) or a list of seeds
    settings                   RunConfig fields shared by every cell (epochs, lr, ...)
    matrix                     the main block: datasets × models × methods
    extra                      more blocks (each with a `name`; `optional: true` runs only on request)
    overrides                  per-cell changes, applied in file order: `when` a cell matches (by
                               block, dataset as the matrix names it, model or method label or
                               registered name), set its `dataset` variant (e.g. cifar10 →
                               cifar10-aug), `settings`, `model_options` or `method_options`
    notes                      free text (name → text): where the paper's own choice is ambiguous
    published                  numbers the authors reported for some cells (`llsbench.suites.published`)

A block has `datasets` (names), `models` (a name, or {model, label, options}), `methods`
(a name, {method, label, options}, or `all`: every registered method) and optionally
`seeds` and `settings`. Every error names the file, the key and what is allowed.
"""
from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from llsbench.config import RunConfig
from llsbench.data import DATASETS
from llsbench.errors import ConfigError, LLSBenchError
from llsbench.method_registry import METHODS
from llsbench.models import MODELS, model_options
from llsbench.options import resolve
from llsbench.suites.published import Published, parse_published

# Settings that say where/how a cell runs, not what it is: given on the command line, never in a file.
CONTEXT_FIELDS = ("device", "data_dir", "download", "num_workers")
# Settings a cell takes from its position in the matrix.
CELL_FIELDS = ("method", "method_options", "model", "model_options", "dataset", "seed")
SETTING_FIELDS = tuple(f.name for f in fields(RunConfig) if f.name not in CONTEXT_FIELDS + CELL_FIELDS)
ALL_METHODS = "all"

_TOP_KEYS = ("name", "description", "budget", "seeds", "settings", "matrix", "extra", "overrides", "notes",
             "published")
_BLOCK_KEYS = ("name", "datasets", "models", "methods", "seeds", "settings", "optional")
_OVERRIDE_KEYS = ("when", "dataset", "settings", "model_options", "method_options", "note")
_WHEN_KEYS = ("block", "dataset", "model", "method")


class SuiteError(ConfigError):
    """A suite file that does not say what it must; the message starts with `file: key:`."""


@dataclass(frozen=True)
class MethodEntry:
    label: str  # the name the row carries in tables, e.g. `lls-square`
    method: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEntry:
    label: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Block:
    name: str
    datasets: tuple[str, ...]
    models: tuple[ModelEntry, ...]
    methods: tuple[MethodEntry, ...]
    seeds: tuple[int, ...] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    optional: bool = False


@dataclass(frozen=True)
class Override:
    when: dict[str, tuple[str, ...]]
    dataset: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def matches(self, block: Block, dataset: str, model: ModelEntry, method: MethodEntry) -> bool:
        names = {"block": {block.name}, "dataset": {dataset}, "model": {model.label, model.model},
                 "method": {method.label, method.method}}
        return all(names[key] & set(values) for key, values in self.when.items())


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    path: Path
    budget: str
    seeds: tuple[int, ...]
    settings: dict[str, Any]
    blocks: tuple[Block, ...]  # the matrix first, then the extra blocks in file order
    overrides: tuple[Override, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)
    published: tuple[Published, ...] = ()


# ---- parsing --------------------------------------------------------------------------------

class _Reader:
    """Typed access to a YAML mapping; every failure names the file and the dotted key."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, message: str) -> SuiteError:
        return SuiteError(f"{self.path}: {key}: {message}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping with keys {', '.join(allowed)}; got {_kind(value)}")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise self.fail(_join(key, unknown[0]), f"unknown key; allowed keys: {', '.join(allowed)}")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(_join(key, missing[0]), "missing (required)")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string; got {_kind(value)}")
        return value

    def names(self, value: Any, key: str) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty list of names; got {_kind(value)}")
        return [self.text(v, f"{key}[{i}]") for i, v in enumerate(value)]

    def options(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping of option: value; got {_kind(value)}")
        return dict(value)

    def seeds(self, value: Any, key: str) -> tuple[int, ...]:
        if _is_int(value) and value >= 1:
            return tuple(range(value))
        if isinstance(value, list) and value and all(_is_int(s) and s >= 0 for s in value):
            if len(set(value)) != len(value):
                raise self.fail(key, f"repeats a seed: {value}")
            return tuple(value)
        raise self.fail(key, f"must be a count >= 1 or a list of distinct seeds >= 0; got {value!r}")

    def settings(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping of run settings; got {_kind(value)}")
        hints = typing.get_type_hints(RunConfig)
        for name, setting in value.items():
            if name in CONTEXT_FIELDS:
                raise self.fail(_join(key, name), "is chosen when the suite runs (--device, --data-dir, "
                                                  "--download, --num-workers), not in the file")
            if name not in SETTING_FIELDS:
                hint = " (set by the matrix)" if name in CELL_FIELDS else ""
                raise self.fail(_join(key, name),
                                f"unknown setting{hint}; allowed settings: {', '.join(SETTING_FIELDS)}")
            if not _has_type(setting, hints[name]):
                raise self.fail(_join(key, name), f"must be {_type_name(hints[name])}; got {setting!r}")
        try:
            RunConfig(**value).validate()
        except ConfigError as exc:
            raise self.fail(key, str(exc)) from None
        return dict(value)

    def flag(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false; got {value!r}")
        return value


def parse_suite(data: Any, path: Path) -> Suite:
    """Validate the YAML document `data` read from `path` into a `Suite`."""
    r = _Reader(path)
    top = r.mapping(data, "(top level)", _TOP_KEYS, required=("name", "description", "seeds", "matrix"))
    blocks = [_block(r, top["matrix"], "matrix", "main", extra=False)]
    extra = top.get("extra", [])
    if not isinstance(extra, list):
        raise r.fail("extra", f"must be a list of blocks; got {_kind(extra)}")
    blocks += [_block(r, b, f"extra[{i}]", None, extra=True) for i, b in enumerate(extra)]
    duplicate = _first_duplicate([b.name for b in blocks])
    if duplicate:
        raise r.fail("extra", f"block name {duplicate!r} is used twice")
    overrides = top.get("overrides", [])
    if not isinstance(overrides, list):
        raise r.fail("overrides", f"must be a list; got {_kind(overrides)}")
    notes = top.get("notes", {})
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise r.fail("notes", "must be a mapping of topic: text")
    budget = r.text(top.get("budget", "paper"), "budget")
    if budget in ("shortened", "modified"):
        raise r.fail("budget", "'shortened' and 'modified' are reserved for runs changed on the command line")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", r.text(top["name"], "name")):
        raise r.fail("name", f"{top['name']!r} must be letters, digits, '.', '_' or '-' (it names result files)")
    return Suite(name=top["name"], description=r.text(top["description"], "description"), path=path,
                 budget=budget, seeds=r.seeds(top["seeds"], "seeds"),
                 settings=r.settings(top.get("settings", {}), "settings"), blocks=tuple(blocks),
                 overrides=tuple(_override(r, o, f"overrides[{i}]", blocks) for i, o in enumerate(overrides)),
                 notes={str(k): v for k, v in notes.items()},
                 published=parse_published(r, top.get("published", []), _table_rows(blocks, overrides)))


def _table_rows(blocks: list[Block], overrides: list) -> set[tuple[str, str, str]]:
    """(dataset, model label, method label) of every row the report can have, datasets as the
    matrix names them and as an override may rename them."""
    renamed = {o["dataset"] for o in overrides if isinstance(o, dict) and "dataset" in o}
    return {(d, m.label, x.label) for b in blocks for d in set(b.datasets) | renamed for m in b.models
            for x in b.methods}


def _block(r: _Reader, data: Any, key: str, default_name: str | None, extra: bool) -> Block:
    allowed = _BLOCK_KEYS if extra else tuple(k for k in _BLOCK_KEYS if k not in ("name", "optional"))
    required = ("datasets", "models", "methods") + (("name",) if extra else ())
    b = r.mapping(data, key, allowed, required)
    datasets = r.names(b["datasets"], f"{key}.datasets")
    for i, name in enumerate(datasets):
        _known(r, DATASETS, name, f"{key}.datasets[{i}]")
    models = _entries(r, b["models"], f"{key}.models", "model", MODELS)
    methods = _entries(r, b["methods"], f"{key}.methods", "method", METHODS)
    for kind, entries in (("model", models), ("method", methods)):
        duplicate = _first_duplicate([e.label for e in entries])
        if duplicate:
            raise r.fail(f"{key}.{kind}s", f"label {duplicate!r} is used twice; give entries distinct `label`s")
    return Block(name=r.text(b.get("name", default_name), f"{key}.name"), datasets=tuple(datasets),
                 models=tuple(models), methods=tuple(methods),
                 seeds=r.seeds(b["seeds"], f"{key}.seeds") if "seeds" in b else None,
                 settings=r.settings(b.get("settings", {}), f"{key}.settings"),
                 optional=r.flag(b.get("optional", False), f"{key}.optional"))


def _entries(r: _Reader, value: Any, key: str, kind: str, registry) -> list:
    """Model or method entries: names, {kind, label, options} maps, and for methods `all`."""
    if value == ALL_METHODS and kind == "method":
        value = [ALL_METHODS]
    if not isinstance(value, list) or not value:
        raise r.fail(key, f"must be a non-empty list of {kind} names or {{{kind}, label, options}} maps; "
                          f"got {_kind(value)}")
    entries = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if item == ALL_METHODS and kind == "method":
            entries += [MethodEntry(name, name) for name in METHODS.names()]
            continue
        if isinstance(item, str):
            item = {kind: item}
        m = r.mapping(item, where, (kind, "label", "options"), required=(kind,))
        name = r.text(m[kind], f"{where}.{kind}")
        _known(r, registry, name, f"{where}.{kind}")
        options = r.options(m.get("options", {}), f"{where}.options")
        _check_options(r, kind, name, options, f"{where}.options")
        cls = MethodEntry if kind == "method" else ModelEntry
        entries.append(cls(r.text(m.get("label", name), f"{where}.label"), name, options))
    return entries


def _override(r: _Reader, data: Any, key: str, blocks: list[Block]) -> Override:
    o = r.mapping(data, key, _OVERRIDE_KEYS, required=("when",))
    when = r.mapping(o["when"], f"{key}.when", _WHEN_KEYS)
    if not when:
        raise r.fail(f"{key}.when", f"must name at least one of {', '.join(_WHEN_KEYS)}")
    known = {"block": {b.name for b in blocks},
             "dataset": {d for b in blocks for d in b.datasets},
             "model": {n for b in blocks for m in b.models for n in (m.label, m.model)},
             "method": {n for b in blocks for m in b.methods for n in (m.label, m.method)}}
    parsed = {}
    for field_name, value in when.items():
        values = r.names(value, f"{key}.when.{field_name}")
        for v in values:
            if v not in known[field_name]:
                raise r.fail(f"{key}.when.{field_name}", f"{v!r} matches no cell; the suite's {field_name}s: "
                                                         f"{', '.join(sorted(known[field_name]))}")
        parsed[field_name] = tuple(values)
    dataset = o.get("dataset")
    if dataset is not None:
        _known(r, DATASETS, r.text(dataset, f"{key}.dataset"), f"{key}.dataset")
    override = Override(when=parsed, dataset=dataset, settings=r.settings(o.get("settings", {}), f"{key}.settings"),
                        model_options=r.options(o.get("model_options", {}), f"{key}.model_options"),
                        method_options=r.options(o.get("method_options", {}), f"{key}.method_options"),
                        note=str(o.get("note", "")))
    _check_override_options(r, override, key, blocks)
    return override


def _check_override_options(r: _Reader, override: Override, key: str, blocks: list[Block]) -> None:
    """Option overrides must be valid for every model / method they can reach."""
    for block in blocks:
        for model in block.models:
            for method in block.methods:
                if not any(override.matches(block, d, model, method) for d in block.datasets):
                    continue
                if override.model_options:
                    _check_options(r, "model", model.model, {**model.options, **override.model_options},
                                   f"{key}.model_options")
                if override.method_options:
                    _check_options(r, "method", method.method, {**method.options, **override.method_options},
                                   f"{key}.method_options")


def _check_options(r: _Reader, kind: str, name: str, options: dict[str, Any], key: str) -> None:
    if kind == "method":
        try:
            resolve(f"method {name!r}", METHODS.get(name).options, options)
        except ConfigError as exc:
            raise r.fail(key, str(exc)) from None
        return
    valid = model_options(name)
    for option in options:
        if option not in valid:
            raise r.fail(f"{key}.{option}", f"model {name!r} has no such option; valid options: {', '.join(valid)}")


def _known(r: _Reader, registry, name: str, key: str) -> None:
    try:
        registry.get(name)
    except LLSBenchError as exc:
        raise r.fail(key, str(exc)) from None


# ---- small helpers --------------------------------------------------------------------------

def _join(key: str, sub: str) -> str:
    return sub if key == "(top level)" else f"{key}.{sub}"


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_type(value: Any, hint: Any) -> bool:
    """YAML value against a RunConfig annotation (`int`, `float`, `str | None`, ...)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return True
        if typing.get_origin(option) is list:
            return isinstance(value, list) and all(_has_type(v, typing.get_args(option)[0]) for v in value)
        if option is float and (_is_int(value) or isinstance(value, float)):
            return True
        if option is int and _is_int(value):
            return True
        if option in (str, bool) and isinstance(value, option):
            return True
    return False


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "").replace("NoneType", "null")


def _first_duplicate(items: list[str]) -> str | None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None
