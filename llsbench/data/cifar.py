"""CIFAR-10 / CIFAR-100 read straight from the python-pickle batch files.

torchvision's CIFAR classes verify the MD5 of every pickle before loading, so they refuse any
file but the official ones (and hence tiny test fixtures); we read the pickles ourselves and use
torchvision only to download and check the official archive.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from llsbench.data.sources import TensorSource, TensorSplit
from llsbench.errors import LLSBenchError


def read_cifar_pickle(path: Path, label_key: str) -> TensorSplit:
    """One CIFAR batch file: b'data' is (N, 3072) uint8 rows (1024 R, 1024 G, 1024 B, each 32x32
    row-major) and `label_key` (b'labels' or b'fine_labels') a list of N ints.

    The official files are Python 2 pickles whose keys load as bytes; keys are decoded so that
    files written by Python 3 (str keys) read the same.
    """
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if "data" not in entry or label_key not in entry:
        raise LLSBenchError(f"{path} is not a CIFAR batch file: keys {sorted(entry)}, need 'data' and {label_key!r}")
    data = np.asarray(entry["data"], dtype=np.uint8)
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    y = torch.as_tensor(entry[label_key], dtype=torch.long)
    if len(x) != len(y):
        raise LLSBenchError(f"{path}: {len(x)} images but {len(y)} labels")
    return TensorSplit(x, y)


def concat(splits: list[TensorSplit]) -> TensorSplit:
    return TensorSplit(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


class CifarSource(TensorSource):
    """CIFAR-10 (`cifar-10-batches-py/data_batch_1..5`, `test_batch`) or CIFAR-100
    (`cifar-100-python/train`, `test`, fine labels)."""

    _LAYOUTS: ClassVar[dict[int, tuple]] = {  # classes: (folder, train files, test files, label key, torchvision class)
        10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "CIFAR10"),
        100: ("cifar-100-python", ["train"], ["test"], "fine_labels", "CIFAR100"),
    }

    def __init__(self, num_classes: int):
        self.folder, self.train_files, self.test_files, self.label_key, self.class_name = self._LAYOUTS[num_classes]
        self.layout = f"<data_dir>/{self.folder}/{{{','.join(self.train_files + self.test_files)}}}"
        self.needed = tuple(self.train_files + self.test_files)

    def _dataset_class(self):
        import torchvision.datasets  # imported on use: it is slow to import

        return getattr(torchvision.datasets, self.class_name)

    @property
    def download_url(self) -> str:
        return self._dataset_class().url

    def download(self, root: Path) -> None:
        from torchvision.datasets.utils import download_and_extract_archive

        cls = self._dataset_class()
        download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)

    def load(self, root: Path) -> tuple[TensorSplit, TensorSplit]:
        return self._read(root, self.train_files), self._read(root, self.test_files)

    def _read(self, root: Path, names: list[str]) -> TensorSplit:
        return concat([read_cifar_pickle(self.location(root) / n, self.label_key) for n in names])
