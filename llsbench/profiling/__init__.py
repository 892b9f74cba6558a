"""Profiling of learning rules: forward / training-step / learning-signal MACs, memory held
for backward (and the CUDA allocator peak), step time — measured identically for every rule.

`profile_method(method, batch_size)` gives one rule's `RuleProfile` without training;
`ProfileCallback` (in `llsbench.profiling.callback`) logs it from any training run;
`round_robin` times several rules' steps interleaved in one process.
"""
from llsbench.profiling.learning_signal import LearningSignal, learning_signal
from llsbench.profiling.macs import ForwardMacs, StepMacs, forward_macs, mac_counter, step_macs
from llsbench.profiling.memory import MemoryProfile, SavedTensorTracker
from llsbench.profiling.profile import RuleProfile, profile_method, random_batch
from llsbench.profiling.state import preserved
from llsbench.profiling.timing import StepTimes, round_robin, timed_step

__all__ = [
    "ForwardMacs", "LearningSignal", "MemoryProfile", "RuleProfile", "SavedTensorTracker", "StepMacs", "StepTimes",
    "forward_macs", "learning_signal", "mac_counter", "preserved", "profile_method", "random_batch", "round_robin",
    "step_macs", "timed_step",
]
