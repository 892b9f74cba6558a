"""Analytic MAC counts of a model's weight layers, the unit rules declare their costs in."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from llsbench.models.net import BlockNet


@dataclass(frozen=True)
class LayerMacs:
    name: str
    block: int | None  # index into model.blocks; None for the classifier head
    macs: int  # per sample, forward


def _layer_macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out[0].numel() * (module.in_channels // module.groups) * kh * kw
    return out[0].numel() * module.in_features  # nn.Linear


@torch.no_grad()
def weight_layer_macs(model: BlockNet, input_shape: tuple[int, ...]) -> list[LayerMacs]:
    """Forward MACs per sample of every Conv2d and Linear, in execution order.

    The activation-gradient (input-gradient) of such a layer costs the same MACs as its forward.
    """
    owner = {id(m): i for i, b in enumerate(model.blocks) for m in b.modules()}
    found: list[LayerMacs] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            def hook(mod, _inp, out, name=name):
                found.append(LayerMacs(name, owner.get(id(mod)), _layer_macs(mod, out)))
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        model(torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return found
