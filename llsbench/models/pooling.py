"""2×2 max-pooling that returns the same values and gradients as `nn.MaxPool2d(2)`, faster.

On CPU, aten's NCHW max-pool kernel walks each window element by element and writes an int64
index per output: on SmallConvL's first map it took 15 % of a training step. The same result
comes from two element-wise maxima over strided views — first the two columns of each window
row, then the two rows — which vectorise. For backward, two bool masks say which column won in
each row and which row won (ties to the first, as aten's row-major scan keeps the first
maximum): under a byte per input element, where aten keeps the input and int64 indices.

Outputs are bit-identical, and so are gradients, ties included, with two exceptions that only
non-finite numbers reach: where a window holds NaN the output is NaN either way but the gradient
may go to another of its elements, and an infinite incoming gradient makes NaN (inf × 0) at the
window's other elements, where aten writes 0. Elements that get no gradient hold −0.0 where the
incoming gradient is negative (aten: +0.0), the same value.
"""
from __future__ import annotations

import torch
from torch import nn

from llsbench.models.swap import swap_modules


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        left, right = x[..., 0::2], x[..., 1::2]
        rows = torch.maximum(left, right)          # (N, C, H, W/2): each window row's maximum
        top, bottom = rows[:, :, 0::2], rows[:, :, 1::2]
        ctx.save_for_backward(left >= right, top >= bottom)  # ties keep the left column, the top row
        return torch.maximum(top, bottom)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        keep_left, keep_top = ctx.saved_tensors
        n, c, h2, w2 = grad.shape
        rows = grad.new_empty(n, c, 2 * h2, w2)
        torch.mul(grad, _as_factor(keep_top, grad), out=rows[:, :, 0::2])
        torch.mul(grad, _as_factor(~keep_top, grad), out=rows[:, :, 1::2])
        grad_x = grad.new_empty(n, c, 2 * h2, 2 * w2)
        torch.mul(rows, _as_factor(keep_left, grad), out=grad_x[..., 0::2])
        torch.mul(rows, _as_factor(~keep_left, grad), out=grad_x[..., 1::2])
        return grad_x


def _as_factor(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A bool mask as 0/1 in `like`'s dtype. On CPU, float × bool converts the mask inside the
    multiply and does not vectorise (torch.where is slower still); converting its bytes first and
    multiplying two float tensors is ~2× faster per product, with the same bits (×1 and ×0)."""
    return mask.view(torch.uint8).to(like.dtype)


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool2x2.apply(x)
    rows = torch.maximum(x[..., 0::2], x[..., 1::2])
    return torch.maximum(rows[:, :, 0::2], rows[:, :, 1::2])


class MaxPool2x2(nn.MaxPool2d):
    """`nn.MaxPool2d(2)` (kernel 2, stride 2, no padding), computed by `_max_pool_2x2` on
    contiguous NCHW CPU maps of even height and width. Anything else goes to aten's kernel: a
    channels-last map (aten's kernel for it is already vectorised), a GPU, and a traced or
    compiled model (so fvcore still sees `aten::max_pool2d` and inductor fuses its own)."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _fast_path_applies(x):
            return _max_pool_2x2(x)
        return super().forward(x)


def _fast_path_applies(x: torch.Tensor) -> bool:
    return (not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and x.dim() == 4 and x.device.type == "cpu" and x.is_floating_point() and x.is_contiguous()
            and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0)


def use_aten_max_pool(module: nn.Module) -> int:
    """Replace, in place, every `MaxPool2x2` inside `module` by aten's `nn.MaxPool2d(2)` (what
    other PyTorch code runs: same values, more memory held for backward). Returns how many."""
    return swap_modules(module, lambda child: nn.MaxPool2d(2) if isinstance(child, MaxPool2x2) else None)
