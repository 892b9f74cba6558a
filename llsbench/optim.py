"""Optimiser factories. A learning rule asks for one optimiser per parameter group; the run
configuration decides which kind (the paper: Schedule-Free AdamW, lr 5e-3)."""
from __future__ import annotations

from typing import Callable, Iterable

import schedulefree
import torch

from llsbench.errors import ConfigError

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]

OPTIMIZERS = ("adamw-sf", "sgd-sf", "adam", "sgd", "nesterov")


def optimizer_factory(name: str = "adamw-sf", lr: float = 5e-3, weight_decay: float = 0.0,
                      momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999)) -> OptimizerFactory:
    """A function params → optimiser of kind `name` with these hyper-parameters."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
    if lr <= 0:
        raise ConfigError(f"learning rate must be positive, got {lr}")

    def make(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        params = list(params)
        if name == "adamw-sf":
            return schedulefree.AdamWScheduleFree(params, lr=lr, betas=betas, weight_decay=weight_decay)
        if name == "sgd-sf":
            return schedulefree.SGDScheduleFree(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=name == "nesterov")

    return make


def set_optimizer_mode(optimizer: torch.optim.Optimizer, train: bool) -> None:
    """Schedule-free optimisers hold two weight sequences: train mode steps one, eval mode
    evaluates the other. Plain optimisers have no such switch."""
    switch = getattr(optimizer, "train" if train else "eval", None)
    if callable(switch):
        switch()
