"""The floor under a training step: its convolution, matrix-product and batch-norm kernels alone.

`record_kernels` runs one step under a dispatch mode and notes every such call the step makes
— forward and backward, in whatever order the rule makes them — with the shapes, strides and
flags of its arguments. `KernelReplay` makes those calls again on fresh random tensors of the
same layout. With these kernels no step can be faster than the replay of its convolutions and
products; nor, while it keeps its numbers, faster than the replay of those and its batch norms
(whose bits no other kernel reproduces). The rest of the step is everything else (activations,
pooling, losses, the optimiser, Python). `floor_rounds` times steps and replays interleaved
round by round, so machine noise falls on all of them alike.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from llsbench.profiling.timing import synchronize

aten = torch.ops.aten
MATMUL = frozenset({aten.convolution.default, aten.convolution_backward.default, aten.mm.default,
                    aten.addmm.default, aten.bmm.default, aten.baddbmm.default})
# Batch norm's CPU kernels accumulate in a fixed scalar order (double precision): no other
# kernel returns the same bits, so an exact step cannot get below matmul + batch norm either.
BATCH_NORM = frozenset({aten.native_batch_norm.default, aten.native_batch_norm_backward.default})
KERNELS = MATMUL | BATCH_NORM


@dataclass(frozen=True)
class TensorLayout:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    @classmethod
    def of(cls, t: torch.Tensor) -> "TensorLayout":
        return cls(tuple(t.shape), tuple(t.stride()), t.dtype, t.device)

    def fresh(self, generator: torch.Generator) -> torch.Tensor:
        """A new tensor of this layout (over a storage of its own) holding N(0, 1) values."""
        extent = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) if all(self.shape) else 0
        if self.dtype.is_floating_point:
            base = torch.randn(extent, generator=generator, dtype=self.dtype)
        else:
            base = torch.zeros(extent, dtype=self.dtype)
        return base.to(self.device).as_strided(self.shape, self.stride)


@dataclass(frozen=True)
class KernelCall:
    op: torch._ops.OpOverload
    args: tuple
    kwargs: dict

    def prepared(self, generator: torch.Generator) -> tuple:
        def fresh(a):
            return a.fresh(generator) if isinstance(a, TensorLayout) else a
        return self.op, tree_map(fresh, self.args), tree_map(fresh, self.kwargs)


def _layout(a):
    return TensorLayout.of(a) if isinstance(a, torch.Tensor) else a


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[KernelCall] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in KERNELS:
            self.calls.append(KernelCall(func, tree_map(_layout, args), tree_map(_layout, kwargs)))
        return func(*args, **kwargs)


def record_kernels(step: Callable[[], object]) -> list[KernelCall]:
    """The calls of `KERNELS` one `step()` makes (it runs for real: a training step updates its model)."""
    with _Recorder() as recorder:
        step()
    return recorder.calls


class KernelReplay:
    """The recorded calls of `ops` on fresh tensors made once, so a replay times those kernels
    and nothing else."""

    def __init__(self, calls: list[KernelCall], ops: frozenset = KERNELS, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.calls = [call.prepared(generator) for call in calls if call.op in ops]

    def only(self, ops: frozenset) -> "KernelReplay":
        """The same prepared calls (the same tensors, no new memory), those of `ops` alone."""
        subset = KernelReplay([], ops)
        subset.calls = [call for call in self.calls if call[0] in ops]
        return subset

    def __call__(self) -> None:
        for op, args, kwargs in self.calls:
            op(*args, **kwargs)


@dataclass
class FloorTimes:
    name: str
    matmul_calls: int
    step_s: list[float] = field(default_factory=list)
    matmul_s: list[float] = field(default_factory=list)
    matmul_bn_s: list[float] = field(default_factory=list)

    @property
    def step_median_s(self) -> float:
        return statistics.median(self.step_s)

    @property
    def matmul_median_s(self) -> float:
        return statistics.median(self.matmul_s)

    @property
    def matmul_bn_median_s(self) -> float:
        return statistics.median(self.matmul_bn_s)

    def row(self) -> dict:
        step, matmul, matmul_bn = self.step_median_s, self.matmul_median_s, self.matmul_bn_median_s
        return {"step": self.name, "matmul_calls": self.matmul_calls, "median_step_s": step,
                "matmul_s": matmul, "matmul_share": matmul / step, "matmul_bn_s": matmul_bn,
                "matmul_bn_share": matmul_bn / step, "rest_s": step - matmul_bn}


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def floor_rounds(steps: dict[str, Callable[[], object]], *, rounds: int, warmup: int,
                 device: torch.device = torch.device("cpu")) -> list[FloorTimes]:
    """Record each step's kernels (after `warmup` untimed rounds of steps), then `rounds` timed
    rounds: in each, every step and both replays of its kernels (matmul alone, matmul and batch
    norm) run once, the order turning by one per round."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    jobs, times = [], {}
    for name, step in steps.items():
        calls = record_kernels(step)
        times[name] = FloorTimes(name, sum(call.op in MATMUL for call in calls))
        replay = KernelReplay(calls, KERNELS)
        jobs += [(name, "step", step), (name, "matmul", replay.only(MATMUL)), (name, "matmul_bn", replay)]
    for _ in range(warmup):  # the replays' first runs (allocator, oneDNN primitives)
        for _, kind, fn in jobs:
            if kind != "step":
                fn()
    for r in range(rounds):
        k = r % len(jobs)
        for name, kind, fn in jobs[k:] + jobs[:k]:
            getattr(times[name], f"{kind}_s").append(_timed(fn, device))
    return list(times.values())
