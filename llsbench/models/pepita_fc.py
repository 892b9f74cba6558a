"""The fully connected net of the PEPITA paper (Dellaferrera & Kreiman, ICML 2022): input → 1024 → C.

Its official code (`GiorgiaD/PEPITA`, NetFC1x1024DOcust) has no biases, He-uniform weights
U(±√(6/fan_in)) in both layers, ReLU, and dropout with keep rate 0.9 on the hidden layer.

Official recipe: ``RunConfig(method="pepita", model="pepita-fc", optimizer="sgd", lr=0.01,
momentum=0.9, batch_size=64, epochs=100, lr_milestones=[60, 90], lr_gamma=0.1, bn_batches=0)``
(the `pepita-net` block of suites/table2.yaml) on [0, 1] pixels as the official code loads them
(`transforms.ToTensor()` alone): the `-raw` dataset variants (`mnist-raw`, `cifar10-raw`, ...).
"""
from __future__ import annotations

from torch import nn

from llsbench.models.blocks import Block, linear_body, post
from llsbench.models.net import BlockNet
from llsbench.models.registry import MODELS


def he_uniform_(layer: nn.Linear) -> nn.Linear:
    """U(−√(6/fan_in), +√(6/fan_in)), as the official code initialises every layer."""
    nn.init.kaiming_uniform_(layer.weight, a=0.0, nonlinearity="relu")
    return layer


@MODELS.register("pepita-fc")
def pepita_fc(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.1,
              activation: str = "relu", batch_norm: bool = False, hidden: int = 1024) -> BlockNet:
    """Flatten → Linear(C·H·W, 1024, no bias) → ReLU → dropout 0.1 → Linear(1024, C, no bias)."""
    body = linear_body(in_channels * image_size * image_size, hidden, act=activation, batch_norm=batch_norm,
                       bias=False)
    he_uniform_(body[0])
    block = Block(nn.Sequential(nn.Flatten(), *body), post(dropout=dropout))
    return BlockNet([block], he_uniform_(nn.Linear(hidden, num_classes, bias=False)), name="pepita-fc")
