"""Is the rule really active? The angle between a rule's weight update and the true gradient.

Per block, the angle (degrees) between the gradient a rule leaves in `.grad` after one `step`
(run with `updates_off()`, so no weight moves) and the true backpropagated gradient of the
output cross-entropy, on the same batch, at the same weights, with the same dropout masks.
BP reads 0°; a rule whose updates carry no information about the loss sits near 90°; feedback
alignment rules start near 90° and fall as the forward weights align with the feedback.

The probe leaves no trace: weights, buffers (BatchNorm running statistics), the rule's aux
state, the `.grad` fields and the RNG state are all as they were before it ran.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from llsbench.method import Method
from llsbench.trainer import Callback

if TYPE_CHECKING:
    from llsbench.trainer import Trainer


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle in degrees between two flat vectors (float64); NaN when either is zero."""
    a, b = a.double(), b.double()
    norms = a.norm() * b.norm()
    if norms == 0:
        return math.nan
    cos = torch.clamp(a @ b / norms, -1.0, 1.0)
    return math.degrees(math.acos(cos.item()))


def _flat(tensors: list[torch.Tensor | None], params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(tensors, params)])


def _groups(method: Method) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters of every block, and of the head."""
    named = {f"block{i}": list(b.parameters()) for i, b in enumerate(method.model.blocks)}
    named["head"] = list(method.model.head.parameters())
    return {k: [p for p in ps if p.requires_grad] for k, ps in named.items()}


@contextmanager
def _untouched(method: Method) -> Iterator[None]:
    """Restore model and aux state (parameters and buffers) and every `.grad` on exit."""
    modules = [method.model, method.aux]
    states = [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]
    params = [p for m in modules for p in m.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in params]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, state in zip(modules, states):
                module.load_state_dict(state)
            for p, g in zip(params, grads):
                p.grad = g


def _rng_devices(method: Method) -> list[int]:
    return [method.device.index or 0] if method.device.type == "cuda" else []


def update_angles(method: Method, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """`angle_block{i}` (and `angle_head`) in degrees between the rule's update and BP's
    gradient on batch (x, y). The model is left in the mode it was in (train mode is what
    the trainer uses, and what dropout and BatchNorm batch statistics need)."""
    groups = _groups(method)
    devices = _rng_devices(method)
    with _untouched(method):
        with torch.random.fork_rng(devices=devices), method.updates_off():
            method.step(x, y)
        rule = {k: _flat([p.grad for p in ps], ps) for k, ps in groups.items() if ps}
        with torch.random.fork_rng(devices=devices):  # the same dropout masks as the rule's pass
            loss = F.cross_entropy(method.model(x), y)
        params = [p for ps in groups.values() for p in ps]
        true = dict(zip(params, torch.autograd.grad(loss, params, allow_unused=True)))
    return {f"angle_{k}": _angle(rule[k], _flat([true[p] for p in ps], ps)) for k, ps in groups.items() if ps}


class UpdateAngleProbe(Callback):
    """Every `every` training steps, measure `update_angles` on that step's batch.

    Values are kept in `history` as (global step, angles) and logged as metrics
    `angle_block{i}` / `angle_head` at that step through `logger` — by default the first
    callback of the trainer that has a `log_metrics(metrics, step)` method (`MlflowLogger`).
    """

    def __init__(self, every: int, logger: object | None = None):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.logger = logger
        self.history: list[tuple[int, dict[str, float]]] = []

    def on_start(self, trainer: "Trainer") -> None:
        if self.logger is None:
            self.logger = next((cb for cb in trainer.callbacks if cb is not self and hasattr(cb, "log_metrics")), None)

    def on_step_end(self, trainer: "Trainer", step: int, x: torch.Tensor, y: torch.Tensor) -> None:
        if step % self.every:
            return
        angles = update_angles(trainer.method, x, y)
        self.history.append((step, angles))
        if self.logger is not None:
            self.logger.log_metrics(angles, step)

    @property
    def last(self) -> dict[str, float]:
        return self.history[-1][1] if self.history else {}
