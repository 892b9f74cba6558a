"""Datasets: registry, on-disk loaders, and batch iterators.

`load_data(name, ...)` returns `DataSplits` whose `train` / `test` yield normalised float32
NCHW batches on the requested device. `DATASETS` maps every name to its `DatasetSpec`
(classes, channels, input size, normalisation, augmentation, on-disk layout).
"""
from llsbench.data import catalog as _catalog  # noqa: F401  (registers the built-in datasets)
from llsbench.data.augment import Augmentation
from llsbench.data.load import load_data
from llsbench.data.paths import DATA_DIR_ENV, resolve_data_dir
from llsbench.data.specs import DATASETS, DatasetSpec
from llsbench.data.splits import Batches, DataSplits

__all__ = [
    "DATASETS", "DATA_DIR_ENV", "Augmentation", "Batches", "DataSplits", "DatasetSpec", "load_data",
    "resolve_data_dir",
]
