"""Crash injection, to test crash recovery with a real kill rather than a polite exception.

`LLSBENCH_CRASH_AFTER_EPOCH=<cell-key>:<epoch>` makes the process SIGKILL itself right after
the trainer has checkpointed that epoch of that cell and before anything is logged for it —
the least convenient moment a real crash can pick. Unset, nothing happens.
"""
from __future__ import annotations

import os
import signal

from llsbench.trainer import Callback

CRASH_ENV = "LLSBENCH_CRASH_AFTER_EPOCH"


class CrashAfterEpoch(Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, trainer, metrics) -> None:
        if trainer.epoch == self.epoch:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def crash_hooks(cell_key: str) -> list[Callback]:
    """The crash callback for this cell if the environment asks for one (it must run first)."""
    key, _, epoch = os.environ.get(CRASH_ENV, "").partition(":")
    return [CrashAfterEpoch(int(epoch))] if key == cell_key and epoch.isdigit() else []
