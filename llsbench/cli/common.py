"""What every command shares: user mistakes become one-line errors, `key=value` parsing."""
from __future__ import annotations

import click

from llsbench.errors import LLSBenchError


class UserError(click.ClickException):
    """Printed as `Error: <message>` with exit code 2, never a traceback."""

    exit_code = 2


class UserErrorGroup(click.Group):
    """A click group that turns `LLSBenchError`s raised anywhere below it into `UserError`s."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LLSBenchError as exc:
            raise UserError(str(exc)) from None


def parse_key_values(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    """`("basis=square", "temperature=0.5")` → dict; a pair without `=` is an error."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{what} {pair!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def comma_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None
