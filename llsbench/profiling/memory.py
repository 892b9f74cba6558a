"""Memory a training step needs, as named, separately reported figures.

`held_for_backward_bytes` is device independent: the peak over one step of the bytes autograd
holds for backward passes, seen through `saved_tensors_hooks`. Each saved tensor is counted
once per storage while any graph still holds it, and released the moment autograd drops it
(after a backward pass frees its graph), so a rule that frees each block's graph after the
block's update peaks at one block's activations. Parameters and buffers are left out there:
they are `params_bytes`. On CUDA, `cuda_peak_bytes` is the allocator's own peak over a step.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Iterable

import torch

from llsbench.method import Method


def _storage(t: torch.Tensor) -> tuple[tuple[torch.device, int], int]:
    """(key identifying the memory, bytes of that memory)."""
    s = t.untyped_storage()
    return (t.device, s.data_ptr()), s.nbytes()


def unique_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors` (views and repeats counted once)."""
    return sum(dict(_storage(t) for t in tensors).values())


class _Held:
    """What autograd keeps instead of a saved tensor; its death means autograd let go."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


class SavedTensorTracker:
    """Context manager: live and peak bytes of tensors saved for backward inside it.

    `exclude`: tensors not to count (the parameters and buffers, reported on their own).
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()):
        self._excluded = {_storage(t)[0] for t in exclude}
        self._holders: dict[tuple, int] = {}  # storage key → number of saved references
        self._sizes: dict[tuple, int] = {}
        self.live_bytes = 0
        self.peak_bytes = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def __enter__(self) -> "SavedTensorTracker":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    def _pack(self, tensor: torch.Tensor):
        key, nbytes = _storage(tensor)
        if key in self._excluded:
            return tensor
        if self._holders.get(key, 0) == 0:
            self._sizes[key] = nbytes
            self.live_bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        self._holders[key] = self._holders.get(key, 0) + 1
        held = _Held(tensor)
        weakref.finalize(held, self._release, key)
        return held

    @staticmethod
    def _unpack(packed):
        return packed.tensor if isinstance(packed, _Held) else packed

    def _release(self, key: tuple) -> None:
        self._holders[key] -= 1
        if self._holders[key] == 0:
            del self._holders[key]
            self.live_bytes -= self._sizes.pop(key)


def state_tensors(method: Method) -> list[torch.Tensor]:
    """Parameters and buffers of the model and of the rule's aux modules."""
    modules = (method.model, method.aux)
    return [t for m in modules for t in (*m.parameters(), *m.buffers())]


def params_bytes(method: Method) -> int:
    return unique_bytes(state_tensors(method))


def grads_bytes(method: Method) -> int:
    params = (*method.model.parameters(), *method.aux.parameters())
    return unique_bytes(p.grad for p in params if p.grad is not None)


def optimizer_state_bytes(method: Method) -> int:
    return unique_bytes(v for opt in method.optimizers for state in opt.state.values()
                        for v in state.values() if isinstance(v, torch.Tensor))


def held_for_backward_bytes(method: Method, x: torch.Tensor, y: torch.Tensor) -> int:
    """Peak bytes held for backward over one `method.step(x, y)` (parameters and buffers excluded)."""
    with SavedTensorTracker(exclude=state_tensors(method)) as held:
        method.step(x, y)
    return held.peak_bytes


def cuda_step_peak_bytes(method: Method, x: torch.Tensor, y: torch.Tensor) -> int:
    """The CUDA allocator's peak (`max_memory_allocated`) across one step, everything already
    allocated included."""
    device = x.device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    method.step(x, y)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


@dataclass(frozen=True)
class MemoryProfile:
    held_for_backward_bytes: int
    params_bytes: int
    grads_bytes: int
    optimizer_state_bytes: int
    cuda_peak_bytes: int | None  # None off CUDA

    @property
    def held_memory_bytes(self) -> int:
        return self.held_for_backward_bytes + self.params_bytes + self.grads_bytes + self.optimizer_state_bytes
