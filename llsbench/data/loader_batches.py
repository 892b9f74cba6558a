"""Batches of an image-folder dataset: DataLoader decoding with seeded per-sample transforms."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from llsbench.data.seeding import epoch_generator
from llsbench.errors import ConfigError

_SEED_RANGE = 2**62


class EpochSampler(Sampler):
    """Yields (position, sample_seed) keys: the epoch's order plus a seed for each sample.

    Shuffled epochs draw both from `epoch_generator(seed, epoch)`; unshuffled ones go in
    order with no seed (their transforms are deterministic).
    """

    def __init__(self, n: int, shuffle: bool, seed: int):
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ConfigError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int | None]]:
        if not self.shuffle:
            return ((i, None) for i in range(self.n))
        g = epoch_generator(self.seed, self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        seeds = torch.randint(0, _SEED_RANGE, (self.n,), generator=g).tolist()
        return zip(order, seeds)


class SeededTransformDataset(Dataset):
    """Applies `transform` to `base[indices[pos]]` with the CPU RNG seeded by the key's seed.

    torchvision's random transforms draw from the global CPU generator. Seeding it per sample
    (inside `fork_rng`, so the caller's global state is left untouched) makes augmentation a
    function of (seed, epoch, position) whatever `num_workers` is and whichever worker
    decodes the sample.
    """

    def __init__(self, base: Dataset, transform: Callable, indices: Sequence[int] | None = None):
        self.base, self.transform = base, transform
        self.indices = list(indices) if indices is not None else None

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.base)

    def __getitem__(self, key: tuple[int, int | None]):
        pos, sample_seed = key
        image, label = self.base[self.indices[pos] if self.indices is not None else pos]
        if sample_seed is None:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(sample_seed)
            return self.transform(image), label


class LoaderBatches:
    """`Batches` over a DataLoader; batches are moved to `device` as they arrive."""

    def __init__(self, dataset: SeededTransformDataset, *, batch_size: int, shuffle: bool, seed: int,
                 device: torch.device, num_workers: int):
        self.batch_size, self.device = batch_size, device
        self.sampler = EpochSampler(len(dataset), shuffle, seed)
        self.loader = DataLoader(
            dataset, batch_size=batch_size, sampler=self.sampler, num_workers=num_workers,
            pin_memory=device.type == "cuda", persistent_workers=num_workers > 0,
            # The loader draws its workers' base seed from this generator, not the global RNG.
            generator=torch.Generator().manual_seed(seed),
        )

    @property
    def num_samples(self) -> int:
        return self.sampler.n

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
