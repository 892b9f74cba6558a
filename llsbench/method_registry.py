"""The method registry. Built-in rules and third-party plugins alike are found through the
`llsbench.methods` entry-point group; `create_method` builds one on a model."""
from __future__ import annotations

from typing import Any

from llsbench.method import Method
from llsbench.models.net import BlockNet
from llsbench.optim import OptimizerFactory
from llsbench.registry import Registry

METHODS: Registry[type[Method]] = Registry("method", entry_point_group="llsbench.methods")


def create_method(name: str, model: BlockNet, *, num_classes: int, input_shape: tuple[int, ...],
                  optimizer: OptimizerFactory | None = None, **options: Any) -> Method:
    return METHODS.get(name)(model, num_classes=num_classes, input_shape=input_shape, optimizer=optimizer,
                             **options)
