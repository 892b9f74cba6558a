"""Search spaces: what a tuner may vary for one rule, declared next to the rule's options.

A space maps a key to a distribution. A key is either a shared run setting (`lr`,
`weight_decay`, `momentum`) or one of the rule's own options (`temperature` for LLS, `init`
for DFA, ...). `Method.search_space` declares the default space (lr and weight decay); rules
extend it. A YAML file (`llsbench tune --space FILE`) overrides entries per rule:

    all:                                  # every tuned rule
      lr: {log_uniform: [1.0e-4, 1.0e-2]}
    lls:
      temperature: {uniform: [0.1, 2.0]}
      weight_decay: {fixed: 0.0}          # pinned: not searched

This module never imports Optuna: rules declare spaces without depending on the tuner.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from llsbench.errors import ConfigError
from llsbench.options import Option
from llsbench.yamlfile import read_yaml

# Run settings a space may tune (RunConfig fields); every other key must be an option of the rule.
TUNABLE_SETTINGS = ("lr", "weight_decay", "momentum")
ALL_RULES = "all"


class SpaceError(ConfigError):
    """A search-space entry that is not valid; the message names the key and what is allowed."""


@dataclass(frozen=True)
class _Range:
    low: float
    high: float
    kind: ClassVar[str] = ""

    def check(self, where: str) -> None:
        _ordered(where, self, self.low, self.high)

    def to_yaml(self) -> dict:
        return {self.kind: [self.low, self.high]}


class LogUniform(_Range):
    kind = "log_uniform"

    def check(self, where: str) -> None:
        super().check(where)
        if self.low <= 0:
            raise SpaceError(f"{where}: log_uniform needs low > 0, got [{self.low}, {self.high}]")

    def suggest(self, trial, name: str):
        return trial.suggest_float(name, self.low, self.high, log=True)


class Uniform(_Range):
    kind = "uniform"

    def suggest(self, trial, name: str):
        return trial.suggest_float(name, self.low, self.high)


class IntRange(_Range):
    kind = "int"

    def check(self, where: str) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high)):
            raise SpaceError(f"{where}: int needs two integers [low, high], got [{self.low!r}, {self.high!r}]")
        super().check(where)

    def suggest(self, trial, name: str):
        return trial.suggest_int(name, self.low, self.high)


@dataclass(frozen=True)
class Choice:
    values: tuple
    kind: ClassVar[str] = "choice"

    def __init__(self, *values):
        object.__setattr__(self, "values", tuple(values))

    def check(self, where: str) -> None:
        if not self.values or len(set(self.values)) != len(self.values):
            raise SpaceError(f"{where}: choice needs a non-empty list of distinct values, got {list(self.values)}")

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, list(self.values))

    def to_yaml(self) -> dict:
        return {self.kind: list(self.values)}


@dataclass(frozen=True)
class Fixed:
    value: Any
    kind: ClassVar[str] = "fixed"

    def check(self, where: str) -> None:
        pass

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, [self.value])  # recorded with the trial's params

    def to_yaml(self) -> dict:
        return {self.kind: self.value}


Distribution = LogUniform | Uniform | IntRange | Choice | Fixed
_RANGES = {"log_uniform": LogUniform, "uniform": Uniform, "int": IntRange}
KINDS = ("log_uniform", "uniform", "int", "choice", "fixed")

# The space every rule starts from (Method.search_space); the fixed recipe is lr 5e-3, no decay.
DEFAULT_SPACE: dict[str, Distribution] = {"lr": LogUniform(1e-4, 3e-2), "weight_decay": LogUniform(1e-6, 1e-2)}


def _ordered(where: str, dist, low, high) -> None:
    finite = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    if not finite or not low < high:
        raise SpaceError(f"{where}: {dist.kind} needs numbers low < high, got [{low!r}, {high!r}]")


def valid_keys(options: dict[str, Option]) -> list[str]:
    return list(TUNABLE_SETTINGS) + sorted(options)


def parse_distribution(value: Any, where: str) -> Distribution:
    """`{log_uniform: [lo, hi]}`, `{uniform: ...}`, `{int: ...}`, `{choice: [...]}` or `{fixed: v}`."""
    if not isinstance(value, dict) or len(value) != 1:
        raise SpaceError(f"{where}: {value!r} is not a distribution; write one of "
                         f"{', '.join('{' + k + ': ...}' for k in KINDS)}")
    (kind, args), = value.items()
    if kind in _RANGES:
        if not isinstance(args, list) or len(args) != 2:
            raise SpaceError(f"{where}: {kind} needs [low, high], got {args!r}")
        dist = _RANGES[kind](*args)
    elif kind == "choice":
        if not isinstance(args, list):
            raise SpaceError(f"{where}: choice needs a list of values, got {args!r}")
        dist = Choice(*args)
    elif kind == "fixed":
        dist = Fixed(args)
    else:
        raise SpaceError(f"{where}: unknown distribution {kind!r}; valid distributions: {', '.join(KINDS)}")
    dist.check(where)
    return dist


def check_space(rule: str, space: dict[str, Distribution], options: dict[str, Option], where: str) -> None:
    """Every key tunable for `rule`; every value a rule option can take (its type and choices)."""
    keys = valid_keys(options)
    for key, dist in space.items():
        at = f"{where}: {rule}.{key}"
        if key not in keys:
            raise SpaceError(f"{at}: not a tunable key of {rule}; valid keys: {', '.join(keys)}")
        dist.check(at)
        if key in options:
            for value in _sample_values(dist):
                try:
                    options[key].parse(f"method {rule!r}", key, value)
                except ConfigError as exc:
                    raise SpaceError(f"{at}: {exc}") from None
        elif isinstance(dist, (Choice, Fixed)):
            bad = [v for v in _sample_values(dist) if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0]
            if bad:
                raise SpaceError(f"{at}: {bad[0]!r} is not a valid {key} (a number >= 0)")


def _sample_values(dist: Distribution) -> list:
    if isinstance(dist, Choice):
        return list(dist.values)
    if isinstance(dist, Fixed):
        return [dist.value]
    return [dist.low, dist.high]


def read_space_file(path: str | Path, rules: list[str]) -> dict[str, dict[str, Distribution]]:
    """The overrides of a space file, or of a suite file's `search_space:` section, per rule."""
    path = Path(path)
    data = read_yaml(path, "space file", SpaceError)
    if isinstance(data, dict) and "matrix" in data:  # a suite: its own section, which may cover other rules too
        if "search_space" not in data:
            raise SpaceError(f"suite {path} has no search_space section to tune with")
        return space_overrides(data["search_space"], rules, f"suite {path}: search_space", others_ok=True)
    return space_overrides(data, rules, f"space file {path}")


def space_overrides(data: Any, rules: list[str], where: str,
                    others_ok: bool = False) -> dict[str, dict[str, Distribution]]:
    """`{rule or all: {key: distribution}}` parsed per rule in `rules` (`all` spread over each).
    With `others_ok`, entries for registered rules not in `rules` are skipped, not refused."""
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: must be a mapping of rule: {{key: distribution}}; got {data!r}"[:200])
    allowed = [ALL_RULES, *rules]
    overrides: dict[str, dict[str, Distribution]] = {rule: {} for rule in rules}
    for rule in [ALL_RULES] + [r for r in data if r != ALL_RULES]:
        if rule not in data or (others_ok and rule not in allowed and _registered(rule)):
            continue
        if rule not in allowed:
            raise SpaceError(f"{where}: {rule!r} is not a rule being tuned; valid keys: {', '.join(allowed)}")
        entries = data[rule]
        if not isinstance(entries, dict):
            raise SpaceError(f"{where}: {rule}: must be a mapping of key: distribution; got {entries!r}")
        parsed = {str(k): parse_distribution(v, f"{where}: {rule}.{k}") for k, v in entries.items()}
        for target in rules if rule == ALL_RULES else [rule]:
            overrides[target].update(parsed)
    return overrides


def _registered(rule: str) -> bool:
    from llsbench.method_registry import METHODS  # the registry imports the rules, which import this module

    return rule in METHODS.names()


def rule_space(rule: str, declared: dict[str, Distribution], options: dict[str, Option],
               override: dict[str, Distribution] | None = None, where: str = "") -> dict[str, Distribution]:
    """The declared space with `override` laid over it, checked for `rule`."""
    space = {**declared, **(override or {})}
    check_space(rule, space, options, where or f"search space of {rule}")
    return space


def space_to_yaml(space: dict[str, Distribution]) -> dict[str, dict]:
    return {key: dist.to_yaml() for key, dist in space.items()}


def space_from_yaml(data: dict[str, Any], where: str) -> dict[str, Distribution]:
    return {key: parse_distribution(value, f"{where}: {key}") for key, value in data.items()}
