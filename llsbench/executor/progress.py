"""The whole suite in one view: a line per completed cell and, while cells run at once, the
suite's counts (done / failed / running / queued, elapsed, ETA).

On a terminal the counts are one status line kept at the bottom and redrawn in place; in a
log (not a terminal) each completed cell's line carries them instead. Per-cell progress bars
never mix into it: a concurrent engine sends each cell's console output to its own log file.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import IO, TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from llsbench.suites.cells import Cell
    from llsbench.suites.runner import CellOutcome

TRAINED = ("finished", "failed")  # outcomes that took training time (skipped cells take none): the ETA's rate
_CLEAR_LINE = "\r\x1b[2K"


class SuiteProgress:
    def __init__(self, cells: Sequence["Cell"], echo: Callable[[str], None] = print, *, counts: bool = False,
                 live: IO[str] | None = None, clock: Callable[[], float] = time.monotonic):
        """`counts`: add the suite's counts to each cell line (cells run at once); `live`: the
        terminal to keep a status line on instead."""
        self.cells, self.echo, self.counts, self.live, self.clock = list(cells), echo, counts, live, clock
        self.outcomes: list["CellOutcome"] = []
        self.running: set[str] = set()
        self.start = clock()

    def started(self, cell: "Cell") -> None:
        self.running.add(cell.key)
        self.refresh()

    def completed(self, outcome: "CellOutcome") -> None:
        self.running.discard(outcome.cell.key)
        self.outcomes.append(outcome)
        width = len(str(len(self.cells)))
        line = f"[{len(self.outcomes):>{width}}/{len(self.cells)}] {outcome.cell.label}: {describe(outcome)}"
        if self.counts and self.live is None:
            line += f" | {self.status()}"
        self._clear()
        self.echo(line)
        self.refresh()

    def refresh(self) -> None:
        """Redraw the status line (engines call this while they wait)."""
        if self.live is not None:
            self.live.write(_CLEAR_LINE + self.status())
            self.live.flush()

    def close(self) -> None:
        self._clear()

    def in_cell_order(self) -> list["CellOutcome"]:
        order = {cell.key: i for i, cell in enumerate(self.cells)}
        return sorted(self.outcomes, key=lambda o: order.get(o.cell.key, len(order)))

    def status(self) -> str:
        statuses = Counter(o.status for o in self.outcomes)
        failed, interrupted = statuses.pop("failed", 0), statuses.pop("interrupted", 0)
        breakdown = ", ".join(f"{n} {s}" for s, n in statuses.items())
        queued = len(self.cells) - len(self.outcomes) - len(self.running)
        elapsed = self.clock() - self.start
        return (f"{sum(statuses.values())}/{len(self.cells)} done" + (f" ({breakdown})" if breakdown else "") +
                f", {failed} failed" + (f", {interrupted} interrupted" if interrupted else "") +
                f", {len(self.running)} running, {queued} queued; "
                f"{clock_text(elapsed)} elapsed, ETA {self._eta(elapsed, queued)}")

    def _eta(self, elapsed: float, queued: int) -> str:
        trained = sum(o.status in TRAINED for o in self.outcomes)
        remaining = queued + len(self.running)
        if not remaining:
            return clock_text(0)
        return clock_text(elapsed / trained * remaining) if trained else "?"

    def _clear(self) -> None:
        if self.live is not None:
            self.live.write(_CLEAR_LINE)
            self.live.flush()


def describe(outcome: "CellOutcome") -> str:
    text = outcome.status
    if outcome.final_test_acc is not None:
        text += f", test acc {outcome.final_test_acc:.2f}%"
    if outcome.resumed_from:
        text += f", resumed from epoch {outcome.resumed_from}"
    if outcome.seconds:
        text += f" ({outcome.seconds:.1f} s)"
    if outcome.reason:
        text += f": {outcome.reason}"
    return text


def clock_text(seconds: float) -> str:
    """`1:02`, `1:02:03`."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
