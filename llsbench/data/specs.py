"""What a dataset is: its spec, and the registry of all specs by name."""
from __future__ import annotations

from dataclasses import dataclass, field

from llsbench.data.augment import Augmentation
from llsbench.data.sources import Source
from llsbench.registry import Registry


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the harness needs to know about one registered dataset variant.

    Variants of one on-disk dataset (e.g. `cifar10`, `cifar10-plain`, `cifar10-aug`) share
    `family` and `source` and differ only in `augmentation`. Inputs are normalised as
    `(pixels / pixel_max - mean) / std` per channel; `mean`/`std` are exposed here so that
    others can undo it (plots) or reuse it.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int  # side of the square input the model sees (after any resize / crop)
    description: str
    family: str
    source: Source = field(repr=False)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: Augmentation = field(default_factory=Augmentation)
    pixel_max: float = 255.0  # raw pixel value that maps to 1.0 before mean/std
    resize: int | None = None  # folder datasets: shorter side is resized to this before cropping

    @property
    def how_to_obtain(self) -> str:
        """One line: the on-disk layout and how to get the files."""
        return self.source.how_to_obtain

    @property
    def preprocess(self) -> str:
        """The deterministic geometry shared by train and test (folder datasets only)."""
        if self.resize is None:
            return "none"
        return f"resize({self.resize})+center_crop({self.image_size})"


DATASETS: Registry[DatasetSpec] = Registry("dataset", entry_point_group="llsbench.datasets")


def register(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.add(spec.name, spec)
    return spec
