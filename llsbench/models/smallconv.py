"""SmallConv and SmallConvL (LLS paper, Table 4): three ConvBlocks, one LinearBlock, a classifier.

The local-loss geometry is the reference's (`LLS_SmallConv`, `LLS_SmallConvL`): conv outputs
pooled to 4×4, 2×2, 2×2; SmallConvL's 1024 linear features are average-pooled to 2048 (each
feature repeated twice, so a block's projection sees b₂ⱼ + b₂ⱼ₊₁ — the reference's
`pooling_size=2048`), SmallConv's 512 are used as they are. Random bases and local classifiers
are drawn at the reference's `hidden_dim`: C·pool² (exact T) in SmallConv, 1536 / 768 / 2048 /
2048 in SmallConvL. `linear_pool=0` gives SmallConvL's linear block its own 1024 features.
"""
from __future__ import annotations

from torch import nn

from llsbench.models.blocks import Block, conv_body, linear_body, post
from llsbench.models.net import BlockNet
from llsbench.models.pooling import MaxPool2x2
from llsbench.models.registry import MODELS


def _small_conv(widths: tuple[int, int, int], hidden: int, in_channels: int, num_classes: int, *,
                dropout: float, activation: str, batch_norm: bool, name: str, linear_pool: int | None,
                drawn: tuple[int, int, int, int]) -> BlockNet:
    c1, c2, c3 = widths
    opts = dict(act=activation, batch_norm=batch_norm)
    blocks = [
        Block(conv_body(in_channels, c1, **opts), post(MaxPool2x2(), dropout=dropout), pool_size=4,
              drawn_width=drawn[0]),
        Block(conv_body(c1, c2, **opts), post(MaxPool2x2(), dropout=dropout), pool_size=2, drawn_width=drawn[1]),
        Block(conv_body(c2, c3, **opts), post(nn.AdaptiveAvgPool2d(2), nn.Flatten(), dropout=dropout),
              pool_size=2, drawn_width=drawn[2]),
        Block(linear_body(c3 * 4, hidden, **opts), post(dropout=dropout), pool_size=linear_pool,
              drawn_width=drawn[3]),
    ]
    return BlockNet(blocks, nn.Linear(hidden, num_classes), name=name)


@MODELS.register("smallconv")
def smallconv(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.0,
              activation: str = "leaky_relu", batch_norm: bool = True) -> BlockNet:
    """Conv 32 → pool → Conv 64 → pool → Conv 128 → avgpool 2×2 → Linear 512 → Linear C."""
    return _small_conv((32, 64, 128), 512, in_channels, num_classes, dropout=dropout,
                       activation=activation, batch_norm=batch_norm, name="smallconv", linear_pool=None,
                       drawn=(32 * 16, 64 * 4, 128 * 4, 512))


@MODELS.register("smallconvl")
def smallconvl(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.0,
               activation: str = "leaky_relu", batch_norm: bool = True, linear_pool: int = 2048) -> BlockNet:
    """SmallConv with 96, 192, 512 channels and Linear 1024 (its local loss on 2048 pooled features)."""
    return _small_conv((96, 192, 512), 1024, in_channels, num_classes, dropout=dropout,
                       activation=activation, batch_norm=batch_norm, name="smallconvl", linear_pool=linear_pool or None,
                       drawn=(96 * 16, 192 * 4, 2048, 2048))
