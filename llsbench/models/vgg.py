"""VGG8 of the LLS paper (Table 4): six ConvBlocks, one LinearBlock, a classifier."""
from __future__ import annotations

from torch import nn

from llsbench.models.blocks import Block, conv_body, linear_body, post
from llsbench.models.net import BlockNet
from llsbench.models.pooling import MaxPool2x2
from llsbench.models.registry import MODELS

# (out channels, max-pool after the block, LLS pool size)
_VGG8 = [(128, False, 4), (256, True, 2), (256, False, 2), (256, True, 2), (512, True, 2), (512, False, 2)]


@MODELS.register("vgg8")
def vgg8(in_channels: int, num_classes: int, image_size: int, *, dropout: float = 0.0,
         activation: str = "leaky_relu", batch_norm: bool = True) -> BlockNet:
    """Conv128 → Conv256 → pool → Conv256 → Conv256 → pool → Conv512 → pool → Conv512 →
    avgpool 2×2 → Linear 1024 → Linear C. `dropout` follows every block (paper: 0.2 off MNIST)."""
    blocks, cin = [], in_channels
    for i, (cout, pool, lls_pool) in enumerate(_VGG8):
        last = i == len(_VGG8) - 1
        after = [nn.AdaptiveAvgPool2d(2), nn.Flatten()] if last else ([MaxPool2x2()] if pool else [])
        blocks.append(Block(conv_body(cin, cout, act=activation, batch_norm=batch_norm),
                            post(*after, dropout=dropout), pool_size=lls_pool))
        cin = cout
    blocks.append(Block(linear_body(cin * 4, 1024, act=activation, batch_norm=batch_norm), post(dropout=dropout)))
    return BlockNet(blocks, nn.Linear(1024, num_classes), name="vgg8")
