"""Image-folder datasets decoded on the fly: Imagenette, Tiny ImageNet, Visual Wake Words."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from llsbench.data.sources import FolderData, FolderSource
from llsbench.errors import LLSBenchError


class ImagenetteSource(FolderSource):
    """fast.ai's Imagenette, 160 px version, through torchvision's `Imagenette` class."""

    layout = "<data_dir>/imagenette2-160/{train,val}/<wnid>/*.JPEG"
    download_url = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
    folder = "imagenette2-160"
    needed = ("train", "val")

    def download(self, root: Path) -> None:
        from torchvision.datasets import Imagenette  # imported on use: torchvision is slow to import

        Imagenette(root, split="train", size="160px", download=True)

    def load(self, root: Path) -> FolderData:
        from torchvision.datasets import Imagenette

        train, test = (Imagenette(root, split=split, size="160px") for split in ("train", "val"))
        return FolderData(train, test, list(train.wnids))


class TinyImageNetSource(FolderSource):
    """Stanford CS231n's Tiny ImageNet (200 classes, 64x64) in its distributed layout.

    The validation images are not in class folders: their labels are in
    `val/val_annotations.txt`, so torchvision's `ImageFolder` cannot read that split.
    """

    layout = ("<data_dir>/tiny-imagenet-200/{wnids.txt, train/<wnid>/images/*.JPEG, "
              "val/images/*.JPEG, val/val_annotations.txt}")
    download_url = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
    md5 = "90528d7ca1a48142e341f4ef8d21d0de"
    folder = "tiny-imagenet-200"
    needed = ("wnids.txt", "train", "val/images", "val/val_annotations.txt")

    def download(self, root: Path) -> None:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(self.download_url, str(root), md5=self.md5)

    def load(self, root: Path) -> FolderData:
        base = self.location(root)
        classes = sorted((base / "wnids.txt").read_text().split())
        return FolderData(TinyImageNetSplit(base, "train", classes), TinyImageNetSplit(base, "val", classes), classes)


class TinyImageNetSplit(Dataset):
    """One split of Tiny ImageNet; labels index the sorted wnids (as `ImageFolder` would)."""

    def __init__(self, base: Path, split: str, classes: list[str]):
        from torchvision.datasets.folder import make_dataset

        class_to_idx = {wnid: i for i, wnid in enumerate(classes)}
        if split == "train":
            self.samples = make_dataset(str(base / "train"), class_to_idx, extensions=(".jpeg",), allow_empty=True)
            empty = sorted(set(classes) - {classes[label] for _, label in self.samples})
            if empty:  # torchvision would list all of them; a count and examples read better
                raise LLSBenchError(f"{len(empty)} of {len(classes)} classes have no images under "
                                    f"{base / 'train'}/<wnid>/images (e.g. {', '.join(empty[:3])})")
        else:
            self.samples = [
                (str(base / "val" / "images" / fields[0]), class_to_idx[fields[1]])
                for fields in (line.split("\t") for line in (base / "val" / "val_annotations.txt").read_text().splitlines())
                if len(fields) >= 2
            ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from torchvision.datasets.folder import default_loader

        path, label = self.samples[index]
        return default_loader(path), label


class VisualWakeWordsSource(FolderSource):
    """Visual Wake Words (person / no person, from COCO 2014) as a plain two-class image folder.

    There is no canonical archive: VWW is built from COCO with a script, so we read the result
    of that script saved as class folders (label 0 = non_person, 1 = person).
    """

    layout = "<data_dir>/vww/{train,val}/{non_person,person}/*.jpg"
    manual_steps = (
        "VWW cannot be downloaded automatically: build it from COCO 2014 with the `pyvww` package "
        "(or TF models' research/slim/datasets/build_visualwakewords_data.py, person area threshold 0.5%) "
        "and save every image into the folder of its label"
    )
    folder = "vww"
    needed = ("train/non_person", "train/person", "val/non_person", "val/person")

    def load(self, root: Path) -> FolderData:
        from torchvision.datasets import ImageFolder

        train, test = (ImageFolder(str(self.location(root) / split)) for split in ("train", "val"))
        return FolderData(train, test, list(train.classes))
