"""Step timing of several rules in one process, interleaved so that machine noise (other jobs
on a shared CPU, clock changes) falls on every rule alike: each round gives every rule one step
on the same batch, starting with a different rule each round."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from llsbench.accelerate import Acceleration
from llsbench.method import Method


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_step(method: Method, x: torch.Tensor, y: torch.Tensor, acceleration: Acceleration = Acceleration()) -> float:
    """Seconds for one `method.step` (CUDA synchronised before reading either clock)."""
    synchronize(x.device)
    start = time.perf_counter()
    acceleration.step(method, x, y)
    synchronize(x.device)
    return time.perf_counter() - start


def endless(batches) -> Iterator:
    """A dataset's training batches, epoch after epoch."""
    epoch = 0
    while True:
        batches.set_epoch(epoch)
        yield from batches
        epoch += 1


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank q-quantile (q in [0, 1])."""
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


@dataclass
class StepTimes:
    name: str
    batch_size: int
    step_s: list[float] = field(default_factory=list)
    data_s: list[float] = field(default_factory=list)  # empty when batches are not loaded

    @property
    def median_s(self) -> float:
        return statistics.median(self.step_s)

    def quantile_s(self, q: float) -> float:
        return quantile(self.step_s, q)

    def ratios_to(self, other: "StepTimes") -> list[float]:
        """Same-round step-time ratios self/other (each round hit both rules with the same noise)."""
        return [mine / theirs for mine, theirs in zip(self.step_s, other.step_s, strict=True)]

    @property
    def images_per_s(self) -> float:
        return self.batch_size / self.median_s

    @property
    def data_share(self) -> float | None:
        """Median batch-loading time over (that + median step time); None without loading."""
        if not self.data_s:
            return None
        data = statistics.median(self.data_s)
        return data / (data + self.median_s)


def round_robin(methods: dict[str, Method], batches: Iterator[tuple[torch.Tensor, torch.Tensor]], *,
                steps: int, warmup: int, load_timed: bool,
                acceleration: Acceleration = Acceleration()) -> list[StepTimes]:
    """`warmup + steps` rounds; in each, one batch is drawn from `batches` (its loading timed
    when `load_timed`) and every rule takes one training step on it. Warm-up rounds are dropped."""
    names = list(methods)
    results: dict[str, StepTimes] = {}
    for r in range(warmup + steps):
        start = time.perf_counter()
        x, y = next(batches)
        synchronize(x.device)
        loading = time.perf_counter() - start
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            seconds = timed_step(methods[name], x, y, acceleration)
            if r >= warmup:
                times = results.setdefault(name, StepTimes(name, x.shape[0]))
                times.step_s.append(seconds)
                if load_timed:
                    times.data_s.append(loading)
    return [results[n] for n in names]
