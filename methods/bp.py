"""End-to-end backpropagation: the reference point for accuracy, MACs and memory."""
from __future__ import annotations

import torch.nn.functional as F

from llsbench.costs import weight_layer_macs
from llsbench.method import Method, SignalCost, StepResult


class BP(Method):
    name = "bp"
    summary = "backpropagation of the output cross-entropy, one optimiser for the whole network"
    complexity = {"time": "O(sum_l n_l n_{l+1})", "memory": "O(sum_l n_l)"}

    def step(self, x, y):
        opt = self.optimizers[0]
        opt.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        self.update(opt)
        return StepResult(loss.detach(), logits.detach())

    def learning_signal_cost(self):
        """∂L/∂h(l) needs the activation gradient through every weight layer above h(l): per
        block, the input-gradients of the next block's layers (the head for the last block)."""
        layers = weight_layer_macs(self.model, self.input_shape)
        n = len(self.model.blocks)
        costs = []
        for i, name in enumerate(self.block_names()):
            above = [l for l in layers if (l.block == i + 1 if i + 1 < n else l.block is None)]
            costs.append(SignalCost(name, sum(l.macs for l in above),
                                    "input-gradient MACs of " + ", ".join(l.name for l in above)))
        return costs
