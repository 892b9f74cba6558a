"""`BlockNet`: a chain of blocks and a linear classifier, the only model shape llsbench trains."""
from __future__ import annotations

import torch
from torch import nn

from llsbench.models.blocks import Block


class BlockNet(nn.Module):
    """`blocks` in order, then `head` (the final Linear classifier).

    Learning rules never live here: the model only computes. Every rule walks `blocks`
    itself, so a plain `model(x)` (BN re-estimation, tracing, evaluation) never updates weights.
    """

    def __init__(self, blocks: list[Block], head: nn.Linear, name: str = ""):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.arch = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block.post(block(x))
        return self.head(x)

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """h(l) for every block (graph kept), then the logits as the last element."""
        outs = []
        for block in self.blocks:
            h = block(x)
            outs.append(h)
            x = block.post(h)
        outs.append(self.head(x))
        return outs


@torch.no_grad()
def block_output_shapes(model: BlockNet, input_shape: tuple[int, ...]) -> list[torch.Size]:
    """Per-sample shape of every block's output h(l), found by one probe forward on 2 samples.

    Runs in eval mode so BatchNorm statistics are left untouched.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        x = torch.zeros(2, *input_shape, device=param.device, dtype=param.dtype)
        shapes = [h.shape[1:] for h in model.block_outputs(x)[:-1]]
    finally:
        model.train(was_training)
    return shapes
