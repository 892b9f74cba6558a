"""Put back everything a profiled training step changes, so that profiling a run before it
trains leaves it exactly as it was."""
from __future__ import annotations

import copy
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from llsbench.method import Method


@contextmanager
def preserved(method: Method) -> Iterator[None]:
    """Inside, steps may update anything; on exit the model's weights and buffers (BatchNorm
    statistics), every `.grad`, the rule's aux modules and optimiser state (schedule-free
    train/eval mode included), each module's train/eval mode and the global RNGs are restored."""
    model = method.model
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rule_state = copy.deepcopy(method.state_dict())
    params = [*model.parameters(), *method.aux.parameters()]
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    modes = [(m, m.training) for m in (*model.modules(), *method.aux.modules())]
    rng = _rng_state()
    try:
        yield
    finally:
        model.load_state_dict(weights)
        method.load_state_dict(rule_state)
        for p, g in zip(params, grads):
            p.grad = g
        for m, training in modes:
            m.training = training
        _set_rng_state(rng)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
