"""Opt-in accelerators for a rule's training steps: torch.compile, bf16 autocast, channels-last.

None is on by default: each changes the numbers a little (different kernels, lower precision),
so the default stays the exact fp32 eager path and every run records which ones it used
(`compile`, `precision`, `channels_last` in its params). The same rule code runs under all of
them: compilation is applied to the model's block bodies and head (the rule's own walk,
backward passes and optimiser steps stay eager), autocast and the input layout wrap `step`.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from llsbench.errors import ConfigError
from llsbench.method import Method, StepResult
from llsbench.models.net import BlockNet

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Acceleration:
    compile: bool = False
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; valid precisions: {', '.join(PRECISIONS)}")

    @property
    def label(self) -> str:
        """'eager fp32' for the default, else e.g. 'compile+bf16+channels-last'."""
        parts = ["compile"] * self.compile + ["bf16"] * (self.precision == "bf16")
        parts += ["channels-last"] * self.channels_last
        return "+".join(parts) or "eager fp32"

    def prepare(self, model: BlockNet) -> BlockNet:
        """Apply layout and compilation to `model` in place (its parameters stay the same
        objects, so optimisers built before or after see them)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.compile:
            for block in model.blocks:
                block.body.compile()
            model.head.compile()
        return model

    def step(self, method: Method, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        """`method.step` with the input layout and autocast this acceleration asks for."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        cast = (torch.autocast(x.device.type, dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext())
        with cast:
            return method.step(x, y)
