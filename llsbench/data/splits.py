"""What `load_data` hands to a trainer: train and test batch streams plus run metadata
(and, once `carve_validation` has split the training set, its validation stream)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from llsbench.data.specs import DatasetSpec


@runtime_checkable
class Batches(Protocol):
    """An epoch's worth of (x, y) batches on the target device.

    x is float32 NCHW, normalised; y is int64. `len()` counts batches, the last partial batch
    included. Call `set_epoch(e)` before iterating epoch e: the order and the augmentation of
    epoch e are a pure function of (seed, e), and iterating again without it repeats them.
    """

    batch_size: int

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    @property
    def num_samples(self) -> int: ...


@dataclass
class DataSplits:
    spec: DatasetSpec
    train: Batches  # shuffled and augmented per the spec
    test: Batches  # fixed order, no augmentation
    data_dir: Path | None = None  # None for bundled or generated data
    train_subset: int | None = None
    validation: Batches | None = None  # carved from the training set (llsbench.data.validation)
    val_fraction: float | None = None
    val_seed: int | None = None

    def describe(self) -> dict[str, str | int | float]:
        """Flat, MLflow-ready parameters that identify the data of a run."""
        spec = self.spec
        return {
            "dataset": spec.name,
            "dataset_family": spec.family,
            "n_train": self.train.num_samples,
            "n_test": self.test.num_samples,
            "num_classes": spec.num_classes,
            "in_channels": spec.in_channels,
            "image_size": spec.image_size,
            "augmentation": spec.augmentation.describe(),
            "preprocess": spec.preprocess,
            "normalize_mean": ",".join(f"{m:g}" for m in spec.mean),
            "normalize_std": ",".join(f"{s:g}" for s in spec.std),
            "batch_size": self.train.batch_size,
            "test_batch_size": self.test.batch_size,
            "train_subset": self.train_subset if self.train_subset is not None else "all",
            "data_dir": str(self.data_dir) if self.data_dir is not None else "(bundled)",
        } | self._describe_validation()

    def _describe_validation(self) -> dict[str, int | float]:
        if self.validation is None:
            return {}
        return {"n_val": self.validation.num_samples, "val_fraction": self.val_fraction, "val_seed": self.val_seed}
