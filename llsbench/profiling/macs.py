"""MAC counts: a model's forward pass (fvcore) and one whole training step of a rule
(`torch.utils.flop_counter.FlopCounterMode`).

fvcore counts one fused multiply-add as one "flop", so its totals are MACs. FlopCounterMode
counts 2 FLOPs per MAC and only matmul- and convolution-like ATen ops. `FORMULAS` adds the
matrix-vector products it has no formula for, and replaces its convolution-backward formula,
whose weight-gradient term ignores `groups` (a depthwise conv's weight-gradient was counted
C times over in torch 2.14.1; a fix was proposed upstream in pytorch/pytorch#183405).
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from llsbench.method import Method

with warnings.catch_warnings():  # fvcore's import trips torch's jit deprecation notice
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis

aten = torch.ops.aten


@dataclass(frozen=True)
class ForwardMacs:
    per_sample: int
    by_operator: dict[str, int]
    unsupported_ops: dict[str, int]  # ATen ops fvcore saw but has no count for, with their number of calls


@dataclass(frozen=True)
class StepMacs:
    per_sample: float
    by_operator: dict[str, float]  # per sample


def forward_macs(model: nn.Module, input_shape: tuple[int, ...]) -> ForwardMacs:
    """fvcore's MACs of one sample's forward pass, traced in eval mode (so no BatchNorm
    statistic moves); the model's mode is put back afterwards."""
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        x = torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype)
        analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        with torch.no_grad():
            total = analysis.total()
    finally:
        model.train(was_training)
    return ForwardMacs(int(total), dict(analysis.by_operator()), dict(analysis.unsupported_ops()))


def _matrix_vector_flops(mat_shape, vec_shape, *args, **kwargs) -> int:
    return 2 * mat_shape[0] * mat_shape[1]


def _addmv_flops(_self_shape, mat_shape, vec_shape, *args, **kwargs) -> int:
    return 2 * mat_shape[0] * mat_shape[1]


def _dot_flops(a_shape, b_shape, *args, **kwargs) -> int:
    return 2 * a_shape[0]


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, *args, **kwargs) -> int:
    """The input-gradient and the weight-gradient each take exactly the forward's multiplies
    (every product x·w of the forward appears once in each), grouped or not."""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


FORMULAS = {aten.mv: _matrix_vector_flops, aten.addmv: _addmv_flops, aten.dot: _dot_flops, aten.vdot: _dot_flops,
            aten.convolution_backward: _conv_backward_flops}


def mac_counter() -> FlopCounterMode:
    """A FlopCounterMode with `FORMULAS`."""
    return FlopCounterMode(display=False, custom_mapping=FORMULAS)


def counted_macs(counter: FlopCounterMode) -> Counter:
    """MACs per ATen op (all samples) a finished `mac_counter()` saw."""
    return Counter({str(op): flops // 2 for op, flops in counter.get_flop_counts()["Global"].items()})


def step_macs(method: Method, x: torch.Tensor, y: torch.Tensor) -> StepMacs:
    """MACs per sample of one whole `method.step(x, y)`: forward, every backward pass, hook
    matmuls, second passes. Changes the weights like any step: call inside `preserved`."""
    counter = mac_counter()
    with counter:
        method.step(x, y)
    return step_macs_from(counter, x.shape[0])


def step_macs_from(counter: FlopCounterMode, batch_size: int) -> StepMacs:
    ops = counted_macs(counter)
    return StepMacs(sum(ops.values()) / batch_size, {op: m / batch_size for op, m in ops.items()})
