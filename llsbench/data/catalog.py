"""The registered datasets and their augmentation variants.

Naming scheme, the same for every family:
  <name>        the paper's recipe for that dataset (for CIFAR: the SmallConv one, flip only)
  <name>-plain  normalise only, no random augmentation (paper Table 2: "no augmentation");
                folder sets keep their deterministic resize + center crop
  <name>-aug    the paper's heavier "AUG" recipe of its VGG8 runs, where it differs
  <name>-raw    [0, 1] pixels: no normalisation, no augmentation (the DRTP and PEPITA authors'
                MNIST input, `ToTensor()` alone / `Normalize((0,), (1,))`)
Normalisation constants are those of the paper's reference code (e.g. MNIST 0.5/0.5, the
common CIFAR (0.2023, 0.1994, 0.2010) std, ImageNet statistics for the image-folder sets).
"""
from __future__ import annotations

from dataclasses import replace

from llsbench.data.augment import Augmentation
from llsbench.data.bundled import DigitsSource, SyntheticSource
from llsbench.data.cifar import CifarSource
from llsbench.data.folders import ImagenetteSource, TinyImageNetSource, VisualWakeWordsSource
from llsbench.data.mnist import TorchvisionMnistSource
from llsbench.data.specs import DatasetSpec, register

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
RAW_WHAT = "[0, 1] pixels, no normalisation, no augmentation (the DRTP / PEPITA authors' input)"

PLAIN = Augmentation()
CROP4 = Augmentation(crop_pad=4)
CROP4_FLIP = Augmentation(crop_pad=4, flip=True)
FLIP = Augmentation(flip=True)
CIFAR_AUG = Augmentation(crop_pad=4, flip=True, erase_p=0.2)
CROP_FLIP = Augmentation(crop_pad=0, flip=True)  # random crop after the resize, no padding
CROP_FLIP_ERASE = Augmentation(crop_pad=0, flip=True, erase_p=0.2)
FLIP_ERASE = Augmentation(flip=True, erase_p=0.2)


def variant(base: DatasetSpec, suffix: str, augmentation: Augmentation, what: str, **changes) -> DatasetSpec:
    """Register `base` under `<name>-<suffix>` with another augmentation recipe."""
    title = base.description.split(";")[0]
    return register(replace(base, name=f"{base.name}-{suffix}", augmentation=augmentation,
                            description=f"{title}; {what}", **changes))


# ---- bundled, no files needed ---------------------------------------------------------------

register(DatasetSpec(
    name="digits", family="digits", num_classes=10, in_channels=1, image_size=8, source=DigitsSource(),
    mean=(0.3054,), std=(0.3761,), pixel_max=16.0,
    description="scikit-learn 8x8 handwritten digits (bundled, 1437 train / 360 test, fixed stratified split); "
                "no augmentation; quick-start default",
))
register(DatasetSpec(
    name="synthetic", family="synthetic", num_classes=10, in_channels=3, image_size=32, source=SyntheticSource(),
    mean=(0.5, 0.5, 0.5), std=(0.306, 0.306, 0.306),
    description="generated 3x32x32 images, class prototype + noise (512 train / 128 test, fixed); "
                "no augmentation; for shape tests and smoke runs",
))

# ---- MNIST family: tensors on the device ----------------------------------------------------

MNIST = register(DatasetSpec(
    name="mnist", family="mnist", num_classes=10, in_channels=1, image_size=28,
    source=TorchvisionMnistSource("MNIST"), mean=(0.5,), std=(0.5,), augmentation=CROP4,
    description="MNIST handwritten digits (60000 / 10000); paper recipe: random crop 28 pad 4",
))
variant(MNIST, "plain", PLAIN, "no augmentation (normalise only)")
variant(MNIST, "raw", PLAIN, RAW_WHAT, mean=(0.0,), std=(1.0,))

FASHION = register(DatasetSpec(
    name="fashionmnist", family="fashionmnist", num_classes=10, in_channels=1, image_size=28,
    source=TorchvisionMnistSource("FashionMNIST"), mean=(0.286,), std=(0.353,), augmentation=CROP4_FLIP,
    description="Fashion-MNIST (60000 / 10000); paper recipe: random crop 28 pad 4 + horizontal flip",
))
variant(FASHION, "plain", PLAIN, "no augmentation (normalise only)")
variant(FASHION, "raw", PLAIN, RAW_WHAT, mean=(0.0,), std=(1.0,))

for classes in (10, 100):
    cifar = register(DatasetSpec(
        name=f"cifar{classes}", family=f"cifar{classes}", num_classes=classes, in_channels=3, image_size=32,
        source=CifarSource(classes), mean=CIFAR_MEAN, std=CIFAR_STD, augmentation=FLIP,
        description=f"CIFAR-{classes} (50000 / 10000); paper recipe for SmallConv runs: horizontal flip",
    ))
    variant(cifar, "plain", PLAIN, "no augmentation (normalise only)")
    variant(cifar, "raw", PLAIN, RAW_WHAT, mean=(0.0,) * 3, std=(1.0,) * 3)
    variant(cifar, "aug", CIFAR_AUG, "paper 'AUG' recipe of VGG8 runs: random crop 32 pad 4 + flip + random erasing p=0.2")

# ---- image folders: decoded by a DataLoader ---------------------------------------------------

IMAGENETTE = register(DatasetSpec(
    name="imagenette", family="imagenette", num_classes=10, in_channels=3, image_size=128, resize=132,
    source=ImagenetteSource(), mean=IMAGENET_MEAN, std=IMAGENET_STD, augmentation=CROP_FLIP,
    description="Imagenette 160px (10 ImageNet classes, 9469 / 3925); reference recipe: resize 132 -> "
                "random crop 128 + flip (test: resize 132 -> center crop 128)",
))
variant(IMAGENETTE, "plain", PLAIN, "no augmentation (resize 132 -> center crop 128)")
variant(IMAGENETTE, "aug", CROP_FLIP_ERASE, "reference recipe of VGG8 runs: resize 160 -> random crop 128 + flip "
        "+ random erasing p=0.2 (test: resize 160 -> center crop 128)", resize=160)

TINY = register(DatasetSpec(
    name="tinyimagenet", family="tinyimagenet", num_classes=200, in_channels=3, image_size=64,
    source=TinyImageNetSource(), mean=IMAGENET_MEAN, std=IMAGENET_STD, augmentation=FLIP_ERASE,
    description="Tiny ImageNet (200 classes, 64x64, 100000 / 10000 val); paper recipe: flip + random erasing p=0.2",
))
variant(TINY, "plain", PLAIN, "no augmentation (normalise only)")

VWW = register(DatasetSpec(
    name="vww", family="vww", num_classes=2, in_channels=3, image_size=128, resize=132,
    source=VisualWakeWordsSource(), mean=IMAGENET_MEAN, std=IMAGENET_STD, augmentation=CROP_FLIP,
    description="Visual Wake Words (person / non_person, from COCO 2014); reference recipe: resize 132 -> "
                "random crop 128 + flip (test: resize 132 -> center crop 128)",
))
variant(VWW, "plain", PLAIN, "no augmentation (resize 132 -> center crop 128)")
