"""Building blocks shared by every architecture.

A network in llsbench is a chain of `Block`s followed by a linear classifier (`BlockNet`).
A block's `body` produces h(l), the activation local rules train on; its `post` (pooling,
dropout, flatten) turns h(l) into the next block's input and has no parameters.
"""
from __future__ import annotations

from torch import nn

ACTIVATIONS = {"leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "relu": nn.ReLU}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


class Block(nn.Module):
    """One locally trainable unit.

    `pool_size` is the side of the adaptive average pool that local rules apply to a conv
    output before flattening (so that channels × pool² ≤ 2048); for a linear output, the length
    of the adaptive 1-D average pool over its features (None: as they are). `drawn_width` is the
    number of columns at which LLS's random basis and Local Losses' classifier are drawn before
    being pooled to the block's width (the reference code's `hidden_dim`).
    """

    def __init__(self, body: nn.Module, post: nn.Module | None = None, pool_size: int | None = None,
                 drawn_width: int = 2048):
        super().__init__()
        self.body = body
        self.post = post if post is not None else nn.Identity()
        self.pool_size = pool_size
        self.drawn_width = drawn_width

    def forward(self, x):
        return self.body(x)


def conv_body(cin: int, cout: int, *, stride: int = 1, act: str = "leaky_relu", batch_norm: bool = True,
              kernel_size: int = 3, padding: int = 1) -> nn.Sequential:
    """ConvBlock of the paper: Conv → BN → activation."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(activation(act))
    return nn.Sequential(*layers)


def conv_dw_body(cin: int, cout: int, *, stride: int = 1, act: str = "leaky_relu",
                 batch_norm: bool = True) -> nn.Sequential:
    """ConvDWBlock: depthwise 3×3 conv → BN → act → pointwise 1×1 conv → BN → act."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cin))
    layers += [activation(act), nn.Conv2d(cin, cout, 1, bias=False)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(activation(act))
    return nn.Sequential(*layers)


def linear_body(fin: int, fout: int, *, act: str = "leaky_relu", batch_norm: bool = True,
                bias: bool = True) -> nn.Sequential:
    """LinearBlock: Linear → BN → activation."""
    layers: list[nn.Module] = [nn.Linear(fin, fout, bias=bias)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(fout))
    layers.append(activation(act))
    return nn.Sequential(*layers)


def post(*layers: nn.Module, dropout: float = 0.0) -> nn.Sequential:
    """Parameter-free transition after a block: the given layers, then dropout if any."""
    mods = list(layers)
    if dropout > 0:
        mods.append(nn.Dropout(dropout))
    return nn.Sequential(*mods)
