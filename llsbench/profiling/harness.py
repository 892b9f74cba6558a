"""Harness overhead: how much of a rule's bare step speed is left in the training loop.

One process, per rule one `Trainer` (the model, data and rule `run method` builds). Each round
runs the trainer's epoch path — `Trainer.train_epoch`, whose `images_per_s` is what `run
method` logs: batch loading, the on-device loss sums, the per-step callbacks — over `steps`
batches, and as many bare steps timed as `bench` times them (`round_robin` on the same
loader's batches, loading not timed). Every other round starts with the bare steps, and the
rules take turns first, so machine noise falls on both paths alike; only the ratio counts.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Iterator

from llsbench.profiling.timing import StepTimes, endless, round_robin
from llsbench.trainer import Trainer


@dataclass
class HarnessTimes:
    name: str
    batch_size: int
    epoch_images_per_s: list[float] = field(default_factory=list)  # the trainer's, per round
    epoch_data_share: list[float] = field(default_factory=list)  # the trainer's wait for batches, per round
    bare: list[StepTimes] = field(default_factory=list)  # the bare steps, per round

    @property
    def trainer_images_per_s(self) -> float:
        return statistics.median(self.epoch_images_per_s)

    @property
    def bench_images_per_s(self) -> float:
        return self.batch_size / statistics.median(s for times in self.bare for s in times.step_s)

    @property
    def ratio(self) -> float:
        """Trainer images/s over bench images/s (issue 9's target: ≥ 0.95)."""
        return self.trainer_images_per_s / self.bench_images_per_s

    def round_ratios(self) -> list[float]:
        """Per round, like for like: the epoch's images/s over the same round's bare steps' mean
        images/s (an epoch's figure is a mean too; `ratio` holds `bench`'s median against it)."""
        return [epoch / (self.batch_size * len(times.step_s) / sum(times.step_s))
                for epoch, times in zip(self.epoch_images_per_s, self.bare, strict=True)]

    def row(self) -> dict:
        ratios = self.round_ratios()
        return {"method": self.name, "trainer_images_per_s": self.trainer_images_per_s,
                "bench_images_per_s": self.bench_images_per_s, "ratio": self.ratio,
                "round_ratio_median": statistics.median(ratios), "round_ratio_min": min(ratios),
                "round_ratio_max": max(ratios), "trainer_data_share": statistics.median(self.epoch_data_share)}


def harness_overhead(trainers: dict[str, Trainer], *, rounds: int, warmup: int) -> list[HarnessTimes]:
    """`warmup + rounds` rounds of each trainer's epoch (its `limit_train_batches` steps) and as
    many bare steps; warm-up rounds are dropped."""
    batches: dict[str, Iterator] = {name: endless(t.data.train) for name, t in trainers.items()}
    names = list(trainers)
    results = {name: HarnessTimes(name, t.config.batch_size) for name, t in trainers.items()}
    for r in range(warmup + rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            epoch, bare = _round(trainers[name], batches[name], r, bare_first=r % 2 == 1)
            if r >= warmup:
                results[name].epoch_images_per_s.append(epoch["images_per_s"])
                results[name].epoch_data_share.append(epoch["data_time_share"])
                results[name].bare.append(bare)
    return [results[n] for n in names]


def _round(trainer: Trainer, batches: Iterator, epoch: int, bare_first: bool) -> tuple[dict, StepTimes]:
    trainer.model.train()
    trainer.method.train()

    def bare() -> StepTimes:
        [times] = round_robin({trainer.config.method: trainer.method}, batches, steps=trainer.config.limit_train_batches,
                              warmup=0, load_timed=True, acceleration=trainer.acceleration)
        return times

    if bare_first:
        times = bare()
        return trainer.train_epoch(epoch), times
    metrics = trainer.train_epoch(epoch)
    return metrics, bare()
