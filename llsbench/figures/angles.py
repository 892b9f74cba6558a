"""`angles`: the per-block angle between the rule's update and the BP gradient over training,
as logged by `run method --angle-every N` (metrics `angle_block{i}`, `angle_head`)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from llsbench.errors import LLSBenchError
from llsbench.figures.source import FigureResult, RunSource, save


def angle_curves(source: RunSource) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Metric name → (steps, degrees), blocks in order then the head."""
    names = [k for k in source.run.data.metrics if k.startswith("angle_")]
    if not names:
        raise LLSBenchError(f"run {source.label} has no update/BP-gradient angles (angle_block*); "
                            f"train it with --angle-every N")
    names.sort(key=lambda k: (k == "angle_head", int(k[11:]) if k[11:].isdigit() else 0, k))
    curves = {}
    for name in names:
        history = sorted(source.client.get_metric_history(source.run_id, name), key=lambda m: m.step)
        curves[name] = (np.array([m.step for m in history]), np.array([m.value for m in history]))
    return curves


def draw(source: RunSource, path: Path) -> FigureResult:
    curves = angle_curves(source)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, (steps, values) in curves.items():
        ax.plot(steps, values, marker="." if len(steps) < 40 else None, label=name[6:])
    ax.axhline(90.0, color="gray", linestyle=":", linewidth=1)
    ax.set(xlabel="training step", ylabel="angle to BP gradient (°)", ylim=(0, 180))
    tags = source.run.data.tags
    ax.set_title(f"Update/BP-gradient angles — {tags.get('method', '?')} on {tags.get('model', '?')}/"
                 f"{tags.get('dataset', '?')}, run {source.run_id[:8]}", fontsize=9)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    save(fig, path)
    return FigureResult(path, {"curves": curves})
