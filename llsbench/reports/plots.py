"""PNG figures of a suite: test-accuracy curves per method (mean ± std over seeds), and
accuracy against learning-signal MACs and against memory (one point per method, log x)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

PANEL = ["dataset", "model", "budget"]
# Cost metric → (file suffix, axis label); memory figures never mix the two measurements.
COST_AXES = {
    "signal_macs": ("acc_vs_signal_macs", "learning-signal MACs per sample"),
    "held_memory_bytes": ("acc_vs_held_memory", "held memory per step (bytes, saved tensors + params + optimiser)"),
    "cuda_peak_bytes": ("acc_vs_cuda_peak", "CUDA peak allocated memory per step (bytes)"),
}


def accuracy_curves(cells: pd.DataFrame, curves: pd.DataFrame, path: Path) -> Path:
    """`cells` from `table.cell_frame`; `curves` (run_id, step, value) of `test_acc`."""
    data = curves.merge(cells[["run_id", *PANEL, "method"]], on="run_id")
    panels = list(cells[PANEL].drop_duplicates().itertuples(index=False))
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        part = data[(data[PANEL] == pd.Series(panel._asdict())).all(axis=1)]
        colors = _colors(cells["method"])
        for method in colors:
            stats = part[part["method"] == method].groupby("step")["value"].agg(["mean", "std"]).fillna(0.0)
            if stats.empty:
                continue
            ax.plot(stats.index, stats["mean"], marker="." if len(stats) < 30 else None, label=method,
                    color=colors[method])
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                            color=colors[method], alpha=0.12)
        ax.set(title=_title(panel), xlabel="epoch", ylabel="test accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def accuracy_vs_cost(table: pd.DataFrame, metric: str, path: Path) -> Path:
    """One point per method (mean accuracy ± std over seeds) against the mean of `metric`."""
    panels = list(table[PANEL].drop_duplicates().itertuples(index=False))
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels):
        part = table[(table[PANEL] == pd.Series(panel._asdict())).all(axis=1)].dropna(subset=[metric])
        part = part[part[metric] > 0]
        colors = _colors(table["method"])
        for row in part.itertuples():
            spread = 0.0 if pd.isna(row.test_acc_std) else row.test_acc_std
            ax.errorbar(getattr(row, metric), row.test_acc_mean, yerr=spread, fmt="o", capsize=3,
                        color=colors[row.method], label=row.method)
        ax.set_xscale("log")
        ax.set(title=_title(panel), xlabel=COST_AXES[metric][1], ylabel="test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    return _save(fig, path)


def _colors(methods: pd.Series) -> dict:
    """One colour per method, the same in every figure (20 distinct before any repeats)."""
    palette = plt.get_cmap("tab20").colors
    return {m: palette[(2 * i) % 20 + (2 * i) // 20 % 2] for i, m in enumerate(dict.fromkeys(methods))}


def _grid(n: int):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _title(panel) -> str:
    return f"{panel.dataset} / {panel.model}" + ("" if panel.budget == "paper" else f"\nbudget: {panel.budget}")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
