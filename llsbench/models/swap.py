"""Replacing submodules in place: the one mechanism behind lean activations and aten pooling."""
from __future__ import annotations

from typing import Callable

from torch import nn


def swap_modules(module: nn.Module, replacement: Callable[[nn.Module], nn.Module | None]) -> int:
    """Put `replacement(child)` in place of every submodule of `module` for which it is not None.
    Returns how many were replaced."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            twin = replacement(child)
            if twin is not None:
                setattr(parent, name, twin)
                replaced += 1
    return replaced
