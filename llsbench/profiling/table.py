"""Rows of figures rendered as Markdown (readable units), CSV or JSON (exact values)."""
from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Callable

from tabulate import tabulate

FORMATS = ("md", "csv", "json")


def si(value: float, unit: str = "") -> str:
    """1234567 → '1.23 M' (powers of 1000, for MACs and counts)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:g} {unit}".strip()


def mib(value: float) -> str:
    return f"{value / 2 ** 20:.1f} MiB"


def ratio(value: float) -> str:
    if math.isinf(value):
        return "∞"
    return f"{value:,.0f}×" if value >= 100 else f"{value:.3g}×"


def render(rows: list[dict[str, Any]], fmt: str, readable: dict[str, Callable[[Any], str]] | None = None,
           headers: dict[str, str] | None = None) -> str:
    """`md`: a Markdown table with `readable[column](value)` applied and `headers` as titles;
    `csv` / `json`: the raw values under the row keys. Missing values print as empty / null."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    readable, headers = readable or {}, headers or {}
    cells = [[("" if row[c] is None else readable.get(c, str)(row[c])) for c in columns] for row in rows]
    return tabulate(cells, headers=[headers.get(c, c) for c in columns], tablefmt="github", disable_numparse=True)
