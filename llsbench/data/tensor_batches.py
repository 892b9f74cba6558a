"""Batches of a dataset held whole as tensors on the device, augmented there in bulk."""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from llsbench.data.augment import Augmentation
from llsbench.data.seeding import epoch_generator
from llsbench.errors import ConfigError


class TensorBatches:
    """Yields normalised float32 batches from uint8 (or float) pixels kept on `x.device`.

    Only per-epoch index and random-parameter tensors are drawn on the CPU and sent over; the
    gather, augmentation and normalisation run on the device, batch by batch.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], pixel_max: float, augmentation: Augmentation | None,
                 shuffle: bool, seed: int):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.augmentation = None if augmentation is None or augmentation.is_identity else augmentation
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        mean_t, std_t = _per_channel(mean, x.device), _per_channel(std, x.device)
        # (x / pixel_max - mean) / std as one multiply-subtract
        self._scale = 1.0 / (pixel_max * std_t)
        self._shift = mean_t / std_t

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ConfigError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() * self._scale - self._shift

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, (h, w) = self.num_samples, self.x.shape[-2:]
        order = params = None
        if self.shuffle or self.augmentation is not None:
            g = epoch_generator(self.seed, self.epoch)
            if self.shuffle:
                order = torch.randperm(n, generator=g).to(self.x.device)
            if self.augmentation is not None:
                params = self.augmentation.sample(n, h, w, g).to(self.x.device)
        for start in range(0, n, self.batch_size):
            rows = slice(start, start + self.batch_size)
            idx = order[rows] if order is not None else rows
            x, y = self.x[idx], self.y[idx]
            if params is not None:
                x = self.augmentation.apply(x, params[rows], self.normalise)
            else:
                x = self.normalise(x)
            yield x, y


def _per_channel(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)
