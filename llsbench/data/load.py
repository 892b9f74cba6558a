"""`load_data`: from a dataset name to train/test batch streams on a device."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from llsbench.data.loader_batches import LoaderBatches, SeededTransformDataset
from llsbench.data.paths import resolve_data_dir
from llsbench.data.seeding import fixed_permutation
from llsbench.data.sources import FolderData, FolderSource, TensorSplit
from llsbench.data.specs import DATASETS, DatasetSpec
from llsbench.data.splits import Batches, DataSplits
from llsbench.data.tensor_batches import TensorBatches
from llsbench.data.transforms import folder_transform
from llsbench.errors import ConfigError, LLSBenchError

SUBSET_SALT = 20240524  # the train_subset permutation is fixed: it never depends on the run seed

# What a damaged or wrong file raises inside readers (torchvision asserts idx magic numbers).
_READ_ERRORS = (OSError, ValueError, KeyError, RuntimeError, AssertionError, EOFError, pickle.UnpicklingError)


def load_data(name: str, *, data_dir: str | os.PathLike | None = None, download: bool = False,
              batch_size: int = 128, test_batch_size: int | None = None, device: str | torch.device = "cpu",
              seed: int = 0, num_workers: int = 0, train_subset: int | None = None) -> DataSplits:
    """Load dataset `name` and return its train and test batches on `device`.

    Small datasets are held whole on `device` and augmented there; image folders are decoded
    by a DataLoader with `num_workers` processes. Missing files raise `DatasetNotFoundError`
    (no network access unless `download`); bad arguments raise `ConfigError`.
    """
    spec = DATASETS.get(name)
    test_batch_size = batch_size if test_batch_size is None else test_batch_size
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("test_batch_size", test_batch_size)
    _check_positive_int("num_workers", num_workers, minimum=0)
    _check_positive_int("seed", seed, minimum=0)
    if train_subset is not None:
        _check_positive_int("train_subset", train_subset)
    device = _as_device(device)

    root = resolve_data_dir(data_dir)
    spec.source.ensure(spec.name, root, download)
    location = spec.source.location(root)
    try:
        data = spec.source.load(root)
    except _READ_ERRORS as exc:
        raise LLSBenchError(f"dataset {spec.name!r} at {location} could not be read: {type(exc).__name__}: {exc}") from exc
    if isinstance(spec.source, FolderSource):
        train, test = _folder_batches(spec, root, data, batch_size, test_batch_size, device, seed, num_workers, train_subset)
    else:
        train, test = _tensor_batches(spec, root, data, batch_size, test_batch_size, device, seed, train_subset)
    return DataSplits(spec, train, test, data_dir=root if location is not None else None, train_subset=train_subset)


def _tensor_batches(spec: DatasetSpec, root: Path, data: tuple[TensorSplit, TensorSplit], batch_size: int,
                    test_batch_size: int, device: torch.device, seed: int,
                    train_subset: int | None) -> tuple[Batches, Batches]:
    train, test = data
    _check_split(spec, train, root)
    _check_split(spec, test, root)
    if train_subset is not None:
        keep = fixed_permutation(len(train.y), SUBSET_SALT)[:train_subset]
        train = TensorSplit(train.x[keep], train.y[keep])
    common = {"mean": spec.mean, "std": spec.std, "pixel_max": spec.pixel_max, "seed": seed}
    return (
        TensorBatches(train.x.to(device), train.y.to(device), batch_size=batch_size,
                      augmentation=spec.augmentation, shuffle=True, **common),
        TensorBatches(test.x.to(device), test.y.to(device), batch_size=test_batch_size,
                      augmentation=None, shuffle=False, **common),
    )


def _folder_batches(spec: DatasetSpec, root: Path, data: FolderData, batch_size: int, test_batch_size: int,
                    device: torch.device, seed: int, num_workers: int,
                    train_subset: int | None) -> tuple[Batches, Batches]:
    if len(data.classes) != spec.num_classes:
        raise LLSBenchError(
            f"dataset {spec.name!r} at {spec.source.location(root)} has {len(data.classes)} classes, "
            f"expected {spec.num_classes}; layout: {spec.source.layout}"
        )
    keep = None
    if train_subset is not None:
        keep = fixed_permutation(len(data.train), SUBSET_SALT)[:train_subset].tolist()
    common = {"seed": seed, "device": device, "num_workers": num_workers}
    return (
        LoaderBatches(SeededTransformDataset(data.train, folder_transform(spec, train=True), keep),
                      batch_size=batch_size, shuffle=True, **common),
        LoaderBatches(SeededTransformDataset(data.test, folder_transform(spec, train=False)),
                      batch_size=test_batch_size, shuffle=False, **common),
    )


def _check_split(spec: DatasetSpec, split: TensorSplit, root: Path) -> None:
    """Catch files of the wrong dataset (e.g. CIFAR-100 pickles under the CIFAR-10 name)."""
    x, y = split
    if x.ndim != 4 or x.shape[1] != spec.in_channels or len(x) != len(y) or len(y) == 0:
        raise LLSBenchError(f"dataset {spec.name!r} at {spec.source.location(root)}: unexpected data shape "
                            f"{tuple(x.shape)} with {len(y)} labels")
    if int(y.min()) < 0 or int(y.max()) >= spec.num_classes:
        raise LLSBenchError(f"dataset {spec.name!r} at {spec.source.location(root)}: labels span "
                            f"{int(y.min())}..{int(y.max())}, expected 0..{spec.num_classes - 1}")


def _check_positive_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _as_device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a valid torch device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but CUDA is not available on this machine")
    return device
