"""Every block's output as local rules see it: h(l) average-pooled to the block's pool size and
flattened — a(l) of the LLS paper — for a batch of inputs, with the model as it is (frozen)."""
from __future__ import annotations

import torch

from llsbench.models import BlockNet
from llsbench_methods.lls import reduce_activation

CHUNK = 500  # samples per forward: bounds memory on large test sets


@torch.no_grad()
def pooled_features(model: BlockNet, x: torch.Tensor) -> list[torch.Tensor]:
    """a(l) for every block, one (N, T(l)) tensor each, from `model` in its current mode."""
    per_block: list[list[torch.Tensor]] = [[] for _ in model.blocks]
    for start in range(0, len(x), CHUNK):
        outputs = model.block_outputs(x[start:start + CHUNK])[:-1]
        for i, (block, h) in enumerate(zip(model.blocks, outputs)):
            per_block[i].append(reduce_activation(h, block.pool_size))
    return [torch.cat(parts) for parts in per_block]
