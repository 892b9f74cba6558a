"""MNIST and FashionMNIST in torchvision's layout: <data_dir>/<Name>/raw/*-ubyte."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from llsbench.data.sources import TensorSource, TensorSplit


class TorchvisionMnistSource(TensorSource):
    """An MNIST-format dataset read through its torchvision class (idx-ubyte files).

    torchvision reads the uncompressed idx files (checking their magic numbers) and downloads
    and unpacks the `.gz` files itself; we only take its `.data` / `.targets` tensors.
    """

    def __init__(self, class_name: str):
        self.class_name = class_name  # "MNIST" or "FashionMNIST": also the folder name
        self.layout = f"<data_dir>/{class_name}/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte"

    def _dataset_class(self):
        import torchvision.datasets  # imported on use: it is slow to import and most runs need one set

        return getattr(torchvision.datasets, self.class_name)

    @property
    def download_url(self) -> str:
        cls = self._dataset_class()
        return cls.mirrors[0] + "{" + ",".join(name for name, _ in cls.resources) + "}"

    def location(self, root: Path) -> Path:
        return root / self.class_name / "raw"

    def missing(self, root: Path) -> list[str]:
        names = [os.path.splitext(os.path.basename(url))[0] for url, _ in self._dataset_class().resources]
        return [name for name in names if not (self.location(root) / name).is_file()]

    def download(self, root: Path) -> None:
        cls = self._dataset_class()
        for train in (True, False):
            cls(root, train=train, download=True)

    def load(self, root: Path) -> tuple[TensorSplit, TensorSplit]:
        cls = self._dataset_class()
        return tuple(self._split(cls(root, train=train, download=False)) for train in (True, False))

    @staticmethod
    def _split(ds) -> TensorSplit:
        return TensorSplit(ds.data.unsqueeze(1).contiguous(), torch.as_tensor(ds.targets, dtype=torch.long))
