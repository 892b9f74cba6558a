"""One rule's profile on one model: forward, step and learning-signal MACs, memory, extra
parameters — measured on a random batch without training (everything is restored)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from llsbench.method import Method
from llsbench.profiling.learning_signal import LearningSignal, learning_signal
from llsbench.profiling.macs import ForwardMacs, StepMacs, forward_macs, mac_counter, step_macs_from
from llsbench.profiling.memory import (MemoryProfile, cuda_step_peak_bytes, grads_bytes, held_for_backward_bytes,
                                       optimizer_state_bytes, params_bytes)
from llsbench.profiling.state import preserved


@dataclass(frozen=True)
class RuleProfile:
    method: str
    batch_size: int  # the batch the step and memory figures were measured on
    forward: ForwardMacs
    step: StepMacs
    signal: LearningSignal
    memory: MemoryProfile
    extra_parameters: int

    def row(self) -> dict[str, float | int | str | None]:
        """The table row; keys are the names used everywhere (CLI, JSON, MLflow)."""
        m = self.memory
        return {"method": self.method, "forward_macs": self.forward.per_sample, "step_macs": self.step.per_sample,
                "signal_macs": self.signal.macs, "signal_macs_bp_ratio": self.signal.bp_ratio,
                "held_for_backward_bytes": m.held_for_backward_bytes, "params_bytes": m.params_bytes,
                "grads_bytes": m.grads_bytes, "optimizer_state_bytes": m.optimizer_state_bytes,
                "held_memory_bytes": m.held_memory_bytes, "cuda_peak_bytes": m.cuda_peak_bytes,
                "extra_parameters": self.extra_parameters, "profile_batch_size": self.batch_size}

    def metrics(self) -> dict[str, float]:
        """What a training run logs to MLflow (MACs per sample, bytes at `profile_batch_size`)."""
        return {k: float(v) for k, v in self.row().items()
                if k != "method" and v is not None and math.isfinite(v)}

    def details(self) -> dict:
        """Everything, for JSON: the row plus per-block signal costs, MACs by operator and the
        ops fvcore could not count."""
        return {**self.row(), "signal_per_block": [asdict(c) for c in self.signal.per_block],
                "signal_macs_bp": self.signal.bp_macs, "step_macs_by_operator": self.step.by_operator,
                "forward_macs_by_operator": self.forward.by_operator,
                "forward_unsupported_ops": self.forward.unsupported_ops}


def random_batch(method: Method, batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of the rule's shape and labels of its classes, from a private generator (the
    global RNG is not touched)."""
    gen = torch.Generator().manual_seed(seed)
    param = next(method.model.parameters())
    x = torch.randn(batch_size, *method.input_shape, generator=gen)
    y = torch.randint(0, method.num_classes, (batch_size,), generator=gen)
    return x.to(param.device, param.dtype), y.to(param.device)


def profile_method(method: Method, batch_size: int, *, seed: int = 0) -> RuleProfile:
    """Profile `method` with one training step (two on CUDA) on a random batch of `batch_size`;
    the model, the rule and the RNGs are left exactly as they were."""
    x, y = random_batch(method, batch_size, seed)
    with preserved(method):
        forward = forward_macs(method.model, method.input_shape)
        method.model.train()
        method.train()
        counter = mac_counter()
        with counter:
            held = held_for_backward_bytes(method, x, y)
        cuda_peak = cuda_step_peak_bytes(method, x, y) if x.device.type == "cuda" else None
        memory = MemoryProfile(held, params_bytes(method), grads_bytes(method),
                               optimizer_state_bytes(method), cuda_peak)
        signal = learning_signal(method)
    return RuleProfile(method.name, batch_size, forward, step_macs_from(counter, batch_size), signal, memory,
                       method.extra_parameters())
