"""`gradcam` (the LLS paper's Fig. 4): Grad-CAM maps of the trained model on N test images per class.

Written directly on `BlockNet.block_outputs`, which keeps the graph from a block's output h(l)
to the logits, so no hook and no extra package is needed: the map of image x for class c is
ReLU(Σ_k w_k h_k) with w_k the spatial mean of ∂z_c/∂h_k (Selvaraju et al., 2017), upsampled
bilinearly to the image and scaled to [0, 1]. The class is the image's true class; the block is
the last one with a spatial output unless another is asked for. Model in eval mode (frozen).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from llsbench.errors import LLSBenchError
from llsbench.figures.source import FigureResult, RunSource, save, title
from llsbench.models import BlockNet, block_output_shapes


def spatial_blocks(model: BlockNet, shape: tuple[int, ...]) -> list[int]:
    return [i for i, s in enumerate(block_output_shapes(model, shape)) if len(s) == 3]


def grad_cam(model: BlockNet, x: torch.Tensor, target: torch.Tensor, block: int) -> torch.Tensor:
    """(N, H, W) maps in [0, 1] for the classes `target` from block `block`'s output."""
    with torch.enable_grad():
        outputs = model.block_outputs(x)
        h, logits = outputs[block], outputs[-1]
        score = logits.gather(1, target[:, None]).sum()  # eval mode: every sample's score is its own
        (grad,) = torch.autograd.grad(score, h)
    cam = F.relu((grad.mean(dim=(2, 3), keepdim=True) * h).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp(min=1e-12)
    return cam / peak[:, None, None]


def per_class(x: torch.Tensor, y: torch.Tensor, classes: int, n: int) -> torch.Tensor:
    """Indices of the first `n` images of every class, class by class."""
    picked = [torch.nonzero(y == c).flatten()[:n] for c in range(classes)]
    short = [c for c, p in enumerate(picked) if len(p) < n]
    if short:
        raise LLSBenchError(f"the test set has fewer than {n} images of class(es) {short}; use a smaller --per-class")
    return torch.cat(picked)


def draw(source: RunSource, path: Path, *, per_class_images: int = 3, block: int | None = None) -> FigureResult:
    model = source.loaded.model
    spec = source.data.spec
    candidates = spatial_blocks(model, (spec.in_channels, spec.image_size, spec.image_size))
    if not candidates:
        raise LLSBenchError(f"model {source.loaded.config.model} has no block with a spatial output; Grad-CAM needs one")
    if block is None:
        block = candidates[-1]
    elif block not in candidates:
        raise LLSBenchError(f"block {block} has no spatial output; blocks with one: {', '.join(map(str, candidates))}")
    x, y = source.test_samples()
    names = source.class_names()
    keep = per_class(x, y, len(names), per_class_images)
    x, y = x[keep], y[keep]
    maps = grad_cam(model, x, y, block)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    images = _display(x, spec)
    data = {"maps": maps.cpu().numpy(), "images": images, "labels": y.cpu().numpy(),
            "predicted": predicted.cpu().numpy(), "block": block, "classes": names}
    _plot(source, data, per_class_images, path)
    return FigureResult(path, data)


def _display(x: torch.Tensor, spec) -> np.ndarray:
    """Images back in [0, 1] (undoing the dataset's normalisation), (N, H, W, C)."""
    mean = torch.tensor(spec.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=x.device).view(1, -1, 1, 1)
    return (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def _plot(source: RunSource, data: dict, n: int, path: Path) -> None:
    names = data["classes"]
    fig, axes = plt.subplots(n, len(names), figsize=(1.3 * len(names) + 0.4, 1.4 * n + 0.7), squeeze=False)
    for k, ax in enumerate(axes.T.flat):  # one column per class
        image = data["images"][k]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
        ax.imshow(data["maps"][k], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        label, guess = names[data["labels"][k]], names[data["predicted"][k]]
        ax.set_title(label if label == guess else f"{label} (→{guess})", fontsize=7)
    fig.suptitle(f"Grad-CAM, block {data['block']} — {title(source)}", fontsize=9)
    save(fig, path)
