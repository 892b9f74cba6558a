"""Where a dataset's samples come from: presence checks, download, and loading.

A `TensorSource` yields the whole set as uint8 tensors (small sets, augmented on the device);
a `FolderSource` yields map-style datasets of (PIL image, label) decoded on the fly (image
folders too large to hold in memory).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from llsbench.errors import DatasetNotFoundError


class TensorSplit(NamedTuple):
    x: torch.Tensor  # (N, C, H, W) uint8 raw pixels
    y: torch.Tensor  # (N,) int64 labels


class Source(ABC):
    """The on-disk (or bundled) origin of one dataset family."""

    #: Human-readable layout under the data dir, e.g. "<data_dir>/MNIST/raw/*-ubyte".
    layout: str = "(bundled, nothing to download)"
    #: What `--download` fetches; empty when the data cannot be downloaded automatically.
    download_url: str = ""
    #: Extra advice when there is no automatic download.
    manual_steps: str = ""
    #: Folder under the data dir holding the dataset; empty for bundled or generated data.
    folder: str = ""
    #: Paths under `location` that must exist for the dataset to load.
    needed: tuple[str, ...] = ()

    def location(self, root: Path) -> Path | None:
        """The directory that is looked at; None for bundled or generated data."""
        return root / self.folder if self.folder else None

    def missing(self, root: Path) -> list[str]:
        """Paths (relative to `location`) that are needed but absent; empty when ready."""
        return [name for name in self.needed if not (self.location(root) / name).exists()]

    def download(self, root: Path) -> None:
        """Fetch the files into `root`; only called when `download_url` is set and data is missing."""
        raise NotImplementedError

    @property
    def how_to_obtain(self) -> str:
        if self.download_url:
            how = f"run with --download (fetches {self.download_url})"
        else:
            how = self.manual_steps
        return f"{how}, or put the files as {self.layout} under --data-dir or $LLSBENCH_DATA_DIR"

    def ensure(self, name: str, root: Path, download: bool) -> None:
        """Return when the data is usable; otherwise download it if allowed, or explain.

        Never touches the network unless `download` is true.
        """
        missing = self.missing(root)
        if not missing:
            return
        if download and self.download_url:
            try:
                self.download(root)
            except Exception as exc:  # network and archive failures reach the user as one line
                raise DatasetNotFoundError(
                    f"dataset {name!r}: download into {root} failed ({type(exc).__name__}: {exc}); {self.how_to_obtain}"
                ) from exc
            missing = self.missing(root)
            if not missing:
                return
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise DatasetNotFoundError(
            f"dataset {name!r} not found at {self.location(root)} (missing: {shown}); to obtain it, {self.how_to_obtain}"
        )


class TensorSource(Source):
    @abstractmethod
    def load(self, root: Path) -> tuple[TensorSplit, TensorSplit]:
        """(train, test) as uint8 tensors on the CPU."""


class FolderData(NamedTuple):
    train: Dataset  # items: (RGB PIL image, int label), no transform applied
    test: Dataset
    classes: list[str]  # class folder names in label order


class FolderSource(Source):
    @abstractmethod
    def load(self, root: Path) -> FolderData:
        """The train and test image folders of a present dataset."""
