"""What a figure is drawn from (`RunSource`: one MLflow run, its kept model and its data, each
loaded on first use) and what it gives back (`FigureResult`: the PNG and the arrays drawn)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from llsbench import tracking  # noqa: E402
from llsbench.artifacts import FIGURE_ARTIFACTS, LoadedRun, load_run  # noqa: E402

# Class names by dataset family; any other dataset's classes are shown by index.
CLASS_NAMES = {
    "digits": [str(i) for i in range(10)], "mnist": [str(i) for i in range(10)],
    "fashionmnist": ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


@dataclass
class FigureResult:
    path: Path
    data: dict[str, Any] = field(default_factory=dict)  # the arrays the picture shows
    metrics: dict[str, float] = field(default_factory=dict)  # logged to the run as well


class RunSource:
    """One finished MLflow run as figures need it; nothing is loaded before it is asked for."""

    def __init__(self, run_id: str, tracking_uri: str | None = None, device: str = "auto",
                 data_dir: str | None = None):
        self.run_id, self.tracking_uri, self.device, self.data_dir = run_id, tracking_uri, device, data_dir
        self.client = tracking.client(tracking_uri)

    @cached_property
    def run(self):
        return self.client.get_run(self.run_id)

    @cached_property
    def loaded(self) -> LoadedRun:
        return load_run(self.run_id, self.tracking_uri, device=self.device)

    @cached_property
    def data(self):
        return self.loaded.load_data(self.data_dir)

    @property
    def label(self) -> str:
        return f"{self.run.info.run_name} ({self.run_id[:8]})"

    @property
    def slug(self) -> str:
        """A folder name for this run's figures: its name made file-safe, and its id's start."""
        name = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in self.run.info.run_name or "run")
        return f"{name}-{self.run_id[:8]}"

    def class_names(self) -> list[str]:
        spec = self.data.spec
        names = CLASS_NAMES.get(spec.family)
        return names if names and len(names) == spec.num_classes else [str(c) for c in range(spec.num_classes)]

    def test_samples(self, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `limit` test images (all by default) and their labels."""
        xs, ys, seen = [], [], 0
        for x, y in self.data.test:
            xs.append(x), ys.append(y)
            seen += len(y)
            if limit is not None and seen >= limit:
                break
        x, y = torch.cat(xs), torch.cat(ys)
        return (x, y) if limit is None else (x[:limit], y[:limit])

    def publish(self, result: FigureResult) -> None:
        """Log the PNG under the run's `figures/` artifacts and the result's metrics on the run."""
        self.client.log_artifact(self.run_id, str(result.path), artifact_path=FIGURE_ARTIFACTS)
        for key, value in result.metrics.items():
            self.client.log_metric(self.run_id, key, float(value))


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def title(source: RunSource) -> str:
    c = source.loaded.config
    return f"{c.method} on {c.model}/{c.dataset}, seed {c.seed} — run {source.run_id[:8]}"
