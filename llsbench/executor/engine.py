"""The engine interface, and the default engine: every cell in order, in this process."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from llsbench.executor.progress import SuiteProgress
    from llsbench.suites.cells import Cell
    from llsbench.suites.runner import RunContext
    from llsbench.trainer import Callback


class Engine(ABC):
    """Runs cells and reports each start and each outcome to the suite's progress view.

    Used as a context manager around `run` (an engine may start or connect to workers)."""

    concurrent = False  # several cells at once: the progress view adds the suite's counts to each line

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        return None

    @property
    def description(self) -> str:
        """How the cells ran, for the suite's parent run (tag `engine`)."""
        return "sequential"

    @abstractmethod
    def run(self, cells: Sequence["Cell"], ctx: "RunContext", progress: "SuiteProgress") -> None:
        """Run every cell: `progress.started(cell)` when a cell starts, `progress.completed(outcome)`
        when it ends. On Ctrl-C stop the running cells (their MLflow runs KILLED, their checkpoints
        kept), report each as `interrupted`, and re-raise `KeyboardInterrupt`."""


class SequentialEngine(Engine):
    """One cell after the other in this process; `callbacks(cell)` are extra trainer callbacks."""

    def __init__(self, callbacks: Callable[["Cell"], Sequence["Callback"]] = lambda cell: ()):
        self.callbacks = callbacks

    def run(self, cells, ctx, progress) -> None:
        from llsbench.suites.runner import CellOutcome, run_cell  # the runner builds on this package

        for cell in cells:
            progress.started(cell)
            try:
                outcome = run_cell(cell, ctx, self.callbacks(cell))
            except KeyboardInterrupt:  # run_cell has marked the run KILLED and kept the checkpoint
                progress.completed(CellOutcome(cell, "interrupted", reason="Ctrl-C"))
                raise
            progress.completed(outcome)
