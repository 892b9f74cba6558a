"""The `Method` contract: what a learning rule implements, and nothing more.

Like `torch.optim.Optimizer`, the contract is small: a rule is built on a model, then the
trainer calls `step(x, y)` once per batch and `train()` / `eval()` around evaluation. The
trainer never learns a rule's name. Everything a rule adds to the model (local heads, fixed
feedback matrices, modulation parameters) lives in its `aux` module; everything it trains
is stepped by its own optimisers, one per parameter group.
"""
from __future__ import annotations

import abc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from llsbench.models.net import BlockNet, block_output_shapes
from llsbench.optim import OptimizerFactory, optimizer_factory, set_optimizer_mode
from llsbench.options import Option, resolve


@dataclass
class StepResult:
    """What one training step reports: the output loss, the (detached) logits and, for local
    rules, each block's local loss."""

    loss: torch.Tensor
    logits: torch.Tensor
    local_losses: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class SignalCost:
    """MACs per sample needed to produce the learning signal ∂L/∂h(l) of one block."""

    block: str
    macs: int
    formula: str


class Method(abc.ABC):
    """A learning rule. Subclasses set `name`, `options`, `complexity` and implement
    `step` and `learning_signal_cost`; most also override `build_aux` and `parameter_groups`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}
    # Asymptotic cost of the learning signal, as the paper's Table 2 states it.
    complexity: ClassVar[dict[str, str]] = {"time": "", "memory": ""}

    def __init__(self, model: BlockNet, *, num_classes: int, input_shape: tuple[int, ...],
                 optimizer: OptimizerFactory | None = None, **options: Any):
        self.model = model
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)
        self.config = resolve(f"method {self.name!r}", self.options, options)
        self.device = next(model.parameters()).device
        self.block_shapes = block_output_shapes(model, self.input_shape)
        self.aux = self.build_aux().to(self.device)
        make = optimizer or optimizer_factory()
        self.optimizers = [make(group) for group in self.parameter_groups()]
        self._updates_on = True
        self.train()

    # ---- what a rule implements -------------------------------------------------------
    def build_aux(self) -> nn.Module:
        """Modules and buffers the rule adds beside the model (moved to the model's device)."""
        return nn.Module()

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """One optimiser is built per group. Default: everything in one group (BP-like)."""
        return [list(self.model.parameters()) + list(self.aux.parameters())]

    @abc.abstractmethod
    def step(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """One training update on a batch (model in train mode)."""

    @abc.abstractmethod
    def learning_signal_cost(self) -> list[SignalCost]:
        """Per-block MACs (per sample) of producing the learning signal ∂L/∂h(l)."""

    # ---- shared machinery --------------------------------------------------------------
    def block_groups(self) -> list[list[nn.Parameter]]:
        """Groups for block-local rules: each block with its aux entry (if the aux is a
        per-block ModuleList), then the classifier head."""
        per_block = isinstance(self.aux, nn.ModuleList) and len(self.aux) == len(self.model.blocks)
        groups = []
        for i, block in enumerate(self.model.blocks):
            params = list(block.parameters())
            if per_block:
                params += [p for p in self.aux[i].parameters() if p.requires_grad]
            groups.append(params)
        return groups + [list(self.model.head.parameters())]

    def update(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply the gradients held in `.grad` through `optimizer`, unless updates are off."""
        if self._updates_on:
            optimizer.step()

    @contextmanager
    def updates_off(self) -> Iterator[None]:
        """`step` computes everything (gradients stay in `.grad`) but changes no weight.
        Used by probes (update/gradient angles, FLOP and memory profiles)."""
        previous, self._updates_on = self._updates_on, False
        try:
            yield
        finally:
            self._updates_on = previous

    def train(self) -> None:
        """Put the rule's optimisers in training mode (schedule-free optimisers need it)."""
        for opt in self.optimizers:
            set_optimizer_mode(opt, train=True)

    def eval(self) -> None:
        """Put the rule's optimisers in evaluation mode (weights become the averaged ones)."""
        for opt in self.optimizers:
            set_optimizer_mode(opt, train=False)

    def extra_parameters(self) -> int:
        """Trainable parameters the rule adds beyond the plain model."""
        return sum(p.numel() for p in self.aux.parameters() if p.requires_grad)

    def block_names(self) -> list[str]:
        return [f"block{i}" for i in range(len(self.model.blocks))]

    def signal_width(self, index: int) -> int:
        """T(l): length of block `index`'s output after the rule's pooling and flattening."""
        shape, pool = self.block_shapes[index], self.model.blocks[index].pool_size
        if len(shape) == 3 and pool is not None:
            return shape[0] * pool * pool
        if len(shape) == 1 and pool is not None:
            return pool
        return int(torch.Size(shape).numel())

    def state_dict(self) -> dict[str, Any]:
        return {"aux": self.aux.state_dict(), "optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.aux.load_state_dict(state["aux"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
