"""The DRTP authors' reference networks (Frenkel, Lefebvre, Bol 2021; `ChFrenkel/DirectRandomTargetProjection`).

Tanh everywhere and no BatchNorm by default, as in the authors' code; `batch_norm=True` gives
the LLS paper's re-implementation (tanh with BN). Convolutions have stride 1 and "same"
padding, each followed by a 2×2 max-pool. Dropout, as in the authors' code, acts only on the
inputs of fully connected layers (the head included), never between two convolutions.

Official recipe (MNIST without augmentation, [0, 1] pixels, as the authors train it; drtp's
default output loss is their BCE on a sigmoid): ``RunConfig(method="drtp", model="drtp-conv-mnist",
dataset="mnist-raw", optimizer="nesterov", lr=1e-4, batch_size=100, epochs=100)``.
Reported test errors (the authors' talk slides, talks/LightOnAIMeetUp.pdf of their repository,
slides 15 and 18, mean ± std, 100 epochs): drtp-conv-mnist on MNIST DRTP 1.81 ± 0.14 %, DFA
2.38 ± 0.39 %; drtp-fc on MNIST DRTP 4.04 ± 0.12 %, DFA 3.46 ± 0.25 %; drtp-conv-cifar on CIFAR-10
DRTP 35.45 ± 0.76 %; drtp-fc on CIFAR-10 DRTP 52.83 ± 0.44 %. `llsbench run suite anchors` puts
llsbench's numbers beside the MNIST ones.
"""
from __future__ import annotations

from torch import nn

from llsbench.models.blocks import Block, conv_body, linear_body, post
from llsbench.models.net import BlockNet
from llsbench.models.pooling import MaxPool2x2
from llsbench.models.registry import MODELS


def _fc_input_dropout(dropout: float) -> list[nn.Module]:
    return [nn.Dropout(dropout)] if dropout > 0 else []


def _conv_blocks(in_channels: int, spec: list[tuple[int, int, int]], *, activation: str, batch_norm: bool,
                 dropout: float) -> tuple[list[Block], int]:
    """(channels, kernel, LLS pool size) per conv → act → max-pool block; the last one flattens
    (and applies the dropout of the first FC layer's input). Returns the blocks and out channels."""
    blocks, cin = [], in_channels
    for i, (cout, kernel, lls_pool) in enumerate(spec):
        body = conv_body(cin, cout, act=activation, batch_norm=batch_norm, kernel_size=kernel, padding=kernel // 2)
        last = i == len(spec) - 1
        after = post(MaxPool2x2(), nn.Flatten(), dropout=dropout) if last else post(MaxPool2x2())
        blocks.append(Block(body, after, pool_size=lls_pool))
        cin = cout
    return blocks, cin


def _fc_blocks(fin: int, widths: list[int], *, activation: str, batch_norm: bool, dropout: float) -> list[Block]:
    blocks = []
    for width in widths:
        blocks.append(Block(linear_body(fin, width, act=activation, batch_norm=batch_norm), post(dropout=dropout)))
        fin = width
    return blocks


@MODELS.register("drtp-conv-mnist")
def drtp_conv_mnist(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.0,
                    activation: str = "tanh", batch_norm: bool = False) -> BlockNet:
    """32c5-pool-1000-C: Conv 5×5 32 → max-pool 2 → Linear 1000 → Linear C (authors' MNIST net)."""
    opts = dict(activation=activation, batch_norm=batch_norm, dropout=dropout)
    blocks, c = _conv_blocks(in_channels, [(32, 5, 4)], **opts)
    blocks += _fc_blocks(c * (image_size // 2) ** 2, [1000], **opts)
    return BlockNet(blocks, nn.Linear(1000, num_classes), name="drtp-conv-mnist")


@MODELS.register("drtp-conv-cifar")
def drtp_conv_cifar(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.0,
                    activation: str = "tanh", batch_norm: bool = False) -> BlockNet:
    """64c3-pool-256c3-pool-1000-1000-C (authors' CIFAR-10 net)."""
    opts = dict(activation=activation, batch_norm=batch_norm, dropout=dropout)
    blocks, c = _conv_blocks(in_channels, [(64, 3, 4), (256, 3, 2)], **opts)
    blocks += _fc_blocks(c * (image_size // 4) ** 2, [1000, 1000], **opts)
    return BlockNet(blocks, nn.Linear(1000, num_classes), name="drtp-conv-cifar")


@MODELS.register("drtp-fc")
def drtp_fc(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.0,
            activation: str = "tanh", batch_norm: bool = False) -> BlockNet:
    """FC 1000-1000-C on the flattened image (authors' fully connected net)."""
    opts = dict(activation=activation, batch_norm=batch_norm, dropout=dropout)
    blocks = _fc_blocks(in_channels * image_size ** 2, [1000, 1000], **opts)
    first = blocks[0].body
    blocks[0].body = nn.Sequential(nn.Flatten(), *_fc_input_dropout(dropout), *first)
    return BlockNet(blocks, nn.Linear(1000, num_classes), name="drtp-fc")
