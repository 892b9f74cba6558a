"""Activations that keep a one-byte sign mask for backward instead of a float tensor.

`nn.LeakyReLU` keeps its whole input alive until the backward pass (`nn.ReLU` its output),
four bytes per element; its gradient only needs to know where the input was positive. The
lean twins compute the same forward with the same kernel and keep `x > 0` as a bool tensor:
the gradient is bit-identical, the memory held for it a quarter. Block-local rules swap them
into their model (`use_lean_activations`), which takes VGG8's largest block from
conv-input + BN-input + activation-input to conv-input + BN-input + mask.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llsbench.models.swap import swap_modules


class _SignMaskedLeakyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(x > 0)
        ctx.slope = slope
        return F.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (positive,) = ctx.saved_tensors
        # aten's own kernel (`x > 0 ? grad : grad * slope`) reads only the sign of x: given the
        # mask as 0/1 bytes it returns the same bits, about twice as fast as torch.where here
        return torch.ops.aten.leaky_relu_backward(grad, positive.view(torch.uint8), ctx.slope, False), None


class _SignMaskedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x > 0)
        return F.relu(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (positive,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, positive.view(torch.uint8), 0)


class LeanLeakyReLU(nn.LeakyReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or not x.requires_grad:
            return super().forward(x)
        return _SignMaskedLeakyReLU.apply(x, self.negative_slope)


class LeanReLU(nn.ReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or not x.requires_grad:
            return super().forward(x)
        return _SignMaskedReLU.apply(x)


_LEAN = {nn.LeakyReLU: LeanLeakyReLU, nn.ReLU: LeanReLU}


def use_lean_activations(module: nn.Module) -> int:
    """Replace, in place, every plain `nn.LeakyReLU` / `nn.ReLU` inside `module` by its lean
    twin (same settings, same values and gradients). Returns how many were replaced."""
    return swap_modules(module, _lean_twin)


def _lean_twin(child: nn.Module) -> nn.Module | None:
    lean = _LEAN.get(type(child))
    if lean is None:
        return None
    twin = lean.__new__(lean)
    twin.__dict__.update(child.__dict__)
    return twin
