"""`tsne-m` (the LLS paper's Fig. 3): t-SNE of each block's learned class-mixing M of LLS-MxM.

Logits are z = (a Bᵀ) M, so column j of M ∈ R^{C×C} is what class j's logit reads from the C
basis responses; one point per class is that column, embedded in 2-D per block (scikit-learn
t-SNE, PCA init, fixed seed). Classes the block confuses or groups read alike and land close.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.manifold import TSNE

from llsbench.errors import LLSBenchError
from llsbench.figures.source import FigureResult, RunSource, save, title


def learned_m(source: RunSource) -> list[np.ndarray]:
    """Every block's M (C×C) of an LLS-MxM run; a one-line error for any other run."""
    aux = source.loaded.method.aux
    ms = [getattr(p, "m", None) for p in aux] if hasattr(aux, "__iter__") else []
    if not ms or any(m is None or m.dim() != 2 for m in ms):
        raise LLSBenchError(f"run {source.label} ({source.loaded.config.method}) has no learned M; "
                            f"tsne-m needs an lls-mxm run")
    return [m.detach().double().cpu().numpy() for m in ms]


def embed(m: np.ndarray, seed: int = 0) -> np.ndarray:
    """(C, 2) t-SNE coordinates of M's columns; perplexity scaled to C points."""
    points = m.T
    perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)


def draw(source: RunSource, path: Path) -> FigureResult:
    ms = learned_m(source)
    names = source.class_names()
    coords = [embed(m) for m in ms]
    data = {"coords": coords, "classes": names, "m": ms}
    cols = min(len(ms), 4)
    rows = -(-len(ms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows + 0.5), squeeze=False)
    for ax in axes.flat[len(ms):]:
        ax.set_visible(False)
    colors = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    for i, (ax, xy) in enumerate(zip(axes.flat, coords)):
        ax.scatter(xy[:, 0], xy[:, 1], c=[colors(k % colors.N) for k in range(len(names))], s=28)
        for k, name in enumerate(names):
            ax.annotate(name, xy[k], fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set(title=f"block {i}: M columns", xticks=[], yticks=[])
    fig.suptitle(f"t-SNE of learned M — {title(source)}", fontsize=10)
    save(fig, path)
    return FigureResult(path, data)
