"""A validation split carved once from the training set, and a test set sealed while tuning.

The split is a fixed permutation of the training samples (salted by `seed`, never by the run
seed), so every trial of every rule sees the same validation samples. The validation stream
is neither shuffled nor augmented (the test transform for image folders). The test stream is
replaced by `SealedTestSet`, which raises if anything tries to read it.
"""
from __future__ import annotations

import copy
from dataclasses import replace

import torch

from llsbench.data.loader_batches import LoaderBatches, SeededTransformDataset
from llsbench.data.seeding import fixed_permutation
from llsbench.data.specs import DatasetSpec
from llsbench.data.splits import Batches, DataSplits
from llsbench.data.tensor_batches import TensorBatches
from llsbench.data.transforms import folder_transform
from llsbench.errors import ConfigError, LLSBenchError

VALIDATION_SALT = 20261201  # a different permutation from the train_subset one


class SealedTestSetError(LLSBenchError):
    """Something read the test set while it was sealed (during tuning)."""


class SealedTestSet:
    """Stands where the test stream was: same length, but iterating it raises."""

    def __init__(self, test: Batches):
        self.batch_size, self._len, self._n = test.batch_size, len(test), test.num_samples

    @property
    def num_samples(self) -> int:
        return self._n

    def __len__(self) -> int:
        return self._len

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self):
        raise SealedTestSetError("the test set is sealed while tuning: trials are scored on the validation split only")


def validation_size(n: int, fraction: float) -> int:
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction < 1:
        raise ConfigError(f"val_fraction must lie strictly between 0 and 1, got {fraction!r}")
    size = round(n * fraction)
    if not 0 < size < n:
        raise ConfigError(f"val_fraction={fraction} of {n} training samples leaves an empty train or validation set")
    return size


def carve_validation(data: DataSplits, fraction: float, seed: int = 0) -> DataSplits:
    """`data` with its training set split into train and validation, and its test set sealed."""
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"val_seed must be an integer >= 0, got {seed!r}")
    n = data.train.num_samples
    order = fixed_permutation(n, VALIDATION_SALT + seed)
    cut = validation_size(n, fraction)
    val_rows, train_rows = order[:cut].sort().values, order[cut:].sort().values
    if isinstance(data.train, TensorBatches):
        train, val = _tensor_split(data.train, train_rows, val_rows, data.test.batch_size)
    elif isinstance(data.train, LoaderBatches):
        train, val = _loader_split(data.train, data.spec, train_rows, val_rows, data.test.batch_size)
    else:
        raise ConfigError(f"cannot carve a validation split from {type(data.train).__name__} batches")
    return replace(data, train=train, test=SealedTestSet(data.test), validation=val, val_fraction=fraction,
                   val_seed=seed)


def _tensor_split(train: TensorBatches, train_rows: torch.Tensor, val_rows: torch.Tensor,
                  val_batch_size: int) -> tuple[TensorBatches, TensorBatches]:
    kept = copy.copy(train)  # same normalisation, augmentation, shuffling and seed
    kept.x, kept.y = train.x[train_rows.to(train.x.device)], train.y[train_rows.to(train.x.device)]
    val = copy.copy(train)
    val.x, val.y = train.x[val_rows.to(train.x.device)], train.y[val_rows.to(train.x.device)]
    val.batch_size, val.shuffle, val.augmentation = val_batch_size, False, None
    return kept, val


def _loader_split(train: LoaderBatches, spec: DatasetSpec, train_rows: torch.Tensor, val_rows: torch.Tensor,
                  val_batch_size: int) -> tuple[LoaderBatches, LoaderBatches]:
    dataset: SeededTransformDataset = train.loader.dataset
    base_index = dataset.indices if dataset.indices is not None else range(len(dataset.base))
    common = {"seed": train.sampler.seed, "device": train.device, "num_workers": train.loader.num_workers}
    kept = LoaderBatches(SeededTransformDataset(dataset.base, dataset.transform, [base_index[i] for i in train_rows]),
                         batch_size=train.batch_size, shuffle=True, **common)
    val = LoaderBatches(SeededTransformDataset(dataset.base, folder_transform(spec, train=False),
                                               [base_index[i] for i in val_rows]),
                        batch_size=val_batch_size, shuffle=False, **common)
    return kept, val
