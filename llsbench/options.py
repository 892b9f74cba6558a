"""Declared, validated options of a learning rule (what `--basis square` or a suite's
`options:` map sets). Values arriving as strings from the command line are parsed here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llsbench.errors import ConfigError

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    default: Any
    help: str = ""
    choices: tuple | None = None

    def parse(self, owner: str, name: str, value: Any) -> Any:
        """`value` converted to the default's type and checked against `choices`."""
        kind = type(self.default)
        try:
            if isinstance(value, str) and kind is bool:
                if value.lower() not in _TRUE | _FALSE:
                    raise ValueError
                value = value.lower() in _TRUE
            elif kind in (int, float) and not isinstance(value, bool):
                value = kind(value)
            elif kind is str:
                value = str(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{owner}: option {name}={value!r} is not a valid {kind.__name__}") from None
        if self.choices is not None and value not in self.choices:
            valid = ", ".join(map(str, self.choices))
            raise ConfigError(f"{owner}: option {name}={value!r} is not allowed; valid values: {valid}")
        return value


def resolve(owner: str, declared: dict[str, Option], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with `given`; unknown keys are an error naming the valid ones."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        valid = ", ".join(sorted(declared)) or "(none)"
        raise ConfigError(f"{owner} has no option {unknown[0]!r}; valid options: {valid}")
    return {k: opt.parse(owner, k, given[k]) if k in given else opt.default for k, opt in declared.items()}
