"""Training-loop sums kept on the device and read by the host only when asked.

On a GPU every `.item()` is a host synchronisation: the GPU drains its queue and then waits for
Python. The trainer therefore adds each step's loss, correct count and local losses into device
tensors, and records — also on the device — the first step whose loss was not finite. One
`read()` (one transfer) at the end of an epoch, or every `sync_every` steps, gives them all.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from llsbench.method import StepResult

NO_STEP = -1


@dataclass(frozen=True)
class Totals:
    """What one `read()` returns: sums over the steps so far (losses weighted by batch size)."""

    seen: int
    loss: float
    correct: float
    local: dict[str, float]
    nonfinite_step: int  # index of the first step with a non-finite loss, NO_STEP if none
    nonfinite_loss: float


class EpochTotals:
    def __init__(self, device: torch.device):
        def zero(dtype=torch.float64):
            return torch.zeros((), dtype=dtype, device=device)

        self._zero = zero
        self.seen = 0
        self.loss, self.correct = zero(), zero()
        self.local: dict[str, torch.Tensor] = {}
        self.nonfinite_step = torch.full((), NO_STEP, dtype=torch.int64, device=device)
        self.nonfinite_loss = zero()

    def add(self, step: int, out: StepResult, y: torch.Tensor) -> None:
        """Accumulate one step's result; nothing here waits for the device."""
        n = y.shape[0]
        loss = out.loss.detach().double()
        self.seen += n
        self.loss.add_(loss * n)
        self.correct.add_((out.logits.argmax(1) == y).sum())
        for name, value in out.local_losses.items():
            self.local.setdefault(name, self._zero()).add_(value.detach().double() * n)
        first = ~torch.isfinite(loss) & (self.nonfinite_step == NO_STEP)
        self.nonfinite_step = torch.where(first, step, self.nonfinite_step)
        self.nonfinite_loss = torch.where(first, loss, self.nonfinite_loss)

    def read(self) -> Totals:
        """Every sum in one device-to-host transfer."""
        names = list(self.local)
        values = torch.stack([self.loss, self.correct, self.nonfinite_step.double(), self.nonfinite_loss,
                              *(self.local[k] for k in names)]).tolist()
        loss, correct, bad_step, bad_loss, *local = values
        return Totals(self.seen, loss, correct, dict(zip(names, local)), int(bad_step), bad_loss)
