"""`sync` (the LLS paper's Fig. 2): does a block's activity synchronise with its class's basis?

Per block and class, the magnitude spectrum (over the index of a(l), as the paper draws it) of
what is specific to the class in its L2-normalised activation a(l) — the class's mean minus the
mean over classes (the shared part carries every class's frequency at once) — beside the
spectrum of that class's basis vector b(l)_c. Under LLS the activation of class c peaks where
b_c does; under BP or DFA nothing pulls it there. Both spectra drop the DC term.

For an LLS-type run the basis is the run's own; for any other rule it is the basis LLS would
give that block (`basis`, default `sin-ref`, LLS's default). The score per class is the
*peak ratio*: the activation spectrum at the basis's strongest frequency over its mean —
about 1 when the activation ignores that frequency, large when it synchronises.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from llsbench.errors import LLSBenchError
from llsbench.figures.features import pooled_features
from llsbench.figures.source import FigureResult, RunSource, save, title
from llsbench_methods.lls import BASES, LLS, make_basis

MAX_SAMPLES = 5000  # test images averaged per figure (all of a smaller test set)


def draw(source: RunSource, path: Path, *, block: int | None = None, basis: str = "sin-ref") -> FigureResult:
    method, model = source.loaded.method, source.loaded.model
    blocks = _blocks(len(model.blocks), block)
    x, y = source.test_samples(MAX_SAMPLES)
    features = pooled_features(model, x)
    names = source.class_names()
    activation, reference, ratios = [], [], []
    for i in blocks:
        b = _basis(source, i, basis).to(x.device)
        mean = _class_means(F.normalize(features[i], dim=1), y, len(names))
        act, ref = _spectrum(mean - mean.mean(dim=0, keepdim=True)), _spectrum(b)
        activation.append(act), reference.append(ref), ratios.append(peak_ratio(act, ref))
    data = {"blocks": blocks, "activation_spectra": activation, "basis_spectra": reference, "peak_ratio": ratios,
            "classes": names, "basis": _basis_name(source, basis)}
    _plot(source, data, path)
    return FigureResult(path, data)


def _blocks(count: int, block: int | None) -> list[int]:
    if block is None:
        return list(range(count))
    if not 0 <= block < count:
        raise LLSBenchError(f"block {block} does not exist; this model has blocks 0..{count - 1}")
    return [block]


def _is_lls(source: RunSource) -> bool:
    return isinstance(source.loaded.method, LLS)


def _basis_name(source: RunSource, basis: str) -> str:
    return source.loaded.method.config["basis"] if _is_lls(source) else basis


def _basis(source: RunSource, index: int, basis: str) -> torch.Tensor:
    """The block's B(l) ∈ R^{C×T}: the run's own under LLS, else the one LLS would use."""
    method = source.loaded.method
    if _is_lls(source):
        return method.aux[index].basis
    if basis not in BASES:
        raise LLSBenchError(f"basis {basis!r} is not one of: {', '.join(BASES)}")
    torch.manual_seed(source.loaded.config.seed)  # the random basis is drawn from the global RNG
    return make_basis(basis, method.num_classes, method.signal_width(index))


def _class_means(a: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    sums = torch.zeros(classes, a.shape[1], dtype=a.dtype, device=a.device).index_add_(0, y, a)
    counts = torch.bincount(y, minlength=classes).clamp(min=1)
    return sums / counts[:, None]


def _spectrum(rows: torch.Tensor) -> np.ndarray:
    """|rFFT| of each row with its mean removed, DC bin dropped: (rows, T//2) in float64."""
    rows = rows.double().cpu()
    return torch.fft.rfft(rows - rows.mean(dim=1, keepdim=True), dim=1).abs()[:, 1:].numpy()


def peak_ratio(activation: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Per class: activation spectrum at the basis's strongest bin / its mean over all bins."""
    peaks = basis.argmax(axis=1)
    at_peak = activation[np.arange(len(activation)), peaks]
    return at_peak / np.maximum(activation.mean(axis=1), 1e-12)


def _plot(source: RunSource, data: dict, path: Path) -> None:
    rows = len(data["blocks"])
    fig, axes = plt.subplots(rows, 2, figsize=(11, 2.6 * rows + 0.6), squeeze=False)
    names = data["classes"]
    for r, i in enumerate(data["blocks"]):
        for c, (kind, spectra) in enumerate((("activation a(l): class mean − mean over classes", data["activation_spectra"][r]),
                                             (f"basis b(l)_c ({data['basis']})", data["basis_spectra"][r]))):
            ax = axes[r][c]
            shown = spectra / np.maximum(spectra.max(axis=1, keepdims=True), 1e-12)
            ax.imshow(shown, aspect="auto", cmap="magma", interpolation="nearest",
                      extent=(0.5, shown.shape[1] + 0.5, len(names) - 0.5, -0.5))
            ax.set_yticks(range(len(names)), names, fontsize=7)
            ax.set(xlabel="frequency (cycles over T)", ylabel="class")
            extra = f", mean peak ratio {data['peak_ratio'][r].mean():.1f}" if c == 0 else ""
            ax.set_title(f"block {i}: {kind}{extra}", fontsize=9)
    fig.suptitle(f"Spectra of activations and basis — {title(source)}", fontsize=10)
    save(fig, path)
