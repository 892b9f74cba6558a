"""SmallConv and SmallConvL (LLS paper, Table 4): three ConvBlocks, one LinearBlock, a classifier."""
from __future__ import annotations

from torch import nn

from llsbench.models.blocks import Block, conv_body, linear_body, post
from llsbench.models.net import BlockNet
from llsbench.models.registry import MODELS


def _small_conv(widths: tuple[int, int, int], hidden: int, in_channels: int, num_classes: int, *,
                dropout: float, activation: str, batch_norm: bool, name: str) -> BlockNet:
    c1, c2, c3 = widths
    opts = dict(act=activation, batch_norm=batch_norm)
    blocks = [
        Block(conv_body(in_channels, c1, **opts), post(nn.MaxPool2d(2), dropout=dropout), pool_size=4),
        Block(conv_body(c1, c2, **opts), post(nn.MaxPool2d(2), dropout=dropout), pool_size=2),
        Block(conv_body(c2, c3, **opts), post(nn.AdaptiveAvgPool2d(2), nn.Flatten(), dropout=dropout),
              pool_size=2),
        Block(linear_body(c3 * 4, hidden, **opts), post(dropout=dropout)),
    ]
    return BlockNet(blocks, nn.Linear(hidden, num_classes), name=name)


@MODELS.register("smallconv")
def smallconv(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.0,
              activation: str = "leaky_relu", batch_norm: bool = True) -> BlockNet:
    """Conv 32 → pool → Conv 64 → pool → Conv 128 → avgpool 2×2 → Linear 512 → Linear C."""
    return _small_conv((32, 64, 128), 512, in_channels, num_classes, dropout=dropout,
                       activation=activation, batch_norm=batch_norm, name="smallconv")


@MODELS.register("smallconvl")
def smallconvl(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.0,
               activation: str = "leaky_relu", batch_norm: bool = True) -> BlockNet:
    """SmallConv with 96, 192, 512 channels and Linear 1024."""
    return _small_conv((96, 192, 512), 1024, in_channels, num_classes, dropout=dropout,
                       activation=activation, batch_norm=batch_norm, name="smallconvl")
