"""torchvision transform pipelines for image-folder datasets, built from a spec."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llsbench.data.specs import DatasetSpec


def folder_transform(spec: DatasetSpec, train: bool) -> Callable:
    """PIL image -> normalised float tensor of side `spec.image_size`.

    Train: [resize] -> random crop (zero padded by crop_pad) -> [flip] -> normalise -> [erase];
    test, and train without a crop: [resize] -> center crop. This is the order of the paper's
    reference loaders (e.g. Resize 132 -> RandomCrop 128 -> flip -> Normalize -> RandomErasing).
    """
    from torchvision import transforms as T  # imported on use: torchvision is slow to import

    aug = spec.augmentation if train else None
    steps: list[Callable] = [T.Resize(spec.resize)] if spec.resize else []
    if aug is not None and aug.crop_pad is not None:
        steps.append(T.RandomCrop(spec.image_size, padding=aug.crop_pad or None))
    else:
        steps.append(T.CenterCrop(spec.image_size))
    if aug is not None and aug.flip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(spec.mean, spec.std)]
    if aug is not None and aug.erase_p > 0:
        steps.append(T.RandomErasing(p=aug.erase_p))
    return T.Compose(steps)
