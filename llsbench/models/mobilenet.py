"""MobileNetV1 of the LLS paper (Table 4): a ConvBlock then thirteen depthwise-separable blocks."""
from __future__ import annotations

from torch import nn

from llsbench.models.blocks import Block, conv_body, conv_dw_body, post
from llsbench.models.net import BlockNet
from llsbench.models.registry import MODELS

# (out channels, stride, LLS pool size) of the ConvDW blocks
_DW = [(64, 1, 4), (128, 2, 4), (128, 1, 4), (256, 2, 2), (256, 1, 2), (512, 2, 2)] + [(512, 1, 2)] * 5 + [
    (1024, 2, 1), (1024, 1, 1)]


@MODELS.register("mobilenetv1")
def mobilenetv1(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.0,
                activation: str = "leaky_relu", batch_norm: bool = True) -> BlockNet:
    """ConvBlock 32 s2, ConvDW 64 … 1024, global average pool, Linear C."""
    opts = dict(act=activation, batch_norm=batch_norm)
    blocks = [Block(conv_body(in_channels, 32, stride=2, **opts), post(dropout=dropout), pool_size=8)]
    cin = 32
    for i, (cout, stride, lls_pool) in enumerate(_DW):
        last = i == len(_DW) - 1
        after = [nn.AdaptiveAvgPool2d(1), nn.Flatten()] if last else []
        blocks.append(Block(conv_dw_body(cin, cout, stride=stride, **opts), post(*after, dropout=dropout),
                            pool_size=lls_pool))
        cin = cout
    return BlockNet(blocks, nn.Linear(cin, num_classes), name="mobilenetv1")
