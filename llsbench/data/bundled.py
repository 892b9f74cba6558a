"""Datasets that need no files: scikit-learn's 8x8 digits and generated images."""
from __future__ import annotations

from pathlib import Path

import torch

from llsbench.data.sources import TensorSource, TensorSplit

DIGITS_SPLIT_SEED = 0  # fixed: the train/test split never depends on the run seed
DIGITS_TEST_FRACTION = 0.2


class DigitsSource(TensorSource):
    """scikit-learn's bundled 1797 handwritten digits (8x8, pixel values 0..16).

    Split 80/20, stratified by class, with a fixed seed: 1437 train / 360 test.
    """

    def load(self, root: Path) -> tuple[TensorSplit, TensorSplit]:
        # Imported here: scikit-learn takes most of a second to import and only digits needs it.
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = torch.from_numpy(digits.images).to(torch.uint8).unsqueeze(1)
        y = torch.from_numpy(digits.target).long()
        train_idx, test_idx = train_test_split(
            torch.arange(len(y)).numpy(), test_size=DIGITS_TEST_FRACTION, stratify=digits.target,
            random_state=DIGITS_SPLIT_SEED,
        )
        train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
        return TensorSplit(x[train_idx], y[train_idx]), TensorSplit(x[test_idx], y[test_idx])


class SyntheticSource(TensorSource):
    """Deterministic random images for shape tests and smoke runs, like torchvision's FakeData.

    Each class has a random prototype image; a sample is its prototype plus Gaussian pixel
    noise, so a model can learn the task (a smoke test can see the loss fall). Labels cycle
    through the classes within each split, so both splits are balanced.
    """

    def __init__(self, n_train: int = 512, n_test: int = 128, shape: tuple[int, int, int] = (3, 32, 32),
                 num_classes: int = 10, noise: float = 40.0, seed: int = 1234):
        self.n_train, self.n_test, self.shape = n_train, n_test, shape
        self.num_classes, self.noise, self.seed = num_classes, noise, seed

    def load(self, root: Path) -> tuple[TensorSplit, TensorSplit]:
        g = torch.Generator().manual_seed(self.seed)
        prototypes = torch.randint(0, 256, (self.num_classes, *self.shape), generator=g).float()
        return self._split(self.n_train, prototypes, g), self._split(self.n_test, prototypes, g)

    def _split(self, n: int, prototypes: torch.Tensor, g: torch.Generator) -> TensorSplit:
        y = (torch.arange(n) % self.num_classes)[torch.randperm(n, generator=g)]
        x = prototypes[y] + self.noise * torch.randn(n, *self.shape, generator=g)
        return TensorSplit(x.round().clamp(0, 255).to(torch.uint8), y)
