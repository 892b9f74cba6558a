"""Batched, vectorised training augmentation for datasets held as tensors on a device.

Every random choice of an epoch is drawn up front on a CPU generator (one row per sample) and
then applied to whole batches with indexing and masks, airbench style: no per-image Python loop
and no worker processes, so the GPU is never waiting on the loader. The operations mirror the
torchvision transforms the paper's reference code uses (RandomCrop with zero padding,
RandomHorizontalFlip, RandomErasing with its default scale/ratio and value 0).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llsbench.errors import ConfigError

ERASE_SCALE = (0.02, 0.33)  # torchvision RandomErasing defaults
ERASE_RATIO = (0.3, 3.3)
ERASE_ATTEMPTS = 10


@dataclass(frozen=True)
class Augmentation:
    """A training-time augmentation recipe; the identity when all fields keep their defaults.

    crop_pad: None for no random crop; k >= 0 for a random crop of the input size out of the
        image zero-padded by k pixels per side (torchvision `RandomCrop(size, padding=k)`). For
        folder datasets the crop is taken after the resize, so k = 0 is a plain random crop.
    flip: random horizontal flip with probability 0.5.
    erase_p: probability of random erasing, applied after normalisation (erased pixels become
        0, i.e. the channel mean), as torchvision `RandomErasing(p)`.
    """

    crop_pad: int | None = None
    flip: bool = False
    erase_p: float = 0.0

    def __post_init__(self) -> None:
        if self.crop_pad is not None and self.crop_pad < 0:
            raise ConfigError(f"crop_pad must be None or >= 0, got {self.crop_pad}")
        if not 0.0 <= self.erase_p <= 1.0:
            raise ConfigError(f"erase_p must be in [0, 1], got {self.erase_p}")

    @property
    def is_identity(self) -> bool:
        return self.crop_pad is None and not self.flip and self.erase_p == 0.0

    def describe(self) -> str:
        """A short recipe string for run metadata, e.g. 'crop(pad=4)+flip+erase(p=0.2)'."""
        parts = []
        if self.crop_pad is not None:
            parts.append(f"crop(pad={self.crop_pad})")
        if self.flip:
            parts.append("flip")
        if self.erase_p > 0:
            parts.append(f"erase(p={self.erase_p:g})")
        return "+".join(parts) or "none"

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> AugParams:
        """Draw the random choices for n samples (one row each) from `generator`."""
        shifts = flips = rects = None
        if self.crop_pad is not None:
            shifts = torch.randint(0, 2 * self.crop_pad + 1, (n, 2), generator=generator)
        if self.flip:
            flips = torch.rand(n, generator=generator) < 0.5
        if self.erase_p > 0:
            rects = sample_erase_rects(n, height, width, self.erase_p, generator)
        return AugParams(shifts, flips, rects)

    def apply(self, x: torch.Tensor, params: AugParams, normalise: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Augment a raw-pixel batch and normalise it, in the reference order.

        Crop and flip act on raw pixels (the crop pads with black, as torchvision does before
        `Normalize`); erasing acts on the normalised batch.
        """
        if params.shifts is not None:
            x = translate_crop(x, self.crop_pad or 0, params.shifts)
        if params.flips is not None:
            x = flip_where(x, params.flips)
        x = normalise(x)
        if params.rects is not None:
            x = erase_rects(x, params.rects)
        return x


@dataclass
class AugParams:
    """Per-sample random choices: row i belongs to the i-th sample of the epoch's order."""

    shifts: torch.Tensor | None  # (n, 2) int64: (top, left) of the crop in the padded image
    flips: torch.Tensor | None  # (n,) bool: flip this sample
    rects: torch.Tensor | None  # (n, 4) int64: (top, left, height, width); height 0 = no erase

    def to(self, device: torch.device) -> AugParams:
        return AugParams(*(None if t is None else t.to(device) for t in (self.shifts, self.flips, self.rects)))

    def __getitem__(self, rows: slice) -> AugParams:
        return AugParams(*(None if t is None else t[rows] for t in (self.shifts, self.flips, self.rects)))


def translate_crop(x: torch.Tensor, pad: int, shifts: torch.Tensor) -> torch.Tensor:
    """Per-sample random crop of the input size out of the zero-padded batch (NCHW).

    Two gathers (rows, then columns) take each sample's window at its own offset, which is a
    translation by (pad - top, pad - left) with zero fill.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = shifts[:, :1] + torch.arange(h, device=x.device)  # (n, h)
    cols = shifts[:, 1:] + torch.arange(w, device=x.device)  # (n, w)
    x = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
    return x.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def flip_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right exactly the samples whose mask entry is True."""
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def erase_rects(x: torch.Tensor, rects: torch.Tensor) -> torch.Tensor:
    """Set one rectangle per sample (all channels) to 0; a zero-height rectangle erases nothing."""
    h, w = x.shape[-2:]
    top, left, height, width = rects.unbind(1)
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    in_rows = (r >= top[:, None]) & (r < (top + height)[:, None])  # (n, h)
    in_cols = (c >= left[:, None]) & (c < (left + width)[:, None])  # (n, w)
    mask = in_rows[:, :, None] & in_cols[:, None, :]
    return x.masked_fill(mask[:, None], 0.0)


def sample_erase_rects(n: int, height: int, width: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Rectangles as torchvision `RandomErasing.get_params` picks them, for n samples at once.

    Each sample is erased with probability p; its rectangle is the first of 10 candidate
    (area, aspect) draws that fits inside the image, and none if no candidate fits.
    """
    erase = torch.rand(n, generator=generator) < p
    area = height * width * torch.empty(n, ERASE_ATTEMPTS).uniform_(*ERASE_SCALE, generator=generator)
    log_ratio = torch.empty(n, ERASE_ATTEMPTS).uniform_(*map(math.log, ERASE_RATIO), generator=generator)
    h = torch.sqrt(area * log_ratio.exp()).round().long()
    w = torch.sqrt(area / log_ratio.exp()).round().long()
    fits = (h < height) & (w < width)
    first = fits.int().argmax(1, keepdim=True)  # argmax returns the first True
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    keep = erase & fits.any(1)
    h, w = h * keep, w * keep
    top = (torch.rand(n, generator=generator) * (height - h + 1)).long()
    left = (torch.rand(n, generator=generator) * (width - w + 1)).long()
    return torch.stack([top, left, h, w], dim=1)
