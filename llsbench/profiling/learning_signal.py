"""Learning-signal MACs (the paper's Table 3 column): what a rule declares through
`Method.learning_signal_cost()`, its total, and how many times more BP needs on the same model."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from llsbench.method import Method, SignalCost
from llsbench.method_registry import create_method


@dataclass(frozen=True)
class LearningSignal:
    per_block: list[SignalCost]
    bp_macs: int  # BP's total on the same model

    @property
    def macs(self) -> int:
        return sum(c.macs for c in self.per_block)

    @property
    def bp_ratio(self) -> float:
        """BP's learning-signal MACs over this rule's (how many times fewer this rule needs)."""
        return self.bp_macs / self.macs if self.macs else float("inf")


def learning_signal(method: Method) -> LearningSignal:
    return LearningSignal(method.learning_signal_cost(), sum(c.macs for c in bp_signal_costs(method)))


def bp_signal_costs(method: Method) -> list[SignalCost]:
    """BP's declared cost on `method`'s model. BP is built on the same model with a plain SGD
    (building it changes nothing: one eval-mode probe forward, no optimiser state)."""
    bp = create_method("bp", method.model, num_classes=method.num_classes, input_shape=method.input_shape,
                       optimizer=lambda params: torch.optim.SGD(params, lr=1.0))
    return bp.learning_signal_cost()
